"""features: backbone features of every split for each frozen backbone listed under params.yaml 'features:'.

A set whose key (backbone, weights, input size, pooling) and prepared data are unchanged is kept as it is (the output
persists between runs); sets no longer listed are removed.
"""

from imageclf.core import params
from imageclf.core.errors import cli


@cli
def main() -> None:
    section = params.load({"features": None})["features"]
    from imageclf.models import features  # TensorFlow loads only once params.yaml reads

    timing = features.update(section)
    print(f"features: {len(timing)} set(s) in data/features")


if __name__ == "__main__":
    main()
