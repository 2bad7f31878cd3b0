"""Dataset sources: each turns params.data into labelled items for the raw image tree.

A source returns a Collection: the images (with their label) in path order, files passed over (with the reason),
split lists the dataset ships (LEGO's validation.txt, ...) and, for a tree of files, its folder (read in place, never
copied). A tree's images are a walk made on demand, so no source holds a list of a million files. Adding a source is
one function in SOURCES.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable, Iterator
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
        return encode_png(self.origin) if isinstance(self.origin, np.ndarray) else _read_file(self.origin)


@dataclass
class Collection:
    """A source's images. `items` come in path order and can be iterated more than once: a list (sorted here), or a
    tree walk made on demand, which fills `skipped` with the files it passes over as it goes."""

    items: Iterable[Item]
    skipped: list[tuple[str, str]]  # (path, reason)
    lists: dict[str, list[str]]  # split name -> listed file names, as shipped with the dataset
    class_order: list[str] | None = None  # canonical class-key order, else sorted keys
    root: Path | None = None  # every item is the file root / item.path, read there in place; None: packed into a zip

    def __post_init__(self):
        if isinstance(self.items, list):
            self.items = sorted(self.items, key=lambda item: item.path)


class Walk:
    """Items made on demand by `make(skipped)`, which appends what it passes over to `skipped`; each iteration starts
    a fresh walk (and a fresh `skipped`)."""

    def __init__(self, make: Callable[[list[tuple[str, str]]], Iterator[Item]]):
        self.make, self.skipped = make, []

    def __iter__(self) -> Iterator[Item]:
        self.skipped.clear()
        return self.make(self.skipped)


def _fashion_mnist(data: dict) -> Collection:
    arrays = fashion_mnist.load(Path(data["path"]))
    folders = sorted((name.replace("/", "_") + "/", label) for label, name in enumerate(fashion_mnist.CLASSES))

    def in_path_order(_skipped: list) -> Iterator[Item]:  # split/class folder/index, the index zero-padded
        for split in sorted(arrays):
            images, labels = arrays[split]
            for folder, label in folders:
                name = fashion_mnist.CLASSES[label]
                for i in np.flatnonzero(labels == label):
                    yield Item(f"{split}/{folder}{i:05d}.png", name, name, f"{split}-{i:05d}", images[i], split)

    walk = Walk(in_path_order)
    return Collection(walk, walk.skipped, {}, list(fashion_mnist.CLASSES))


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
            items.append(Item(rel, key, key, _stem(rel), f"{root}/{rel}", extra={"cell_type": cell_type}))
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
    labels_csv = _labels_csv_path(root, data) if data["labels"] == "csv" else None
    lists: dict[str, list[str]] = {}
    for name, split in LIST_FILES.items():
        if (root / name).is_file():
            lists.setdefault(split, []).extend(_read_list(root / name))
    label = LABELLERS[data["labels"]](root, data, labels_csv)
    csv_rel = os.path.relpath(labels_csv, root).replace(os.sep, "/") if labels_csv else None

    def labelled(skipped: list) -> Iterator[Item]:
        for rel in _files(root):
            if rel == csv_rel or rel in LIST_FILES:
                continue
            if not rel.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append((rel, "not an image file extension"))
                continue
            item = label(rel)
            if isinstance(item, str):
                skipped.append((rel, item))
            else:
                yield item
        label(None)  # the labeller's checks over the whole tree

    walk = Walk(labelled)
    return Collection(walk, walk.skipped, lists, root=root)


def _files(root: Path, rel: str = "") -> Iterator[str]:
    """Every file under root (hidden ones left out) as a relative POSIX path, in the order of those paths as strings:
    a folder 'a' sorts as 'a/', giving 'a-b/y.png' < 'a.png' < 'a/x.png' ('-' < '.' < '/'), which os.walk (a folder's
    files, then its subfolders) does not."""
    with os.scandir(root / rel if rel else root) as scan:
        names = sorted(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name
                       for e in scan if not e.name.startswith("."))
    for name in names:
        if name.endswith("/"):
            yield from _files(root, f"{rel}{name}")
        else:
            yield f"{rel}{name}"


def _stem(rel: str) -> str:
    """Path(rel).stem without pathlib, which interns every path part it parses (a table that only grows: a tree's
    walk keeps per-image paths as plain strings)."""
    name = rel.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def _read_file(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# A labeller is made once per tree; it turns a file's path into its Item, or the reason it is passed over, and is
# called with None when the walk is over (for checks over the whole tree).
Labeller = Callable[[str | None], "Item | str | None"]


def _by_folder(root: Path, data: dict, _csv: Path | None) -> Labeller:
    used: set[str] = set()

    def label(rel: str | None) -> Item | str | None:
        if rel is None:
            for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if sub.name not in used:
                    raise UserError(f"data.path: class folder '{sub.name}' holds no usable image; add images or "
                                    "remove it")
            return None
        parts = rel.split("/")
        if len(parts) == 1:
            return "not inside a class folder (data.labels is 'folder')"
        used.add(parts[0])
        return Item(rel, parts[0], parts[0], _stem(rel), f"{root}/{rel}")

    return label


def _labels_csv_path(root: Path, data: dict) -> Path:
    path = Path(data["labels_csv"])
    if not path.is_absolute() and not path.exists():
        path = root / path
    if not path.is_file():
        raise UserError(f"data.labels_csv: {data['labels_csv']} not found (looked in the project and in {root})")
    return path


def _by_csv(root: Path, data: dict, labels_csv: Path | None) -> Labeller:
    assert labels_csv is not None
    labels: dict[str, str] = {}
    names: dict[str, str] = {}  # one string per class name, however many images it has
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
            if not _walked_image(root, rel):
                why = "is not an image file" if os.path.exists(f"{root}/{rel}") else "does not exist"
                raise UserError(f"{labels_csv} line {line}: '{rel}' {why} under {root}")
            labels[rel] = names.setdefault(label, label)

    def label(rel: str | None) -> Item | str | None:
        if rel is None:
            return None
        if rel not in labels:
            return f"not listed in {labels_csv.name}"
        return Item(rel, labels[rel], labels[rel], _stem(rel), f"{root}/{rel}")

    return label


def _walked_image(root: Path, rel: str) -> bool:
    """Whether the tree walk meets rel as an image file (no hidden part, an image extension)."""
    parts = rel.split("/")
    return (rel.lower().endswith(IMAGE_EXTENSIONS) and "" not in parts and ".." not in parts
            and not any(p.startswith(".") for p in parts) and os.path.isfile(f"{root}/{rel}"))


def _by_regex(root: Path, data: dict, _csv: Path | None) -> Labeller:
    try:
        pattern = re.compile(data["filename_regex"])
    except re.error as err:
        raise UserError(f"data.filename_regex: not a valid regular expression ({err})") from None
    if "label" not in pattern.groupindex:
        raise UserError("data.filename_regex: needs a named group (?P<label>...) for the class")

    def label(rel: str | None) -> Item | str | None:
        if rel is None:
            return None
        match = pattern.fullmatch(rel.rsplit("/", 1)[-1])
        if not match:
            return "file name does not match data.filename_regex"
        groups = match.groupdict()
        key = groups["label"]
        name = f"{key} {groups['name']}" if groups.get("name") else key
        return Item(rel, key, name, groups.get("id") or _stem(rel), f"{root}/{rel}")

    return label


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
