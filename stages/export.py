"""export: the chosen model (params.yaml export.model: best by export.metric, or a listed name) in the formats Keras
exports itself, each checked against the Keras model on evaluate.split images, with classes.txt and a model card.

Writes export/ (the files a consumer needs) and reports/export/ (parity, size and latency metrics; the card again).
A format whose probabilities differ from the Keras model's by more than export.tolerance fails the stage.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from imageclf import params, selection
from imageclf.errors import UserError, cli

PREPARED = Path("data/prepared")
OUT = Path("export")
REPORTS = Path("reports/export")


@cli
def main() -> None:
    p = params.load(("data", "prepare", "models", "train_defaults", "train", "features", "evaluate", "export"))
    cfg = p["export"]
    models = params.model_names(p["models"])
    name = selection.choose(cfg["model"], models, cfg["metric"], "params.yaml: 'export.model'")
    chosen_by = (f"export.model = best: the highest {cfg['metric']} of {', '.join(models)}" if cfg["model"] == "best"
                 else "export.model")
    import imageclf.transfer  # noqa: F401  (registers the layers a transfer model.keras holds, for loading)
    from imageclf import config, evaluation, export, model_card  # TensorFlow loads once the params are good
    from imageclf.shards import load_split, read_meta

    meta = read_meta(PREPARED)
    model, _ = evaluation.load_model(name, Path("models") / name, meta["classes"])
    split, batch = p["evaluate"]["split"], p["evaluate"]["batch_size"]
    pixels = load_split(PREPARED, split)[0][:cfg["parity_images"]]
    if not len(pixels):
        raise UserError(f"evaluate.split '{split}' has no images to check the exported formats on")
    reference = model.predict(pixels.astype(np.float32) / 255.0, batch_size=batch, verbose=0)
    wrapped = export.pixel_model(model, tuple(meta["shape"]))
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    paths = export.write(wrapped, OUT, cfg["formats"])
    keras_model = Path("models") / name / "model.keras"
    formats = {"keras": {"file": str(keras_model), "size_mb": export.size_mb(keras_model),
                         **export.latency(wrapped.predict_on_batch, pixels, cfg["latency_runs"], batch)}}
    for fmt, path in paths.items():
        run = export.runner(fmt, path)
        formats[fmt] = {"file": path.name, "size_mb": export.size_mb(path),
                        **export.parity(reference, export.predict(run, pixels, batch)),
                        **export.latency(run, pixels, cfg["latency_runs"], batch)}
        print(f"export {name} {fmt}: {formats[fmt]}")
    scores = json.loads((selection.EVAL_DIR / name / "metrics.json").read_text())
    pairs = pd.read_csv(selection.EVAL_DIR / name / "confused_pairs.csv")
    entry = config.model_config(p, name)
    entry["hyper"] = config.hyperparameters(entry)  # the family's defaults too: the card lists every setting
    card = model_card.render(name, entry, chosen_by, p["data"], p["prepare"], meta, scores, split, pairs, formats,
                             cfg["tolerance"], model_card.provenance(name))
    (OUT / "classes.txt").write_text("\n".join(meta["classes"]) + "\n")
    (OUT / "model_card.md").write_text(card)
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "model_card.md").write_text(card)
    summary = {"model": name, "split": split, "images": len(pixels), **formats}
    (REPORTS / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    off = [f"{fmt} (max |p difference| {formats[fmt]['max_abs_diff']:.2g})" for fmt in paths
           if formats[fmt]["max_abs_diff"] > cfg["tolerance"]]
    if off:
        raise UserError(f"export: {', '.join(off)} disagree with the Keras model of {name} beyond export.tolerance="
                        f"{cfg['tolerance']:g}; see reports/export/metrics.json")
    print(f"export {name}: {', '.join(str(p) for p in paths.values())}, model card {OUT / 'model_card.md'}")


if __name__ == "__main__":
    main()
