"""Which trained model a user means: an entry name, or `best` by a metric the evaluate stage wrote."""

from __future__ import annotations

import json
from pathlib import Path

from imageclf.core import paths
from imageclf.core.errors import UserError
from imageclf.core.params import did_you_mean
from imageclf.core.paths import SPLITS

EVAL_DIR = paths.EVAL_REPORTS
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "cohen_kappa")  # what `best` can maximise


def metric_problem(value: str) -> str | None:
    """Why `value` is not a <split>.<metric> that `best` can maximise, or None."""
    split, _, key = value.partition(".")
    if split in SPLITS and key in METRICS:
        return None
    return (f"must be <split>.<metric> (split {', '.join(SPLITS[:-1])} or {SPLITS[-1]}; metric {', '.join(METRICS)}), "
            f"got {value!r}")


def metric_value(name: str, metric: str, eval_dir: Path = EVAL_DIR) -> float | None:
    """`split.key` (e.g. test.accuracy) of reports/eval/<name>/metrics.json; None when that split was not scored."""
    path = eval_dir / name / "metrics.json"
    if not path.is_file():
        raise UserError(f"{path} not found; evaluate {name} first (dvc repro)")
    split, key = metric.split(".", 1)
    value = json.loads(path.read_text()).get(split, {}).get(key)
    return value if isinstance(value, int | float) else None


def chosen_by(spec: str, models: list[str], metric: str, scored_on: str) -> str:
    """How the model card explains the choice: by name, or `best` by a metric on a split, and whether the split that
    scores the model was also the one that chose it (then its scores are optimistic)."""
    if spec != "best":
        return "export.model, named in params.yaml"
    split = metric.split(".", 1)[0]
    said = f"export.model = best: the highest {metric} of {', '.join(models)}"
    if split == scored_on:
        return (f"{said}. **Warning: chosen and scored on the same {split} images**, so the scores below are "
                f"optimistic (the best of {len(models)} on these very images); choose on val "
                "(export.metric: val.accuracy) for an unbiased estimate")
    return f"{said}; chosen on {split}, scored on {scored_on} (images never used to choose or train it)"


def choose(spec: str, models: list[str], metric: str, where: str, eval_dir: Path = EVAL_DIR) -> str:
    """`spec` itself when it names a listed model; for 'best', the listed model with the highest `metric`."""
    if spec != "best":
        if spec not in models:
            raise UserError(f"{where} is {spec!r}, not a model params.yaml 'models:' lists"
                            f"{did_you_mean(spec, models)}; listed: {', '.join(models) or 'none'}; or use best")
        return spec
    scores = {name: metric_value(name, metric, eval_dir) for name in models}
    scored = {name: value for name, value in scores.items() if value is not None}
    if not scored:
        raise UserError(f"{where} is best by {metric}, but no listed model has that metric in {eval_dir}/*/"
                        "metrics.json (a split the models were retrained on, or an empty one); choose another metric")
    return max(scored, key=lambda name: (scored[name], -models.index(name)))  # ties: the first listed
