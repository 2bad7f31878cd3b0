"""train_transfer: fit one transfer model entry of params.yaml (`python -m stages.train_transfer <name>`), resuming an
interrupted run. From-scratch entries: the train stage."""

import sys

from imageclf.core import params, paths
from imageclf.core.errors import cli
from imageclf.train import settings


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "train_transfer")
    p = params.load({"train_defaults": settings.PARAMS, "train": None, "features": None})
    from imageclf.train import fit, transfer  # TensorFlow loads only once the params are known to be good

    summary = transfer.train_entry(p, name, paths.MODELS / name, paths.TRAIN_REPORTS / name)
    print(fit.summary_line(summary, name))


if __name__ == "__main__":
    main()
