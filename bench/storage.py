"""Benchmark: prepare.storage raw vs png vs jpeg, side by side in one run.

    .venv/bin/python bench/storage.py    # elpv at 128 px grey; generated 96 px photos (bench/scale.py) at 64 px RGB

Per dataset and storage: disk per image of the prepared shards, prepare images/s (all cores, TensorFlow's import
included: encoded shards are written with it, and the stage's augmentation preview imports it anyway), and the
images/s of training as it reads at scale (streamed from disk, not cached in RAM): the tf.data pipeline alone, and
one epoch of cnn_small fed by it (the storages alternate twice, the faster of each one's two runs counts). Writes
bench/results/storage.json, from which docs/benchmarks.md's table is generated (ci/doc_tables.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imageclf.cache import prepare
from imageclf.cache.shards import STORAGES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import prepare_bench  # noqa: E402  (elpv laid out as download and split write it)
import scale  # noqa: E402  (the generated photo trees)

BATCH = 64


def generated_raw(work: Path, n: int) -> None:
    """scale.py's n-image tree through the download and split stages of a project copy, into work/raw and split."""
    project = scale.project(ROOT, work / "project", scale.tree(work, n))
    for stage in ("download", "split"):
        scale.run_stage(project, stage)
    shutil.copytree(project / "data/raw", work / "raw")
    shutil.copytree(project / "data/split", work / "split")


def prepared(work: Path, params: dict, storage: str) -> dict:
    """Prepare work/raw with `storage` in a fresh process (its workers fork, as the stage's do): disk and speed."""
    settings = json.dumps({**params, "storage": storage})
    child = subprocess.run([sys.executable, __file__, "--prepare", str(work), settings], capture_output=True,
                           text=True, check=True)
    out = work / f"prepared-{storage}"
    meta = json.loads((out / "meta.json").read_text())
    images = sum(s["count"] for s in meta["splits"].values())
    disk = sum(p.stat().st_size for p in out.iterdir() if p.suffix in STORAGES.values())
    return {"images": images, "shape": meta["shape"], "kb_per_image": round(disk / images / 1024, 2),
            "prepare_images_per_s": round(images / float(child.stdout.strip().splitlines()[-1]))}


def training_speed(cache: Path) -> tuple[float, float]:
    """Images/s of the train split read as training reads it at scale (streamed, shuffled): tf.data alone, and one
    epoch of cnn_small fed by it."""
    import imageclf.models.scratch  # noqa: F401  (registers the from-scratch families)
    from imageclf.cache import loader
    from imageclf.models.registry import REGISTRY

    meta = json.loads((cache / "meta.json").read_text())
    steps = meta["splits"]["train"]["count"] // BATCH

    def batches():
        return loader.dataset(cache, "train", BATCH, shuffle=True, seed=0, epochs=(0, 1), cache=False).take(steps)

    for _ in batches().take(2):  # the first batches open files and trace the decoding
        pass
    start = time.perf_counter()
    for _ in batches():
        pass
    pipeline = steps * BATCH / (time.perf_counter() - start)
    model = REGISTRY["cnn_small"].build(tuple(meta["shape"]), len(meta["classes"]))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(batches().take(2), epochs=1, verbose=0)  # traced outside the timing
    start = time.perf_counter()
    model.fit(batches(), epochs=1, verbose=0)
    return pipeline, steps * BATCH / (time.perf_counter() - start)


def prepare_child(work: Path, params: dict) -> None:
    """Child mode: prepare work/raw into work/prepared-<storage>; prints the seconds it took."""
    start = time.perf_counter()
    prepare.build(work / "raw", work / "split", work / f"prepared-{params['storage']}", work / "reports", params,
                  prepare_bench.MAX_PIXELS)
    import tensorflow  # noqa: F401  (the stage's preview imports it next; png / jpeg import it while writing)

    print(time.perf_counter() - start)


def main() -> None:
    if sys.argv[1:2] == ["--prepare"]:
        return prepare_child(Path(sys.argv[2]), json.loads(sys.argv[3]))
    base = {**prepare_bench.PREPARE, "shard_mb": 64}
    datasets = {"elpv (300 px PNG) at 128 px grey": (lambda w: prepare_bench.build_raw(w, 1), base),
                "generated 96 px photos at 64 px RGB": (lambda w: generated_raw(w, 4000),
                                                        {**base, "image_size": 64, "color": "rgb"})}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, (make, params)) in enumerate(datasets.items()):
            work = Path(tmp) / f"d{k}"
            work.mkdir()
            make(work)
            results[name] = rows = {storage: prepared(work, params, storage) for storage in STORAGES}
            for _ in range(2):  # the storages alternate, twice; the faster of each one's two counts
                for storage, row in rows.items():
                    speeds = training_speed(work / f"prepared-{storage}")
                    for key, speed in zip(("pipeline_images_per_s", "fit_images_per_s"), speeds, strict=True):
                        row[key] = max(row.get(key, 0), round(speed))
            for storage, row in results[name].items():
                print(f"{name:<40} {storage:<5} {row['kb_per_image']:>7.2f} KB/image  prepare "
                      f"{row['prepare_images_per_s']:>5}/s  pipeline {row['pipeline_images_per_s']:>6}/s  "
                      f"cnn_small fit {row['fit_images_per_s']:>5}/s", flush=True)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    out = ROOT / "bench/results/storage.json"
    out.write_text(json.dumps({"commit": commit, "batch": BATCH, "datasets": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
