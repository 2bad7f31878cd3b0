"""Classification metrics from real predictions (scikit-learn where it has them)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def calibration_bins(y: np.ndarray, probs: np.ndarray, bins: int) -> pd.DataFrame:
    """Per non-empty equal-width confidence bin: mean confidence, accuracy and share of the images."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "confidence": confidence, "accuracy": correct.astype(float)})
    table = frame.groupby("bin").agg(confidence=("confidence", "mean"), accuracy=("accuracy", "mean"),
                                     share=("accuracy", "size"))
    table["share"] /= len(y)
    return table


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    table = calibration_bins(y, probs, bins)
    return float((table["share"] * (table["accuracy"] - table["confidence"]).abs()).sum())


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the probabilities of the same model with its logits divided by T."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(y: np.ndarray, probs: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T in [0.05, 20] that minimises the negative log-likelihood of
    with_temperature(probs, T) on held-out (y, probs)."""
    from scipy.optimize import minimize_scalar

    labels = np.arange(probs.shape[1])
    found = minimize_scalar(lambda log_t: skm.log_loss(y, with_temperature(probs, math.exp(log_t)), labels=labels),
                            bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(found.x))


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in y (sklearn's, quiet about predicted classes absent from y)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y, pred))


def split_metrics(y: np.ndarray, probs: np.ndarray, top_k: int, ece_bins: int) -> dict[str, float | None]:
    """Flat, stable metric keys for one split; None where a metric is undefined (e.g. kappa of one class)."""
    n_classes = probs.shape[1]
    labels = np.arange(n_classes)
    pred = probs.argmax(axis=1)
    clipped = np.clip(probs, 1e-7, 1.0)
    out: dict[str, float | None] = {
        "loss": float(skm.log_loss(y, clipped / clipped.sum(axis=1, keepdims=True), labels=labels)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": balanced_accuracy(y, pred),
        f"top{top_k}_accuracy": (float(skm.top_k_accuracy_score(y, probs, k=top_k, labels=labels))
                                 if top_k < n_classes else 1.0),
    }
    for average in ("macro", "weighted"):  # over the classes that occur in y or in the predictions
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, average=average, zero_division=0)
        out.update({f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)})
    kappa = skm.cohen_kappa_score(y, pred)
    out["cohen_kappa"] = None if math.isnan(kappa) else float(kappa)
    out["ece"] = expected_calibration_error(y, probs, ece_bins)
    out["samples"] = int(len(y))
    return out


def per_class(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class; classes without samples say so instead of failing."""
    labels = np.arange(len(classes))
    p, r, f, support = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    frame = pd.DataFrame({"class": classes, "precision": p, "recall": r, "f1": f, "support": support})
    frame["note"] = np.where(support == 0, "no samples of this class in the split", "")
    return frame


def confused_pairs(y: np.ndarray, pred: np.ndarray, classes: list[str], min_errors: int) -> pd.DataFrame:
    """(true, predicted) pairs with more than min_errors mistakes, most frequent first."""
    matrix = skm.confusion_matrix(y, pred, labels=np.arange(len(classes)))
    np.fill_diagonal(matrix, 0)
    rows = [(classes[t], classes[p], int(matrix[t, p]), 100.0 * matrix[t, p] / max(len(y), 1))
            for t, p in zip(*np.nonzero(matrix > min_errors), strict=True)]
    frame = pd.DataFrame(rows, columns=["true", "predicted", "errors", "percent_of_samples"])
    return frame.sort_values(["errors", "true", "predicted"], ascending=[False, True, True]).reset_index(drop=True)
