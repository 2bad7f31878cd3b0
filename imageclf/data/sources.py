"""Dataset sources: each turns params.data into labelled items for the raw image tree.

A source returns a Collection: the images (with their label), files passed over (with the reason), split lists the
dataset ships (LEGO's validation.txt, ...) and, for a tree of files, its folder (read in place, never copied). Adding
a source is one function in SOURCES.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imageclf.core.errors import UserError
from imageclf.core.params import Field, Section
from imageclf.data import archive, fashion_mnist
from imageclf.data.images import IMAGE_EXTENSIONS, encode_png

LIST_FILES = {"train.txt": "train", "val.txt": "val", "validation.txt": "val", "test.txt": "test"}


@dataclass(slots=True)
class Item:
    """One image of the raw tree: where it goes in the tree, its class, and where its bytes come from."""

    path: str  # relative POSIX path inside the raw tree
    class_key: str
    class_name: str
    id: str
    origin: str | np.ndarray  # a file to read, or pixels to encode as PNG
    official_split: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def read(self) -> bytes:
        """The image file's bytes (pixels from an array source are encoded as PNG)."""
        return encode_png(self.origin) if isinstance(self.origin, np.ndarray) else Path(self.origin).read_bytes()


@dataclass
class Collection:
    items: list[Item]
    skipped: list[tuple[str, str]]  # (path, reason)
    lists: dict[str, list[str]]  # split name -> listed file names, as shipped with the dataset
    class_order: list[str] | None = None  # canonical class-key order, else sorted keys
    root: Path | None = None  # every item is the file root / item.path, read there in place; None: packed into a zip


def _fashion_mnist(data: dict) -> Collection:
    items = []
    for split, (images, labels) in fashion_mnist.load(Path(data["path"])).items():
        for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            name = fashion_mnist.CLASSES[label]
            folder = name.replace("/", "_")
            items.append(Item(f"{split}/{folder}/{i:05d}.png", name, name, f"{split}-{i:05d}", pixels, split))
    return Collection(items, [], {}, list(fashion_mnist.CLASSES))


ELPV_CLASSES = {0.0: "0.00", 1 / 3: "0.33", 2 / 3: "0.67", 1.0: "1.00"}


def _elpv(data: dict) -> Collection:
    try:
        import elpv_dataset
    except ImportError:
        raise UserError("data.source 'elpv' needs the package elpv-dataset: pip install -r requirements.txt") from None
    root = Path(elpv_dataset.__file__).parent / "data"
    items, skipped = [], []
    with open(root / "labels.csv", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rel, prob, cell_type = line.split()
            key = next((name for p, name in ELPV_CLASSES.items() if abs(float(prob) - p) < 1e-3), None)
            if key is None:
                skipped.append((rel, f"unknown defect probability {prob}"))
                continue
            items.append(Item(rel, key, key, Path(rel).stem, str(root / rel), extra={"cell_type": cell_type}))
    return Collection(items, skipped, {}, list(ELPV_CLASSES.values()), root)


def _folder(data: dict) -> Collection:
    root = Path(data["path"])
    if not root.is_dir():
        raise UserError(f"data.path: {root} is not a directory (data.source is 'folder')")
    return scan_tree(root, data)


def _url(data: dict) -> Collection:
    cache = Path(data["path"])
    packed = archive.fetch(data["url"], data["sha256"], cache)
    tree = archive.extract(packed, cache / f"{data['sha256'][:12]}-extracted")
    return scan_tree(archive.single_root(tree), data)


def _kaggle(data: dict) -> Collection:
    slug = data["kaggle_dataset"]
    has_env = os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    if not has_env and not config.exists():
        raise UserError(f"data.source 'kaggle' ({slug}) needs Kaggle credentials: create an API token at "
                        f"kaggle.com > Settings > API and save it as {config} (chmod 600), or set "
                        "KAGGLE_USERNAME and KAGGLE_KEY")
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise UserError("data.source 'kaggle' needs the kaggle package: pip install kaggle") from None
    cache = Path(data["path"]) / slug.replace("/", "__")
    try:
        api = KaggleApi()
        api.authenticate()
        api.dataset_download_files(slug, path=str(cache), unzip=False, quiet=False)
    except Exception as err:  # the client raises many types; all mean the same to the user
        raise UserError(f"data.kaggle_dataset: downloading '{slug}' failed ({err})") from None
    packed = next(cache.glob("*.zip"), None)
    if packed is None:
        raise UserError(f"data.kaggle_dataset: the Kaggle download of '{slug}' left no .zip in {cache}")
    return scan_tree(archive.single_root(archive.extract(packed, cache / "extracted")), data)


SOURCES: dict[str, Callable[[dict], Collection]] = {
    "fashion-mnist": _fashion_mnist,
    "elpv": _elpv,
    "url": _url,
    "folder": _folder,
    "kaggle": _kaggle,
}


def collect(data: dict) -> Collection:
    """The items of the source named by data.source."""
    return SOURCES[data["source"]](data)


# --- tree sources: folder-per-class, annotation CSV or filename regex ------------------------------------------


def scan_tree(root: Path, data: dict) -> Collection:
    """Walk an image tree and label every file by data.labels; anything not used is listed with a reason."""
    files, lists = [], {}
    labels_csv = _labels_csv_path(root, data) if data["labels"] == "csv" else None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or path == labels_csv:
                continue
            if rel in LIST_FILES:
                lists.setdefault(LIST_FILES[rel], []).extend(_read_list(path))
            else:
                files.append(rel)
    images = [rel for rel in files if rel.lower().endswith(IMAGE_EXTENSIONS)]
    skipped = [(rel, "not an image file extension") for rel in files if not rel.lower().endswith(IMAGE_EXTENSIONS)]
    items, more = LABELLERS[data["labels"]](root, images, data, labels_csv)
    return Collection(items, skipped + more, lists, root=root)


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _by_folder(root: Path, images: list[str], data: dict, _csv: Path | None) -> tuple[list[Item], list]:
    items, skipped = [], []
    for rel in images:
        parts = rel.split("/")
        if len(parts) == 1:
            skipped.append((rel, "not inside a class folder (data.labels is 'folder')"))
            continue
        items.append(Item(rel, parts[0], parts[0], Path(rel).stem, str(root / rel)))
    used = {item.class_key for item in items}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in used:
            raise UserError(f"data.path: class folder '{sub.name}' holds no usable image; add images or remove it")
    return items, skipped


def _labels_csv_path(root: Path, data: dict) -> Path:
    path = Path(data["labels_csv"])
    if not path.is_absolute() and not path.exists():
        path = root / path
    if not path.is_file():
        raise UserError(f"data.labels_csv: {data['labels_csv']} not found (looked in the project and in {root})")
    return path


def _by_csv(root: Path, images: list[str], data: dict, labels_csv: Path | None) -> tuple[list[Item], list]:
    assert labels_csv is not None
    on_disk = set(images)
    labels: dict[str, str] = {}
    with open(labels_csv, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise UserError(f"{labels_csv}: needs a header with columns path,label; got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            rel = (row["path"] or "").strip().replace("\\", "/")
            label = (row["label"] or "").strip()
            if not rel or not label:
                raise UserError(f"{labels_csv} line {line}: empty path or label")
            if rel in labels:
                raise UserError(f"{labels_csv} line {line}: '{rel}' is listed twice")
            if rel not in on_disk:
                why = "is not an image file" if (root / rel).exists() else "does not exist"
                raise UserError(f"{labels_csv} line {line}: '{rel}' {why} under {root}")
            labels[rel] = label
    items = [Item(rel, labels[rel], labels[rel], Path(rel).stem, str(root / rel)) for rel in images if rel in labels]
    skipped = [(rel, f"not listed in {labels_csv.name}") for rel in images if rel not in labels]
    return items, skipped


def _by_regex(root: Path, images: list[str], data: dict, _csv: Path | None) -> tuple[list[Item], list]:
    try:
        pattern = re.compile(data["filename_regex"])
    except re.error as err:
        raise UserError(f"data.filename_regex: not a valid regular expression ({err})") from None
    if "label" not in pattern.groupindex:
        raise UserError("data.filename_regex: needs a named group (?P<label>...) for the class")
    items, skipped = [], []
    for rel in images:
        match = pattern.fullmatch(Path(rel).name)
        if not match:
            skipped.append((rel, "file name does not match data.filename_regex"))
            continue
        groups = match.groupdict()
        key = groups["label"]
        name = f"{key} {groups['name']}" if groups.get("name") else key
        items.append(Item(rel, key, name, groups.get("id") or Path(rel).stem, str(root / rel)))
    return items, skipped


LABELLERS = {"folder": _by_folder, "csv": _by_csv, "regex": _by_regex}  # data.labels: how a tree names classes


def _rules(data: dict, where: str) -> None:
    needs = {"url": ("url", "sha256"), "kaggle": ("kaggle_dataset",)}
    for key in needs.get(data["source"], ()):
        if not data[key]:
            raise UserError(f"{where}: data.source is '{data['source']}' but 'data.{key}' is not set")
    sha = data["sha256"]
    if data["source"] == "url" and not (len(sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in sha)):
        raise UserError(f"{where}: 'data.sha256' must be 64 hex characters, got {sha!r}")
    if data["labels"] == "csv" and not data["labels_csv"]:
        raise UserError(f"{where}: data.labels is 'csv' but 'data.labels_csv' (path,label file) is not set")
    if data["labels"] == "regex" and not data["filename_regex"]:
        raise UserError(f"{where}: data.labels is 'regex' but 'data.filename_regex' is not set")


PARAMS = Section({
    "source": Field((str,), choices=tuple(SOURCES)),
    "path": Field((str,)),
    "url": Field((str,), nullable=True),
    "sha256": Field((str,), nullable=True),
    "kaggle_dataset": Field((str,), nullable=True),
    "labels": Field((str,), choices=tuple(LABELLERS)),
    "labels_csv": Field((str,), nullable=True),
    "filename_regex": Field((str,), nullable=True),
    "conflicts": Field((str,), choices=("drop", "keep_first", "keep")),  # ingest.CONFLICTS says what each does
    "min_per_class": Field((int,), minimum=1),
    "max_per_class": Field((int,), minimum=1, nullable=True),
    "max_image_pixels": Field((int,), minimum=1),
}, _rules)
