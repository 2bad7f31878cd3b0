"""Benchmark: frozen EfficientNet-Lite0 head epochs on cached features vs epochs through the frozen backbone.

    .venv/bin/python bench/transfer_bench.py [--prepared data/prepared] [--images 6000] [--input-size 48]

Needs a prepared cache (dvc repro prepare). On the first --images training images, in one run: feature extraction
images/s (what the features stage does), then one epoch of the same model (backbone frozen, same head, same batch)
through the backbone and one epoch of its head on the cached features, each the second of two epochs (the first
traces the graph). Target: cached / through-backbone >= 20x.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np

from imageclf.cache.shards import load_split, read_meta
from imageclf.models.registry import family

ROOT = Path(__file__).resolve().parents[1]

BATCH = 128


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def epoch_seconds(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Seconds of the second of two epochs (the first traces the graph)."""
    timer = EpochTimer()
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, shuffle=True, callbacks=[timer])
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prepared", type=Path, default=ROOT / "data/prepared")
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--input-size", type=int, default=48)
    args = parser.parse_args()
    images, labels = load_split(args.prepared, "train")
    count = args.images // BATCH * BATCH  # whole batches: no retrace for a last, smaller one
    x = images[:count].astype(np.float32) / 255.0
    y = labels[:count]
    n_classes = len(read_meta(args.prepared)["classes"])
    keras.utils.set_random_seed(0)
    model = family("transfer", "bench").build(x.shape[1:], n_classes, backbone="efficientnet_lite0", weights="imagenet",
                                       mode="frozen", input_size=args.input_size)
    extractor, head = model.get_layer("extractor"), model.get_layer("head")

    extractor.predict(x[:BATCH], verbose=0)
    start = time.perf_counter()
    cached = extractor.predict(x, batch_size=BATCH, verbose=0)
    extract_s = time.perf_counter() - start

    model.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    through = epoch_seconds(model, x, y)
    head.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    on_cache = epoch_seconds(head, cached, y)

    print(f"EfficientNet-Lite0 frozen, {len(x)} images {x.shape[1]}x{x.shape[2]}x{x.shape[3]} -> "
          f"{args.input_size} px, batch {BATCH}, {keras.backend.backend()} on CPU")
    print(f"feature extraction:         {len(x) / extract_s:9.1f} images/s ({extract_s:.1f} s)")
    print(f"epoch through the backbone: {through:9.2f} s")
    print(f"epoch on cached features:   {on_cache:9.2f} s")
    print(f"speed-up: {through / on_cache:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
