"""train: fit one from-scratch model entry of params.yaml (`python -m stages.train <name>`), resuming an
interrupted run. Transfer entries have their own stage (train_transfer)."""

import sys

from imageclf.core import params, paths
from imageclf.core.errors import cli
from imageclf.train import settings


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "train")
    p = params.load({"train_defaults": settings.PARAMS, "train": None})
    from imageclf.train import fit, scratch  # TensorFlow loads only once the params are known to be good

    summary = scratch.train_entry(p, name, paths.MODELS / name, paths.TRAIN_REPORTS / name)
    print(fit.summary_line(summary, name))


if __name__ == "__main__":
    main()
