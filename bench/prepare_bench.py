"""Benchmark: prepare stage vs a naive single-process PIL loop, on elpv (300x300 PNG -> 128 px), same run.

    .venv/bin/python bench/prepare_bench.py            # speed ratio at 1x, peak memory at 1x and 4x the images

Prints images/s of both and their ratio (target >= 1.8 on 2 cores), and the peak RSS of the prepare stage's
main process and of its largest worker at 1x and 4x the images (target: flat).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from imageclf.cache import prepare
from imageclf.data import ingest, sources, splitting

ROOT = Path(__file__).resolve().parents[1]

PREPARE = {"image_size": 128, "color": "grayscale", "invert": False, "resize": "stretch", "offline_augment": 0,
           "offline_augment_level": 1, "storage": "raw", "jpeg_quality": 90, "shard_mb": 256, "workers": 0,
           "seed": 0}
MAX_PIXELS = 89478485


def build_raw(work: Path, copies: int) -> list[str]:
    """elpv as the download stage writes it, every image repeated `copies` times under new names, then split."""
    col = sources.collect({"source": "elpv"})
    items = [sources.Item(f"c{k}/{i.path}", i.class_key, i.class_name, i.id, i.origin) for k in range(copies)
             for i in col.items]
    ingest.write(sources.Collection(items, [], {}, col.class_order), work / "raw", work / "reports", MAX_PIXELS, 1)
    split = {"seed": 0, "fractions": {"train": 0.8, "val": 0.1, "test": 0.1}, "drop_leaked": False, "exclude": []}
    splitting.write(split, None, "test", work / "raw", work / "split", work / "reports")  # copies are not leakage
    return [str(i.origin) for i in col.items]


def naive(files: list[str], out: Path) -> float:
    """The loop users write: one process, PIL open/resize, one np.save per image."""
    out.mkdir()
    start = time.perf_counter()
    for i, path in enumerate(files):
        with Image.open(path) as img:
            np.save(out / f"{i}.npy", np.asarray(img.convert("L").resize((128, 128), Image.Resampling.BILINEAR)))
    return len(files) / (time.perf_counter() - start)


def measure_prepare(work: Path) -> None:
    """Child mode: only the prepare stage, in a fresh process, so its peak memory is its own; prints JSON."""
    start = time.perf_counter()
    meta = prepare.build(work / "raw", work / "split", work / "prepared", work / "reports", PREPARE,
                         MAX_PIXELS)
    n = sum(s["count"] for s in meta["splits"].values())
    print(json.dumps({"images": n, "img_s": n / (time.perf_counter() - start),
                      "main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure_prepare(args.measure)
    runs, naive_speed = {}, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for copies in (1, 4):
            work = Path(tmp) / f"x{copies}"
            files = build_raw(work, copies)
            # 1x: naive and prepare alternate twice and the best of each counts, so machine noise hits both alike
            for attempt in range(2 if copies == 1 else 1):
                if copies == 1:
                    naive_speed = max(naive_speed, naive(files, work / f"naive{attempt}"))
                out = subprocess.run([sys.executable, __file__, "--measure", str(work)], capture_output=True,
                                     text=True, check=True)
                run = json.loads(out.stdout.strip().splitlines()[-1])
                if copies not in runs or run["img_s"] > runs[copies]["img_s"]:
                    runs[copies] = run
    r1, r4 = runs[1], runs[4]
    print(f"naive single-process loop : {naive_speed:8.1f} images/s")
    print(f"prepare stage (all cores) : {r1['img_s']:8.1f} images/s   ratio {r1['img_s'] / naive_speed:.2f}x")
    for copies, r in runs.items():
        print(f"{r['images']:6d} images ({copies}x): prepare {r['img_s']:7.1f} images/s, peak RSS main "
              f"{r['main_mib']:.0f} MiB, largest worker {r['worker_mib']:.0f} MiB")
    growth_main, growth_worker = r4["main_mib"] / r1["main_mib"], r4["worker_mib"] / r1["worker_mib"]
    print(f"peak memory 4x / 1x: main {growth_main:.2f}, worker {growth_worker:.2f}")


if __name__ == "__main__":
    main()
