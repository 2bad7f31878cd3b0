"""Benchmark: fit throughput per family with steps_per_execution 1 vs the automatic value, through the real input
pipeline, measured side by side (alternating, best of each).

    .venv/bin/python bench/steps_bench.py [--prepared data/prepared] [--steps 160] [--families mlp lenet5 ...]

Needs the prepared Fashion-MNIST cache (dvc repro prepare). Prints images/s of both settings and their ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras

from imageclf.cache import loader
from imageclf.cache.shards import read_meta
from imageclf.models.registry import REGISTRY
from imageclf.train.fit import AUTO_STEPS_PER_EXECUTION

ROOT = Path(__file__).resolve().parents[1]

BATCH = 128


def images_per_s(family: str, prepared: Path, steps: int, spe: int) -> float:
    meta = read_meta(prepared)
    keras.utils.set_random_seed(0)
    model = REGISTRY[family].build(tuple(meta["shape"]), len(meta["classes"]))
    model.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], steps_per_execution=spe)
    data = loader.dataset(prepared, "train", BATCH, shuffle=True, seed=0, epochs=(0, 100))
    model.fit(data, epochs=1, steps_per_epoch=2 * spe, verbose=0)  # trace and warm the cache
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prepared", type=Path, default=ROOT / "data/prepared")
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--families", nargs="+", default=["mlp", "lenet5", "cnn_small", "cnn_bn", "cnn_lego"])
    args = parser.parse_args()
    print(f"| family | images/s, steps_per_execution 1 | images/s, {AUTO_STEPS_PER_EXECUTION} | ratio |")
    print("|---|---|---|---|")
    for family in args.families:
        best = {1: 0.0, AUTO_STEPS_PER_EXECUTION: 0.0}
        for _ in range(2):
            for spe in best:
                best[spe] = max(best[spe], images_per_s(family, args.prepared, args.steps, spe))
        one, auto = best[1], best[AUTO_STEPS_PER_EXECUTION]
        print(f"| {family} | {one:.0f} | {auto:.0f} | {auto / one:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
