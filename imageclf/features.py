"""Frozen-backbone features, computed once per split and reused by every frozen head trained on them.

data/features/<name>/ holds <split>.npy (float32 pooled features), <split>_labels.npy and meta.json with
the key (backbone, weights, input size, pooling) and a fingerprint of the prepared cache they were computed
from. The train stage uses a set only when both match its entry, so a stale set is never read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from imageclf import loader
from imageclf.shards import META, load_split, read_meta

ROOT = Path("data/features")
BATCH = 128
CHUNK = 64 * BATCH  # images converted to float at a time
KEY_FIELDS = ("backbone", "weights", "input_size", "pooling")


def key(hyper: dict) -> dict:
    """What identifies a feature set (besides the prepared data)."""
    return {k: hyper[k] for k in KEY_FIELDS}


def fingerprint(prepared: Path) -> str:
    """sha256 of the prepared cache: its meta.json and every shard."""
    digest = hashlib.sha256((Path(prepared) / META).read_bytes())
    for split in read_meta(prepared)["splits"].values():
        for shard in split["shards"]:
            with open(Path(prepared) / shard, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 24), b""):
                    digest.update(block)
    return digest.hexdigest()


def matches(directory: Path, prepared_print: str, hyper: dict) -> bool:
    """Whether directory holds the complete feature set for this key and prepared data."""
    meta_file = Path(directory) / META
    if not meta_file.is_file():
        return False
    meta = json.loads(meta_file.read_text())
    return meta["key"] == key(hyper) and meta["prepared"] == prepared_print


def find(root: Path, prepared_print: str, hyper: dict) -> Path | None:
    """The feature set for this entry's key and prepared data, if one was computed."""
    return next((d for d in sorted(Path(root).glob("*")) if matches(d, prepared_print, hyper)), None)


def extract(extractor, prepared: Path, out: Path, hyper: dict, prepared_print: str) -> dict:
    """Run the extractor over every split into out/ (with meta.json); returns the meta plus timing."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shape = tuple(extractor.output.shape[1:])
    splits, images_done, seconds = {}, 0, 0.0
    for split, info in read_meta(prepared)["splits"].items():
        splits[split] = info["count"]
        if info["count"] == 0:
            continue
        images, labels = load_split(prepared, split)
        maps = np.lib.format.open_memmap(out / f"{split}.npy", mode="w+", dtype=np.float32,
                                         shape=(len(labels), *shape))
        start = time.perf_counter()
        for at in range(0, len(labels), CHUNK):  # pixels as the loader gives them: float32 in [0, 1]
            chunk = images[at:at + CHUNK].astype(np.float32) / 255.0
            maps[at:at + len(chunk)] = extractor.predict(chunk, batch_size=BATCH, verbose=0)
        seconds += time.perf_counter() - start
        images_done += len(labels)
        maps.flush()
        del maps
        np.save(out / f"{split}_labels.npy", labels.astype(np.int32))
    meta = {"key": key(hyper), "prepared": prepared_print, "shape": list(shape), "splits": splits}
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")  # no timings here: same inputs, same bytes
    return {**meta, "seconds": round(seconds, 2), "images_per_s": round(images_done / max(seconds, 1e-9), 1)}


def load(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], labels [N]); sets over 1 GiB stay memory-mapped."""
    maps = np.load(Path(directory) / f"{split}.npy", mmap_mode="r")
    if maps.nbytes <= loader.IN_MEMORY_LIMIT:
        maps = np.asarray(maps)
    return maps, np.load(Path(directory) / f"{split}_labels.npy")


def dataset(directory: Path, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0,
            epochs: tuple[int, int] | None = None, oversample: bool = False) -> tf.data.Dataset:
    """Batches of (features, labels), ordered like loader.dataset: each epoch's order keyed on (seed, epoch)."""
    x, y = load(directory, split)
    classes = [np.flatnonzero(y == k) for k in np.unique(y)]

    def order(epoch: int) -> np.ndarray:
        rng = np.random.default_rng([seed, epoch])
        if oversample:  # every class equally often, the epoch keeps its size
            picks = rng.integers(len(classes), size=len(y))
            drawn = np.empty(len(y), np.int64)
            for k, members in enumerate(classes):
                drawn[picks == k] = rng.choice(members, size=int((picks == k).sum()))
            return drawn
        return rng.permutation(len(y)) if shuffle else np.arange(len(y))

    def batches():
        for epoch in range(*(epochs or (0, 1))):
            idx = order(epoch)
            for s in range(0, len(idx), batch_size):
                chosen = idx[s:s + batch_size]
                yield x[chosen], y[chosen]

    spec = (tf.TensorSpec((None, *x.shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
    # one pass gets a known length: Keras then does not warn "ran out of data" at the end of validation
    one_pass = tf.data.experimental.assert_cardinality(-(-len(y) // batch_size))
    return (ds.repeat() if epochs else ds.apply(one_pass)).prefetch(tf.data.AUTOTUNE)
