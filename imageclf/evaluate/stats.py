"""Is a difference real? Bootstrap confidence intervals per model and McNemar's exact test between two models."""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

RESAMPLES = 1000
CHUNK = 100  # resamples drawn at a time (memory: CHUNK x samples indices)


def _macro_f1(counts: np.ndarray, k: int) -> np.ndarray:
    """Macro F1 of each row of flattened k x k confusion counts, over the classes present in y or predictions."""
    matrix = counts.reshape(-1, k, k)
    tp = np.diagonal(matrix, axis1=1, axis2=2)
    actual, predicted = matrix.sum(axis=2), matrix.sum(axis=1)
    present = (actual + predicted) > 0
    f1 = np.divide(2 * tp, actual + predicted, out=np.zeros(tp.shape), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


def bootstrap(y: np.ndarray, pred: np.ndarray, n_classes: int, resamples: int = RESAMPLES, seed: int = 0,
              level: float = 0.95) -> dict[str, float]:
    """Percentile bootstrap intervals of accuracy and macro F1 (test images resampled with replacement)."""
    rng = np.random.default_rng(seed)
    codes = y.astype(np.int64) * n_classes + pred
    acc, f1 = [], []
    for start in range(0, resamples, CHUNK):
        idx = rng.integers(0, len(y), size=(min(CHUNK, resamples - start), len(y)))
        drawn = codes[idx]
        counts = np.stack([np.bincount(row, minlength=n_classes * n_classes) for row in drawn])
        acc.append(np.trace(counts.reshape(-1, n_classes, n_classes), axis1=1, axis2=2) / len(y))
        f1.append(_macro_f1(counts, n_classes))
    tail = (1 - level) / 2 * 100
    out = {}
    for name, values in (("accuracy", np.concatenate(acc)), ("macro_f1", np.concatenate(f1))):
        low, high = np.percentile(values, [tail, 100 - tail])
        out[f"{name}_ci95_low"], out[f"{name}_ci95_high"] = float(low), float(high)
    return out


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float | int]:
    """McNemar's exact test on paired correctness (two-sided): only images where exactly one model is right count."""
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    p = 1.0 if a_only + b_only == 0 else binomtest(a_only, a_only + b_only, 0.5).pvalue
    return {"a_only_right": a_only, "b_only_right": b_only, "p_value": float(p)}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: family-wise error control over several pairwise tests."""
    order = np.argsort(p_values)
    adjusted, running = np.empty(len(p_values)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()
