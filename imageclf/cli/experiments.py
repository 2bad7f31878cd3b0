"""experiments: one table across DVC experiments and models, including experiments run on other machines (not a DVC
stage; run it by hand on the collecting machine).

    python -m imageclf.cli.experiments [--pull GIT_REMOTE] [--split test] [--out reports/experiments]

--pull first fetches the experiments other machines pushed (`dvc exp push GIT_REMOTE`) with `dvc exp pull`; then
`dvc exp show --json` gives every baseline commit and its experiments: the params that differ, each model's scores
on --split with their intervals and train time, the best experiment per model marked, written to
OUT/experiments.{csv,md,html,png}.
"""

import argparse
import json
import sys
from pathlib import Path

from imageclf.core.errors import cli
from imageclf.report import experiments


@cli
def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m imageclf.cli.experiments", description=__doc__.split("\n")[0])
    parser.add_argument("--pull", metavar="GIT_REMOTE", help="pull the experiments pushed to this git remote first")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--out", default="reports/experiments", type=Path)
    parser.add_argument("--all-commits", action="store_true", help="experiments of every commit, not only HEAD's")
    args = parser.parse_args(sys.argv[1:])
    scope = ["--all-commits"] if args.all_commits else []
    if args.pull:
        experiments.dvc("exp", "pull", args.pull, *scope)
    frame = experiments.table(experiments.runs(json.loads(experiments.dvc("exp", "show", "--json", *scope))),
                              args.split)
    experiments.write(frame, args.out, args.split)
    print(f"experiments: {frame['experiment'].nunique()} experiments, {frame['model'].nunique()} models -> "
          f"{args.out / 'experiments.html'}")


if __name__ == "__main__":
    main()
