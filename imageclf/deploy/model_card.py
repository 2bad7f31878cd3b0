"""The model card (Markdown) that travels with an exported model: what goes in, what comes out, how good it is,
what it confuses, where it stops working, and how it was made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import yaml

from imageclf.report.page import markdown_table


def input_contract(shape: list[int], prepare: dict) -> list[str]:
    """The exact conversion a consumer applies to an image before the model (that of the prepare stage)."""
    height, width, channels = shape
    colour = "8-bit grayscale (1 channel)" if channels == 1 else "8-bit RGB (3 channels)"
    resize = {"stretch": f"stretched to {width}x{height} (aspect ratio not kept)",
              "crop": f"scaled to cover {width}x{height}, then centre-cropped",
              "pad": f"scaled to fit inside {width}x{height}, then padded with black"}[prepare["resize"]]
    steps = ["decode the file and apply its EXIF orientation",
             f"convert to {colour}; transparent pixels go onto white",
             f"{resize}, bilinear resampling"]
    if prepare["invert"]:
        steps.append("invert: value = 255 - value")
    steps.append(f"stack as a uint8 array [batch, {height}, {width}, {channels}] with values 0-255; no scaling or "
                 "normalisation (the model divides by 255 itself)")
    return steps


CODE = ("imageclf", "stages", "dvc.yaml")  # what decides how a model is made, besides params.yaml and the data


def provenance(name: str, lock_file: Path = Path("dvc.lock")) -> dict[str, str]:
    """Git revision, whether the code or params.yaml differ from it (reports and dvc.lock, which every run rewrites,
    do not count), and the dvc.lock hashes of the model's training inputs and of the model file."""
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if git.returncode != 0:
        out = {"git revision": "unknown (not a git checkout)"}
    else:
        out = {"git revision": git.stdout.strip()}
        for what, paths in (("code", CODE), ("params", ("params.yaml",))):
            changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *paths],
                                     capture_output=True, text=True).stdout.split("\n")
            changed = sorted(line[3:] for line in changed if line.strip())
            out[f"{what} at that revision"] = (f"differs: {', '.join(changed)}" if changed else "unchanged")
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {}) if lock_file.is_file() else {}
    stage = stages.get(f"train@{name}") or stages.get(f"train_transfer@{name}")
    if stage is None:
        out["dvc.lock"] = f"no entry for the training of {name} (run through dvc repro)"
        return out
    for entry in (*stage.get("deps", []), *stage.get("outs", [])):
        if entry["path"] in ("data/prepared", "data/features", f"models/{name}/model.keras"):
            out[f"{entry['path']} (md5, dvc.lock)"] = entry["md5"]
    return out


def render(name: str, cfg: dict, chosen_by: str, data: dict, prepare: dict, meta: dict, scores: dict, split: str,
           pairs: pd.DataFrame, formats: dict[str, dict], tolerance: float, origin: dict[str, str],
           temperature: float | None = None) -> str:
    """The card's Markdown."""
    classes, shape = meta["classes"], meta["shape"]
    detail = scores.get(split, {})
    where = {"url": data["url"], "kaggle": data["kaggle_dataset"]}.get(data["source"], data["path"])
    lines = [f"# Model card: {name}", "",
             f"Family `{cfg['family']}`, exported by `dvc repro` (stage export). Chosen by {chosen_by}.", "",
             "## Input", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(input_contract(shape, prepare), 1)]
    lines += ["", "## Output", "",
              f"Softmax probabilities over {len(classes)} classes, in this order (also classes.txt):", ""]
    lines += [f"{i}. {c}" for i, c in enumerate(classes)]
    sizes = {s: meta["splits"][s]["count"] for s in ("train", "val", "test")}
    lines += ["", "## Data", "", f"Source `{data['source']}` ({where}); split images: "
              + ", ".join(f"{s} {n}" for s, n in sizes.items()) + f"; trained on {scores.get('trained_on', 'train')}."
              + _resolution(meta),
              "", "## Training", "", markdown_table(_settings(cfg)), "",
              f"## Metrics on {split} ({detail.get('samples', 0)} images never trained on)", ""]
    lines += [markdown_table(_metrics(detail)), ""]
    if temperature is not None:  # export.calibrated: the files carry the temperature
        fitted = detail["calibrated"]
        lines += [f"The exported files give temperature-scaled probabilities (export.calibrated: true): "
                  f"softmax(log p / {temperature:.4g}), the temperature fitted on {fitted['val_images']} val images; "
                  f"on {split} they have ECE {fitted['ece']:.3f} and NLL {fitted['loss']:.3f}, where the model as "
                  f"trained (models/{name}/model.keras) has {detail['ece']:.3f} and {detail['loss']:.3f}. No "
                  "prediction changes.", ""]
    elif "calibrated" in detail:  # evaluate.calibrate: what the probabilities mean, and how to make them honest
        fitted = detail["calibrated"]
        lines += [f"The probabilities are the model's as trained (ECE {detail['ece']:.3f} on {split}; "
                  f"export.calibrated: false). Temperature scaling fitted on {fitted['val_images']} val images, "
                  f"softmax(log p / {fitted['temperature']:.4g}), gives ECE {fitted['ece']:.3f} and NLL "
                  f"{fitted['loss']:.3f} (from {detail['loss']:.3f}) without changing any prediction; "
                  "export.calibrated: true puts it into the exported files.", ""]
    lines += ["## Most confused pairs", ""]
    lines += [markdown_table(pairs.head(5)) if len(pairs) else "No pair above evaluate.min_errors errors.", ""]
    lines += ["## Files", "", f"Each checked against the Keras model on {split} images: largest probability "
              f"difference (must stay <= {tolerance:g}) and share of identical top-1 classes; latency on this "
              "machine's CPU.", "", markdown_table(_formats(formats)), "",
              "## Known limits", "",
              f"- Only {shape[0]}x{shape[1]} {'grayscale' if shape[2] == 1 else 'RGB'} input; other sizes must be "
              "converted as above first.",
              f"- Every image gets one of the {len(classes)} classes: there is no 'none of these' output.",
              f"- Scores hold for images like the {data['source']} data; other cameras, backgrounds or styles may "
              "score lower (params.yaml evaluate.domain_shift measures one such set).", "",
              "## How it was produced", ""]
    lines += [f"- {key}: `{value}`" for key, value in origin.items()]
    return "\n".join(lines) + "\n"


def _resolution(meta: dict) -> str:
    """How the prepared size and colour were chosen (prepare.image_size / color: auto decide from the images)."""
    resolved = meta.get("resolved")
    if not resolved:
        return ""
    (height, width), why = resolved["image_size"], resolved["why"]
    return (f" Images prepared at {height}x{width} {resolved['color']} (image_size: {why['image_size']}; "
            f"color: {why['color']}).")


def _settings(cfg: dict) -> pd.DataFrame:
    settings = {**cfg["hyper"], **{k: v for k, v in cfg.items() if k not in ("name", "hyper", "budget")}}
    values = [str(list(v)) if isinstance(v, tuple) else str(v) for v in settings.values()]  # defaults are tuples
    return pd.DataFrame({"setting": list(settings), "value": values})


def _metrics(detail: dict) -> pd.DataFrame:
    rows = []
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "cohen_kappa", "ece"):
        if key in detail:
            low, high = detail.get(f"{key}_ci95_low"), detail.get(f"{key}_ci95_high")
            rows.append({"metric": key, "value": detail[key],
                         "95% interval": "-" if low is None else f"[{low:.4f}, {high:.4f}]"})
    return pd.DataFrame(rows, columns=["metric", "value", "95% interval"])


def _formats(formats: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"format": fmt, **facts} for fmt, facts in formats.items()])
