"""export: the chosen model (params.yaml export.model: best by export.metric, or a listed name) in the formats Keras
exports itself, each checked against the Keras model on evaluate.split images, with classes.txt and a model card.

Writes export/ (the files a consumer needs) and reports/export/ (parity, size and latency metrics; the card again).
A format whose probabilities differ from the Keras model's by more than export.tolerance fails the stage.
"""

from imageclf.cache import settings as prepare_settings
from imageclf.core import params
from imageclf.core.errors import cli
from imageclf.data import sources
from imageclf.deploy import settings
from imageclf.evaluate import settings as evaluate_settings
from imageclf.train import settings as train_settings


@cli
def main() -> None:
    p = params.load({"data": sources.PARAMS, "prepare": prepare_settings.PARAMS, "models": params.MODELS,
                     "train_defaults": train_settings.PARAMS, "train": None, "features": None,
                     "evaluate": evaluate_settings.PARAMS, "export": settings.PARAMS})
    from imageclf.deploy import export  # TensorFlow loads only once the params are known to be good

    export.export_chosen(p)


if __name__ == "__main__":
    main()
