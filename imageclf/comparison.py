"""Compare every trained model: one table, training curves, score bars, and the Markdown/HTML report."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from imageclf import plots
from imageclf.errors import UserError


def _read(path: Path, stage: str) -> dict:
    if not path.exists():
        raise UserError(f"{path} not found; run the {stage} stage first (dvc repro)")
    return json.loads(path.read_text())


def table(models: list[str], train_dir: Path, eval_dir: Path, detail_split: str) -> pd.DataFrame:
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
        row[f"{detail_split}_macro_f1"] = scored[detail_split]["macro_f1"]
        row.update({k: trained.get(k) for k in ("best_epoch", "epochs_run", "train_time_s")})
        row["images_per_s"] = scored["inference"]["images_per_s"]
        rows.append(row)
    return pd.DataFrame(rows)


def curves(models: list[str], train_dir: Path) -> dict[str, dict[str, pd.DataFrame]]:
    """Per model, the per-epoch validation accuracy and loss that dvclive logged."""
    out = {}
    for name in models:
        folder = train_dir / name / "plots" / "metrics" / "eval"
        out[name] = {m: pd.read_csv(folder / f"{m}.tsv", sep="\t") for m in ("accuracy", "loss")
                     if (folder / f"{m}.tsv").exists()}
    return out


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style table without extra dependencies (pandas' to_markdown needs tabulate)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "-"
        if isinstance(value, float):  # rates and losses to 4 decimals; seconds and speeds to 1
            return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write(models: list[str], root: Path, detail_split: str) -> pd.DataFrame:
    """Write reports/compare/* and reports/report.{md,html}; return the comparison table."""
    train_dir, eval_dir, out = root / "train", root / "eval", root / "compare"
    out.mkdir(parents=True, exist_ok=True)
    frame = table(models, train_dir, eval_dir, detail_split)
    frame.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(markdown_table(frame) + "\n")
    metric = {row.pop("model"): {k: v for k, v in row.items() if pd.notna(v)} for row in frame.to_dict("records")}
    (out / "comparison.json").write_text(json.dumps(metric, indent=1) + "\n")
    plots.training_curves(curves(models, train_dir), out / "curves.png")
    plots.score_bars(frame, f"{detail_split}_accuracy", f"{detail_split}_macro_f1", out / "scores.png")
    sections = _report_sections(models, frame, root, detail_split)
    (root / "report.md").write_text(_markdown(sections, root))
    (root / "report.html").write_text(_html(sections))
    return frame


def _report_sections(models: list[str], frame: pd.DataFrame, root: Path, split: str) -> list[tuple]:
    """(kind, payload) blocks shared by the Markdown and the HTML report."""
    f1 = f"{split}_macro_f1"
    best = frame.sort_values(f1, ascending=False).iloc[0]
    blocks: list[tuple] = [
        ("h1", "Model comparison"),
        ("p", f"{len(models)} models; best macro F1 on {split}: {best['model']} ({best[f1]:.4f})."),
        ("table", frame), ("img", root / "compare" / "curves.png"), ("img", root / "compare" / "scores.png"),
    ]
    retrained = frame.loc[frame["trained_on"] != "train", "model"].tolist()
    if retrained:
        blocks.append(("p", f"Retrained on train+val (retrain_full_epochs): {', '.join(retrained)}. Their final "
                            "model saw the val images, so their val metrics are left out: not held out."))
    blocks.append(("h2", "Dataset"))
    counts = json.loads((root / "data" / "class_counts.json").read_text())
    per_split = pd.DataFrame({s: counts[s] for s in ("train", "val", "test")}).rename_axis("class").reset_index()
    blocks.append(("table", per_split))
    skipped = pd.read_csv(root / "data" / "skipped.csv", keep_default_na=False)
    blocks.append(("p", f"{len(skipped)} files skipped at download (reports/data/skipped.csv); "
                        f"{counts.get('leaked', 0)} images shared across splits; "
                        f"{counts.get('excluded', 0)} left out of every split."))
    if len(skipped):
        blocks.append(("table", skipped.head(20)))
    for name in models:
        folder = root / "eval" / name
        blocks += [("h2", f"{name}"), ("img", folder / "confusion.png")]
        pairs = pd.read_csv(folder / "confused_pairs.csv")
        blocks.append(("table", pairs.head(15)) if len(pairs) else ("p", "No confused pair above the threshold."))
        blocks.append(("img", folder / "gallery.png"))
    return blocks


def _markdown(blocks: list[tuple], root: Path) -> str:
    out = []
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + payload)
        elif kind == "p":
            out.append(payload)
        elif kind == "table":
            out.append(markdown_table(payload))
        else:
            out.append(f"![{payload.stem}]({payload.relative_to(root).as_posix()})")
    return "\n\n".join(out) + "\n"


def _html(blocks: list[tuple]) -> str:
    body = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{html.escape(payload)}</{kind}>")
        elif kind == "table":
            body.append(payload.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-", border=0))
        else:
            data = base64.b64encode(payload.read_bytes()).decode()
            body.append(f'<img alt="{html.escape(payload.stem)}" src="data:image/png;base64,{data}">')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Model comparison</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
