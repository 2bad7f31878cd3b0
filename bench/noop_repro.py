"""Benchmark: the time of a no-op `dvc repro` (everything up to date), with ruamel.yaml's C parser and with the pure
Python one it falls back to when ruamel.yaml.clib is missing, measured side by side (alternating, median of each).

    .venv/bin/python bench/noop_repro.py [--repo .] [--runs 5]

The repository must be reproduced already (`dvc repro` says "Data and pipelines are up to date"). DVC parses
dvc.lock, dvc.yaml and params.yaml about twenty times per call; the profile (python -m cProfile -m dvc repro) showed
YAML parsing as two thirds of the time without the C parser.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUN = "import sys\n{block}from dvc.cli import main\nsys.exit(main(['repro']))\n"
WITHOUT_C = "sys.modules['ruamel.yaml.clib'] = sys.modules['_ruamel_yaml'] = None\n"


def seconds(repo: Path, block: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN.format(block=block)], cwd=repo, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0 or "up to date" not in done.stdout:
        sys.exit(f"{repo}: dvc repro is not a no-op there: {(done.stdout + done.stderr).strip()[-300:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"C parser": [], "pure Python": []}
    for _ in range(args.runs):
        times["C parser"].append(seconds(args.repo, ""))
        times["pure Python"].append(seconds(args.repo, WITHOUT_C))
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name}: median {median[name]:.2f} s ({', '.join(f'{x:.2f}' for x in t)})")
    print(f"ratio pure Python / C parser: {median['pure Python'] / median['C parser']:.2f}")


if __name__ == "__main__":
    main()
