"""Build the prepared cache: decode, convert and resize every split image on all cores, into binary shards."""

from __future__ import annotations

import csv
import hashlib
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
from imageclf.cache.shards import META, ShardWriter, decode, encode
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
        return path, encode(arr, p["storage"], p["jpeg_quality"]), ""
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
    """Write out_dir/<split>-NNNNN shards (.bin, or .tfrecord for encoded storage), <split>.csv record order and
    meta.json from the raw tree `raw` (data/raw); returns meta. The shards are written beside out_dir
    (out_dir.partial) and moved there when all are: an interrupted run's finished shards are kept for the next run
    with the same inputs and params (Journal)."""
    frames, classes = read_splits(split_dir)
    RawImages(raw)  # a missing tree: one line now, not one per image
    prepare, why = _resolved(prepare, raw / "manifest.csv", frames)
    size = image_size(prepare)
    shape = (*size, 1 if prepare["color"] == "grayscale" else 3)
    work = out_dir.with_name(out_dir.name + ".partial")
    journal = Journal(work, _fingerprint(raw, split_dir, prepare, max_pixels))
    reports.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(prepare["seed"])
    meta = {"shape": list(shape), "classes": classes, "label_bytes": 2, "storage": prepare["storage"], "splits": {},
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
            copies = prepare["offline_augment"] if split == "train" else 0
            kept = journal.kept(split, resumable=not copies)  # augmented copies draw from one random stream
            if kept.get("done"):
                meta["splits"][split] = {"count": kept["count"], "shards": kept["shards"]}
                skipped += [(split, *row) for row in kept["skipped"]]
                continue
            writer = ShardWriter(work, split, shape, int(prepare["shard_mb"] * 2**20), kept["shards"], kept["count"],
                                 prepare["storage"])
            offline = _OfflineAugment(writer, copies, prepare, shape)
            split_skipped = [tuple(row) for row in kept["skipped"]]
            start = kept["rows"]
            if start:
                print(f"prepare {split}: resuming an interrupted run at image {start} of {len(frame)} "
                      f"(shards kept: {len(kept['shards'])})")
            slots = threading.Semaphore(IN_FLIGHT)
            results = pool.imap(_convert, _throttled(frame["path"].iloc[start:], slots), chunksize=CHUNK)
            with open(work / f"{split}.csv", "r+" if start else "w", newline="", encoding="utf-8") as fh:
                fh.truncate(kept["index_bytes"])
                fh.seek(kept["index_bytes"])
                index = csv.writer(fh)
                if not start:
                    index.writerow(["path", "label", "copy"])
                progress = tqdm(results, total=len(frame), initial=start, desc=f"prepare {split}", unit="img")
                rows = zip(progress, frame["label"].iloc[start:], strict=True)
                for row, ((path, pixels, reason), label) in enumerate(rows, start=start + 1):
                    slots.release()
                    if pixels is None:
                        split_skipped.append((path, reason))
                        continue
                    writer.write(label, pixels)
                    index.writerow((path, label, 0))
                    index.writerows(offline.add(path, label, pixels))
                    if not copies and writer.shard_full:  # note the full shard
                        writer.flush()
                        fh.flush()
                        journal.note(split, rows=row, shards=writer.shards, count=writer.count,
                                     skipped=split_skipped, index_bytes=fh.tell())
                index.writerows(offline.flush())
            meta["splits"][split] = writer.close()
            journal.note(split, done=True, **meta["splits"][split], skipped=split_skipped)
            skipped += [(split, *row) for row in split_skipped]
    meta["skipped"] = len(skipped)
    journal.path.unlink()
    (work / META).write_text(json.dumps(meta, indent=1) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work.rename(out_dir)
    pd.DataFrame(skipped, columns=["split", "path", "reason"]).to_csv(reports / "prepare_skipped.csv", index=False)
    return meta


def _fingerprint(raw: Path, split_dir: Path, prepare: dict, max_pixels: int) -> str:
    """What the prepared bytes depend on: the resolved prepare params (not the worker count), the image size limit,
    the manifest (each image's pixel hash), where the tree is, and the split lists."""
    digest = hashlib.sha256(json.dumps([{k: v for k, v in prepare.items() if k != "workers"}, max_pixels],
                                       sort_keys=True, default=str).encode())
    for path in sorted([*raw.glob("*.json"), raw / "manifest.csv", *split_dir.glob("*.*")]):
        with open(path, "rb") as fh:
            digest.update(path.name.encode() + hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


class Journal:
    """<out_dir>.partial/resume.json: per split, the shards an interrupted prepare finished, the split rows they
    hold, the images skipped so far and the length of the record index; kept only for the same fingerprint."""

    def __init__(self, work: Path, fingerprint: str):
        self.path = work / "resume.json"
        state = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if state.get("fingerprint") != fingerprint:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            state = {"fingerprint": fingerprint, "splits": {}}
        self.state = state

    def kept(self, split: str, resumable: bool) -> dict:
        """The split's kept progress (a finished split: done), or a fresh start."""
        entry = self.state["splits"].get(split, {})
        if entry.get("done") or (resumable and entry):
            return entry
        return {"rows": 0, "shards": [], "count": 0, "skipped": [], "index_bytes": 0}

    def note(self, split: str, **entry) -> None:
        self.state["splits"][split] = entry
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.state))
        partial.replace(self.path)  # atomic: a kill leaves the old journal or the new one


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

    def __init__(self, writer: ShardWriter, copies: int, prepare: dict, shape: tuple[int, int, int]):
        self.writer, self.copies, self.shape = writer, copies, shape
        self.storage, self.quality = prepare["storage"], prepare["jpeg_quality"]
        self.pending: list[tuple[str, int, bytes]] = []
        self.model = None
        if copies:
            from imageclf.cache.augment import augmenter  # TensorFlow only when copies are asked for

            self.model = augmenter(prepare["offline_augment_level"], prepare["seed"])

    def add(self, path: str, label: int, image: bytes) -> list[tuple[str, int, int]]:
        if not self.copies:
            return []
        self.pending.append((path, label, image))
        return self.flush() if len(self.pending) >= self.BATCH else []

    def flush(self) -> list[tuple[str, int, int]]:
        if not self.pending:
            return []
        batch = np.stack([decode(image, self.shape, self.storage) for _, _, image in self.pending])
        index = []
        for copy in range(1, self.copies + 1):
            out = np.asarray(self.model(batch.astype(np.float32) / 255.0, training=True))
            out = (out.clip(0, 1) * 255).round().astype(np.uint8)
            for (path, label, _), pixels in zip(self.pending, out, strict=True):
                self.writer.write(label, encode(pixels, self.storage, self.quality))
                index.append((path, label, copy))
        self.pending = []
        return index
