"""Train one from-scratch entry of params.yaml (families in imageclf.models.scratch); transfer entries: transfer.py."""

from __future__ import annotations

from pathlib import Path

import imageclf.models.scratch  # noqa: F401  (registers the from-scratch families)
from imageclf.core import paths
from imageclf.train import config, fit


def train_entry(p: dict, name: str, model_dir: Path, live_dir: Path, seed: int | None = None) -> dict:
    """Train the from-scratch entry `name` of the params `p` (with another seed when given); returns its summary."""
    config.check_group(p, name, "scratch")
    cfg = config.model_config(p, name)
    cfg["seed"] = cfg["seed"] if seed is None else seed
    return fit.train(cfg, paths.PREPARED, model_dir, live_dir)
