"""The tf.data input pipeline training uses: shards -> (shuffle) -> batch -> decode/rescale -> augment -> prefetch
(encoded storage: each image decoded before the batch).

Every random choice (shuffle order, oversampling, augmentation) is keyed on (seed, epoch, batch), so epoch k is
the same whether a run goes straight through or resumes at epoch k after an interruption.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from imageclf.cache.augment import augment_batch, augmenter, recipe_layers
from imageclf.cache.shards import LABEL_BYTES, load_split, read_meta
from imageclf.core.errors import UserError

IN_MEMORY_LIMIT = 1 << 30  # splits up to 1 GiB of records are cached in RAM after the first epoch
SHUFFLE_BUFFER = 50_000  # records a shuffle holds at most...
SHUFFLE_BYTES = 256 << 20  # ...and at most this many bytes of them (50,000 records of 224 px RGB would be 7.5 GB)


def dataset(prepared: Path, split: str | tuple[str, ...], batch_size: int, *, shuffle: bool = False,
            augment: int = 0, seed: int = 0, epochs: tuple[int, int] | None = None, passes: int = 1,
            oversample: bool = False, cache: bool | None = None, one_hot: bool = False, erase: float = 0.0,
            mixup: float = 0.0, cutmix: float = 0.0) -> tf.data.Dataset:
    """Batches of (float32 images in [0, 1], int32 labels) from one split (or several, read as one) of the cache;
    one_hot: float32 one-hot labels instead (needed by mixup / cutmix, which mix them).

    epochs=(first, stop) yields the batches of those epochs back to back (for fit with steps_per_epoch), each epoch
    `passes` passes over the data (a small dataset's budget: train/settings.resolve_budget), its order keyed on
    (seed, epoch) so a resumed run reads what an uninterrupted one would; None yields one pass. oversample draws
    every class equally often (a pass keeps its size). After the augmentation level: random erasing with probability
    `erase`, then MixUp or CutMix of that alpha (augment.recipe_layers).
    """
    meta = read_meta(prepared)
    names = (split,) if isinstance(split, str) else split
    for name in names:
        if name not in meta["splits"]:
            raise UserError(f"{prepared}: no split '{name}' in the prepared cache")
        if meta["splits"][name]["count"] == 0:
            raise UserError(f"the {name} split is empty; check split.fractions and data.max_per_class")
    count = sum(meta["splits"][name]["count"] for name in names)
    h, w, c = meta["shape"]
    record = LABEL_BYTES + h * w * c  # bytes of a raw record
    storage = meta.get("storage", "raw")
    raw = storage == "raw"
    files = [str(Path(prepared) / shard) for name in names for shard in meta["splits"][name]["shards"]]

    def read(paths) -> tf.data.Dataset:  # fixed-length pixel records, or TFRecords of encoded images
        if raw:
            return tf.data.FixedLengthRecordDataset(paths, record)
        return tf.data.TFRecordDataset(paths)

    in_memory = cache if cache is not None else sum(map(os.path.getsize, files)) <= IN_MEMORY_LIMIT
    cached = read(files).cache() if in_memory else None
    pipeline = augmenter(augment, seed) if augment else None
    layers = [*(pipeline.layers if pipeline else []), *recipe_layers(erase, mixup, cutmix, seed)]
    if (mixup or cutmix) and not one_hot:
        raise ValueError("mixup and cutmix mix the labels: they need one_hot=True")
    n_classes = len(meta["classes"])
    held = max(1, min(SHUFFLE_BUFFER, SHUFFLE_BYTES // record))  # records in shuffle buffers

    def records(epoch_seed: int) -> tf.data.Dataset:
        if cached is not None or len(files) == 1 or not shuffle:
            return cached if cached is not None else read(files)
        order = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=epoch_seed)
        return order.interleave(read, cycle_length=min(len(files), 4), deterministic=True)

    def decode(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:  # a batch of raw records
        data = tf.io.decode_raw(batch, tf.uint8)
        pixels = tf.reshape(data[:, LABEL_BYTES:], (-1, h, w, c))
        return tf.cast(pixels, tf.float32) / 255.0, _label(batch)

    def decode_image(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:  # one record of an encoded image
        image = tf.strings.substr(record, LABEL_BYTES, tf.strings.length(record) - LABEL_BYTES)
        if storage == "jpeg":  # the accurate integer DCT: the pixels PIL decodes (shards.decode), bit for bit
            pixels = tf.io.decode_jpeg(image, channels=c, dct_method="INTEGER_ACCURATE")
        else:
            pixels = tf.io.decode_png(image, channels=c)
        return tf.reshape(pixels, (h, w, c)), _label(record)

    def one_epoch(epoch: int) -> tf.data.Dataset:
        epoch_seed = (seed * 1_000_003 + epoch) % 2**31  # Python ints: TF rejects tensor seeds with global seed 0
        ds = records(epoch_seed)
        if oversample:
            by_class = [ds.filter(lambda r, k=k: tf.equal(_label(r), k))
                        .shuffle(max(1, held // n_classes), seed=epoch_seed + k).repeat() for k in range(n_classes)]
            ds = tf.data.Dataset.sample_from_datasets(by_class, seed=epoch_seed, stop_on_empty_dataset=False)
            ds = ds.take(count)
        elif shuffle:  # each pass of the epoch in a new order
            ds = ds.shuffle(min(count, held), seed=epoch_seed, reshuffle_each_iteration=True)
        if raw:
            ds = ds.batch(batch_size).repeat(passes)
            ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        else:
            ds = ds.map(decode_image, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            ds = ds.batch(batch_size).repeat(passes).map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        if one_hot:
            ds = ds.map(lambda x, y: (x, tf.one_hot(y, n_classes)))
        if layers:  # one call at a time: the seeded state sequence stays deterministic
            ds = ds.enumerate().map(lambda step, xy: augment_batch(layers, *xy, epoch, step), num_parallel_calls=1)
        return ds

    if epochs is None:  # a known length: Keras then does not warn "ran out of data" at the end of validation
        ds = one_epoch(0).apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    else:  # fit stops after steps_per_epoch * epochs; the repeat only spares Keras an "out of data" warning
        ds = functools.reduce(tf.data.Dataset.concatenate, map(one_epoch, range(*epochs))).repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def _label(record: tf.Tensor) -> tf.Tensor:
    """The label of a record (or of each record of a batch): its first two bytes, little-endian."""
    two = tf.cast(tf.io.decode_raw(record, tf.uint8, fixed_length=LABEL_BYTES), tf.int32)
    return two[..., 0] + two[..., 1] * 256


def soft_labels(cfg: dict) -> bool:
    """Whether the entry trains on one-hot labels (label smoothing, mixup and cutmix change them)."""
    return bool(cfg["label_smoothing"] or cfg["mixup"] or cfg["cutmix"])


def changes_images(cfg: dict) -> bool:
    """Whether the entry changes its training images each epoch (then cached backbone features cannot be used)."""
    return bool(cfg["augment"] not in (0, "auto") or cfg["random_erasing"] or cfg["mixup"] or cfg["cutmix"])


class Images:
    """What a fit reads by default: the prepared images, decoded, shuffled and augmented per the entry, fed to the
    whole model (features.Features is the same for cached backbone features)."""

    part = None  # the sub-model these inputs feed; None: the whole model

    def __init__(self, prepared: Path, cfg: dict):
        self.prepared, self.cfg = prepared, cfg

    def train(self, splits: tuple[str, ...], epochs: tuple[int, int]) -> tf.data.Dataset:
        cfg = self.cfg
        return dataset(self.prepared, splits, cfg["batch_size"], shuffle=True, augment=cfg["augment"],
                       seed=cfg["seed"], epochs=epochs, passes=cfg["passes_per_epoch"], oversample=cfg["oversample"],
                       one_hot=soft_labels(cfg), erase=cfg["random_erasing"], mixup=cfg["mixup"],
                       cutmix=cfg["cutmix"])

    def val(self) -> tf.data.Dataset:
        return dataset(self.prepared, "val", self.cfg["batch_size"], one_hot=soft_labels(self.cfg))

    def labels(self, splits: tuple[str, ...]) -> np.ndarray:
        return np.concatenate([load_split(self.prepared, s)[1] for s in splits])
