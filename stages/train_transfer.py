"""train_transfer: fit one transfer entry of params.yaml (`python -m stages.train_transfer <name>`): on cached
backbone features when it names a features set, else through the backbone; fine-tuning in phases."""

import sys
from pathlib import Path

from imageclf import params
from imageclf.errors import UserError, cli
from stages.train import PREPARED, report


def train_entry(p: dict, name: str, model_dir: Path, live_dir: Path, seed: int | None = None) -> dict:
    """Train the transfer entry `name` of the params `p` (with another seed when given); returns its summary."""
    from imageclf import config, features, training, transfer  # TensorFlow loads only once the params are good

    cfg = config.model_config(p, name)
    cfg["seed"] = cfg["seed"] if seed is None else seed
    if cfg["family"] != "transfer":
        raise UserError(f"params.yaml: '{name}' is a {cfg['family']} entry; list it under models.scratch")
    hyper = config.hyperparameters(cfg)

    def phases(epochs: int) -> list[training.Phase]:
        return [training.Phase(*phase) for phase in transfer.phases(hyper, epochs)]

    inputs = features.inputs(cfg, hyper, PREPARED)
    return training.train(cfg, PREPARED, model_dir, live_dir, inputs, phases)


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "train_transfer")
    p = params.load(("train_defaults", "train", "features"))
    report(train_entry(p, name, Path("models") / name, Path("reports/train") / name), name)


if __name__ == "__main__":
    main()
