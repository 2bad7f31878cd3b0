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
