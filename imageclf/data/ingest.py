"""Check a source's images and write the raw tree's manifest and reports; RawImages reads the images back.

A source that is a tree of files (folder, url, kaggle, elpv) is read where it is: data/raw/tree.json names its folder,
DVC tracks the folder as the download stage's dep, and the manifest holds each image's pixel hash. Images that exist
only as arrays (Fashion-MNIST) are written once as PNGs into one uncompressed zip, data/raw/images.zip.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from imageclf.core import paths
from imageclf.core.cpus import workers
from imageclf.core.errors import UserError
from imageclf.data import images, sources
from imageclf.data.sources import Collection, Item

ZIP, TREE = "images.zip", "tree.json"  # data/raw: the packed images, or where the tree is read in place
MANIFEST_COLUMNS = ["path", "label", "class_name", "id", "width", "height", "grey", "hash", "official_split"]


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
    listed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (ZIP, TREE):
        (out_dir / stale).unlink(missing_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    if len({item.path for item in collection.items}) != len(collection.items):
        dup = next(p for p, n in Counter(i.path for i in collection.items).items() if n > 1)
        raise UserError(f"two images map to the same tree path '{dup}'")
    # the manifest as columns (a list per field, not a dict per image): a few hundred bytes an image
    columns: dict[str, list] = {c: [] for c in MANIFEST_COLUMNS if c != "label"} | {"class_key": []}
    skipped = list(collection.skipped)
    pack = collection.root is None
    jobs = ((item, max_pixels, pack) for item in collection.items)
    ctx = multiprocessing.get_context("fork")
    packed = zipfile.ZipFile(out_dir / ZIP, "w", zipfile.ZIP_STORED) if pack else contextlib.nullcontext()
    with ctx.Pool(workers(n_workers)) as pool, packed as zf:
        results = tqdm(pool.imap(_inspect, jobs, chunksize=256), total=len(collection.items),
                       desc="download: check images", unit="img")
        for item, (path, data, info, reason) in zip(collection.items, results, strict=True):
            if info is None:
                skipped.append((path, reason))
                continue
            if pack:
                zf.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
            for key, value in _row(item, info).items():
                columns.setdefault(key, []).append(value)
    if not pack:
        (out_dir / TREE).write_text(json.dumps({"root": str(collection.root)}) + "\n")
    manifest = _label(pd.DataFrame(columns), collection, min_per_class)
    duplicates = _duplicates(manifest)  # every copy, the conflicting ones too
    conflicting, manifest = _conflicts(manifest, conflicts)
    conflicting.to_csv(reports / "conflicts.csv", index=False)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    (out_dir / "split_lists.json").write_text(json.dumps(collection.lists, indent=1, sort_keys=True) + "\n")
    pd.DataFrame(sorted(skipped), columns=["path", "reason"]).to_csv(reports / "skipped.csv", index=False)
    duplicates.to_csv(reports / "duplicates.csv", index=False)
    summary = {"images": len(manifest), "classes": int(manifest["label"].nunique()), "skipped": len(skipped),
               "duplicate_groups": int(duplicates["hash"].nunique()),
               "conflicting_duplicates": int(conflicting["hash"].nunique()),
               "conflicts_dropped": int((~conflicting["kept"]).sum())}
    (reports / "download.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _row(item: Item, info: images.ImageInfo) -> dict:
    return {"path": item.path, "class_key": item.class_key, "class_name": item.class_name, "id": item.id,
            "width": info.width, "height": info.height, "grey": info.grey, "hash": info.hash,
            "official_split": item.official_split, **item.extra}


def _label(manifest: pd.DataFrame, collection: Collection, min_per_class: int) -> pd.DataFrame:
    """Give each class an integer label (canonical order if the source has one) and enforce min_per_class."""
    if manifest.empty:
        raise UserError("the dataset holds no usable image; see reports/data/skipped.csv for what was passed over")
    counts = manifest["class_key"].value_counts()
    keys = collection.class_order or sorted(counts.index)
    for key in keys:
        if counts.get(key, 0) < min_per_class:
            raise UserError(f"class '{key}' has {counts.get(key, 0)} usable images, fewer than data.min_per_class="
                            f"{min_per_class}; add images, remove the class, or lower data.min_per_class")
    names = manifest.drop_duplicates("class_key").set_index("class_key")["class_name"]
    manifest["class_name"] = manifest["class_key"].map(names)  # one display name per class
    manifest.insert(1, "label", manifest["class_key"].map({k: i for i, k in enumerate(keys)}).astype(int))
    extra = [c for c in manifest.columns if c not in MANIFEST_COLUMNS and c != "class_key"]
    return manifest[MANIFEST_COLUMNS + extra].sort_values("path", kind="stable").reset_index(drop=True)


# data.conflicts: what to do with pixel-identical images filed under different classes. drop (the default): every
# copy goes, since which label is right is unknown and training on both teaches a contradiction; keep_first: the
# copy first in path order stays; keep: all stay (the contradiction is trained on). Each is listed in conflicts.csv.
CONFLICTS = {
    "drop": lambda group: [False] * len(group),
    "keep_first": lambda group: [True] + [False] * (len(group) - 1),
    "keep": lambda group: [True] * len(group),
}


def _conflicts(manifest: pd.DataFrame, policy: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the label conflicts with whether each copy was kept, the manifest without the dropped copies)."""
    labels = manifest.groupby("hash")["class_name"].nunique()
    rows = manifest[manifest["hash"].isin(labels[labels > 1].index)].sort_values(["hash", "path"])
    kept = [k for _, group in rows.groupby("hash", sort=True) for k in CONFLICTS[policy](group)]
    table = rows[["hash", "path", "class_name"]].assign(kept=kept)
    dropped = set(table.loc[~table["kept"], "path"])
    return table, manifest[~manifest["path"].isin(dropped)].reset_index(drop=True)


def _duplicates(manifest: pd.DataFrame) -> pd.DataFrame:
    """Every image whose pixels another image has too, grouped by hash."""
    shared = manifest[manifest.duplicated("hash", keep=False)]
    return shared[["hash", "path", "class_name"]].sort_values(["hash", "path"])


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest written by the download stage."""
    if not path.exists():
        raise UserError(f"{path} not found; run the download stage first (dvc repro)")
    return pd.read_csv(path, dtype={"path": str, "class_name": str, "id": str, "hash": str},
                       keep_default_na=False)


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
