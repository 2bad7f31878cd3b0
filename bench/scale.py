"""Benchmark: how the data stages' time, peak memory and disk grow with the number of images.

    .venv/bin/python bench/scale.py                        # 10k, 40k, 160k images with this working tree's code
    .venv/bin/python bench/scale.py --sizes 10000 40000 --ref HEAD~3   # and a commit's code, side by side
    .venv/bin/python bench/scale.py --alone --ref HEAD~3   # download and split alone (python -m stages.X, no DVC)

Generates folder-per-class trees of 96 px JPEGs (20 classes; once, under --work), then for each size runs
`dvc repro` stage by stage (download, split, prepare, one epoch of mlp and its evaluation) in a copy of the project
with `data:` set and `prepare.image_size: 64`, `color: rgb` (as in issue 25). Per stage: wall time, images/s, peak RSS
(of the stage's largest process, GNU time), and the disk of the project's data/ and DVC cache counted once per file
(a hard-linked file is one file). Prints the growth ratio between sizes (linear: 4.0 per 4x) and adds the run to
bench/results/scale.json (keyed by `git describe`), from which docs/benchmarks.md's table is generated
(ci/doc_tables.py). Under `dvc repro` the largest process of download is DVC's own (it hashes the tree, the stage's
dependency); --alone runs download and split as plain processes instead, so their own memory shows
(bench/results/scale_alone.json).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
CLASSES, SIDE = 20, 96
STAGES = ("download", "split", "prepare", "train@mlp", "evaluate@mlp")
ALONE = ("download", "split")  # --alone: these stages' own processes, without DVC


def _picture(job: tuple[str, int, int]) -> None:
    """One 96 px JPEG of class c: a smooth random picture tinted by its class, with pixel noise (about 8 KB)."""
    root, c, i = job
    rng = np.random.default_rng([c, i])
    coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
    coarse[..., c % 3] = 0.5 * coarse[..., c % 3] + 12 * (c % 10)
    img = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((SIDE, SIDE), Image.Resampling.BICUBIC))
    noisy = img.astype(np.int16) + rng.integers(-24, 25, img.shape)
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(f"{root}/class_{c:02d}/{i:07d}.jpg", quality=90)


def tree(work: Path, n: int) -> Path:
    """The n-image tree under work (written once: a marker file says it is complete)."""
    root = work / f"tree_{n}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for c in range(CLASSES):
        (root / f"class_{c:02d}").mkdir(parents=True)
    jobs = [(str(root), c, i) for c in range(CLASSES) for i in range(n // CLASSES)]
    with multiprocessing.Pool() as pool:
        pool.map(_picture, jobs, chunksize=512)
    (root / ".complete").touch()
    return root


def project(source: Path, dest: Path, data_path: Path) -> Path:
    """A copy of the project's tracked files as they are in `source` (its working tree), params set for the run."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=source, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):  # .dvc/config included: the project's cache link type
        if (source / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest / rel)
    yaml = YAML()
    params = yaml.load(dest / "params.yaml")
    params["data"].update(source="folder", path=str(data_path), labels="folder")
    params["prepare"].update(image_size=64, color="rgb")
    params["train_defaults"].update(epochs=1, min_steps=0)
    params["models"].update(scratch=["mlp"], transfer=[])
    yaml.dump(params, dest / "params.yaml")
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit",
                                       "-qm", "scale benchmark"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)  # dvclive needs a commit
    return dest


def disk_mb(work: Path) -> float:
    """MB under data/ and .dvc/cache together, a file with several links counted once (du)."""
    out = subprocess.run(["du", "-sk", "--total", "data", ".dvc/cache"], cwd=work, capture_output=True, text=True)
    return round(int(out.stdout.strip().splitlines()[-1].split()[0]) / 1024, 1)


def run_stage(work: Path, stage: str, alone: bool = False) -> dict:
    """`dvc repro -s stage` (or, alone, `python -m stages.<stage>`) under GNU time: seconds and peak RSS (MB) of
    its largest process."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [sys.executable, "-m", f"stages.{stage}"] if alone else ["dvc", "repro", "-s", stage]
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], cwd=work, env=env, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{stage} failed in {work}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak_kb / 1024), "disk_mb": disk_mb(work)}


def measure(source: Path, work: Path, sizes: list[int], label: str, alone: bool = False) -> dict:
    rows = {}
    for n in sizes:
        data = tree(work, n)
        proj = project(source, work / f"project_{label}", data)
        rows[n] = {stage: run_stage(proj, stage, alone) for stage in (ALONE if alone else STAGES)}
        for stage, row in rows[n].items():
            row["images_per_s"] = round(n / max(row["seconds"], 1e-9))
            print(f"{label} {n:>7} {stage:<10} {row['seconds']:>7.1f} s {row['images_per_s']:>6} img/s "
                  f"peak {row['peak_rss_mb']:>5} MB  disk {row['disk_mb']:>8.1f} MB", flush=True)
        source_mb = int(subprocess.run(["du", "-sk", str(data)], capture_output=True, text=True).stdout.split()[0])
        rows[n]["source_mb"] = round(source_mb / 1024, 1)
        shutil.rmtree(proj)
    return rows


def growth(rows: dict) -> None:
    """Ratios between consecutive sizes: time, peak RSS, disk."""
    sizes = sorted(rows)
    for small, big in zip(sizes, sizes[1:], strict=False):
        print(f"x{big / small:.0f} images ({small} -> {big}):")
        for stage in (s for s in STAGES if s in rows[small]):
            a, b = rows[small][stage], rows[big][stage]
            print(f"  {stage:<12} time {b['seconds'] / a['seconds']:.2f}x  "
                  f"peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000, 160_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/imageclf-scale"))
    parser.add_argument("--ref", help="also measure this git commit's code, side by side")
    parser.add_argument("--alone", action="store_true", help="download and split only, without DVC")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    def describe(*rev: str) -> str:
        return subprocess.run(["git", "describe", "--always", *rev], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    runs = {describe("--dirty"): ROOT}  # the working tree, "-dirty" when it has uncommitted changes
    if args.ref:
        ref_tree = args.work / "ref"
        subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=ROOT, capture_output=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(ref_tree), args.ref], cwd=ROOT, check=True)
        runs = {describe(args.ref): ref_tree, **runs}
    out = ROOT / f"bench/results/scale{'_alone' if args.alone else ''}.json"  # other code versions' runs are kept
    results = json.loads(out.read_text())["runs"] if out.exists() else {}
    for label, source in runs.items():
        results[label] = measure(source, args.work, args.sizes, label, args.alone)
        growth(results[label])
        out.write_text(json.dumps({"classes": CLASSES, "side": SIDE, "runs": results}, indent=1) + "\n")
    print(f"wrote {out}")
