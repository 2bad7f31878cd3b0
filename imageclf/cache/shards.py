"""The prepared cache: fixed-length binary records (2-byte label + uint8 pixels) in a few large shard files.

Fixed-length records stream straight into tf.data.FixedLengthRecordDataset and read back with numpy.memmap.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imageclf.core.errors import UserError

LABEL_BYTES = 2
META = "meta.json"


class ShardWriter:
    """Append records to <split>-NNNNN.bin files of at most shard_bytes each."""

    def __init__(self, directory: Path, split: str, shape: tuple[int, int, int], shard_bytes: int):
        self.directory, self.split = directory, split
        self.record_bytes = LABEL_BYTES + int(np.prod(shape))
        self.per_shard = max(1, shard_bytes // self.record_bytes)
        self.shards: list[str] = []
        self.count = 0
        self._fh = None

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

    def close(self) -> dict:
        if self._fh:
            self._fh.close()
        return {"count": self.count, "shards": self.shards}


def read_meta(directory: Path) -> dict:
    path = Path(directory) / META
    if not path.exists():
        raise UserError(f"{path} not found; run the prepare stage first (dvc repro)")
    return json.loads(path.read_text())


def load_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole split as (images uint8 [N, H, W, C], labels int64 [N]); memory-mapped, for evaluation and tests."""
    meta = read_meta(directory)
    info = meta["splits"][split]
    h, w, c = meta["shape"]
    record = LABEL_BYTES + h * w * c
    images, labels = [], []
    for name in info["shards"]:
        raw = np.memmap(Path(directory) / name, dtype=np.uint8, mode="r").reshape(-1, record)
        labels.append(raw[:, 0].astype(np.int64) | (raw[:, 1].astype(np.int64) << 8))
        images.append(raw[:, LABEL_BYTES:].reshape(-1, h, w, c))
    if not images:
        return np.zeros((0, h, w, c), np.uint8), np.zeros((0,), np.int64)
    return np.concatenate(images), np.concatenate(labels)
