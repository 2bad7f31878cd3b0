"""The augmentation preview: the same training images at every augmentation level, one row each."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imageclf.cache.shards import load_split  # noqa: E402


def preview(prepared: Path, classes: list[str], seed: int, out: Path, n: int = 8) -> None:
    """The same training images (one per class, up to n) at each augmentation level."""
    from imageclf.cache.augment import LEVELS, augmenter  # TensorFlow is imported only here

    images, labels = load_split(prepared, "train")
    picks = [int(np.flatnonzero(labels == c)[0]) for c in sorted(set(labels.tolist()))][:n]
    batch = images[picks].astype(np.float32) / 255.0
    rows = [batch]
    for level in sorted(LEVELS)[1:]:
        rows.append(np.asarray(augmenter(level, seed)(batch, training=True)).clip(0, 1))
    image_grid(rows, [f"level {lv}" for lv in sorted(LEVELS)], [classes[labels[i]] for i in picks], out)


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
