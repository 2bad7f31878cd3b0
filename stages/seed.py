"""seed: train and evaluate one from-scratch model once more with another seed
(`python -m stages.seed NAME SEED`), for params.yaml `seeds:` (imageclf/train/seeded.py says what is kept)."""

import sys

from imageclf.cache import settings as prepare_settings
from imageclf.core import params
from imageclf.core.errors import UserError, cli
from imageclf.data import sources
from imageclf.evaluate import settings as evaluate_settings
from imageclf.train import settings as train_settings


@cli
def main() -> None:
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        raise UserError("usage: python -m stages.seed <name listed in params.yaml seeds.scratch> <seed>")
    p = params.load({"data": sources.PARAMS, "prepare": prepare_settings.PARAMS, "evaluate": evaluate_settings.PARAMS,
                     "train_defaults": train_settings.PARAMS, "train": None, "features": None,
                     "models": params.MODELS, "seeds": params.SEEDS})
    from imageclf.train import scratch, seeded  # TensorFlow loads only once the params are known to be good

    print(seeded.run(p, "scratch", sys.argv[1], int(sys.argv[2]), scratch.train_entry))


if __name__ == "__main__":
    main()
