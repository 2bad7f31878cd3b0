"""Build the prepared cache: decode, convert and resize every split image on all cores, into binary shards."""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from imageclf.cache.preview import preview
from imageclf.cache.settings import AUTO, image_size, resolve
from imageclf.cache.shards import META, ShardWriter
from imageclf.core.cpus import workers
from imageclf.core.errors import UserError
from imageclf.core.paths import DATA_REPORTS, PREPARED, RAW, SPLIT, SPLITS
from imageclf.data import images
from imageclf.data.ingest import RawImages

_worker: dict = {}
CHUNK = 64  # images per task sent to a worker
IN_FLIGHT = 8 * CHUNK  # images handed out but not yet written


def _init(raw: str, size: tuple[int, int], prepare: dict, max_pixels: int) -> None:
    _worker.update(raw=RawImages(Path(raw)), size=size, prepare=prepare, max_pixels=max_pixels)


def _convert(path: str) -> tuple[str, bytes | None, str]:
    p = _worker["prepare"]
    try:
        img = images.open_image(_worker["raw"].read(path), _worker["max_pixels"])
        arr = images.to_array(img, _worker["size"], p["color"], p["resize"], p["invert"])
        return path, arr.tobytes(), ""
    except (ValueError, KeyError) as err:
        return path, None, str(err)
    except OSError as err:
        return path, None, f"cannot read the file ({err.strerror or err}); dvc repro runs download again if it changed"


def _throttled(paths: Iterable[str], slots: threading.Semaphore) -> Iterator[str]:
    """Hand paths to the pool only while fewer than IN_FLIGHT results wait: memory stays flat with dataset size."""
    for path in paths:
        slots.acquire()
        yield path


def read_splits(split_dir: Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The split lists and class names written by the split stage."""
    frames = {s: pd.read_csv(split_dir / f"{s}.csv", dtype={"path": str}, keep_default_na=False) for s in SPLITS}
    classes = json.loads((split_dir / "classes.json").read_text())["classes"]
    return frames, classes


def run(prepare: dict, max_pixels: int) -> dict:
    """The prepare stage: the prepared cache from the raw tree and the split lists, and the augmentation preview."""
    meta = build(RAW, SPLIT, PREPARED, DATA_REPORTS, prepare, max_pixels)
    preview(PREPARED, meta["classes"], prepare["seed"], DATA_REPORTS / "augment_preview.png")
    height, width, channels = meta["shape"]
    why = meta["resolved"]["why"]
    report = {"height": height, "width": width, "channels": channels, "color": meta["resolved"]["color"],
              "image_size_from": why["image_size"], "color_from": why["color"]}
    (DATA_REPORTS / "prepare.json").write_text(json.dumps(report, indent=2) + "\n")
    return meta


def build(raw: Path, split_dir: Path, out_dir: Path, reports: Path, prepare: dict, max_pixels: int) -> dict:
    """Write out_dir/<split>-NNNNN.bin shards, <split>.csv record order and meta.json from the raw tree `raw`
    (data/raw); returns meta."""
    frames, classes = read_splits(split_dir)
    RawImages(raw)  # a missing tree: one line now, not one per image
    prepare, why = _resolved(prepare, raw / "manifest.csv", frames)
    size = image_size(prepare)
    shape = (*size, 1 if prepare["color"] == "grayscale" else 3)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    reports.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(prepare["seed"])
    meta = {"shape": list(shape), "classes": classes, "label_bytes": 2, "splits": {},
            "resolved": {"image_size": list(size), "color": prepare["color"], "why": why}}
    skipped = []
    # fork starts workers at once; spawn only when TensorFlow (and its threads) already live in this process
    ctx = multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")
    initargs = (str(raw), size, prepare, max_pixels)
    with ctx.Pool(workers(prepare["workers"]), initializer=_init, initargs=initargs) as pool:
        for split, frame in frames.items():
            # train records are written in a seeded random order so that streaming shuffle buffers mix classes
            order = rng.permutation(len(frame)) if split == "train" else np.arange(len(frame))
            frame = frame.iloc[order].reset_index(drop=True)
            writer = ShardWriter(out_dir, split, shape, int(prepare["shard_mb"] * 2**20))
            copies = prepare["offline_augment"] if split == "train" else 0
            offline = _OfflineAugment(writer, copies, prepare["offline_augment_level"], prepare["seed"], shape)
            slots = threading.Semaphore(IN_FLIGHT)
            results = pool.imap(_convert, _throttled(frame["path"], slots), chunksize=CHUNK)
            with open(out_dir / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
                index = csv.writer(fh)
                index.writerow(["path", "label", "copy"])
                progress = tqdm(results, total=len(frame), desc=f"prepare {split}", unit="img")
                for (path, pixels, reason), label in zip(progress, frame["label"], strict=True):
                    slots.release()
                    if pixels is None:
                        skipped.append((split, path, reason))
                        continue
                    writer.write(label, pixels)
                    index.writerow((path, label, 0))
                    index.writerows(offline.add(path, label, pixels))
                index.writerows(offline.flush())
            meta["splits"][split] = writer.close()
    meta["skipped"] = len(skipped)
    (out_dir / META).write_text(json.dumps(meta, indent=1) + "\n")
    pd.DataFrame(skipped, columns=["split", "path", "reason"]).to_csv(reports / "prepare_skipped.csv", index=False)
    return meta


def _resolved(prepare: dict, manifest: Path, frames: dict[str, pd.DataFrame]) -> tuple[dict, dict]:
    """prepare with its `auto` values decided from the split images' manifest rows (sizes, grey or colour)."""
    if AUTO not in (prepare["image_size"], prepare["color"]):
        return resolve(prepare, pd.DataFrame({"width": [], "height": [], "grey": []}))
    if not manifest.is_file():
        raise UserError(f"{manifest} not found; run the download stage first (dvc repro)")
    rows = pd.read_csv(manifest, usecols=["path", "width", "height", "grey"], dtype={"path": str})
    used = rows[rows["path"].isin(pd.concat([f["path"] for f in frames.values()]))]
    if used.empty:
        raise UserError("prepare: the split lists hold no image of the manifest; run the split stage again (dvc repro)")
    resolved, why = resolve(prepare, used)
    print(f"prepare: image_size {resolved['image_size']} ({why['image_size']}), color {resolved['color']} "
          f"({why['color']})")
    return resolved, why


class _OfflineAugment:
    """prepare.offline_augment: N augmented copies of each training image, written after each batch of originals."""

    BATCH = 256

    def __init__(self, writer: ShardWriter, copies: int, level: int, seed: int, shape: tuple[int, int, int]):
        self.writer, self.copies, self.shape = writer, copies, shape
        self.pending: list[tuple[str, int, bytes]] = []
        self.model = None
        if copies:
            from imageclf.cache.augment import augmenter  # TensorFlow only when copies are asked for

            self.model = augmenter(level, seed)

    def add(self, path: str, label: int, pixels: bytes) -> list[tuple[str, int, int]]:
        if not self.copies:
            return []
        self.pending.append((path, label, pixels))
        return self.flush() if len(self.pending) >= self.BATCH else []

    def flush(self) -> list[tuple[str, int, int]]:
        if not self.pending:
            return []
        batch = np.stack([np.frombuffer(p, np.uint8).reshape(self.shape) for _, _, p in self.pending])
        index = []
        for copy in range(1, self.copies + 1):
            out = np.asarray(self.model(batch.astype(np.float32) / 255.0, training=True))
            out = (out.clip(0, 1) * 255).round().astype(np.uint8)
            for (path, label, _), pixels in zip(self.pending, out, strict=True):
                self.writer.write(label, pixels.tobytes())
                index.append((path, label, copy))
        self.pending = []
        return index
