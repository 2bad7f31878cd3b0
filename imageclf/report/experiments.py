"""One view across experiments, wherever they ran: from `dvc exp show --json`, a table of the params that differ and
each model's test scores, the best experiment per model marked, as CSV, Markdown, HTML and a chart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from imageclf.core.errors import UserError
from imageclf.report import comparison, page, plots

EVAL_FILE = re.compile(r"^reports/eval/(?P<model>[^/]+)/metrics\.json$")
TRAIN_FILE = re.compile(r"^reports/train/(?P<model>[^/]+)/metrics\.json$")


def dvc(*args: str) -> str:
    """Run the DVC of this interpreter; a failure is one line with DVC's own message."""
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"dvc {' '.join(args)} failed: {lines[-1]}")
    return result.stdout


def runs(states: list[dict]) -> list[dict]:
    """Every committed baseline and its finished experiments in `dvc exp show --json` output (the uncommitted
    workspace and failed or queued experiments left out): {name, params (flat), metrics (by file)}."""
    found = []
    for state in states:
        if state["rev"] == "workspace":
            continue
        candidates = [(state.get("name") or state["rev"][:7], state)]
        for exp_range in state.get("experiments") or []:
            if (exp_range.get("executor") or {}).get("state", "success") == "success":
                head = exp_range["revs"][0]
                candidates.append((exp_range.get("name") or head.get("name") or head["rev"][:7], head))
        for name, run in candidates:
            data = run.get("data")
            if data and not run.get("error"):
                params = (data.get("params", {}).get("params.yaml") or {}).get("data") or {}
                metrics = {path: result.get("data") or {} for path, result in data.get("metrics", {}).items()}
                found.append({"name": name, "params": _flat(params), "metrics": metrics})
    return found


def _flat(tree: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return out


def table(found: list[dict], split: str = "test") -> pd.DataFrame:
    """One row per experiment and model: the params that differ between the experiments, accuracy and macro F1 on
    `split` with their 95% intervals, train seconds; `best` marks each model's highest accuracy ("best (tie)" where
    several experiments share it)."""
    keys = sorted({k for run in found for k in run["params"]})
    differ = [k for k in keys if len({run["params"].get(k) for run in found}) > 1]
    rows = []
    for run in found:
        times = {m.group("model"): data.get("train_time_s") for path, data in run["metrics"].items()
                 if (m := TRAIN_FILE.match(path))}
        for path, data in run["metrics"].items():
            match = EVAL_FILE.match(path)
            if not match or split not in data:
                continue
            scores = data[split]
            rows.append({"experiment": run["name"], "model": match.group("model"),
                         **{k: run["params"].get(k) for k in differ},
                         f"{split}_accuracy": scores.get("accuracy"),
                         f"{split}_accuracy_ci95": comparison.interval(scores, "accuracy"),
                         f"{split}_macro_f1": scores.get("macro_f1"),
                         f"{split}_macro_f1_ci95": comparison.interval(scores, "macro_f1"),
                         "train_time_s": times.get(match.group("model"))})
    if not rows:
        raise UserError(f"no experiment has {split} metrics in reports/eval/*/metrics.json; run some first "
                        "(dvc exp run), or pull them (--pull <git remote>)")
    frame = pd.DataFrame(rows).sort_values(["model", "experiment"], kind="stable").reset_index(drop=True)
    accuracy = frame[f"{split}_accuracy"]
    top = accuracy.eq(accuracy.groupby(frame["model"]).transform("max"))
    tied = top.groupby(frame["model"]).transform("sum") > 1  # e.g. a model no experiment changed
    frame["best"] = [("best (tie)" if tie else "best") if is_top else "" for is_top, tie in zip(top, tied,
                                                                                                  strict=True)]
    return frame


def write(frame: pd.DataFrame, out: Path, split: str = "test") -> None:
    """out/experiments.{csv,md,html} and experiments.png."""
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "experiments.csv", index=False)
    plots.experiment_bars(frame, f"{split}_accuracy", out / "experiments.png")
    experiments = frame["experiment"].nunique()
    blocks = [("h1", "Experiments"),
              ("p", f"{experiments} experiments x {frame['model'].nunique()} models from `dvc exp show`; params "
                    f"columns are those that differ between the experiments (-: not set, the default applies); best: "
                    f"each model's highest {split} accuracy (best (tie): several experiments reach it)."),
              ("table", frame), ("img", out / "experiments.png")]
    (out / "experiments.md").write_text(page.markdown_page(blocks, out))
    (out / "experiments.html").write_text(page.html_page(blocks, "Experiments"))
