"""Confidence intervals and paired tests: checked against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from imageclf.evaluate import stats
from imageclf.report import comparison


def predictions(n: int, accuracy: float, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    wrong = rng.random(n) > accuracy
    pred = np.where(wrong, (y + rng.integers(1, classes, n)) % classes, y)
    return y, pred


def test_bootstrap_intervals_cover_the_estimate_with_the_binomial_width():
    y, pred = predictions(4000, 0.9)
    ci = stats.bootstrap(y, pred, 4, resamples=1000, seed=1)
    accuracy, f1 = (pred == y).mean(), f1_score(y, pred, average="macro")
    assert ci["accuracy_ci95_low"] < accuracy < ci["accuracy_ci95_high"]
    assert ci["macro_f1_ci95_low"] < f1 < ci["macro_f1_ci95_high"]
    width = 2 * 1.96 * math.sqrt(accuracy * (1 - accuracy) / len(y))  # the normal approximation
    assert ci["accuracy_ci95_high"] - ci["accuracy_ci95_low"] == pytest.approx(width, rel=0.15)
    assert stats.bootstrap(y, pred, 4, resamples=200, seed=1) == stats.bootstrap(y, pred, 4, resamples=200, seed=1)
    small = stats.bootstrap(y[:400], pred[:400], 4, resamples=1000, seed=1)
    assert small["accuracy_ci95_high"] - small["accuracy_ci95_low"] > 2.5 * width  # 10x fewer images: ~3x wider


def test_bootstrap_macro_f1_of_each_resample_is_sklearns():
    y, pred = predictions(300, 0.7, classes=5)
    counts = np.bincount(y * 5 + pred, minlength=25)[None]
    assert stats._macro_f1(counts, 5)[0] == pytest.approx(f1_score(y, pred, average="macro"))
    y3, pred3 = np.array([0, 0, 1]), np.array([0, 0, 0])  # class 1 never predicted, class 2 absent
    counts = np.bincount(y3 * 3 + pred3, minlength=9)[None]
    assert stats._macro_f1(counts, 3)[0] == pytest.approx(f1_score(y3, pred3, average="macro", zero_division=0))


def test_mcnemar_exact_p_value_by_hand_and_holm():
    a = np.array([True] * 10 + [False] * 2 + [True] * 50)
    b = np.array([False] * 10 + [True] * 2 + [True] * 50)
    test = stats.mcnemar(a, b)
    assert (test["a_only_right"], test["b_only_right"]) == (10, 2)
    assert test["p_value"] == pytest.approx(2 * (1 + 12 + 66) / 2**12)  # 2 * P(X <= 2), X ~ Bin(12, 1/2)
    assert stats.mcnemar(a, a)["p_value"] == 1.0  # identical predictions: nothing to test
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_pairwise_verdicts_in_words(tmp_path):
    y, good = predictions(2000, 0.93, seed=3)
    _, bad = predictions(2000, 0.85, seed=4)
    twin = good.copy()
    twin[:3] = (twin[:3] + 1) % 4  # three more mistakes: no real difference
    names = {"cnn": good, "lenet": bad, "cnn_twin": twin}
    for name, pred in names.items():
        (tmp_path / name).mkdir()
        pd.DataFrame({"path": [f"{i}.png" for i in range(len(y))], "true": y, "predicted": pred}).to_csv(
            tmp_path / name / "predictions.csv", index=False)
    pairs = comparison.pairwise(list(names), tmp_path, "test", 0.05).set_index(["model_a", "model_b"])
    assert pairs.loc[("cnn", "lenet"), "verdict"] == "cnn is better than lenet: p < 0.001"
    assert pairs.loc[("lenet", "cnn_twin"), "verdict"] == "cnn_twin is better than lenet: p < 0.001"
    assert pairs.loc[("cnn", "cnn_twin"), "verdict"].startswith("cnn vs cnn_twin: no significant difference (p = ")
    assert (pairs["p_holm"] >= pairs["p_value"]).all()


def test_seconds_to_reach_a_validation_accuracy():
    series = {"accuracy": pd.DataFrame({"step": [0, 1, 2], "accuracy": [0.80, 0.91, 0.93]}),
              "time_s": pd.DataFrame({"step": [0, 1, 2], "time_s": [10.0, 21.0, 30.5]})}
    assert comparison.seconds_to(series, 0.9) == 21.0
    assert comparison.seconds_to(series, 0.95) is None
    assert comparison.seconds_to({"accuracy": series["accuracy"]}, 0.9) is None  # logged before time_s existed
