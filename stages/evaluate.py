"""evaluate: score one trained from-scratch model (`python -m stages.evaluate <name>`) on its held-out splits.
Transfer models have their own stage (stages/evaluate_transfer.py), which loads their backbone layers."""

import sys
from pathlib import Path

from imageclf import params
from imageclf.errors import cli

PREPARED = Path("data/prepared")


def run(stage: str) -> None:
    name = params.model_argument(sys.argv, stage)
    p = params.load(("data", "prepare", "evaluate"))
    cfg = p["evaluate"]
    from imageclf import evaluation  # TensorFlow loads only once the params are known to be good

    results = evaluation.evaluate(name, Path("models") / name, PREPARED, Path("reports/eval") / name, p)
    split = results[cfg["split"]]
    print(f"evaluate {name}: {cfg['split']} accuracy {split['accuracy']:.4f}, macro F1 {split['macro_f1']:.4f}, "
          f"{results['inference']['images_per_s']:.0f} images/s")


@cli
def main() -> None:
    run("evaluate")


if __name__ == "__main__":
    main()
