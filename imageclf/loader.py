"""The tf.data input pipeline training uses: shards -> (shuffle) -> batch -> decode/rescale -> augment -> prefetch."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from imageclf.augment import augmenter
from imageclf.errors import UserError
from imageclf.shards import LABEL_BYTES, read_meta

IN_MEMORY_LIMIT = 1 << 30  # splits up to 1 GiB of records are cached in RAM after the first epoch


def split_size(prepared: Path, split: str) -> int:
    return read_meta(prepared)["splits"][split]["count"]


def dataset(prepared: Path, split: str, batch_size: int, *, shuffle: bool = False, augment: int = 0,
            seed: int = 0, cache: bool | None = None) -> tf.data.Dataset:
    """Batches of (float32 images in [0, 1], int32 labels) streamed from the prepared shards of one split."""
    meta = read_meta(prepared)
    if split not in meta["splits"]:
        raise UserError(f"{prepared}: no split '{split}' in the prepared cache")
    info = meta["splits"][split]
    if info["count"] == 0:
        raise UserError(f"the {split} split is empty; check split.fractions and data.max_per_class")
    h, w, c = meta["shape"]
    record = LABEL_BYTES + h * w * c
    files = [str(Path(prepared) / name) for name in info["shards"]]
    if shuffle and len(files) > 1:
        files_ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        ds = files_ds.interleave(lambda f: tf.data.FixedLengthRecordDataset(f, record),
                                 cycle_length=min(len(files), 4), num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
    else:
        ds = tf.data.FixedLengthRecordDataset(files, record)
    if cache if cache is not None else info["count"] * record <= IN_MEMORY_LIMIT:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(min(info["count"], 50_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def decode(records: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        raw = tf.io.decode_raw(records, tf.uint8)
        labels = tf.cast(raw[:, 0], tf.int32) + tf.cast(raw[:, 1], tf.int32) * 256
        pixels = tf.reshape(raw[:, LABEL_BYTES:], (-1, h, w, c))
        return tf.cast(pixels, tf.float32) / 255.0, labels

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    model = augmenter(augment, seed) if augment else None
    if model is not None:  # one call at a time keeps the random stream, and so the run, deterministic
        ds = ds.map(lambda x, y: (model(x, training=True), y), num_parallel_calls=1)
    return ds.prefetch(tf.data.AUTOTUNE)
