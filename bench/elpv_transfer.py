"""Report: frozen EfficientNet-Lite0 vs from-scratch families on elpv (real photos, 4 imbalanced classes).

    .venv/bin/python bench/elpv_transfer.py [--work /tmp/elpv-transfer] [--size 96] [--finetune]

Runs the pipeline's own stages (download, split, prepare, features, train, evaluate) in a scratch directory with
this repository's params.yaml, switched to the elpv source (70/15/15 stratified split, grayscale at --size px),
and prints each model's test accuracy, balanced accuracy and macro F1 from the evaluate stage's metrics; it also
writes them to bench/results/elpv_<size>px.json (elpv_finetune.json), the source of docs/benchmarks.md's elpv table.
--finetune instead trains params.yaml's entry efficientnet_lite0_elpv on 300 px images (Lite0's top blocks
fine-tuned with dihedral augmentation, the epoch with the best validation accuracy kept; about 20 minutes on 2 cores).
--set KEY=VALUE (repeatable, a dotted params.yaml key and a YAML value) changes params for the run, e.g. a training
recipe of the entry or test-time augmentation, and --tag names the results file (elpv_finetune_<tag>.json):

    .venv/bin/python bench/elpv_transfer.py --finetune --tag ema-tta \
        --set train.efficientnet_lite0_elpv.ema=0.99 --set evaluate.tta=dihedral
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from imageclf.report import comparison

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench/results"
# the compare table's columns (evaluate's test split, train's facts) -> this benchmark's result keys
COLUMNS = {"test_accuracy": "accuracy", "test_balanced_accuracy": "balanced_accuracy", "test_macro_f1": "macro_f1",
           "best_epoch": "best_epoch", "epochs_run": "epochs_run", "train_time_s": "train_time_s"}
TTA_COLUMNS = {"test_tta_accuracy": "tta_accuracy", "test_tta_macro_f1": "tta_macro_f1"}  # with evaluate.tta set
SCRATCH, TRANSFER = ["lenet5", "cnn_small"], ["efficientnet_lite0"]
FINETUNE = "efficientnet_lite0_elpv"  # params.yaml entry
SPLIT = {"train": 0.7, "val": 0.15, "test": 0.15}  # stratified; docs/datasets.md's elpv recipe says the same (a test)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/elpv-transfer"))
    parser.add_argument("--size", type=int, default=None, help="prepared image size (default 96; 300 --finetune)")
    parser.add_argument("--finetune", action="store_true", help=f"train the entry {FINETUNE} only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml change for the run: dotted key, YAML value (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the results file name (needed with --set)")
    args = parser.parse_args()
    if args.set and not args.tag:
        parser.error("--set needs --tag, so the run does not overwrite the default's results file")
    size = args.size or (300 if args.finetune else 96)
    args.work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="elpv", path=".")
    params["split"]["fractions"] = SPLIT
    params["prepare"].update(image_size=size, color="grayscale")
    scratch, transfer = ([], [FINETUNE]) if args.finetune else (SCRATCH, TRANSFER)
    params["models"] = {"scratch": scratch, "transfer": transfer}
    params["features"]["efficientnet_lite0"]["input_size"] = None  # the frozen entry takes it from its feature set
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        section = params
        for name in parents:
            section = section[name]
        section[leaf] = changes[key] = yaml.safe_load(value)
    (args.work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    steps = [["download"], ["split"], ["prepare"]] + ([] if args.finetune else [["features"]])
    steps += [[stage, m] for m in scratch for stage in ("train", "evaluate")]
    steps += [[stage, m] for m in transfer for stage in ("train_transfer", "evaluate_transfer")]
    seconds = {}
    for step in steps:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"stages.{step[0]}", *step[1:]], cwd=args.work, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        label = " ".join(step)
        seconds[label] = round(time.perf_counter() - start, 1)
        print(f"{label:28s} {seconds[label]:6.1f} s", flush=True)
    rows = results(args.work, scratch + transfer)
    RESULTS.mkdir(exist_ok=True)
    name = ("finetune" if args.finetune else f"{size}px") + (f"_{args.tag}" if args.tag else "")
    report = {"size": size, "set": changes, "models": rows, "stage_seconds": seconds}
    (RESULTS / f"elpv_{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nelpv, {size} px grayscale, test split:")
    print(f"{'model':28s} {'accuracy':>9s} {'balanced':>9s} {'macro F1':>9s} {'best/run':>9s} {'train s':>8s}")
    for m, r in rows.items():
        epochs = f"{r['best_epoch']}/{r['epochs_run']}"
        print(f"{m:28s} {r['accuracy']:9.4f} {r['balanced_accuracy']:9.4f} {r['macro_f1']:9.4f} {epochs:>9s} "
              f"{r['train_time_s']:8.1f}")


def results(work: Path, models: list[str]) -> dict[str, dict]:
    """Each model's test metrics and training facts, as the compare stage's table reads them."""
    frame = comparison.table(models, work / "reports/train", work / "reports/eval", "test")
    columns = {**COLUMNS, **{k: v for k, v in TTA_COLUMNS.items() if k in frame.columns}}
    return frame.set_index("model")[list(columns)].rename(columns=columns).to_dict("index")


if __name__ == "__main__":
    main()
