"""The prepared cache: records of a 2-byte label and one image, in a few large shard files per split.

prepare.storage `raw` (the default): the image's uint8 pixels, fixed-length records in <split>-NNNNN.bin that stream
into tf.data.FixedLengthRecordDataset and read back here through mmap. `png` / `jpeg`: the image encoded, one record
each in TFRecord files <split>-NNNNN.tfrecord, decoded by tf.data when training and by PIL when read here.
"""

from __future__ import annotations

import io
import json
import mmap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from imageclf.core.errors import UserError

LABEL_BYTES = 2
META = "meta.json"
STORAGES = {"raw": ".bin", "png": ".tfrecord", "jpeg": ".tfrecord"}  # prepare.storage: the shard files' suffix


def encode(pixels: np.ndarray, storage: str, quality: int = 90) -> bytes:
    """An image [H, W, C] uint8 as a record holds it: the pixels (raw), or PNG / JPEG (at `quality`) bytes."""
    if storage == "raw":
        return pixels.tobytes()
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(
        out, format=storage.upper(), **({"quality": quality} if storage == "jpeg" else {}))
    return out.getvalue()


def decode(data: bytes, shape: tuple[int, int, int], storage: str) -> np.ndarray:
    """The image [H, W, C] uint8 of a record's image bytes (the inverse of encode)."""
    if storage == "raw":
        return np.frombuffer(data, np.uint8).reshape(shape)
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img).reshape(shape)


class ShardWriter:
    """Append records to <split>-NNNNN shard files of about shard_bytes each (raw: as many whole records as fit);
    given the full shards of an earlier run (`kept`, holding `count` records), it goes on after them and removes the
    split's other shard files."""

    def __init__(self, directory: Path, split: str, shape: tuple[int, int, int], shard_bytes: int,
                 kept: Sequence[str] = (), count: int = 0, storage: str = "raw"):
        self.directory, self.split, self.storage = directory, split, storage
        self.image_bytes = int(np.prod(shape))
        record = LABEL_BYTES + self.image_bytes
        self.shard_bytes = max(1, shard_bytes // record) * record if storage == "raw" else shard_bytes
        self.shards: list[str] = list(kept)
        self.count = count
        self._fh = None
        self._in_shard = 0  # bytes written to the current shard
        for stale in directory.glob(f"{split}-*.*"):
            if stale.suffix in STORAGES.values() and stale.name not in self.shards:
                stale.unlink()

    @property
    def shard_full(self) -> bool:
        """The current shard holds its share: the next record starts another."""
        return self._in_shard >= self.shard_bytes

    def write(self, label: int, image: bytes) -> None:
        """One record: the label and the image as `encode` gives it."""
        if self.storage == "raw" and len(image) != self.image_bytes:
            raise ValueError(f"record of {len(image)} bytes, expected {self.image_bytes}")
        if self._fh is None or self.shard_full:
            self._next_shard()
        record = int(label).to_bytes(LABEL_BYTES, "little") + image
        self._fh.write(record)
        self._in_shard += len(record)
        self.count += 1

    def _next_shard(self) -> None:
        if self._fh:
            self._fh.close()
        name = f"{self.split}-{len(self.shards):05d}{STORAGES[self.storage]}"
        self.shards.append(name)
        self._in_shard = 0
        if self.storage == "raw":
            self._fh = open(self.directory / name, "wb")  # noqa: SIM115 (closed in close())
        else:
            import tensorflow as tf  # only for encoded storage: TFRecord framing (lengths and checksums)

            self._fh = tf.io.TFRecordWriter(str(self.directory / name))

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> dict:
        if self._fh:
            self._fh.close()
        return {"count": self.count, "shards": self.shards}


def read_meta(directory: Path) -> dict:
    path = Path(directory) / META
    if not path.exists():
        raise UserError(f"{path} not found; run the prepare stage first (dvc repro)")
    return json.loads(path.read_text())


class _Mapped:
    """A shard file memory-mapped read-only. Its pages leave the process once read (MADV_DONTNEED: they stay in the
    page cache), so reading a whole split, its labels or its images, does not grow the resident memory."""

    def __init__(self, path: Path):
        with open(path, "rb") as fh:
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.data = np.frombuffer(self._map, np.uint8)

    def release(self) -> None:
        self._map.madvise(mmap.MADV_DONTNEED)


class _RawShard(_Mapped):
    """A .bin shard: fixed-length records."""

    def __init__(self, path: Path, shape: tuple[int, int, int]):
        super().__init__(path)
        self.records, self.shape = self.data.reshape(-1, LABEL_BYTES + int(np.prod(shape))), shape

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> np.ndarray:
        labels = self.records[:, 0].astype(np.int64) | (self.records[:, 1].astype(np.int64) << 8)
        self.release()
        return labels

    def images(self, index: np.ndarray) -> np.ndarray:
        images = self.records[index, LABEL_BYTES:].reshape(-1, *self.shape)  # a copy: an index array
        self.release()
        return images


class _EncodedShard(_Mapped):
    """A .tfrecord shard: each record (8-byte length, 4-byte checksum, data, 4-byte checksum) holds the label and the
    PNG / JPEG bytes, decoded when read."""

    def __init__(self, path: Path, shape: tuple[int, int, int], storage: str):
        super().__init__(path)
        self.shape, self.storage = shape, storage
        starts, ends, at = [], [], 0
        while at < len(self.data):
            length = int.from_bytes(self.data[at:at + 8].tobytes(), "little")
            starts.append(at + 12)
            ends.append(at + 12 + length)
            at += 16 + length
        self.starts, self.ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
        self.release()

    def __len__(self) -> int:
        return len(self.starts)

    def labels(self) -> np.ndarray:
        labels = self.data[self.starts].astype(np.int64) | (self.data[self.starts + 1].astype(np.int64) << 8)
        self.release()
        return labels

    def images(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *self.shape), np.uint8)
        for k, i in enumerate(index):
            out[k] = decode(self.data[self.starts[i] + LABEL_BYTES:self.ends[i]].tobytes(), self.shape, self.storage)
        self.release()
        return out


class SplitImages:
    """A split's images [N, H, W, C] uint8, read from its shards on demand: an int, a slice or an index array gives
    an array of just those images, so no caller holds a whole split in memory."""

    dtype = np.dtype(np.uint8)

    def __init__(self, shards: list[_RawShard | _EncodedShard], shape: tuple[int, int, int]):
        self._shards, self._image = shards, shape
        self._starts = np.cumsum([0] + [len(r) for r in shards])

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self._image)

    def __getitem__(self, key: int | slice | np.ndarray | list) -> np.ndarray:
        if isinstance(key, slice):
            index = np.arange(*key.indices(len(self)))
        elif np.ndim(key) == 0:
            return self[np.asarray([key])][0]
        else:
            index = np.asarray(key)
            index = np.flatnonzero(index) if index.dtype == bool else np.where(index < 0, index + len(self), index)
        shard = np.searchsorted(self._starts, index, side="right") - 1
        out = np.empty((len(index), *self._image), np.uint8)
        for s in np.unique(shard):
            at = shard == s
            out[at] = self._shards[s].images(index[at] - self._starts[s])
        return out

    def __iter__(self):
        for at in range(0, len(self), 256):
            yield from self[at:at + 256]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole split in memory (for tests and small splits): np.asarray(images)."""
        return self[:].astype(dtype) if dtype is not None else self[:]


def load_split(directory: Path, split: str) -> tuple[SplitImages, np.ndarray]:
    """A split as (its images, read on demand: SplitImages, labels int64 [N]); the labels, 8 bytes an image (and for
    encoded storage each record's place in its shard), are the only part held in memory."""
    meta = read_meta(directory)
    shape, storage = tuple(meta["shape"]), meta.get("storage", "raw")
    paths = [Path(directory) / name for name in meta["splits"][split]["shards"]]
    shards = [_RawShard(p, shape) if storage == "raw" else _EncodedShard(p, shape, storage) for p in paths]
    labels = [shard.labels() for shard in shards]
    return SplitImages(shards, shape), np.concatenate(labels) if labels else np.zeros((0,), np.int64)
