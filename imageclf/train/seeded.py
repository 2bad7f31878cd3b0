"""Seeded runs (params.yaml `seeds:`): train and evaluate one model once more with another seed; compare reports the
mean and spread over the seeds. The run's reports go to reports/seeds/NAME/seed-SEED (train/ holds its dvclive log);
its model is deleted once scored: the seeded runs measure training variance, the model to use is the entry's own."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from imageclf.core import paths
from imageclf.core.errors import UserError
from imageclf.evaluate import scoring


def run(p: dict, group: str, name: str, seed: int, train_entry: Callable[..., dict]) -> str:
    """Train `name` with `seed` (train_entry of its group), score it, remove the model; returns a summary line."""
    if name not in p["seeds"][group] or seed not in p["seeds"]["values"]:
        raise UserError(f"params.yaml: {name} with seed {seed} is not a seeded run of seeds.{group} and seeds.values")
    work, out = paths.SEED_RUNS / f"{name}-{seed}", paths.SEED_REPORTS / name / f"seed-{seed}"
    summary = train_entry(p, name, work, out / "train", seed)
    results = scoring.evaluate(name, work, paths.PREPARED, out, p)
    shutil.rmtree(work)
    split = p["evaluate"]["split"]
    return f"seed {name} {seed}: best epoch {summary['best_epoch']}, {split} accuracy {results[split]['accuracy']:.4f}"
