"""Seeded runs (params.yaml `seeds:`): train and evaluate one model once more with another seed; compare reports the
mean and spread over the seeds. The run's reports go to reports/seeds/NAME/seed-SEED (train/ holds its dvclive log);
its model is deleted once scored: the seeded runs measure training variance, the model to use is the entry's own."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from imageclf.cache import settings as prepare_settings
from imageclf.core import params, paths
from imageclf.core.errors import UserError
from imageclf.data import sources
from imageclf.evaluate import settings as evaluate_settings
from imageclf.train import settings as train_settings


def arguments(argv: list[str], stage: str, group: str) -> tuple[dict, str, int]:
    """(params, model name, seed) of a seeded-run stage called as `stage NAME SEED`, params validated before
    TensorFlow loads."""
    if len(argv) != 3 or not argv[2].isdigit():
        raise UserError(f"usage: python -m stages.{stage} <name listed in params.yaml seeds.{group}> <seed>")
    p = params.load({"data": sources.PARAMS, "prepare": prepare_settings.PARAMS, "evaluate": evaluate_settings.PARAMS,
                     "train_defaults": train_settings.PARAMS, "train": None, "features": None,
                     "models": params.MODELS, "seeds": params.SEEDS})
    return p, argv[1], int(argv[2])


def run(p: dict, group: str, name: str, seed: int, train_entry: Callable[..., dict]) -> str:
    """Train `name` with `seed` (train_entry of its group), score it, remove the model; returns a summary line."""
    if name not in p["seeds"][group] or seed not in p["seeds"]["values"]:
        raise UserError(f"params.yaml: {name} with seed {seed} is not a seeded run of seeds.{group} and seeds.values")
    work, out = paths.SEED_RUNS / f"{name}-{seed}", paths.SEED_REPORTS / name / f"seed-{seed}"
    summary = train_entry(p, name, work, out / "train", seed)
    from imageclf.evaluate import scoring  # TensorFlow is loaded by now

    results = scoring.evaluate(name, work, paths.PREPARED, out, p)
    shutil.rmtree(work)
    split = p["evaluate"]["split"]
    return f"seed {name} {seed}: best epoch {summary['best_epoch']}, {split} accuracy {results[split]['accuracy']:.4f}"
