"""features: backbone features of every split for each frozen backbone listed under params.yaml 'features:'.

A set whose key (backbone, weights, input size, pooling) and prepared data are unchanged is kept as it is (the output
persists between runs); sets no longer listed are removed.
"""

import json
import shutil
from pathlib import Path

from imageclf import params
from imageclf.errors import UserError, cli

PREPARED = Path("data/prepared")
REPORT = Path("reports/data/features.json")  # extraction time and images/s per set


@cli
def main() -> None:
    section = params.load(("features",))["features"]
    from imageclf import features, transfer  # TensorFlow loads only once the params are known to be good
    from imageclf.shards import read_meta

    sets = features.sets(section)
    shape = tuple(read_meta(PREPARED)["shape"])
    prepared = features.fingerprint(PREPARED)
    features.ROOT.mkdir(parents=True, exist_ok=True)
    for stale in features.ROOT.iterdir():
        if stale.name not in sets:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    timing = json.loads(REPORT.read_text()) if REPORT.is_file() else {}  # kept for sets that are up to date
    for name, hyper in sets.items():
        out = features.ROOT / name
        if features.matches(out, prepared, hyper):
            print(f"features {name}: up to date ({out})")
            continue
        try:
            extractor = transfer.extractor(shape, hyper["backbone"], hyper["weights"], hyper["input_size"], "frozen",
                                           hyper["pooling"])
        except UserError as err:
            raise UserError(f"features.{name}: {err}") from None
        meta = features.extract(extractor, PREPARED, out, hyper, prepared)
        timing[name] = {"images": sum(meta["splits"].values()), "seconds": meta["seconds"],
                        "images_per_s": meta["images_per_s"]}
        print(f"features {name}: {timing[name]['images']} images -> {meta['shape']} in {meta['seconds']} s "
              f"({meta['images_per_s']} images/s)")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({n: t for n, t in timing.items() if n in sets}, indent=2) + "\n")


if __name__ == "__main__":
    main()
