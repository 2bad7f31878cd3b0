"""seed_transfer: train and evaluate one transfer model once more with another seed
(`python -m stages.seed_transfer NAME SEED`), for params.yaml `seeds:` (imageclf/train/seeded.py says what is kept)."""

import sys

from imageclf.core.errors import cli
from imageclf.train import seeded


@cli
def main() -> None:
    p, name, seed = seeded.arguments(sys.argv, "seed_transfer", "transfer")
    from imageclf.train import transfer  # TensorFlow loads only once the params are known to be good

    print(seeded.run(p, "transfer", name, seed, transfer.train_entry))


if __name__ == "__main__":
    main()
