"""The evaluate stage's figures: confusion matrix, gallery of confused pairs, Grad-CAM heat maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_heatmap(y: np.ndarray, pred: np.ndarray, classes: list[str], title: str, out: Path) -> None:
    """Row-normalised confusion matrix (sklearn's display) with class labels; shares in the cells up to 20 classes."""
    from sklearn.metrics import ConfusionMatrixDisplay

    n = len(classes)
    side = min(22, max(5, 0.38 * n + 2))  # 0.38 in per class: room for 7 pt labels at 50 classes
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    fontsize = 9 if n <= 15 else 7
    ConfusionMatrixDisplay.from_predictions(
        y, pred, labels=np.arange(n), display_labels=classes, normalize="true", include_values=n <= 20,
        values_format=".2f", cmap="Blues", ax=ax, xticks_rotation="vertical", colorbar=True,
        im_kw={"vmin": 0, "vmax": 1}, text_kw={"fontsize": fontsize - 1})
    ax.tick_params(labelsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def gallery(pairs, images: np.ndarray, y: np.ndarray, pred: np.ndarray, classes: list[str], per_pair: int,
            out: Path) -> None:
    """For each confused pair: misclassified images (true A shown as B) beside correct images of class B."""
    index = {c: i for i, c in enumerate(classes)}
    rows = len(pairs) or 1
    fig, axes = plt.subplots(rows, 2 * per_pair, figsize=(1.3 * 2 * per_pair, 1.5 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not len(pairs):
        axes[0][0].text(0, 0.5, "no confused pair above evaluate.min_errors", fontsize=9)
    for r, (true, predicted) in enumerate(zip(pairs["true"], pairs["predicted"], strict=True)):
        t, p = index[true], index[predicted]
        wrong = np.flatnonzero((y == t) & (pred == p))[:per_pair]
        right = np.flatnonzero((y == p) & (pred == p))[:per_pair]
        for col, i in enumerate(wrong):
            _show(axes[r][col], images[i], f"{true}\n-> {predicted}" if col == 0 else "", "tab:red")
        for col, i in enumerate(right):
            _show(axes[r][per_pair + col], images[i], f"a real {predicted}" if col == 0 else "", "tab:green")
    fig.suptitle("left: misclassified (true -> predicted); right: the predicted class", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _show(ax, img: np.ndarray, title: str, color: str) -> None:
    ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
    ax.set_title(title, fontsize=6, color=color)


def heatmaps(rows: list[tuple[np.ndarray, np.ndarray, list[str]]], caption: str, out: Path) -> None:
    """Rows of (images, heat maps in [0, 1], titles): each image with its heat map overlaid."""
    n_cols = max(len(images) for images, _, _ in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.5 * n_cols, 1.6 * len(rows) + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (images, heat, titles) in enumerate(rows):
        for col, (img, cam, title) in enumerate(zip(images, heat, titles, strict=True)):
            _show(axes[r][col], img, title, "black")
            axes[r][col].imshow(cam, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def reliability(before, after, temperature: float, out: Path) -> None:
    """Accuracy against mean confidence per confidence bin (metrics.calibration_bins), as trained and after
    temperature scaling: a calibrated model lies on the diagonal."""
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    for bins, label, marker in ((before, "as trained", "o"), (after, f"temperature {temperature:.2f}", "s")):
        ax.plot(bins["confidence"], bins["accuracy"], marker=marker, ms=4, label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy",
           title="reliability (temperature fitted on val)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def note(text: str, out: Path) -> None:
    """A small figure that only says something (a chart that does not apply)."""
    fig, ax = plt.subplots(figsize=(6, 0.6))
    ax.axis("off")
    ax.text(0, 0.5, text, fontsize=9, va="center")
    fig.savefig(out, dpi=100)
    plt.close(fig)
