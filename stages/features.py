"""features: backbone features of every split for each frozen backbone set under params.yaml 'features:', when
models.transfer lists any entry (a run of from-scratch models only computes none).

A set whose key (backbone, weights, input size, pooling) and prepared data are unchanged is kept as it is (the output
persists between runs); sets no longer defined are removed. (Which set each entry names is not tracked: DVC would
then re-run this stage on every edit under `train:`.)
"""

from imageclf.core import params
from imageclf.core.errors import cli


@cli
def main() -> None:
    p = params.load({"features": None, "models": params.MODELS})
    from imageclf.models import features  # TensorFlow loads only once params.yaml reads

    timing = features.update(p["features"], bool(p["models"]["transfer"]))
    print(f"features: {', '.join(sorted(timing)) or 'no set (models.transfer is empty)'} in data/features")


if __name__ == "__main__":
    main()
