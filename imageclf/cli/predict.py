"""predict: classify new images with a trained model (not a DVC stage; run it by hand).

    python -m imageclf.cli.predict PATH... [--model NAME|best] [--top-k K] [--out FILE.csv]

Files and folders (searched recursively) are decoded and converted exactly as the prepare stage does with
params.yaml's prepare settings (colour mode, inversion, resize policy, EXIF orientation). Writes a CSV (standard
output unless --out) of path, class_1, prob_1, ... class_K, prob_K; files that are not usable images are listed on
standard error with the reason. --model best (the default) is the model the export stage chose: export.model, or
the listed model with the highest export.metric when export.model is best.
"""

import argparse
import sys

import numpy as np
import pandas as pd
from tqdm import tqdm

from imageclf.cache import settings as prepare_settings
from imageclf.core import params, paths
from imageclf.core.errors import UserError, cli
from imageclf.data import sources
from imageclf.deploy import prediction, selection
from imageclf.deploy import settings as deploy_settings
from imageclf.evaluate import settings as evaluate_settings

PROGRESS_FROM = 1000  # images: a progress bar on standard error from this many on


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m imageclf.cli.predict", description="Classify image files.")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders (searched recursively)")
    parser.add_argument("--model", default="best", help="a model listed in params.yaml 'models:', or best (default): "
                                                         "the model the export stage chose")
    parser.add_argument("--top-k", type=int, default=None, help="classes per image (default: evaluate.top_k)")
    parser.add_argument("--out", default="-", help="CSV file to write (default: standard output)")
    args = parser.parse_args(argv)
    if args.top_k is not None and args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    return args


@cli
def main() -> None:
    args = arguments(sys.argv[1:])
    p = params.load({"data": sources.PARAMS, "prepare": prepare_settings.PARAMS, "models": params.MODELS,
                     "evaluate": evaluate_settings.PARAMS, "export": deploy_settings.PARAMS})
    spec, where = (p["export"]["model"], "export.model") if args.model == "best" else (args.model, "--model")
    name = selection.choose(spec, params.model_names(p["models"]), p["export"]["metric"], where)
    files, skipped = prediction.find_images(args.paths)
    given = len(files) + len(skipped)
    import imageclf.models.transfer  # noqa: F401  (registers the layers a transfer model.keras holds, for loading)
    from imageclf.evaluate import scoring  # TensorFlow loads only once the arguments are known to be good

    model, info = scoring.load_model(name, paths.MODELS / name)
    shape = tuple(model.input_shape[1:])
    differ = prepare_settings.conflict(p["prepare"], shape)
    if differ:
        raise UserError(f"{name} takes {shape} images but params.yaml prepare gives {differ}; "
                        "run dvc repro so the model matches params.yaml")
    prepare = prepare_settings.from_shape(p["prepare"], shape)  # auto values as the model was trained with
    size = prepare_settings.image_size(prepare)
    classes = info["classes"]
    results = []
    progress = tqdm(total=len(files), unit="img", desc=f"predict {name}", disable=len(files) < PROGRESS_FROM,
                    file=sys.stderr)
    batch = p["evaluate"]["batch_size"]
    for kept, pixels in prediction.batches(files, prepare, size, p["data"]["max_image_pixels"], batch, skipped):
        probs = np.asarray(model.predict_on_batch(pixels.astype(np.float32) / 255.0))
        results.append(prediction.top_k(kept, probs, classes, min(args.top_k or p["evaluate"]["top_k"],
                                                                  len(classes))))
        progress.update(len(kept))
    progress.close()
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not results:
        raise UserError(f"no usable image among the {given} files given (reasons above)")
    table = pd.concat(results, ignore_index=True)
    table.to_csv(sys.stdout if args.out == "-" else args.out, index=False, float_format="%.5f")
    print(f"predict {name}: {len(table)} images, {len(skipped)} skipped"
          + ("" if args.out == "-" else f", wrote {args.out}"), file=sys.stderr)


if __name__ == "__main__":
    main()
