"""features: backbone features of every split for each set under params.yaml 'features:' that an entry listed in
models.transfer trains its head on, and the set the data audit reads (audit.labels).

A set whose key (backbone, weights, input size, pooling) and prepared data are unchanged is kept as it is (the output
persists between runs), so does a set no listed entry uses; sets no longer defined are removed. The stage reads
`train:` to know which entry names which set, so DVC re-runs it after any edit there: it then finds every set up to
date in a few seconds and changes nothing downstream.
"""

from imageclf.core import params
from imageclf.core.errors import cli
from imageclf.data import audit
from imageclf.train import settings


@cli
def main() -> None:
    p = params.load({"features": None, "models": params.MODELS, "train_defaults": settings.PARAMS, "train": None,
                     "audit": audit.PARAMS})
    from imageclf.models import features  # TensorFlow loads only once params.yaml reads
    from imageclf.train.config import model_config

    wanted = features.used([model_config(p, name) for name in p["models"]["transfer"]])
    if p["audit"]["labels"] and p["audit"]["features"] in (p["features"] or {}):  # (the audit stage says when not)
        wanted.add(p["audit"]["features"])
    timing = features.update(p["features"], wanted)
    print(f"features: {', '.join(sorted(timing)) or 'no set (no listed transfer entry names one)'} in data/features")


if __name__ == "__main__":
    main()
