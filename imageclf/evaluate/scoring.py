"""Evaluate one trained model on every split: metrics, per-class report, confusion, confused pairs, gallery."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imageclf.cache import loader
from imageclf.cache.shards import load_split, read_meta
from imageclf.core.errors import UserError
from imageclf.core.paths import SPLITS
from imageclf.evaluate import domain_shift, gradcam, metrics, plots, stats
from imageclf.train.progress import BatchProgress


def load_model(name: str, model_dir: Path, classes: list[str] | None = None) -> tuple[keras.Model, dict]:
    """The trained model and its classes.json ({classes, trained_on}), refusing one whose class list differs from
    `classes` (the data's) when given.

    A transfer model needs imageclf.transfer imported first (its layers register themselves for loading).
    """
    path, info_file = model_dir / "model.keras", model_dir / "classes.json"
    for needed in (path, info_file):
        if not needed.is_file():
            raise UserError(f"{needed} not found; train the model first (dvc repro)")
    info = json.loads(info_file.read_text())
    trained = info["classes"]
    if classes is not None and trained != classes:
        missing, extra = sorted(set(classes) - set(trained)), sorted(set(trained) - set(classes))
        detail = f"missing {missing}, extra {extra}" if missing or extra else "same names, other order"
        raise UserError(f"{name} was trained on other classes than the data has ({detail}); "
                        f"retrain it (dvc repro)")
    return keras.models.load_model(path), info


def predict(model: keras.Model, prepared: Path, split: str, batch: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, probabilities, images per second) for one split."""
    labels = load_split(prepared, split)[1]
    ds = loader.dataset(prepared, split, batch).map(lambda x, _y: x)
    model.predict(ds.take(1), verbose=0)  # trace once, outside the timing
    start = time.perf_counter()
    probs = model.predict(ds, verbose=0, callbacks=[BatchProgress(f"evaluate {split}")])
    return labels, probs.astype(np.float64), len(labels) / (time.perf_counter() - start)


def views(kind: str) -> list:
    """The test-time views of a batch of images: itself (none), and its mirror (flip), or all eight quarter turns
    with and without the mirror (dihedral)."""
    turns = range(4) if kind == "dihedral" else range(1)
    mirrors = (False,) if kind == "none" else (False, True)
    return [lambda x, k=k, m=m: tf.image.rot90(tf.image.flip_left_right(x) if m else x, k)
            for k in turns for m in mirrors]


def tta_probabilities(model: keras.Model, prepared: Path, split: str, batch: int, kind: str,
                      plain: np.ndarray) -> np.ndarray:
    """Class probabilities averaged over the test-time views (evaluate.tta) of each image; `plain` are the
    probabilities of the images as they are (the first view), already predicted."""
    images = loader.dataset(prepared, split, batch).map(lambda x, _y: x)
    others = [model.predict(images.map(view), verbose=0, callbacks=[BatchProgress(f"evaluate {split} view {i}")])
              .astype(np.float64) for i, view in enumerate(views(kind)[1:], start=2)]
    return np.mean([plain, *others], axis=0)


def summary_line(results: dict, split: str, name: str) -> str:
    """What an evaluate stage prints at the end."""
    scores = results[split]
    tta = f" ({scores['tta']['views']} views: {scores['tta']['accuracy']:.4f})" if "tta" in scores else ""
    return (f"evaluate {name}: {split} accuracy {scores['accuracy']:.4f}{tta}, macro F1 {scores['macro_f1']:.4f}, "
            f"{results['inference']['images_per_s']:.0f} images/s")


def evaluate(name: str, model_dir: Path, prepared: Path, out: Path, params: dict) -> dict:
    """Write out/metrics.json and the detail reports for evaluate.split; return the metrics."""
    cfg = params["evaluate"]
    meta = read_meta(prepared)
    classes = meta["classes"]
    model, info = load_model(name, model_dir, classes)
    trained_on = info.get("trained_on", ["train"])
    detail = cfg["split"]
    if meta["splits"][detail]["count"] == 0:
        raise UserError(f"evaluate.split is '{detail}' but that split is empty; set evaluate.split to a split "
                        f"with images ({', '.join(s for s in SPLITS if meta['splits'][s]['count'])})")
    if detail != "train" and detail in trained_on:
        raise UserError(f"evaluate.split is '{detail}' but {name} was retrained on {'+'.join(trained_on)} "
                        "(retrain_full_epochs): evaluate on a held-out split (test)")
    height, width = meta["shape"][:2]
    if cfg["tta"] == "dihedral" and height != width:
        raise UserError(f"evaluate.tta is dihedral, whose quarter turns need square images, but prepare gives "
                        f"{height}x{width}; use tta: flip")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {"trained_on": "+".join(trained_on)}
    val = None  # (labels, probabilities) of val, which SPLITS lists before test: what calibration is fitted on
    for split in SPLITS:
        if meta["splits"][split]["count"] == 0 or (split != "train" and split in trained_on):
            continue  # a split the final model was trained on is no evaluation: left out
        y, probs, speed = predict(model, prepared, split, cfg["batch_size"])
        if split == "val":
            val = y, probs
        results[split] = metrics.split_metrics(y, probs, cfg["top_k"], cfg["ece_bins"])
        if split == detail:
            calibrated = calibrate(val, y, probs, detail, cfg, out / "reliability.png")
            if calibrated:
                results[split]["calibrated"] = calibrated
            if cfg["bootstrap_resamples"]:
                results[split].update(stats.bootstrap(y, probs.argmax(axis=1), len(classes),
                                                      cfg["bootstrap_resamples"], cfg["seed"]))
            if cfg["tta"] != "none":  # beside the plain figures, which stay what the exported model gives
                tta = tta_probabilities(model, prepared, split, cfg["batch_size"], cfg["tta"], probs)
                results[split]["tta"] = {"views": cfg["tta"], **metrics.split_metrics(y, tta, cfg["top_k"],
                                                                                      cfg["ece_bins"])}
            results["inference"] = {"images_per_s": round(speed, 1), "batch_size": cfg["batch_size"]}
            _details(model, y, probs, classes, prepared, split, out, cfg)
    if cfg["domain_shift"] is not None:
        results["domain_shift"] = domain_shift.evaluate(model, classes, params["data"], params["prepare"],
                                                        cfg["domain_shift"], cfg)
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def calibrate(val: tuple[np.ndarray, np.ndarray] | None, y: np.ndarray, probs: np.ndarray, split: str, cfg: dict,
              out: Path) -> dict | None:
    """evaluate.calibrate: temperature scaling fitted on the validation predictions, its NLL and ECE on `split`
    before and after, and the reliability diagram (out); a note instead when there is no held-out val to fit on."""
    if not cfg["calibrate"]:
        plots.note("No calibration: evaluate.calibrate is false.", out)
        return None
    if val is None or split == "val":
        why = "evaluate.split is val itself" if split == "val" else "no val split to fit it on (empty, or trained on)"
        plots.note(f"No temperature scaling: {why}.", out)
        return None
    temperature = metrics.fit_temperature(*val)
    scaled = metrics.with_temperature(probs, temperature)
    after = metrics.split_metrics(y, scaled, cfg["top_k"], cfg["ece_bins"])
    plots.reliability(metrics.calibration_bins(y, probs, cfg["ece_bins"]),
                      metrics.calibration_bins(y, scaled, cfg["ece_bins"]), temperature, out)
    return {"temperature": round(temperature, 4), "val_images": int(len(val[0])), "loss": after["loss"],
            "ece": after["ece"]}


def _details(model: keras.Model, y: np.ndarray, probs: np.ndarray, classes: list[str], prepared: Path, split: str,
             out: Path, cfg: dict) -> None:
    pred = probs.argmax(axis=1)
    report = metrics.per_class(y, pred, classes)
    report.to_csv(out / "per_class.csv", index=False)
    (out / "per_class.json").write_text(report.to_json(orient="records", indent=1) + "\n")
    # the rows dvclive's log_sklearn_plot("confusion_matrix") writes, without a dvclive run in this stage
    rows = [{"actual": classes[t], "predicted": classes[p]} for t, p in zip(y, pred, strict=True)]
    for name in ("confusion.json", "confusion_normalized.json"):  # one file per DVC plot template
        (out / name).write_text(json.dumps(rows) + "\n")
    plots.confusion_heatmap(y, pred, classes, f"{out.name}: {split} confusion (row-normalised)",
                            out / "confusion.png")
    pairs = metrics.confused_pairs(y, pred, classes, cfg["min_errors"])
    pairs.to_csv(out / "confused_pairs.csv", index=False)
    index = pd.read_csv(prepared / f"{split}.csv", dtype={"path": str}, keep_default_na=False)
    predictions = pd.DataFrame({"path": index["path"], "true": [classes[t] for t in y],
                                "predicted": [classes[p] for p in pred], "confidence": probs.max(axis=1)})
    predictions = pd.concat([predictions, pd.DataFrame(probs, columns=[f"prob_{c}" for c in classes])], axis=1)
    predictions.to_csv(out / "predictions.csv", index=False, float_format="%.5f")
    images = load_split(prepared, split)[0]
    shown = pairs.head(cfg["gallery_pairs"])
    plots.gallery(shown, images, y, pred, classes, cfg["gallery_per_pair"], out / "gallery.png")
    index = {c: i for i, c in enumerate(classes)}
    gradcam.panel(model, out.name, images, y, pred, [(index[t], index[p]) for t, p in zip(shown["true"],
                  shown["predicted"], strict=True)], classes, cfg["gallery_per_pair"], out / "gradcam.png")
