"""Train one transfer entry of params.yaml: on cached backbone features when it names a features set, else through
the backbone; fine-tuning in phases."""

from __future__ import annotations

from pathlib import Path

from imageclf.cache.shards import read_meta
from imageclf.core import paths
from imageclf.models import features, transfer
from imageclf.train import config, fit
from imageclf.train.settings import resolve_budget


def train_entry(p: dict, name: str, model_dir: Path, live_dir: Path, seed: int | None = None) -> dict:
    """Train the transfer entry `name` of the params `p` (with another seed when given); returns its summary."""
    config.check_group(p, name, "transfer")
    cfg = config.model_config(p, name)
    cfg["seed"] = cfg["seed"] if seed is None else seed
    meta = read_meta(paths.PREPARED)
    cfg = resolve_budget(cfg, meta["splits"]["train"]["count"], len(meta["classes"]))
    hyper = transfer.resolve_input_size(config.hyperparameters(cfg), meta)  # auto as the features stage chose
    if cfg["hyper"].get("input_size") == "auto":
        cfg = {**cfg, "hyper": {**cfg["hyper"], "input_size": hyper["input_size"]}}

    def phases(epochs: int) -> list[fit.Phase]:
        return [fit.Phase(*phase) for phase in transfer.phases(hyper, epochs)]

    inputs = features.inputs(cfg, hyper, paths.PREPARED)
    return fit.train(cfg, paths.PREPARED, model_dir, live_dir, inputs, phases)
