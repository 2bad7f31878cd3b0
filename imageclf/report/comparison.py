"""Compare every trained model: one table, training curves, score bars, and the Markdown/HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from imageclf.core.errors import UserError
from imageclf.core.params import NUMBER, Field, Section
from imageclf.deploy import selection
from imageclf.evaluate import stats
from imageclf.report import diagnostics, plots
from imageclf.report.page import html_page, markdown_page, markdown_table

PARAMS = Section({  # params.yaml compare:
    "alpha": Field(NUMBER, check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), got {v!r}"),
    "target_val_accuracy": Field(NUMBER, minimum=0, maximum=1),  # "seconds to reach" this val accuracy
})


def _read(path: Path, stage: str) -> dict:
    if not path.exists():
        raise UserError(f"{path} not found; run the {stage} stage first (dvc repro)")
    return json.loads(path.read_text())


def interval(scores: dict, metric: str) -> str | None:
    low, high = scores.get(f"{metric}_ci95_low"), scores.get(f"{metric}_ci95_high")
    return None if low is None else f"[{low:.4f}, {high:.4f}]"


def table(models: list[str], train_dir: Path, eval_dir: Path, detail_split: str,
          target: float | None = None) -> pd.DataFrame:
    """One row per model; split metrics come from evaluate (the final model), training facts from train.

    A split the final model was trained on (val, after retrain_full_epochs) is no evaluation: its cells stay empty
    and `trained_on` says why. Macro F1 is that of evaluate.split, named after it.
    """
    rows = []
    for name in models:
        trained = _read(train_dir / name / "metrics.json", f"train of {name}")
        scored = _read(eval_dir / name / "metrics.json", f"evaluate of {name}")
        row = {"model": name, **{k: trained.get(k) for k in ("params_total", "params_trainable")},
               "trained_on": scored.get("trained_on", "train")}
        for split in ("train", "val", "test"):
            row[f"{split}_loss"] = scored.get(split, {}).get("loss")
            row[f"{split}_accuracy"] = scored.get(split, {}).get("accuracy")
        detail = scored[detail_split]
        row[f"{detail_split}_accuracy_ci95"] = interval(detail, "accuracy")
        row[f"{detail_split}_balanced_accuracy"] = detail.get("balanced_accuracy")
        row[f"{detail_split}_macro_f1"] = detail["macro_f1"]
        row[f"{detail_split}_macro_f1_ci95"] = interval(detail, "macro_f1")
        if "tta" in detail:  # evaluate.tta: the averaged views' figures beside the plain ones
            row[f"{detail_split}_tta_accuracy"] = detail["tta"]["accuracy"]
            row[f"{detail_split}_tta_macro_f1"] = detail["tta"]["macro_f1"]
        row.update({k: trained.get(k) for k in ("best_epoch", "epochs_run", "train_time_s")})
        if target is not None:
            row[f"seconds_to_val_{target:g}"] = seconds_to(curves([name], train_dir)[name], target)
        row["images_per_s"] = scored["inference"]["images_per_s"]
        rows.append(row)
    return pd.DataFrame(rows)


def seed_spread(models: list[str], values: list[int], seeds_dir: Path, split: str) -> pd.DataFrame:
    """Mean and sample standard deviation of each seeded model's runs (reports/seeds/<model>/seed-<value>/)."""
    rows = []
    for name in models:
        runs = [(_read(seeds_dir / name / f"seed-{v}" / "metrics.json", f"seed@{name}-{v}")[split],
                 _read(seeds_dir / name / f"seed-{v}" / "train" / "metrics.json", f"seed@{name}-{v}"))
                for v in values]
        row: dict[str, object] = {"model": name, "seeds": len(runs)}
        for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
            scores = pd.Series([scored[metric] for scored, _ in runs])
            row[f"{split}_{metric}_mean"], row[f"{split}_{metric}_std"] = scores.mean(), scores.std()
        row["train_time_s_mean"] = pd.Series([trained["train_time_s"] for _, trained in runs]).mean()
        rows.append(row)
    columns = ["model", "seeds", *(f"{split}_{m}_{s}" for m in ("accuracy", "balanced_accuracy", "macro_f1")
                                   for s in ("mean", "std")), "train_time_s_mean"]
    return pd.DataFrame(rows, columns=columns)


def curves(models: list[str], train_dir: Path) -> dict[str, dict[str, pd.DataFrame]]:
    """Per model, what dvclive logged per epoch: validation accuracy and loss, training seconds so far, training
    accuracy."""
    out = {}
    for name in models:
        folder = train_dir / name / "plots" / "metrics"
        files = {"accuracy": folder / "eval/accuracy.tsv", "loss": folder / "eval/loss.tsv",
                 "time_s": folder / "train/time_s.tsv", "train_accuracy": folder / "train/accuracy.tsv"}
        out[name] = {m: pd.read_csv(f, sep="\t") for m, f in files.items() if f.exists()}
    return out


def findings(models: list[str], train_dir: Path, eval_dir: Path, split: str,
             counts: dict[str, dict]) -> dict[str, list[diagnostics.Finding]]:
    """Per model, what makes its run untrustworthy (report/diagnostics.py), if anything."""
    logs = curves(models, train_dir)
    return {name: diagnostics.diagnose(_read(train_dir / name / "metrics.json", f"train of {name}"),
                                       _read(eval_dir / name / "metrics.json", f"evaluate of {name}"),
                                       logs[name], split, counts) for name in models}


def seconds_to(series: dict[str, pd.DataFrame], target: float) -> float | None:
    """Training seconds until the validation accuracy first reached target (None: never, or no timing logged)."""
    if "accuracy" not in series or "time_s" not in series:
        return None
    both = series["accuracy"].merge(series["time_s"], on="step")
    reached = both[both["accuracy"] >= target]
    return None if reached.empty else float(reached["time_s"].iloc[0])


def pairwise(models: list[str], eval_dir: Path, split: str, alpha: float) -> pd.DataFrame:
    """McNemar's exact test for every pair of models on the same images of evaluate.split (predictions.csv),
    Holm-adjusted over all pairs; `verdict` says it in words."""
    correct, rows = {}, []
    for name in models:
        frame = pd.read_csv(eval_dir / name / "predictions.csv", usecols=["path", "true", "predicted"],
                            dtype=str, keep_default_na=False)
        correct[name] = (frame["path"].tolist(), (frame["true"] == frame["predicted"]).to_numpy())
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            if correct[a][0] != correct[b][0]:
                raise UserError(f"compare: {a} and {b} were evaluated on different {split} images; re-run both "
                                "evaluate stages (dvc repro)")
            test = stats.mcnemar(correct[a][1], correct[b][1])
            rows.append({"model_a": a, "model_b": b, f"{split}_accuracy_a": correct[a][1].mean(),
                         f"{split}_accuracy_b": correct[b][1].mean(), **test})
    frame = pd.DataFrame(rows, columns=["model_a", "model_b", f"{split}_accuracy_a", f"{split}_accuracy_b",
                                        "a_only_right", "b_only_right", "p_value"])
    frame["p_holm"] = stats.holm(frame["p_value"].tolist()) if len(frame) else []
    frame["verdict"] = [_verdict(r, alpha) for r in frame.to_dict("records")]
    return frame


def _verdict(row: dict, alpha: float) -> str:
    p = row["p_holm"]
    said = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    if p >= alpha:
        return f"{row['model_a']} vs {row['model_b']}: no significant difference ({said})"
    better, worse = ((row["model_a"], row["model_b"]) if row["a_only_right"] > row["b_only_right"]
                     else (row["model_b"], row["model_a"]))
    return f"{better} is better than {worse}: {said}"


def write(models: list[str], root: Path, detail_split: str, alpha: float = 0.05,
          target: float | None = None, seeds: dict | None = None, export: dict | None = None) -> pd.DataFrame:
    """Write reports/compare/* and reports/report.{md,html}; return the comparison table.

    seeds: params.yaml `seeds:`; the spread over the seeded runs of the models it names goes to seeds.csv, the
    report and the score chart's whiskers. export: params.yaml `export:`, whose choice of model the report's headline
    is about (default: best by val accuracy).
    """
    train_dir, eval_dir, out = root / "train", root / "eval", root / "compare"
    out.mkdir(parents=True, exist_ok=True)
    frame = table(models, train_dir, eval_dir, detail_split, target)
    counts = json.loads((root / "data" / "class_counts.json").read_text())
    found = findings(models, train_dir, eval_dir, detail_split, counts)
    frame["warnings"] = [", ".join(f.code for f in found[name]) or None for name in frame["model"]]
    seeded = [name for name in models if seeds and name in (*seeds["scratch"], *seeds["transfer"])]
    spread = seed_spread(seeded, seeds["values"] if seeds else [], root / "seeds", detail_split)
    spread.to_csv(out / "seeds.csv", index=False)
    pairs = pairwise(models, eval_dir, detail_split, alpha)
    pairs["verdict"] = [_caution(row, found) for row in pairs.to_dict("records")]
    pairs.to_csv(out / "significance.csv", index=False)
    (out / "significance.md").write_text(markdown_table(pairs) + "\n")
    frame.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(markdown_table(frame) + "\n")
    metric = {row.pop("model"): {k: v for k, v in row.items() if pd.notna(v)} for row in frame.to_dict("records")}
    for row in spread.to_dict("records"):
        metric[row.pop("model")]["seeds"] = {k: v for k, v in row.items() if pd.notna(v)}
    (out / "comparison.json").write_text(json.dumps(metric, indent=1) + "\n")
    plots.training_curves(curves(models, train_dir), out / "curves.png")
    plots.time_to_accuracy(curves(models, train_dir), out / "time_to_accuracy.png")
    plots.score_bars(frame, f"{detail_split}_accuracy", f"{detail_split}_macro_f1", out / "scores.png",
                     spread.set_index("model") if len(spread) else None)
    chosen = _chosen(models, export or {"model": "best", "metric": "val.accuracy"}, root / "eval", frame, detail_split)
    sections = _report_sections(models, frame, pairs, spread, root, detail_split, alpha, found, chosen)
    (root / "report.md").write_text(markdown_page(sections, root))
    (root / "report.html").write_text(html_page(sections, "Model comparison"))
    return frame


def _chosen(models: list[str], export: dict, eval_dir: Path, frame: pd.DataFrame, split: str) -> tuple[str, str]:
    """(the model the export stage will ship, how it was chosen); when export's metric cannot choose (no model was
    scored on its split), the best macro F1 on evaluate.split, said so."""
    try:
        name = selection.choose(export["model"], models, export["metric"], "params.yaml: 'export.model'", eval_dir)
    except UserError:
        best = frame.sort_values(f"{split}_macro_f1", ascending=False).iloc[0]["model"]
        return best, f"the best macro F1 on {split}: export.metric {export['metric']} scores no model"
    how = "named by export.model" if export["model"] != "best" else f"the best {export['metric']}, as export chooses"
    return name, how


def _percents(interval: str) -> str:
    """The table's "[0.9283, 0.9379]" (see interval) as "92.83% to 93.79%"."""
    low, high = (float(v) for v in interval.strip("[]").split(", "))
    return f"{low:.2%} to {high:.2%}"


def _headline(chosen: tuple[str, str], frame: pd.DataFrame, pairs: pd.DataFrame, split: str, alpha: float,
              found: dict[str, list[diagnostics.Finding]]) -> str:
    """What a reader needs first: the chosen model, its score with the interval, what it significantly beats (or
    loses to), and which runs have a warning."""
    name, how = chosen
    row = frame.set_index("model").loc[name]
    text = f"Chosen model: {name} ({how}). On {split}: accuracy {row[f'{split}_accuracy']:.2%}"
    if row.get(f"{split}_accuracy_ci95"):
        text += f" (95% interval {_percents(row[f'{split}_accuracy_ci95'])})"
    text += f", macro F1 {row[f'{split}_macro_f1']:.4f}."
    beats, loses, ties = [], [], []
    for pair in pairs.to_dict("records"):
        if name not in (pair["model_a"], pair["model_b"]):
            continue
        other = pair["model_b"] if pair["model_a"] == name else pair["model_a"]
        mine, theirs = ((pair["a_only_right"], pair["b_only_right"]) if pair["model_a"] == name
                        else (pair["b_only_right"], pair["a_only_right"]))
        (ties if pair["p_holm"] >= alpha else beats if mine > theirs else loses).append(other)
    said = [f"significantly better than {', '.join(beats)}" if beats else "",
            f"significantly worse than {', '.join(loses)}" if loses else "",
            f"not significantly different from {', '.join(ties)}" if ties else ""]
    if any(said):
        text += f" It is {'; '.join(s for s in said if s)} (McNemar, Holm-adjusted, alpha {alpha})."
    flagged = [f"{model} ({', '.join(f.code for f in found[model])})" for model in frame["model"] if found[model]]
    text += (f" Warnings: {'; '.join(flagged)}; see 'Is each run trustworthy?'." if flagged
             else " No run has a warning.")
    return text


def _compact(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The score table cut to what fits a laptop screen; the full one is folded below it (and in comparison.csv)."""
    def accuracy(row) -> str:
        text = f"{row[f'{split}_accuracy']:.2%}"
        if row.get(f"{split}_accuracy_ci95"):
            text += f" ({_percents(row[f'{split}_accuracy_ci95'])})"
        return text

    return pd.DataFrame({
        "model": frame["model"],
        f"{split} accuracy (95% interval)": [accuracy(row) for row in frame.to_dict("records")],
        f"{split} macro F1": [f"{v:.4f}" for v in frame[f"{split}_macro_f1"]],
        "best / epochs": [f"{b} / {e}" for b, e in zip(frame["best_epoch"], frame["epochs_run"], strict=True)],
        "train s": [f"{v:.0f}" for v in frame["train_time_s"]],
        "params": [f"{v:,}" for v in frame["params_total"]],
        "warnings": frame["warnings"].fillna("none"),
    })


def _caution(row: dict, found: dict[str, list[diagnostics.Finding]]) -> str:
    """A pair's verdict, marked when a model of the pair is an untrustworthy run."""
    flagged = [f"{name}: {', '.join(f.code for f in found[name])}" for name in (row["model_a"], row["model_b"])
               if found.get(name)]
    if not flagged:
        return row["verdict"]
    return f"{row['verdict']} [untrustworthy run, not a verdict on the family: {'; '.join(flagged)}]"


def _trust(models: list[str], found: dict[str, list[diagnostics.Finding]]) -> list[tuple]:
    """The report's section on whether each run can be believed."""
    blocks: list[tuple] = [("h2", "Is each run trustworthy?")]
    flagged = [name for name in models if found[name]]
    if not flagged:
        return [*blocks, ("p", "No warning: no model is at chance, still improving, overfitting or evaluated on too "
                               "few images.")]
    for name in flagged:
        blocks += [("p", f"{name} ({finding.code}): {finding.text}.") for finding in found[name]]
    return blocks


def _audit(folder: Path) -> list[tuple]:
    """The data audit's section: counts per issue type, the top suspects drawn (none when the stage did not run)."""
    facts_file = folder / "summary.json"
    if not facts_file.is_file():
        return []
    facts = json.loads(facts_file.read_text())
    checked = {k: v for k, v in facts.items() if k != "images"}
    blocks: list[tuple] = [("h2", "Data audit")]
    if not checked:
        return [*blocks, ("p", "No check ran: audit.labels is false, and audit.images false (or auto, above its "
                               "image count).")]
    blocks.append(("p", f"{facts['images']} images checked: likely label errors (cleanlab on cross-validated "
                        "probabilities; reports/audit/label_issues.csv) and image issues (cleanvision; "
                        "reports/audit/image_issues.csv). Nothing is removed: review them, then list the images "
                        "to leave out under split.exclude."))
    blocks.append(("table", pd.DataFrame({"issue": [k.replace("_", " ") for k in checked],
                                          "images": list(checked.values())})))
    if "label_issues" in facts:
        blocks.append(("img", folder / "suspects.png"))
    return blocks


def _report_sections(models: list[str], frame: pd.DataFrame, pairs: pd.DataFrame, spread: pd.DataFrame, root: Path,
                     split: str, alpha: float, found: dict[str, list[diagnostics.Finding]],
                     chosen: tuple[str, str]) -> list[tuple]:
    """(kind, payload) blocks shared by the Markdown and the HTML report: the headline and a compact table first."""
    flagged = [name for name in models if found[name]]
    warn = (f" {len(flagged)} run(s) are not trustworthy ({', '.join(flagged)}): see below before reading their "
            "scores as a verdict on their family." if flagged else "")
    blocks: list[tuple] = [
        ("h1", "Model comparison"),
        ("p", _headline(chosen, frame, pairs, split, alpha, found)),
        ("table", _compact(frame, split)),
        *([("p", warn.strip())] if warn else []),
        *_trust(models, found),
        ("h2", "Scores"),
        ("details", ("Every column (also in reports/compare/comparison.csv)", frame)),
        ("img", root / "compare" / "curves.png"), ("img", root / "compare" / "time_to_accuracy.png"),
        ("img", root / "compare" / "scores.png"),
        ("h2", "Are the differences real?"),
        ("p", f"McNemar's exact test on the {split} images each pair of models got right or wrong differently, "
              f"p-values Holm-adjusted over the {len(pairs)} pairs, significance level {alpha}. The intervals in the "
              "table above are 95% bootstrap intervals of one trained model; a retrained model varies by its seed "
              "too."),
    ]
    blocks += [("p", verdict) for verdict in pairs["verdict"]] or [("p", "One model: nothing to compare.")]
    if len(spread):
        blocks += [("h2", "Training variance over seeds"),
                   ("p", f"Each model below trained {spread['seeds'].iloc[0]} more times with other seeds "
                         "(params.yaml seeds:); mean and sample standard deviation of those runs on "
                         f"{split}. The score chart's whiskers are one standard deviation."), ("table", spread)]
    retrained = frame.loc[frame["trained_on"] != "train", "model"].tolist()
    if retrained:
        blocks.append(("p", f"Retrained on train+val (retrain_full_epochs): {', '.join(retrained)}. Their final "
                            "model saw the val images, so their val metrics are left out: not held out."))
    blocks.append(("h2", "Dataset"))
    prepared = root / "data" / "prepare.json"
    if prepared.is_file():
        facts = json.loads(prepared.read_text())
        blocks.append(("p", f"Images prepared at {facts['height']}x{facts['width']} {facts['color']} (image_size: "
                            f"{facts['image_size_from']}; color: {facts['color_from']})."))
    counts = json.loads((root / "data" / "class_counts.json").read_text())
    per_split = pd.DataFrame({s: counts[s] for s in ("train", "val", "test")}).rename_axis("class").reset_index()
    blocks.append(("table", per_split))
    skipped = pd.read_csv(root / "data" / "skipped.csv", keep_default_na=False)
    blocks.append(("p", f"{len(skipped)} files skipped at download (reports/data/skipped.csv); "
                        f"{counts.get('leaked', 0)} images shared across splits; "
                        f"{counts.get('excluded', 0)} left out of every split."))
    if len(skipped):
        blocks.append(("table", skipped.head(20)))
    listed = root / "data" / "conflicts.csv"
    conflicts = pd.read_csv(listed, keep_default_na=False) if listed.is_file() else pd.DataFrame()
    if len(conflicts):
        dropped = int((~conflicts["kept"].astype(bool)).sum())
        blocks.append(("p", f"{conflicts['hash'].nunique()} label conflicts: pixel-identical images filed under "
                            f"different classes ({len(conflicts)} files, {dropped} dropped by data.conflicts; "
                            "reports/data/conflicts.csv)."))
        blocks.append(("table", conflicts.head(20)))
    blocks += _audit(root / "audit")
    for name in models:
        folder = root / "eval" / name
        blocks += [("h2", f"{name}"), ("img", folder / "confusion.png")]
        pairs = pd.read_csv(folder / "confused_pairs.csv")
        blocks.append(("table", pairs.head(15)) if len(pairs) else ("p", "No confused pair above the threshold."))
        blocks += [("img", folder / "gallery.png"), ("img", folder / "gradcam.png")]
        detail = _read(folder / "metrics.json", f"evaluate of {name}").get(split, {})
        if "calibrated" in detail:
            fitted = detail["calibrated"]
            blocks.append(("p", f"Calibration: temperature {fitted['temperature']:.2f} fitted on "
                                f"{fitted['val_images']} val images; on {split} NLL {detail['loss']:.3f} -> "
                                f"{fitted['loss']:.3f}, ECE {detail['ece']:.3f} -> {fitted['ece']:.3f}."))
        blocks.append(("img", folder / "reliability.png"))
    return blocks


