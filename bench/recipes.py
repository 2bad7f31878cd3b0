"""Benchmark: what each training recipe (label smoothing, ema, mixup, cutmix, random erasing) gains and costs, side by
side in one run, against the same entry without it.

    .venv/bin/python bench/recipes.py [--model cnn_bn] [--max-per-class 1000] [--work /tmp/recipes]
    .venv/bin/python bench/recipes.py --max-per-class 0 --variants baseline "ema 0.99" ... --result recipes_full

Prepares a Fashion-MNIST subset (data.max_per_class images a class for training, 0: all of them, the default run's
data; val and test shrink in proportion) in a scratch project with the repository's params.yaml, then trains the entry
once per variant (same seed, same data order) and scores it on the test split: accuracy with its 95% interval, best
epoch, and seconds per epoch (the median epoch after the first, which also builds the graph; from dvclive's
train/time_s). Writes bench/results/<--result>.json (docs/benchmarks.md "Training recipes" is generated from
recipes.json and recipes_full.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]

# variant -> the training keys it sets (the values timm / fastai use as defaults, ema at Keras' default momentum)
VARIANTS = {"baseline": {}, "label_smoothing 0.1": {"label_smoothing": 0.1}, "ema 0.99": {"ema": 0.99},
            "mixup 0.2": {"mixup": 0.2}, "cutmix 1.0": {"cutmix": 1.0}, "random_erasing 0.5": {"random_erasing": 0.5},
            # on the full data: a slower average, and the two keys that were free per epoch together
            "ema 0.999": {"ema": 0.999}, "ema 0.99 + label_smoothing 0.1": {"ema": 0.99, "label_smoothing": 0.1}}


def prepare(work: Path, max_per_class: int) -> Path:
    """A scratch project with the Fashion-MNIST subset prepared (again when its params differ from the last run's: a
    work folder reused with another --max-per-class); the prepared folder."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["max_per_class"] = max_per_class or None
    work.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(params, sort_keys=False)
    same = (work / "params.yaml").is_file() and (work / "params.yaml").read_text() == text
    (work / "params.yaml").write_text(text)
    if not (same and (work / "data/prepared/meta.json").is_file()):
        for stage in ("download", "split", "prepare"):
            subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=work, check=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    return work / "data/prepared"


def score(model_file: Path, prepared: Path) -> tuple[float, int]:
    import keras

    from imageclf.cache import loader
    from imageclf.cache.shards import load_split

    model = keras.models.load_model(model_file)
    probs = model.predict(loader.dataset(prepared, "test", 256), verbose=0)
    labels = np.asarray(load_split(prepared, "test")[1])
    return float(np.mean(probs.argmax(axis=1) == labels)), len(labels)


def seconds_per_epoch(live: Path) -> float:
    """The median epoch's training seconds after the first (dvclive logs the seconds so far each epoch)."""
    rows = (live / "plots/metrics/train/time_s.tsv").read_text().splitlines()[1:]
    total = [float(r.split("\t")[1]) for r in rows]
    return float(np.median(np.diff(total)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cnn_bn", help="the params.yaml train entry")
    parser.add_argument("--max-per-class", type=int, default=1000, help="0: every training image")
    parser.add_argument("--work", type=Path, default=Path("/tmp/recipes"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--result", default="recipes", help="bench/results/RESULT.json")
    args = parser.parse_args()
    prepared = prepare(args.work, args.max_per_class)
    os.chdir(args.work)  # dvclive and the train code write relative to the project

    from imageclf.cache.shards import read_meta
    from imageclf.train import fit
    from imageclf.train.config import model_config

    params = yaml.safe_load(Path("params.yaml").read_text())
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout
    result = {"model": args.model, "max_per_class": args.max_per_class, "rev": rev.strip(),
              "train_images": read_meta(prepared)["splits"]["train"]["count"], "variants": {}}
    print("| variant | test accuracy | 95% interval | best epoch / run | s per epoch (median) |\n|---|---|---|---|---|")
    for name in args.variants:
        entry = {**params["train"][args.model], **VARIANTS[name]}
        cfg = model_config({**params, "train": {args.model: entry}}, args.model)
        out = Path("runs") / name.replace(" ", "_")
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        summary = fit.train(cfg, prepared, out / "model", out / "live")
        seconds = time.perf_counter() - start
        accuracy, n = score(out / "model/model.keras", prepared)
        half = 1.96 * (accuracy * (1 - accuracy) / n) ** 0.5
        row = {"keys": VARIANTS[name], "test_accuracy": round(accuracy, 4), "interval": round(half, 4),
               "test_images": n, "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
               "s_per_epoch": round(seconds_per_epoch(out / "live"), 2), "run_s": round(seconds)}
        result["variants"][name] = row
        print(f"| {name} | {accuracy:.2%} | +-{half:.2%} | {row['best_epoch']} / {row['epochs_run']} | "
              f"{row['s_per_epoch']} |", flush=True)
    (ROOT / f"bench/results/{args.result}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
