"""Tiny generated datasets in the layouts users bring, and a helper to run stages in a scratch project."""

from __future__ import annotations

import copy
import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def pattern_image(label: int, index: int, size: int = 24, mode: str = "RGB") -> Image.Image:
    """A learnable picture: class = orientation/position of a bright bar, with per-image noise."""
    rng = np.random.default_rng(1000 * label + index)
    arr = rng.integers(0, 60, (size, size), dtype=np.uint8)
    pos = (label * 5 + 2) % (size - 4)
    if label % 2:
        arr[:, pos: pos + 4] = 220
    else:
        arr[pos: pos + 4, :] = 220
    img = Image.fromarray(arr, "L")
    return img.convert(mode)


def make_folder_tree(root: Path, classes: dict[str, int], ext: str = ".png") -> Path:
    """root/<class>/<name><ext>: folder-per-class layout (flowers)."""
    for label, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pattern_image(label, i).save(root / name / f"img {i:03d}{ext}")
    return root


def make_lego_tree(root: Path, parts: dict[str, str], per_class: int, validation: int) -> Path:
    """Flat folder '<id> <name> <view>.png' plus validation.txt listing file names (LEGO bricks)."""
    root.mkdir(parents=True, exist_ok=True)
    listed = []
    for label, (part, name) in enumerate(parts.items()):
        for i in range(per_class):
            fname = f"{part} {name} {i:03d}{'LR'[i % 2]}.png"
            pattern_image(label, i).save(root / fname)
            if i < validation:
                listed.append(fname)
    (root / "validation.txt").write_text("\n".join(listed) + "\n")
    return root


def make_csv_tree(root: Path, classes: list[str], per_class: int) -> Path:
    """Images in one folder with labels.csv (path,label)."""
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    rows = ["path,label"]
    for label, name in enumerate(classes):
        for i in range(per_class):
            rel = f"imgs/{name}_{i}.jpg"
            pattern_image(label, i).save(root / rel, quality=95)
            rows.append(f"{rel},{name}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def idx_bytes(array: np.ndarray) -> bytes:
    header = b"\0\0\x08" + bytes([array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_fashion_idx(root: Path, n_train: int = 60, n_test: int = 20) -> dict[str, tuple[str, str]]:
    """Four idx.gz files in the canonical names; returns their checksum table (md5 of .gz, sha256 of raw)."""
    root.mkdir(parents=True, exist_ok=True)
    table = {}
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, 10_000)):
        labels = np.arange(n) % 10
        images = np.stack([np.asarray(pattern_image(int(lbl), offset + i, 28, "L")) for i, lbl in enumerate(labels)])
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            raw = idx_bytes(arr)
            packed = gzip.compress(raw)
            (root / name).write_bytes(packed)
            table[name] = (hashlib.md5(packed).hexdigest(), hashlib.sha256(raw).hexdigest())
    return table


def base_params() -> dict:
    """params.yaml as the tests start from it: the tiny budgets tests set (epochs 1-3) are meant as they are, so the
    data-sized settings (min_steps passes, augment auto; unit-tested on their own) are off."""
    params = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    params["train_defaults"].update(min_steps=0, augment=0)
    return params


class Project:
    """A scratch working directory with its own params.yaml where stages run in-process."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch):
        self.path, self.monkeypatch = path, monkeypatch
        self.params = base_params()
        self.params["prepare"]["workers"] = 2
        monkeypatch.chdir(path)

    def write_params(self) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False))

    def run(self, *stages: str) -> None:
        """Run stages in-process, each given as 'name' or 'name argument...' (train NAME)."""
        import importlib

        self.write_params()
        for stage in stages:
            name, *args = stage.split()
            self.monkeypatch.setattr(sys, "argv", [name, *args])
            importlib.import_module(f"stages.{name}").main.__wrapped__()  # UserError propagates to the test


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    work = tmp_path / "project"
    work.mkdir()
    return Project(work, monkeypatch)


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_tree(tmp_path / "flowers", {"daisy": 10, "rose": 10, "tulip": 10})


def module_project(tmp_path_factory, name: str, classes: dict[str, int]) -> tuple[Project, pytest.MonkeyPatch]:
    """A scratch project on a generated folder-per-class dataset at 16 px, for module-scoped fixtures."""
    base = tmp_path_factory.mktemp(name)
    root = make_folder_tree(base / "imgs", classes)
    mp = pytest.MonkeyPatch()
    work = base / "project"
    work.mkdir()
    project = Project(work, mp)
    project.params["data"].update(source="folder", path=str(root))
    project.params["prepare"]["image_size"] = 16
    return project, mp
