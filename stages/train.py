"""train: fit one from-scratch model entry of params.yaml (`python -m stages.train <name>`), resuming an
interrupted run. Transfer entries have their own stage (stages/train_transfer.py)."""

import sys
from pathlib import Path

from imageclf import params
from imageclf.errors import UserError, cli

PREPARED = Path("data/prepared")


def train_entry(p: dict, name: str, model_dir: Path, live_dir: Path, seed: int | None = None) -> dict:
    """Train the from-scratch entry `name` of the params `p` (with another seed when given); returns its summary."""
    from imageclf import config, training  # TensorFlow loads only once the params are known to be good

    cfg = config.model_config(p, name)
    if cfg["family"] == "transfer":
        raise UserError(f"params.yaml: '{name}' is a transfer entry; list it under models.transfer, not models.scratch")
    cfg["seed"] = cfg["seed"] if seed is None else seed
    return training.train(cfg, PREPARED, model_dir, live_dir)


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "train")
    p = params.load(("train_defaults", "train"))
    report(train_entry(p, name, Path("models") / name, Path("reports/train") / name), name)


def report(summary: dict, name: str) -> None:
    best = next(f"best_{m}" for m in params.SCHEMA["train_defaults"]["monitor"].choices if f"best_{m}" in summary)
    print(f"train {name}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
          f"{best[5:].replace('_', ' ')} {summary[best]:.4f}, {summary['train_time_s']:.0f} s")


if __name__ == "__main__":
    main()
