"""Refresh the generated tables of the README and docs/ from the files they come from (a test fails when they are
stale):

    .venv/bin/python ci/doc_tables.py

train_keys: imageclf/train/settings.py and params.yaml's train_defaults; families: `python -m imageclf.models`
(the model registry); augment: imageclf/cache/augment_levels.py;
results: reports/compare/comparison.md (the pipeline); export: reports/export/metrics.json (the export stage);
elpv: bench/results/elpv_*.json (bench/elpv_transfer.py); own_data, own_data_tuned, own_data_fresh,
own_data_targets: bench/results/own_data_*.json (bench/own_data.py);
scale: bench/results/scale.json (bench/scale.py); scale_alone: bench/results/scale_alone.json (bench/scale.py
--alone); storage: bench/results/storage.json (bench/storage.py); recipes:
bench/results/recipes.json and recipes_full.json (bench/recipes.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# which generated blocks each page holds
PAGES = {"README.md": ("results",), "docs/training.md": ("train_keys", "families", "augment"),
         "docs/export.md": ("export",),
         "docs/benchmarks.md": ("elpv", "own_data", "own_data_tuned", "own_data_fresh", "own_data_targets",
                                "scale", "scale_alone",
                                "storage", "recipes", "recipes_full")}


def blocks() -> dict[str, str]:
    from imageclf.cache.augment_levels import LEVELS, NAMES, SETTINGS
    from imageclf.models.registry import listing
    from imageclf.train.settings import PARAMS

    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())["train_defaults"]
    return {"families": listing(), "augment": augment_table(LEVELS, NAMES, SETTINGS),
            "train_keys": keys_table(PARAMS.fields, defaults),
            "results": (ROOT / "reports/compare/comparison.md").read_text().strip(),
            "export": export_table(json.loads((ROOT / "reports/export/metrics.json").read_text())),
            "elpv": elpv_table(sorted(ROOT.glob("bench/results/elpv_*.json"))),
            "own_data": own_data_table(sorted(ROOT.glob("bench/results/own_data_*.json"))),
            "own_data_tuned": own_data_tuned_table(sorted(ROOT.glob("bench/results/own_data_*.json"))),
            "own_data_fresh": own_data_fresh_table(sorted(ROOT.glob("bench/results/own_data_*.json"))),
            "own_data_targets": own_data_targets_table(sorted(ROOT.glob("bench/results/own_data_*.json"))),
            "scale": scale_table(json.loads((ROOT / "bench/results/scale.json").read_text())),
            "scale_alone": scale_table(json.loads((ROOT / "bench/results/scale_alone.json").read_text())),
            "storage": storage_table(json.loads((ROOT / "bench/results/storage.json").read_text())),
            "recipes": recipes_table(json.loads((ROOT / "bench/results/recipes.json").read_text())),
            "recipes_full": recipes_table(json.loads((ROOT / "bench/results/recipes_full.json").read_text()))}


def keys_table(fields: dict, defaults: dict) -> str:
    """A params section's keys as a Markdown table: default (params.yaml), accepted values, meaning."""
    lines = ["| key | default | accepts | meaning |", "|---|---|---|---|"]
    for key, field in fields.items():
        accepts = field.accepts().replace("|", "\\|")
        lines.append(f"| `{key}` | {json.dumps(defaults[key])} | {accepts} | {field.doc} |")
    return "\n".join(lines)


def augment_table(levels: dict[int, dict], names: dict[int, str], settings: dict[str, str]) -> str:
    """The augmentation levels as a Markdown table, one row per setting."""
    lines = ["| | " + " | ".join(f"{lv} {names[lv]}" for lv in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for key, label in settings.items():
        cells = [levels[lv].get(key, "-") for lv in levels]
        lines.append(f"| {label} | " + " | ".join("yes" if c is True else str(c) for c in cells) + " |")
    return "\n".join(lines)


def export_table(facts: dict) -> str:
    """The export stage's metric as a Markdown table, one row per format."""
    keys = ("file", "size_mb", "max_abs_diff", "top1_agreement", "latency_ms", "images_per_s")
    lines = [f"Model `{facts['model']}`, {facts['images']} {facts['split']} images:", "",
             "| format | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for fmt, row in facts.items():
        if isinstance(row, dict):
            cells = [row.get(k, "-") for k in keys]
            lines.append(f"| {fmt} | " + " | ".join(f"{c:.2g}" if k == "max_abs_diff" and c != "-" else str(c)
                                                     for k, c in zip(keys, cells, strict=True)) + " |")
    return "\n".join(lines)


def elpv_table(files: list[Path]) -> str:
    """bench/elpv_transfer.py's runs (one per image size, and --finetune) as one Markdown table."""
    runs = sorted((json.loads(f.read_text()) for f in files), key=lambda run: run["size"])
    lines = ["| px | model | test accuracy | balanced accuracy | macro F1 | best epoch / run | train time |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        seconds = run["stage_seconds"]
        changes = ", ".join(f"`{k}={v}`" for k, v in run.get("set", {}).items())  # bench --set
        for name, r in run["models"].items():
            cached = "features" in seconds and f"train_transfer {name}" in seconds  # a frozen head on features
            features = f" (+ {seconds['features']:.0f} s features)" if cached else ""
            tta = r.get("tta_accuracy") is not None  # evaluate.tta: the averaged views' figures after the plain ones
            accuracy = f"{r['accuracy']:.1%}" + (f" (TTA {r['tta_accuracy']:.1%})" if tta else "")
            macro_f1 = f"{r['macro_f1']:.3f}" + (f" (TTA {r['tta_macro_f1']:.3f})" if tta else "")
            lines.append(f"| {run['size']} | {name}{' with ' + changes if changes else ''} | {accuracy} | "
                         f"{r['balanced_accuracy']:.3f} | {macro_f1} | {r['best_epoch']} / {r['epochs_run']} | "
                         f"{r['train_time_s']:.1f} s{features} |")
    return "\n".join(lines)


def best_tuned(run: dict) -> dict | None:
    """The hand-tuned variant of an own-data run with the best accuracy (failed variants have none), or None."""
    return max((t for t in run.get("tuned", []) if "accuracy" in t), key=lambda t: t["accuracy"], default=None)


def best_tuned_on_fresh(run: dict) -> dict | None:
    """The model of any hand-tuned variant with the best accuracy on the fresh images, as {model, accuracy}, or None
    where no variant was scored on them."""
    scored = [{"model": m, "accuracy": r["fresh"]["accuracy"]} for t in run.get("tuned", [])
              for m, r in t.get("models", {}).items() if "accuracy" in r.get("fresh", {})]
    return max(scored, key=lambda s: s["accuracy"], default=None)


def own_data_table(files: list[Path]) -> str:
    """bench/own_data.py's runs: per dataset the resolved size and each default model's accuracy with its interval
    (* where the interval reaches chance), the best default, the hand-tuned best and the run time."""
    lines = ["| dataset | resolved | chance | mlp | lenet5 | cnn_bn | efficientnet_lite0 | hand-tuned best | run | "
             "commit |", "|---" * 10 + "|"]
    for run in (json.loads(f.read_text()) for f in files):
        if "models" not in run:
            lines.append(f"| {run['dataset']} | failed: {' '.join(run['failed'])} |" + " |" * 7 + f" {run['rev']} |")
            continue
        size = run["resolved"]
        budget = next(iter(run["models"].values()))["budget"]
        cells = []
        for name in ("mlp", "lenet5", "cnn_bn", "efficientnet_lite0"):
            r = run["models"].get(name)
            flagged = "at chance" in r["diagnostics"] if r else False  # the report's test, as the bench reads it
            low, high = (float(x) * 100 for x in r["ci95"].strip("[]").split(",")) if r else (0, 0)
            cells.append("-" if r is None else f"{r['accuracy']:.1%}{'*' if flagged else ''} [{low:.0f}, {high:.0f}]")
        tuned = best_tuned(run)
        best = "-" if tuned is None else f"{tuned['accuracy']:.1%} ({tuned['model']}: `{tuned['params']}`)"
        lines.append(f"| {run['dataset']} | {size['height']}x{size['width']}x{size['channels']}, batch "
                     f"{budget.get('batch_size')} x{budget.get('passes_per_epoch', 1)}, augment "
                     f"{budget.get('augment', 0)} | {run['chance']:.1%} | {' | '.join(cells)} | {best} | "
                     f"{run['seconds'] / 60:.1f} min | {run['rev']} |")
    return "\n".join(lines)


def own_data_tuned_table(files: list[Path]) -> str:
    """bench/own_data.py's hand-tuned variants that recorded every model: each model's accuracy (* at chance)."""
    names = ("mlp", "lenet5", "cnn_bn", "efficientnet_lite0")
    lines = ["| dataset | variant | " + " | ".join(names) + " | commit |", "|---" * (len(names) + 3) + "|"]
    for run in (json.loads(f.read_text()) for f in files):
        for variant in (t for t in run.get("tuned", []) if "models" in t):
            cells = ["-" if m not in variant["models"] else f"{variant['models'][m]['accuracy']:.1%}"
                     f"{'*' if variant['models'][m]['at_chance'] else ''}" for m in names]
            lines.append(f"| {run['dataset']} | `{variant['params']}` | {' | '.join(cells)} | {run['rev']} |")
    return "\n".join(lines)


def own_data_fresh_table(files: list[Path]) -> str:
    """bench/own_data.py's scores on fresh images (generated trees, Fashion-MNIST subsets): each default model's
    accuracy (* within the 95% binomial margin of chance)."""
    names = ("mlp", "lenet5", "cnn_bn", "efficientnet_lite0")
    lines = ["| dataset | fresh images | " + " | ".join(names) + " | commit |", "|---" * (len(names) + 3) + "|"]
    for run in (json.loads(f.read_text()) for f in files):
        scored = {m: r["fresh"] for m, r in run.get("models", {}).items() if "accuracy" in r.get("fresh", {})}
        if not scored:
            continue
        cells = ["-" if m not in scored else f"{scored[m]['accuracy']:.1%}{'*' if scored[m]['at_chance'] else ''}"
                 for m in names]
        lines.append(f"| {run['dataset']} | {next(iter(scored.values()))['images']:,} | {' | '.join(cells)} | "
                     f"{run['rev']} |")
    return "\n".join(lines)


def own_data_targets_table(files: list[Path], margin: float = 0.03) -> str:
    """issue 22's two targets per default run of bench/own_data.py (the "(augment 2)" rows are an earlier variant).
    Where the dataset has fresh images (100 a class: a tight interval) they judge both: which default models are at
    chance, and the best default against the best hand-tuned model; else the test split does, by the report's own
    test."""
    lines = ["| dataset | at chance (test split, the report) | at chance (fresh images) | judged on | best default | "
             "hand-tuned best | gap | targets met |", "|---" * 8 + "|"]
    for run in (json.loads(f.read_text()) for f in files):
        if "models" not in run or "(" in run["dataset"]:
            continue
        models = run["models"]
        on_test = [m for m, r in models.items() if r["at_chance"]]
        fresh = {m: r["fresh"] for m, r in models.items() if "accuracy" in r.get("fresh", {})}
        on_fresh = [m for m, f in fresh.items() if f["at_chance"]] if fresh else None
        tuned = best_tuned_on_fresh(run)
        if fresh and tuned:
            judge = f"fresh images ({next(iter(fresh.values()))['images']:,})"
            best = max(fresh, key=lambda m: fresh[m]["accuracy"])
            default_acc = fresh[best]["accuracy"]
        else:
            judge = "test split"
            best = max(models, key=lambda m: models[m]["accuracy"])
            default_acc = models[best]["accuracy"]
            tuned = best_tuned(run)
        at_chance = on_fresh if fresh else on_test
        gap = None if tuned is None else tuned["accuracy"] - default_acc
        met = not at_chance and gap is not None and gap <= margin
        tuned_cell = "-" if tuned is None else f"{tuned['accuracy']:.1%} ({tuned['model']})"
        gap_cell = "-" if gap is None else f"{gap * 100:+.1f} points"
        lines.append(f"| {run['dataset']} | {', '.join(on_test) or 'none'} | "
                     f"{'-' if on_fresh is None else ', '.join(on_fresh) or 'none'} | {judge} | "
                     f"{default_acc:.1%} ({best}) | {tuned_cell} | {gap_cell} | {'yes' if met else 'no'} |")
    return "\n".join(lines)


def scale_table(result: dict) -> str:
    """One row per size and stage, the code versions side by side (oldest first): time, peak RSS, disk; and the
    newest version's growth from the previous size."""
    codes = list(result["runs"])
    runs = result["runs"]
    lines = [f"| images | stage | time ({' / '.join(codes)}) | peak RSS | disk after (data/, DVC cache) | "
             f"{codes[-1]}: x previous size |", "|---|---|---|---|---|---|"]
    sizes = sorted(runs[codes[-1]], key=int)
    for k, n in enumerate(sizes):
        for stage, row in runs[codes[-1]][n].items():
            if not isinstance(row, dict):
                continue
            rows = [runs[code][n][stage] for code in codes]
            prev = runs[codes[-1]][sizes[k - 1]][stage] if k else None
            growth = "-" if prev is None else (f"time {row['seconds'] / prev['seconds']:.2f}x, "
                                               f"RSS {row['peak_rss_mb'] / prev['peak_rss_mb']:.2f}x")
            cells = [" / ".join(fmt.format(r[key]) for r in rows)
                     for key, fmt in (("seconds", "{:.0f} s"), ("peak_rss_mb", "{:,} MB"), ("disk_mb", "{:,.0f} MB"))]
            lines.append(f"| {int(n):,} | {stage} | {' | '.join(cells)} | {growth} |")
    return "\n".join(lines)


def recipes_table(result: dict) -> str:
    """One row per training-recipe variant: test accuracy with its interval and the gain over the baseline, best
    epoch, seconds per epoch and its ratio to the baseline's."""
    base = result["variants"]["baseline"]
    subset = (f"data.max_per_class {result['max_per_class']}" if result["max_per_class"]
              else "all of them: the default run's data")
    lines = [f"`{result['model']}` on {result['train_images']:,} Fashion-MNIST training images ({subset}), "
             f"{base['test_images']:,} test images, one seed, at {result['rev']}:", "",
             "| variant | test accuracy | vs baseline | best epoch / run | s per epoch (x baseline) |",
             "|---|---|---|---|---|"]
    for name, row in result["variants"].items():
        gain = "-" if row is base else f"{(row['test_accuracy'] - base['test_accuracy']) * 100:+.2f} pts"
        lines.append(f"| {name} | {row['test_accuracy']:.2%} +- {row['interval']:.2%} | {gain} | "
                     f"{row['best_epoch']} / {row['epochs_run']} | {row['s_per_epoch']} "
                     f"({row['s_per_epoch'] / base['s_per_epoch']:.2f}x) |")
    return "\n".join(lines)


def storage_table(result: dict) -> str:
    """One row per dataset and prepare.storage: disk per image, prepare, tf.data and fit images/s, and each as a
    ratio to raw's."""
    lines = ["| dataset | storage | disk per image | prepare images/s | tf.data images/s (streamed) | cnn_small fit "
             "images/s |", "|---|---|---|---|---|---|"]
    for name, rows in result["datasets"].items():
        raw = rows["raw"]
        for storage, row in rows.items():
            cells = [f"{row[key]:,}{unit} ({row[key] / raw[key]:.2f}x)" for key, unit in
                     (("kb_per_image", " KB"), ("prepare_images_per_s", ""), ("pipeline_images_per_s", ""),
                      ("fit_images_per_s", ""))]
            lines.append(f"| {name} | {storage} | {' | '.join(cells)} |")
    return "\n".join(lines)


def render(text: str, names: tuple[str, ...], sources: dict[str, str]) -> str:
    """The page text with each <!-- NAME:begin --> ... <!-- NAME:end --> block of `names` replaced by its source."""
    for name in names:
        pattern = re.compile(rf"(<!-- {name}:begin[^>]*-->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"no <!-- {name}:begin --> ... <!-- {name}:end --> block")
        text = pattern.sub(lambda m, body=sources[name]: m.group(1) + body + "\n" + m.group(2), text)
    return text


def refreshed() -> dict[str, str]:
    """Each page's text with its blocks refreshed."""
    sources = blocks()
    return {page: render((ROOT / page).read_text(), names, sources) for page, names in PAGES.items()}


if __name__ == "__main__":
    for page, text in refreshed().items():
        (ROOT / page).write_text(text)
    print(f"refreshed the generated tables of {', '.join(PAGES)}")
