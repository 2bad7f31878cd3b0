"""train: fit one model entry of params.yaml (`python -m stages.train <name>`), resuming an interrupted run."""

import sys
from pathlib import Path

from imageclf import params
from imageclf.errors import cli

PREPARED = Path("data/prepared")


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "train")
    p = params.load(("train_defaults", "train"))
    from imageclf import features, training  # TensorFlow loads only once the params are known to be good

    cfg = training.model_config(p, name)
    summary = training.train(cfg, PREPARED, Path("models") / name, Path("reports/train") / name, features.ROOT)
    print(f"train {name}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
          f"val loss {summary['best_val_loss']:.4f}, {summary['train_time_s']:.0f} s")


if __name__ == "__main__":
    main()
