"""split: assign the manifest's images to train/val/test; write split lists, class index, counts and charts."""

from imageclf.core import params
from imageclf.core.errors import cli
from imageclf.data import sources, splitting
from imageclf.evaluate import settings as evaluate_settings


@cli
def main() -> None:
    p = params.load({"data": sources.PARAMS, "split": splitting.PARAMS, "evaluate": evaluate_settings.PARAMS})
    counts = splitting.write(p["split"], p["data"]["max_per_class"], p["evaluate"]["split"])
    sizes = ", ".join(f"{k} {v['total']}" for k, v in counts.items() if isinstance(v, dict))
    print(f"split: {sizes}; {counts['leaked']} images shared across splits (reports/data/leakage.csv)")


if __name__ == "__main__":
    main()
