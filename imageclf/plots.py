"""Small matplotlib figures written as PNG reports."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def class_counts(counts: dict[str, int], title: str, out: Path) -> None:
    """Horizontal bar chart of images per class; readable up to ~50 classes."""
    names = list(counts)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.25 * len(names) + 1)))
    ax.barh(range(len(names)), list(counts.values()), color="#4c72b0")
    ax.set_yticks(range(len(names)), names, fontsize=8 if len(names) > 20 else 10)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title(title)
    for i, value in enumerate(counts.values()):
        ax.text(value, i, f" {value}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def image_grid(rows: list[np.ndarray], row_titles: list[str], col_titles: list[str], out: Path) -> None:
    """A grid of images: rows[i] is an array [N, H, W, C] of uint8 or [0, 1] floats."""
    n_cols = len(col_titles)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.6 * n_cols, 1.7 * len(rows)), squeeze=False)
    for r, (batch, title) in enumerate(zip(rows, row_titles, strict=True)):
        for col in range(n_cols):
            ax = axes[r][col]
            img = batch[col]
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0,
                      vmax=255 if img.dtype == np.uint8 else 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(col_titles[col], fontsize=7)
        axes[r][0].set_ylabel(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


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


def experiment_bars(frame, metric: str, out: Path) -> None:
    """Grouped bars of one metric: experiments along x, one bar per model."""
    table = frame.pivot(index="experiment", columns="model", values=metric)
    x = np.arange(len(table))
    width = 0.8 / max(len(table.columns), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(table) + 2), 4))
    for i, model in enumerate(table.columns):
        ax.bar(x - 0.4 + width * (i + 0.5), table[model], width, label=model)
    ax.set_xticks(x, table.index, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(max(0.0, float(np.nanmin(table.to_numpy())) - 0.05), 1.0)
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
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


def training_curves(curves: dict[str, dict], out: Path) -> None:
    """Validation accuracy and loss per epoch of every model on one figure."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, series in curves.items():
        for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
            if metric in series:
                frame = series[metric]
                ax.plot(frame["step"] + 1, frame[metric], marker=".", label=name)
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def time_to_accuracy(curves: dict[str, dict], out: Path) -> None:
    """Validation accuracy against training seconds of every model on one chart: what each family costs."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, series in curves.items():
        if "accuracy" in series and "time_s" in series:
            both = series["accuracy"].merge(series["time_s"], on="step")
            ax.plot(both["time_s"], both["accuracy"], marker=".", label=name)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def score_bars(frame, accuracy: str, f1: str, out: Path, spread=None) -> None:
    """Grouped bars of accuracy and macro F1 per model; spread (indexed by model, with <metric>_std columns) adds
    whiskers of one standard deviation over seeds."""
    x = np.arange(len(frame))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(frame) + 2), 4))
    for shift, metric in ((-0.2, accuracy), (0.2, f1)):
        errors = None
        if spread is not None:
            errors = [spread[f"{metric}_std"].get(name, 0.0) for name in frame["model"]]
        ax.bar(x + shift, frame[metric], 0.4, yerr=errors, capsize=3, label=metric.replace("_", " "))
    ax.set_xticks(x, frame["model"], rotation=30, ha="right", fontsize=8)
    low = float(min(frame[accuracy].min(), frame[f1].min()))
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
