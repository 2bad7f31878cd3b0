"""Frozen-backbone features, computed once per split and reused by every frozen head trained on them.

data/features/<name>/ holds <split>.npy (float32 pooled features), <split>_labels.npy and meta.json with
the key (backbone, weights, input size, pooling) and a fingerprint of the prepared cache they were computed
from. The train stage uses a set only when both match its entry, so a stale set is never read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from imageclf.cache import loader
from imageclf.cache.shards import META, load_split, read_meta
from imageclf.core import paths
from imageclf.core.errors import UserError
from imageclf.core.params import did_you_mean
from imageclf.models.registry import FEATURE_KEYS, HYPERPARAMETERS

ROOT = paths.FEATURES
REPORT = paths.DATA_REPORTS / "features.json"  # extraction time and images/s per set
BATCH = 128
CHUNK = 64 * BATCH  # images converted to float at a time


def sets(section: object) -> dict[str, dict]:
    """params.yaml 'features:' validated: name -> complete transfer hyperparameters of a frozen backbone."""
    from imageclf.models.registry import family as registered

    if section is None:
        return {}
    if not isinstance(section, dict):
        raise UserError("params.yaml: 'features' must map names to {backbone: ..., weights: ..., input_size: ...}")
    family = registered("transfer", "features")
    out = {}
    for name, entry in section.items():
        if not isinstance(entry, dict) or "backbone" not in entry:
            raise UserError(f"params.yaml: 'features.{name}' needs a 'backbone' key, e.g. {{backbone: "
                            "efficientnet_lite0, weights: imagenet, input_size: null, pooling: avg}")
        unknown = sorted(set(entry) - set(FEATURE_KEYS))
        if unknown:
            raise UserError(f"params.yaml: 'features.{name}.{unknown[0]}' is not a feature-set key"
                            f"{did_you_mean(unknown[0], FEATURE_KEYS)}; keys: {', '.join(FEATURE_KEYS)}")
        for key_name, value in entry.items():
            problem = HYPERPARAMETERS[key_name].problem(value)
            if problem:
                raise UserError(f"params.yaml: 'features.{name}.{key_name}' {problem}")
        hyper = {**family.hyperparameters(), **entry, "mode": "frozen"}
        family.check(hyper, {}, f"features.{name}")
        out[str(name)] = hyper
    return out


def used(cfgs: list[dict]) -> set[str]:
    """The feature sets that these transfer entries (model_config dicts) train their heads on: a frozen entry naming a
    set, without augmentation (an entry whose images change each epoch trains through the backbone)."""
    return {c["hyper"]["features"] for c in cfgs if c["hyper"].get("features") and not loader.changes_images(c)}


def update(section: object, wanted: set[str], prepared: Path = paths.PREPARED, root: Path = ROOT,
           report: Path = REPORT) -> dict:
    """The features stage: extract each wanted set (named by a listed transfer entry) whose key or prepared data
    changed; a defined set nobody uses is left as it is, folders of sets no longer defined are removed. Returns the
    timing report (extraction seconds and images/s per wanted set)."""
    from imageclf.models import transfer

    defined = sets(section)
    listed = {name: hyper for name, hyper in defined.items() if name in wanted}
    prepared_meta = read_meta(prepared)
    shape = tuple(prepared_meta["shape"])
    prepared_print = fingerprint(prepared)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.iterdir():
        if stale.name not in defined:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    timing = json.loads(report.read_text()) if report.is_file() else {}  # kept for sets that are up to date
    for name, hyper in listed.items():
        out = root / name
        hyper = transfer.resolve_input_size(hyper, prepared_meta)
        if matches(out, prepared_print, hyper):
            print(f"features {name}: up to date ({out})")
            continue
        try:
            extractor = transfer.extractor(shape, hyper["backbone"], hyper["weights"], hyper["input_size"], "frozen",
                                           hyper["pooling"])
        except UserError as err:
            raise UserError(f"features.{name}: {err}") from None
        meta = extract(extractor, prepared, out, hyper, prepared_print)
        seen = transfer.input_size(shape[:2], hyper["backbone"], hyper["input_size"])
        timing[name] = {"images": sum(meta["splits"].values()), "seconds": meta["seconds"],
                        "images_per_s": meta["images_per_s"], "input_height": seen[0], "input_width": seen[1]}
        print(f"features {name}: {timing[name]['images']} images at {seen[0]}x{seen[1]} px -> {meta['shape']} in "
              f"{meta['seconds']} s ({meta['images_per_s']} images/s)")
    timing = {n: t for n, t in timing.items() if n in listed}
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(timing, indent=2) + "\n")
    return timing


def key(hyper: dict) -> dict:
    """What identifies a feature set (besides the prepared data)."""
    return {k: hyper[k] for k in FEATURE_KEYS}


def fingerprint(prepared: Path) -> str:
    """sha256 of the prepared cache: its meta.json and every shard."""
    digest = hashlib.sha256((Path(prepared) / META).read_bytes())
    for split in read_meta(prepared)["splits"].values():
        for shard in split["shards"]:
            with open(Path(prepared) / shard, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 24), b""):
                    digest.update(block)
    return digest.hexdigest()


def matches(directory: Path, prepared_print: str, hyper: dict) -> bool:
    """Whether directory holds the complete feature set for this key and prepared data."""
    meta_file = Path(directory) / META
    if not meta_file.is_file():
        return False
    meta = json.loads(meta_file.read_text())
    return meta["key"] == key(hyper) and meta["prepared"] == prepared_print


def extract(extractor, prepared: Path, out: Path, hyper: dict, prepared_print: str) -> dict:
    """Run the extractor over every split into out/ (with meta.json); returns the meta plus timing."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shape = tuple(extractor.output.shape[1:])
    splits, images_done, seconds = {}, 0, 0.0
    for split, info in read_meta(prepared)["splits"].items():
        splits[split] = info["count"]
        if info["count"] == 0:
            continue
        images, labels = load_split(prepared, split)
        maps = np.lib.format.open_memmap(out / f"{split}.npy", mode="w+", dtype=np.float32,
                                         shape=(len(labels), *shape))
        start = time.perf_counter()
        progress = tqdm(total=len(labels), desc=f"features {out.name} {split}", unit="img")
        for at in range(0, len(labels), CHUNK):  # pixels as the loader gives them: float32 in [0, 1]
            chunk = images[at:at + CHUNK].astype(np.float32) / 255.0
            maps[at:at + len(chunk)] = extractor.predict(chunk, batch_size=BATCH, verbose=0)
            progress.update(len(chunk))
        progress.close()
        seconds += time.perf_counter() - start
        images_done += len(labels)
        maps.flush()
        del maps
        np.save(out / f"{split}_labels.npy", labels.astype(np.int32))
    meta = {"key": key(hyper), "prepared": prepared_print, "shape": list(shape), "splits": splits}
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")  # no timings here: same inputs, same bytes
    return {**meta, "seconds": round(seconds, 2), "images_per_s": round(images_done / max(seconds, 1e-9), 1)}


def load(directory: Path, split: str | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], labels [N]) of one split or several read as one; one split over 1 GiB stays
    memory-mapped."""
    names = (split,) if isinstance(split, str) else split
    maps = [np.load(Path(directory) / f"{name}.npy", mmap_mode="r") for name in names]
    labels = np.concatenate([np.load(Path(directory) / f"{name}_labels.npy") for name in names])
    if len(maps) == 1 and maps[0].nbytes > loader.IN_MEMORY_LIMIT:
        return maps[0], labels
    return np.concatenate(maps), labels


def inputs(cfg: dict, hyper: dict, prepared: Path, root: Path = ROOT) -> Features | None:
    """The cached features a frozen transfer entry trains its head on, or None: it trains through the backbone
    (the log says why)."""
    if hyper["mode"] != "frozen":
        return None
    name = hyper["features"]
    if name is None:
        print(f"train {cfg['name']}: training through the frozen backbone (slower); name a params.yaml 'features:' "
              "set in the entry (features: NAME) to train the head on cached features")
        return None
    if loader.changes_images(cfg):
        recipe = ", ".join(f"{k} {cfg[k]}" for k in ("augment", "random_erasing", "mixup", "cutmix") if cfg[k])
        print(f"train {cfg['name']}: {recipe} changes every image each epoch, so cached features "
              f"are not used: training through the frozen backbone of features.{name} (slower)")
        return None
    directory = Path(root) / name
    if not matches(directory, fingerprint(prepared), hyper):
        raise UserError(f"train.{cfg['name']}: {directory} does not hold features.{name} of the current prepared "
                        "data; run the features stage first (dvc repro)")
    print(f"train {cfg['name']}: training the head on cached features {directory}")
    return Features(directory, cfg, len(read_meta(prepared)["classes"]))


class Features:
    """What a frozen transfer entry's fit reads when its feature set is cached: the pooled backbone features,
    ordered like loader.Images, fed to the model's head."""

    part = "head"

    def __init__(self, directory: Path, cfg: dict, n_classes: int):
        self.directory, self.cfg = directory, cfg
        self.one_hot = n_classes if loader.soft_labels(cfg) else 0  # one-hot labels for label smoothing

    def train(self, splits: tuple[str, ...], epochs: tuple[int, int]) -> tf.data.Dataset:
        cfg = self.cfg
        return dataset(self.directory, splits, cfg["batch_size"], shuffle=True, seed=cfg["seed"], epochs=epochs,
                       passes=cfg["passes_per_epoch"], oversample=cfg["oversample"], one_hot=self.one_hot)

    def val(self) -> tf.data.Dataset:
        return dataset(self.directory, "val", self.cfg["batch_size"], one_hot=self.one_hot)

    def labels(self, splits: tuple[str, ...]) -> np.ndarray:
        return np.concatenate([np.load(self.directory / f"{s}_labels.npy") for s in splits])


def dataset(directory: Path, split: str | tuple[str, ...], batch_size: int, *, shuffle: bool = False, seed: int = 0,
            epochs: tuple[int, int] | None = None, passes: int = 1, oversample: bool = False,
            one_hot: int = 0) -> tf.data.Dataset:
    """Batches of (features, labels), ordered like loader.dataset: each pass's order keyed on (seed, epoch, pass);
    one_hot > 0: float32 one-hot labels of that many classes (label smoothing)."""
    x, y = load(directory, split)
    classes = [np.flatnonzero(y == k) for k in np.unique(y)]

    def order(epoch: int, at: int) -> np.ndarray:
        rng = np.random.default_rng([seed, epoch] if at == 0 else [seed, epoch, at])
        if oversample:  # every class equally often, the epoch keeps its size
            picks = rng.integers(len(classes), size=len(y))
            drawn = np.empty(len(y), np.int64)
            for k, members in enumerate(classes):
                drawn[picks == k] = rng.choice(members, size=int((picks == k).sum()))
            return drawn
        return rng.permutation(len(y)) if shuffle else np.arange(len(y))

    def batches():
        for epoch in range(*(epochs or (0, 1))):
            for at in range(passes if epochs else 1):
                idx = order(epoch, at)
                for s in range(0, len(idx), batch_size):
                    chosen = idx[s:s + batch_size]
                    yield x[chosen], y[chosen]

    spec = (tf.TensorSpec((None, *x.shape[1:]), tf.float32), tf.TensorSpec((None,), tf.int32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
    if one_hot:
        ds = ds.map(lambda f, k: (f, tf.one_hot(k, one_hot)))
    # one pass gets a known length: Keras then does not warn "ran out of data" at the end of validation
    one_pass = tf.data.experimental.assert_cardinality(-(-len(y) // batch_size))
    return (ds.repeat() if epochs else ds.apply(one_pass)).prefetch(tf.data.AUTOTUNE)
