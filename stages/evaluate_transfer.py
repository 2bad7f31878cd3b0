"""evaluate_transfer: score one trained transfer model (`python -m stages.evaluate_transfer <name>`) on its
held-out splits. From-scratch models: stages/evaluate.py."""

import sys

from imageclf.cache import settings as prepare_settings
from imageclf.core import params, paths
from imageclf.core.errors import cli
from imageclf.data import sources
from imageclf.evaluate import settings


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "evaluate_transfer")
    p = params.load({"data": sources.PARAMS, "prepare": prepare_settings.PARAMS, "evaluate": settings.PARAMS})
    import imageclf.models.transfer  # noqa: F401  (registers the layers a transfer model.keras holds)
    from imageclf.evaluate import scoring  # TensorFlow loads only once the params are known to be good

    results = scoring.evaluate(name, paths.MODELS / name, paths.PREPARED, paths.EVAL_REPORTS / name, p)
    print(scoring.summary_line(results, p["evaluate"]["split"], name))


if __name__ == "__main__":
    main()
