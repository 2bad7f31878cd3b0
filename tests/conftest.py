"""Tiny generated datasets in the layouts users bring, and a helper to run stages in a scratch project."""

from __future__ import annotations

import copy
import gzip
import hashlib
import random
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


def noise_tree(root: Path, n: int, side: int, channels: int) -> Path:
    """n different random PNGs (side x side, 1 or 3 channels) in 4 class folders."""
    rng = np.random.default_rng(n)
    shape = (side, side, 3) if channels == 3 else (side, side)
    for i in range(n):
        (root / f"c{i % 4}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / f"c{i % 4}/{i:05d}.png")
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
    data-sized settings (min_steps passes, augment auto; unit-tested on their own) are off, and so is the data audit
    (tests/test_audit.py; test_pipeline runs it under dvc repro)."""
    params = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    params["train_defaults"].update(min_steps=0, augment=0)
    params["audit"].update(labels=False, images=False)
    return params


class Project:
    """A scratch working directory with its own params.yaml where stages run in-process (in that directory, for the
    run only)."""

    def __init__(self, path: Path):
        self.path = path
        self.params = base_params()
        self.params["prepare"]["workers"] = 2

    def write_params(self) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False))

    def run(self, *stages: str) -> None:
        """Run stages in-process, each given as 'name' or 'name argument...' (train NAME)."""
        import importlib

        self.write_params()
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(self.path)
            for stage in stages:
                name, *args = stage.split()
                mp.setattr(sys, "argv", [name, *args])
                importlib.import_module(f"stages.{name}").main.__wrapped__()  # UserError propagates to the test


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A fresh project; the test runs inside it."""
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    return Project(work)


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_tree(tmp_path / "flowers", {"daisy": 10, "rose": 10, "tulip": 10})


def module_project(tmp_path_factory, name: str, classes: dict[str, int]) -> Project:
    """A scratch project on a generated folder-per-class dataset at 16 px, for module-scoped fixtures (a test that
    needs it as its working directory says so with monkeypatch.chdir)."""
    base = tmp_path_factory.mktemp(name)
    root = make_folder_tree(base / "imgs", classes)
    work = base / "project"
    work.mkdir()
    project = Project(work)
    project.params["data"].update(source="folder", path=str(root))
    project.params["prepare"]["image_size"] = 16
    return project


# --- test isolation: no test depends on another's order or leftovers -----------------------------------------------


# The files that run whole pipelines, longest first: under `make test` (--dist loadfile --no-loadscope-reorder) a
# worker takes the next file only when it is nearly done, so the longest ones starting first let both workers finish
# together. Every other file keeps its place after them.
LONGEST_FIRST = ("test_pipeline.py", "test_transfer.py", "test_train.py", "test_ci_scripts.py", "test_recipes.py",
                 "test_own_data.py", "test_multi_replica.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--order", choices=("default", "reverse", "shuffle"), default="default",
                     help="run the tests longest files first (default), reversed, or shuffled by --order-seed: the "
                          "suite must pass in any order")
    parser.addoption("--order-seed", type=int, default=0, help="the seed of --order shuffle")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder after collection, the same way on every xdist worker (a fixed seed, never the clock)."""
    order = config.getoption("--order")
    if order == "default":
        items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST
                   else len(LONGEST_FIRST))
    elif order == "reverse":
        items.reverse()
    else:
        random.Random(config.getoption("--order-seed")).shuffle(items)


@pytest.fixture(autouse=True)
def default_keras_state():
    """In-process training sets Keras' global dtype policy, TensorFlow's op determinism and the global seeds; each
    test starts from the defaults whatever ran before it on this worker."""
    yield
    if "keras" not in sys.modules:
        return
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    # Keras' global state, the dtype policy included; without the garbage collection clear_session runs by default,
    # which takes ~0.7 s once TensorFlow's objects fill the heap (after every test, a fifth of the suite's time)
    keras.backend.clear_session(free_memory=False)
    tf_config.disable_op_determinism()
    tf.random.set_seed(None)
