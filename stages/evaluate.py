"""evaluate: score one trained from-scratch model (`python -m stages.evaluate <name>`) on its held-out splits.
Transfer models: stages/evaluate_transfer.py, which loads their backbone layers."""

import sys

from imageclf.cache import settings as prepare_settings
from imageclf.core import params, paths
from imageclf.core.errors import cli
from imageclf.data import sources
from imageclf.evaluate import settings


@cli
def main() -> None:
    name = params.model_argument(sys.argv, "evaluate")
    p = params.load({"data": sources.PARAMS, "prepare": prepare_settings.PARAMS, "evaluate": settings.PARAMS})
    from imageclf.evaluate import scoring  # TensorFlow loads only once the params are known to be good

    results = scoring.evaluate(name, paths.MODELS / name, paths.PREPARED, paths.EVAL_REPORTS / name, p)
    print(scoring.summary_line(results, p["evaluate"]["split"], name))


if __name__ == "__main__":
    main()
