"""train_transfer: fit one transfer entry of params.yaml (`python -m stages.train_transfer <name>`): on cached
backbone features when it names a features set, else through the backbone; fine-tuning in phases."""

import sys
from pathlib import Path

from imageclf import params
from imageclf.errors import UserError, cli
from stages.train import PREPARED, report


def train_entry(p: dict, name: str) -> dict:
    """Train the transfer entry `name` of the params `p`; returns its summary metrics."""
    from imageclf import config, features, training, transfer  # TensorFlow loads only once the params are good

    cfg = config.model_config(p, name)
    if cfg["family"] != "transfer":
        raise UserError(f"params.yaml: '{name}' is a {cfg['family']} entry; list it under models.scratch")
    hyper = config.hyperparameters(cfg)

    def phases(epochs: int) -> list[training.Phase]:
        return [training.Phase(*phase) for phase in transfer.phases(hyper, epochs)]

    inputs = features.inputs(cfg, hyper, PREPARED)
    return training.train(cfg, PREPARED, Path("models") / name, Path("reports/train") / name, inputs, phases)


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "train_transfer")
    report(train_entry(params.load(("train_defaults", "train", "features")), name), name)


if __name__ == "__main__":
    main()
