"""Metric regression check: current metric files against a baseline (a git ref or a saved JSON), per-rule tolerances."""

from __future__ import annotations

import fnmatch
import glob
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from imageclf.core.errors import UserError
from imageclf.core.params import NUMBER, Field, Section, validate_section
from imageclf.evaluate import stats

# python -m imageclf.cli.check: gated rules and reported (never gated) metrics
RULE = {
    "files": Field((str,)),  # glob of metric files, e.g. reports/eval/*/metrics.json
    "metric": Field((str,)),  # dotted key inside each file, e.g. test.accuracy
    "direction": Field((str,), choices=("higher", "lower")),  # which way is better
    "tolerance": Field(NUMBER, minimum=0),  # allowed change in the bad direction
    "relative": Field((bool,)),  # tolerance in % of the baseline value instead of absolute
}
REPORTED = {k: RULE[k] for k in ("files", "metric")}
PARAMS = Section({
    "baseline": Field((str,), check=lambda v: None if v else "must name a git ref or a baseline JSON file"),
    "rules": Field((list,), check=lambda v: None if v else "must list at least one rule"),
    "report": Field((list,)),
})

NOT_GATED = "reported, not gated"


@dataclass
class Row:
    file: str
    metric: str
    baseline: float | None
    current: float | None
    allowed: str
    verdict: str

    @property
    def change(self) -> float | None:
        return None if self.baseline is None or self.current is None else self.current - self.baseline


def flatten(data: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def current_metrics(patterns: list[str]) -> dict[str, dict[str, float]]:
    return {path: flatten(json.loads(Path(path).read_text())) for pattern in patterns
            for path in sorted(glob.glob(pattern))}


def baseline_metrics(baseline: str, patterns: list[str]) -> dict[str, dict[str, float]]:
    """From a JSON file saved by --save (path -> metric -> value), or the metrics DVC tracks at a git ref
    (`dvc metrics diff REF --all --json`: its 'old' side)."""
    if Path(baseline).is_file():
        return json.loads(Path(baseline).read_text())
    diff = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", baseline, "--all", "--json"],
                          capture_output=True, text=True)
    if diff.returncode:
        raise UserError(f"check.baseline: '{baseline}' is neither a baseline JSON file nor a git ref DVC can read "
                        f"({(diff.stderr.strip().splitlines() or ['no detail'])[-1]})")
    return {path: {k: v["old"] for k, v in found.items() if isinstance(v.get("old"), (int, float))}
            for path, found in json.loads(diff.stdout or "{}").items()
            if any(fnmatch.fnmatch(path, pattern) for pattern in patterns)}


def compare(rules: list[dict], baseline: dict, current: dict, report: list[dict] = ()) -> list[Row]:
    """One row per (file, metric) of each rule, in the baseline or the workspace; missing ones fail. Metrics of
    `report` (timings) get rows too, with the verdict NOT_GATED."""
    rows = []
    for i, item in enumerate(report):
        validate_section(f"check.report[{i}]", item, REPORTED)
        for path in sorted({p for p in [*baseline, *current] if fnmatch.fnmatch(p, item["files"])}):
            rows.append(Row(path, item["metric"], baseline.get(path, {}).get(item["metric"]),
                            current.get(path, {}).get(item["metric"]), "-", NOT_GATED))
    for i, rule in enumerate(rules):
        validate_section(f"check.rules[{i}]", rule, RULE)
        files = sorted({p for p in [*baseline, *current] if fnmatch.fnmatch(p, rule["files"])})
        if not files:
            rows.append(Row(rule["files"], rule["metric"], None, None, "-", "FAIL: no metric file"))
        for path in files:
            old = baseline.get(path, {}).get(rule["metric"])
            new = current.get(path, {}).get(rule["metric"])
            rows.append(_judge(path, rule, old, new))
    return rows


def _judge(path: str, rule: dict, old: float | None, new: float | None) -> Row:
    unit = "%" if rule["relative"] else ""
    sign = "-" if rule["direction"] == "higher" else "+"
    allowed = f"{sign}{rule['tolerance']}{unit}"
    if old is None or new is None:
        missing = "baseline" if old is None else "current"
        return Row(path, rule["metric"], old, new, allowed, f"FAIL: missing in {missing}")
    limit = abs(old) * rule["tolerance"] / 100 if rule["relative"] else rule["tolerance"]
    worse = old - new if rule["direction"] == "higher" else new - old
    return Row(path, rule["metric"], old, new, allowed, "ok" if worse <= limit + 1e-12 else "REGRESSION")


def markdown(rows: list[Row]) -> str:
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    lines = ["| file | metric | baseline | current | change | allowed | verdict |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.file} | {r.metric} | {num(r.baseline)} | {num(r.current)} | {num(r.change)} | {r.allowed} | "
              f"{r.verdict} |" for r in rows]
    return "\n".join(lines)


PREDICTIONS = "reports/eval/*/predictions.csv"


def _correct(text: str) -> pd.Series:
    frame = pd.read_csv(io.StringIO(text), usecols=["path", "true", "predicted"], dtype=str, keep_default_na=False)
    return pd.Series((frame["true"] == frame["predicted"]).to_numpy(), index=frame["path"])


def _baseline_text(baseline: str, path: str) -> str | None:
    """A file of the baseline: under a directory (a checkout of the baseline run) or at a git ref (read by DVC)."""
    if Path(baseline).is_dir():
        found = Path(baseline) / path
        return found.read_text() if found.is_file() else None
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return dvc.api.read(path, rev=baseline)
    except (DvcException, FileNotFoundError):
        return None


def paired(baseline: str, alpha: float, pattern: str = PREDICTIONS) -> list[dict]:
    """Per model: McNemar's exact test of the current predictions against the baseline's on the same images,
    Holm-adjusted over the models; a model regresses only when it is significantly worse."""
    rows = []
    for path in sorted(glob.glob(pattern)):
        old_text = _baseline_text(baseline, path)
        row = {"file": path, "baseline": None, "current": None, "baseline_only_right": None,
               "current_only_right": None, "p_value": 1.0}
        current = _correct(Path(path).read_text())
        row["current"] = float(current.mean())
        if old_text is None:
            rows.append({**row, "verdict": "FAIL: missing in baseline"})
            continue
        old = _correct(old_text)
        if sorted(old.index) != sorted(current.index):
            rows.append({**row, "verdict": "FAIL: other images than the baseline's"})
            continue
        old = old.loc[current.index]
        test = stats.mcnemar(old.to_numpy(), current.to_numpy())
        rows.append({**row, "baseline": float(old.mean()), "baseline_only_right": test["a_only_right"],
                     "current_only_right": test["b_only_right"], "p_value": test["p_value"], "verdict": ""})
    if not rows:
        raise UserError(f"check --paired: no {pattern} in the workspace; run dvc repro first")
    tested = [r for r in rows if not r["verdict"]]
    for row, p in zip(tested, stats.holm([r["p_value"] for r in tested]), strict=True):
        worse = row["baseline_only_right"] > row["current_only_right"]
        row["p_holm"] = p
        row["verdict"] = "REGRESSION: significantly worse" if worse and p < alpha else "ok"
    return rows


def paired_markdown(rows: list[dict]) -> str:
    def num(v) -> str:
        return "-" if v is None else f"{v:.4g}"

    lines = ["| file | baseline accuracy | current accuracy | only baseline right | only current right | p (Holm) "
             "| verdict |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {num(r['baseline'])} | {num(r['current'])} | {num(r['baseline_only_right'])} | "
              f"{num(r['current_only_right'])} | {num(r.get('p_holm'))} | {r['verdict']} |" for r in rows]
    return "\n".join(lines)
