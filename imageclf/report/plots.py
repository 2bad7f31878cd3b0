"""The comparison figures: training curves, time to accuracy, score bars, experiments."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
