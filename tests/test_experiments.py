"""The collector's reading of `dvc exp show --json`: which runs count, which params show, which experiment is best."""

from __future__ import annotations

import pytest

from imageclf.core.errors import UserError
from imageclf.report import experiments


def run(rev: str, lr: float, accuracy: float | None, name: str | None = None, error: bool = False) -> dict:
    metrics = {"reports/train/m1/metrics.json": {"data": {"train_time_s": 5.0}}}
    if accuracy is not None:
        metrics["reports/eval/m1/metrics.json"] = {"data": {"test": {"accuracy": accuracy, "macro_f1": accuracy,
                                                                     "accuracy_ci95_low": accuracy - 0.1,
                                                                     "accuracy_ci95_high": accuracy + 0.1}}}
    data = {"rev": rev, "params": {"params.yaml": {"data": {"train": {"m1": {"lr": lr, "filters": [4, 8]}},
                                                             "seed": 42}}}, "metrics": metrics}
    return {"rev": rev, "name": name, "data": data, "error": {"msg": "boom"} if error else None}


def exp_show() -> list[dict]:
    return [run("workspace", 0.1, 0.1),  # uncommitted state: left out
            {**run("a" * 40, 0.001, 0.8, name="main"), "experiments": [
                {"revs": [run("b" * 40, 0.002, 0.9)], "name": "fast", "executor": None},
                {"revs": [run("c" * 40, 0.004, 0.9)], "name": "faster", "executor": {"state": "success"}},
                {"revs": [run("d" * 40, 0.008, None)], "name": "queued", "executor": {"state": "queued"}},
                {"revs": [run("e" * 40, 0.016, 0.99, error=True)], "name": "broken", "executor": None}]}]


def test_finished_runs_only_with_the_params_that_differ_and_ties_said():
    found = experiments.runs(exp_show())
    assert [r["name"] for r in found] == ["main", "fast", "faster"]
    frame = experiments.table(found)
    assert list(frame.columns[:3]) == ["experiment", "model", "train.m1.lr"]  # seed and filters never differ
    assert frame["train.m1.lr"].tolist() == ["0.002", "0.004", "0.001"]  # sorted by experiment name
    assert frame["best"].tolist() == ["best (tie)", "best (tie)", ""]
    assert frame["test_accuracy_ci95"].iloc[2] == "[0.7000, 0.9000]" and frame["train_time_s"].eq(5.0).all()


def test_no_scored_run_is_one_line():
    with pytest.raises(UserError, match="no experiment has test metrics"):
        experiments.table(experiments.runs([run("a" * 40, 0.001, None, name="main")]))
