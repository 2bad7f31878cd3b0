"""train: fit one from-scratch model entry of params.yaml (`python -m stages.train <name>`), resuming an
interrupted run. Transfer entries have their own stage (stages/train_transfer.py)."""

import sys
from pathlib import Path

from imageclf import params
from imageclf.errors import UserError, cli

PREPARED = Path("data/prepared")


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "train")
    p = params.load(("train_defaults", "train"))
    from imageclf import config, training  # TensorFlow loads only once the params are known to be good

    cfg = config.model_config(p, name)
    if cfg["family"] == "transfer":
        raise UserError(f"params.yaml: '{name}' is a transfer entry; list it under models.transfer, not models.scratch")
    report(training.train(cfg, PREPARED, Path("models") / name, Path("reports/train") / name), name)


def report(summary: dict, name: str) -> None:
    print(f"train {name}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
          f"val loss {summary['best_val_loss']:.4f}, {summary['train_time_s']:.0f} s")


if __name__ == "__main__":
    main()
