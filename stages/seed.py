"""seed: train and evaluate one from-scratch model once more with another seed
(`python -m stages.seed NAME SEED`), for params.yaml `seeds:` (imageclf/train/seeded.py says what is kept)."""

import sys

from imageclf.core.errors import cli
from imageclf.train import seeded


@cli
def main() -> None:
    p, name, seed = seeded.arguments(sys.argv, "seed", "scratch")
    from imageclf.train import scratch  # TensorFlow loads only once the params are known to be good

    print(seeded.run(p, "scratch", name, seed, scratch.train_entry))


if __name__ == "__main__":
    main()
