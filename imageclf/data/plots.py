"""The split stage's figure: images per class."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
