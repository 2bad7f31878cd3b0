"""Check a source's images and write the raw tree's manifest and reports; RawImages reads the images back.

A source that is a tree of files (folder, url, kaggle, elpv) is read where it is: data/raw/tree.json names its folder,
DVC tracks the folder as the download stage's dep, and the manifest holds each image's pixel hash. Images that exist
only as arrays (Fashion-MNIST) are written once as PNGs into one uncompressed zip, data/raw/images.zip.
"""

from __future__ import annotations

import array
import contextlib
import csv
import itertools
import json
import multiprocessing
import multiprocessing.pool
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from tqdm import tqdm

from imageclf.core import paths
from imageclf.core.cpus import workers
from imageclf.core.errors import UserError
from imageclf.data import images, sources
from imageclf.data.sources import Collection, Item

ZIP, TREE = "images.zip", "tree.json"  # data/raw: the packed images, or where the tree is read in place
MANIFEST_COLUMNS = ["path", "label", "class_name", "id", "width", "height", "grey", "hash", "official_split"]
# the rows of the checked images as download first writes them (then the source's extra columns): the class key in
# place of the label and class name, which are known only once every image is checked
CHECKED_COLUMNS = ["path", "class_key", "id", "width", "height", "grey", "hash", "official_split"]


def _inspect(job: tuple[Item, int, bool]) -> tuple[str, bytes | None, images.ImageInfo | None, str]:
    """(path, the bytes when they are to be packed, what they hold or None, why not)."""
    item, max_pixels, pack = job
    path = item.path
    try:
        data = item.read()
        return path, data if pack else None, images.inspect(data, max_pixels), ""
    except ValueError as err:
        return path, None, None, str(err)
    except OSError as err:
        return path, None, None, f"cannot read file ({err.strerror or err})"


def download(data: dict, out_dir: Path = paths.RAW, reports: Path = paths.DATA_REPORTS) -> dict:
    """The download stage: collect the source's items and write the raw tree, manifest and reports."""
    return write(sources.collect(data), out_dir, reports, data["max_image_pixels"], data["min_per_class"],
                 conflicts=data["conflicts"])


def write(collection: Collection, out_dir: Path, reports: Path, max_pixels: int, min_per_class: int,
          n_workers: int = 0, conflicts: str = "drop") -> dict:
    """Validate every item, write where the usable ones are read from (tree.json, or packed into images.zip), the
    manifest and reports; pixel-identical images under different classes are handled by `conflicts` (CONFLICTS) and
    listed.

    Memory does not grow with the number of images beyond 12 bytes an image (a hash prefix and its class): the items
    come in path order, their rows go to a temporary file as they are checked, and a second pass over that file
    labels them into the manifest.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (ZIP, TREE):
        (out_dir / stale).unlink(missing_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    total = sum(1 for _ in collection.items)  # a walk that reads no image: the progress bar's length
    pack = collection.root is None
    rows, skipped = _Rows(), []
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="", dir=out_dir) as checked:
        writer = csv.writer(checked, lineterminator="\n")
        packed = zipfile.ZipFile(out_dir / ZIP, "w", zipfile.ZIP_STORED) if pack else contextlib.nullcontext()
        with multiprocessing.get_context("fork").Pool(workers(n_workers)) as pool, packed as zf:
            results = tqdm(_checked(pool, collection.items, max_pixels, pack), total=total,
                           desc="download: check images", unit="img")
            for item, (path, data, info, reason) in results:
                if info is None:
                    skipped.append((path, reason))
                    continue
                if pack:
                    zf.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
                writer.writerow(rows.add(item, info))
        skipped += collection.skipped  # what the source passed over (a tree walk lists it as it goes)
        labels = _labels(rows, collection.class_order, min_per_class)
        summary = _write_manifest(rows, labels, CONFLICTS[conflicts], checked, out_dir, reports)
    if not pack:
        (out_dir / TREE).write_text(json.dumps({"root": str(collection.root)}) + "\n")
    (out_dir / "split_lists.json").write_text(json.dumps(collection.lists, indent=1, sort_keys=True) + "\n")
    pd.DataFrame(sorted(skipped), columns=["path", "reason"]).to_csv(reports / "skipped.csv", index=False)
    summary = {"images": summary.pop("images"), "classes": summary.pop("classes"), "skipped": len(skipped), **summary}
    (reports / "download.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


BLOCK = 2048  # images given to the worker pool at a time; at most two blocks are in flight


def _checked(pool: multiprocessing.pool.Pool, items: Iterable[Item], max_pixels: int, pack: bool
             ) -> Iterator[tuple[Item, tuple]]:
    """(item, what _inspect says of it) in the items' order, reading ahead by at most two blocks (Pool.imap would
    pull the whole stream into its task queue)."""
    stream, pending = iter(items), None
    while True:
        block = list(itertools.islice(stream, BLOCK))
        job = pool.map_async(_inspect, [(item, max_pixels, pack) for item in block], chunksize=64) if block else None
        if pending is not None:
            yield from zip(pending[0], pending[1].get(), strict=True)
        if job is None:
            return
        pending = block, job


class _Rows:
    """What is kept in memory of the checked images, row by row in path order: the first 8 bytes of the pixel hash
    and the class (an index into `keys`), for the labels, duplicates and conflicts."""

    def __init__(self):
        self.hashes, self.classes = array.array("Q"), array.array("I")
        self.keys: dict[str, int] = {}  # class key -> index, in order of appearance
        self.names: list[str] = []  # each class's display name, from its first image
        self.extra: list[str] | None = None  # the source's extra columns (elpv: cell_type)
        self.last = ""

    def add(self, item: Item, info: images.ImageInfo) -> list:
        """Keep the row's hash and class; returns the row to write (class key in place of the label)."""
        if item.path <= self.last:
            if item.path == self.last:
                raise UserError(f"two images map to the same tree path '{item.path}'")
            raise RuntimeError(f"a source gave its items out of path order: '{item.path}' after '{self.last}'")
        self.last = item.path
        if self.extra is None:
            self.extra = list(item.extra)
        index = self.keys.setdefault(item.class_key, len(self.keys))
        if index == len(self.names):
            self.names.append(item.class_name)
        self.hashes.append(int(info.hash[:16], 16))
        self.classes.append(index)
        return [item.path, item.class_key, item.id, info.width, info.height, info.grey, info.hash,
                item.official_split, *(item.extra[k] for k in self.extra)]


def _labels(rows: _Rows, class_order: list[str] | None, min_per_class: int) -> np.ndarray:
    """The integer label of each class index (the source's canonical order, else sorted keys); enforces
    min_per_class."""
    if not rows.keys:
        raise UserError("the dataset holds no usable image; see reports/data/skipped.csv for what was passed over")
    counts = np.bincount(np.frombuffer(rows.classes, dtype=np.uint32), minlength=len(rows.keys))
    keys = class_order or sorted(rows.keys)
    for key in keys:
        have = int(counts[rows.keys[key]]) if key in rows.keys else 0
        if have < min_per_class:
            raise UserError(f"class '{key}' has {have} usable images, fewer than data.min_per_class="
                            f"{min_per_class}; add images, remove the class, or lower data.min_per_class")
    label_of = {key: i for i, key in enumerate(keys)}
    return np.array([label_of[key] for key in rows.keys], dtype=np.int64)


# data.conflicts: what to do with pixel-identical images filed under different classes. drop (the default): every
# copy goes, since which label is right is unknown and training on both teaches a contradiction; keep_first: the
# copy first in path order stays; keep: all stay (the contradiction is trained on). Each is listed in conflicts.csv.
CONFLICTS = {
    "drop": lambda group: [False] * len(group),
    "keep_first": lambda group: [True] + [False] * (len(group) - 1),
    "keep": lambda group: [True] * len(group),
}


def shared_hashes(prefixes: np.ndarray, rows: Iterable[list[str]], at: int) -> dict[int, str]:
    """The full pixel hash (field `at` of each of `rows`) of every row whose pixels another row has too, rows in
    order. Only rows whose 8-byte hash prefix repeats are read: every copy of an image, and (rarely) a different
    image whose hash starts the same, which the full hashes tell apart."""
    ordered = np.sort(prefixes)
    candidates = set(np.flatnonzero(np.isin(prefixes, np.unique(ordered[1:][ordered[1:] == ordered[:-1]]))).tolist())
    if not candidates:
        return {}
    found = {row: fields[at] for row, fields in enumerate(rows) if row in candidates}
    counts = Counter(found.values())
    return {row: digest for row, digest in found.items() if counts[digest] > 1}


def _write_manifest(rows: _Rows, labels: np.ndarray, policy, checked: IO[str], out_dir: Path, reports: Path) -> dict:
    """Label the checked rows (the temporary file) into manifest.csv, less the copies the conflict policy drops, and
    write duplicates.csv (every image whose pixels another has too) and conflicts.csv; returns the summary's
    counts."""
    classes = np.frombuffer(rows.classes, dtype=np.uint32)
    checked.seek(0)
    groups: dict[str, list[int]] = {}  # rows by the pixels they share, in path order
    for row, digest in shared_hashes(np.frombuffer(rows.hashes, dtype=np.uint64), csv.reader(checked),
                                     CHECKED_COLUMNS.index("hash")).items():
        groups.setdefault(digest, []).append(row)
    kept_as: dict[int, bool] = {}  # row of a label conflict -> whether the policy keeps it
    for members in groups.values():
        if len(set(classes[members])) > 1:
            kept_as.update(zip(members, policy(members), strict=True))
    copies = {row for members in groups.values() for row in members}
    duplicates, conflicts = [], []
    checked.seek(0)
    with open(out_dir / "manifest.csv", "w", encoding="utf-8", newline="") as fh:
        manifest = csv.writer(fh, lineterminator="\n")
        manifest.writerow(MANIFEST_COLUMNS + (rows.extra or []))
        for row, (path, key, id_, width, height, grey, digest, official, *extra) in enumerate(csv.reader(checked)):
            index = rows.keys[key]
            name = rows.names[index]
            if row in copies:
                duplicates.append((digest, path, name))
            if row in kept_as:
                conflicts.append((digest, path, name, kept_as[row]))
            if kept_as.get(row, True):
                manifest.writerow([path, labels[index], name, id_, width, height, grey, digest, official, *extra])
    pd.DataFrame(sorted(conflicts), columns=["hash", "path", "class_name", "kept"]).to_csv(
        reports / "conflicts.csv", index=False)
    pd.DataFrame(sorted(duplicates), columns=["hash", "path", "class_name"]).to_csv(
        reports / "duplicates.csv", index=False)
    dropped = [row for row, kept in kept_as.items() if not kept]
    kept = np.ones(len(classes), bool)
    kept[dropped] = False
    return {"images": int(kept.sum()), "classes": len(np.unique(labels[classes[kept]])),
            "duplicate_groups": len(groups), "conflicting_duplicates": len({digest for digest, *_ in conflicts}),
            "conflicts_dropped": len(dropped)}


class RawImages:
    """The raw tree's images by manifest path: read in place from the source's folder (tree.json) or from
    images.zip."""

    def __init__(self, raw: Path):
        if (raw / TREE).is_file():
            self.root, self.zip = Path(json.loads((raw / TREE).read_text())["root"]), None
        elif (raw / ZIP).is_file():
            self.root, self.zip = None, zipfile.ZipFile(raw / ZIP)
        else:
            raise UserError(f"{raw} holds neither {TREE} nor {ZIP}; run the download stage first (dvc repro)")

    def read(self, path: str) -> bytes:
        """An image's bytes; OSError when its file is gone (changed since download: dvc repro runs it again)."""
        return self.zip.read(path) if self.zip is not None else (self.root / path).read_bytes()
