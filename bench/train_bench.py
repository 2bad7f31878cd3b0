"""Benchmark: fit throughput of cnn_small through the real input pipeline vs the same data as in-memory tensors.

    .venv/bin/python bench/train_bench.py [--prepared data/prepared] [--steps 200]

Needs the prepared Fashion-MNIST cache (dvc repro prepare). Both variants train the same architecture for the same
number of steps, alternating twice; the best of each counts. Target: pipeline / in-memory >= 0.95.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np

from imageclf.cache import loader
from imageclf.cache.shards import load_split
from imageclf.models.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]

BATCH = 128


def fresh_model(shape: tuple, n_classes: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = REGISTRY["cnn_small"].build(shape, n_classes)
    model.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def timed_fit(model: keras.Model, data, steps: int, **kw) -> float:
    model.fit(data, epochs=1, steps_per_epoch=20, verbose=0, **kw)  # trace + warm the cache
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, **kw)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prepared", type=Path, default=ROOT / "data/prepared")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    images, labels = load_split(args.prepared, "train")
    x = np.asarray(images, dtype=np.float32) / 255.0  # what the pipeline yields, already in RAM
    y = labels.astype(np.int32)
    shape, n_classes = x.shape[1:], int(y.max()) + 1
    best = {"pipeline": 0.0, "in-memory": 0.0}
    for _ in range(2):
        stream = loader.dataset(args.prepared, "train", BATCH, shuffle=True, seed=0, epochs=(0, 100))
        best["pipeline"] = max(best["pipeline"], timed_fit(fresh_model(shape, n_classes), stream, args.steps,
                                                           shuffle=False))
        tensors = (x, y)
        best["in-memory"] = max(best["in-memory"], timed_fit(fresh_model(shape, n_classes), tensors[0], args.steps,
                                                             y=tensors[1], batch_size=BATCH, shuffle=True))
    for name, speed in best.items():
        print(f"{name:10s}: {speed:8.0f} images/s")
    print(f"pipeline / in-memory: {best['pipeline'] / best['in-memory']:.3f}")


if __name__ == "__main__":
    main()
