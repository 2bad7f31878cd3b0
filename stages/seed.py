"""seed: train and evaluate one from-scratch model once more with another seed (`python -m stages.seed NAME SEED`),
for params.yaml `seeds:`; compare reports the mean and spread over the seeds. Transfer models: stages/seed_transfer.py.

The run's reports go to reports/seeds/NAME/seed-SEED (train/ holds its dvclive log); its model is deleted once it is
scored: the seeded runs measure training variance, the model to use is the entry's own.
"""

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from imageclf import params
from imageclf.errors import UserError, cli
from stages import train

RUNS = Path("data/seed_runs")  # the models while they train (resumable), removed once scored
REPORTS = Path("reports/seeds")


def run(stage: str, group: str, train_entry: Callable[..., dict]) -> None:
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        raise UserError(f"usage: python -m stages.{stage} <name listed in params.yaml seeds.{group}> <seed>")
    name, seed = sys.argv[1], int(sys.argv[2])
    p = params.load(("data", "prepare", "evaluate", "train_defaults", "train", "features", "models", "seeds"))
    if name not in p["seeds"][group] or seed not in p["seeds"]["values"]:
        raise UserError(f"params.yaml: {name} with seed {seed} is not a seeded run of seeds.{group} and seeds.values")
    work, out = RUNS / f"{name}-{seed}", REPORTS / name / f"seed-{seed}"
    summary = train_entry(p, name, work, out / "train", seed)
    from imageclf import evaluation  # TensorFlow is loaded by now

    results = evaluation.evaluate(name, work, train.PREPARED, out, p)
    shutil.rmtree(work)
    split = p["evaluate"]["split"]
    print(f"seed {name} {seed}: best epoch {summary['best_epoch']}, {split} accuracy {results[split]['accuracy']:.4f}")


@cli
def main() -> None:
    run("seed", "scratch", train.train_entry)


if __name__ == "__main__":
    main()
