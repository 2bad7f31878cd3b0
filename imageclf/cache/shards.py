"""The prepared cache: fixed-length binary records (2-byte label + uint8 pixels) in a few large shard files.

Fixed-length records stream straight into tf.data.FixedLengthRecordDataset and read back with numpy.memmap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imageclf.core.errors import UserError

LABEL_BYTES = 2
META = "meta.json"


class ShardWriter:
    """Append records to <split>-NNNNN.bin files of at most shard_bytes each; given the full shards of an earlier run
    (`kept`, holding `count` records), it goes on after them and removes the split's other shard files."""

    def __init__(self, directory: Path, split: str, shape: tuple[int, int, int], shard_bytes: int,
                 kept: Sequence[str] = (), count: int = 0):
        self.directory, self.split = directory, split
        self.record_bytes = LABEL_BYTES + int(np.prod(shape))
        self.per_shard = max(1, shard_bytes // self.record_bytes)
        self.shards: list[str] = list(kept)
        self.count = count
        self._fh = None
        for stale in directory.glob(f"{split}-*.bin"):
            if stale.name not in self.shards:
                stale.unlink()

    def write(self, label: int, pixels: bytes) -> None:
        if len(pixels) != self.record_bytes - LABEL_BYTES:
            raise ValueError(f"record of {len(pixels)} bytes, expected {self.record_bytes - LABEL_BYTES}")
        if self.count % self.per_shard == 0:
            self._next_shard()
        self._fh.write(int(label).to_bytes(LABEL_BYTES, "little"))
        self._fh.write(pixels)
        self.count += 1

    def _next_shard(self) -> None:
        if self._fh:
            self._fh.close()
        name = f"{self.split}-{len(self.shards):05d}.bin"
        self.shards.append(name)
        self._fh = open(self.directory / name, "wb")  # noqa: SIM115 (closed in close())

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


class SplitImages:
    """A split's images [N, H, W, C] uint8, read from its memory-mapped shards on demand: an int, a slice or an index
    array gives an array of just those images, so no caller holds a whole split in memory."""

    dtype = np.dtype(np.uint8)

    def __init__(self, records: list[np.ndarray], shape: tuple[int, int, int]):
        self._records, self._image = records, shape
        self._starts = np.cumsum([0] + [len(r) for r in records])

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
            out[at] = self._records[s][index[at] - self._starts[s], LABEL_BYTES:].reshape(-1, *self._image)
        return out

    def __iter__(self):
        for records in self._records:
            yield from records[:, LABEL_BYTES:].reshape(-1, *self._image)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The whole split in memory (for tests and small splits): np.asarray(images)."""
        return self[:].astype(dtype) if dtype is not None else self[:]


def load_split(directory: Path, split: str) -> tuple[SplitImages, np.ndarray]:
    """A split as (its images, read on demand: SplitImages, labels int64 [N]); the labels, 8 bytes an image, are the
    only part held in memory."""
    meta = read_meta(directory)
    info = meta["splits"][split]
    shape = tuple(meta["shape"])
    record = LABEL_BYTES + int(np.prod(shape))
    records = [np.memmap(Path(directory) / name, dtype=np.uint8, mode="r").reshape(-1, record)
               for name in info["shards"]]
    labels = [r[:, 0].astype(np.int64) | (r[:, 1].astype(np.int64) << 8) for r in records]
    return SplitImages(records, shape), np.concatenate(labels) if labels else np.zeros((0,), np.int64)
