"""Export one trained model in the formats Keras writes itself (`model.export`), check each format against the Keras
model on real images (parity, file size, CPU latency), and describe the export in a model card.

Every exported model takes raw pixels: a uint8 tensor [batch, height, width, channels], values 0-255, the image
converted as the prepare stage converts it (colour mode, inversion, resize policy); it returns softmax probabilities
in the order of classes.txt.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

import imageclf.models.transfer  # noqa: F401  (registers the layers a transfer model.keras holds, for loading)
from imageclf.cache.shards import load_split, read_meta
from imageclf.core import params, paths
from imageclf.core.errors import UserError
from imageclf.deploy import model_card, selection
from imageclf.deploy.settings import FILES
from imageclf.evaluate import scoring
from imageclf.evaluate.metrics import with_temperature
from imageclf.train import config
from imageclf.train.settings import resolve_budget

Runner = Callable[[np.ndarray], np.ndarray]


def pixel_model(model: keras.Model, shape: tuple[int, int, int], temperature: float | None = None) -> keras.Model:
    """`model` behind an input of raw uint8 pixels, so a consumer needs no preprocessing of ours; with a temperature,
    its probabilities temperature-scaled: softmax(log p / T), as evaluate.metrics.with_temperature."""
    pixels = keras.Input(shape, dtype="uint8", name="pixels")
    probs = model(keras.layers.Rescaling(1 / 255)(pixels))
    if temperature is not None:
        ops = keras.ops
        probs = keras.layers.Lambda(lambda p: ops.softmax(ops.log(ops.clip(p, 1e-12, 1.0)) / temperature),
                                    name="temperature")(probs)
    return keras.Model(pixels, probs, name=f"{model.name}_pixels")


def temperature(name: str, scores: dict, split: str) -> float:
    """The temperature evaluate fitted on val for the model (export.calibrated), or a one-line error."""
    fitted = scores.get(split, {}).get("calibrated")
    if fitted is None:
        raise UserError(f"export.calibrated is true, but {name} has no temperature in reports/eval/{name}/metrics.json "
                        "(evaluate.calibrate false, or a model retrained on train+val: no held-out val to fit it on); "
                        "set evaluate.calibrate true, or export.calibrated false")
    return float(fitted["temperature"])


def write(model: keras.Model, out: Path, formats: list[str]) -> dict[str, Path]:
    """Each format's file (or folder) under out, written by Keras' own exporters."""
    written = {}
    for fmt in formats:
        path = out / FILES[fmt]
        if path.is_dir():
            shutil.rmtree(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx on numpy 2: np.object probes
            try:
                model.export(str(path), format=fmt, verbose=False)
            except ImportError as err:
                raise UserError(f"export.formats: {fmt} needs a package that is missing ({err}); "
                                "reinstall the requirements (make install)") from None
        written[fmt] = path
    return written


def runner(fmt: str, path: Path) -> Runner:
    """A function from a uint8 pixel batch to probabilities, through the runtime of that format."""
    if fmt == "tf_saved_model":
        loaded = tf.saved_model.load(str(path))  # kept by the closure: its variables die with it
        return lambda x: loaded.serve(tf.constant(x)).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    with warnings.catch_warnings():  # TF's own LiteRT interpreter: no extra package for a check on CPU
        warnings.simplefilter("ignore", UserWarning)  # "tf.lite.Interpreter is deprecated": ai_edge_litert's twin
        interpreter = tf.lite.Interpreter(model_path=str(path))
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    allocated: list[tuple] = [()]

    def run(x: np.ndarray) -> np.ndarray:
        if allocated[0] != x.shape:
            interpreter.resize_tensor_input(source, x.shape)
            interpreter.allocate_tensors()
            allocated[0] = x.shape
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return run


def predict(run: Runner, pixels: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([run(pixels[i:i + batch_size]) for i in range(0, len(pixels), batch_size)])


def parity(reference: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Largest absolute probability difference and the share of identical top-1 classes."""
    return {"max_abs_diff": float(np.abs(probs - reference).max()),
            "top1_agreement": float((probs.argmax(axis=1) == reference.argmax(axis=1)).mean())}


def latency(run: Runner, pixels: np.ndarray, runs: int, batch_size: int) -> dict[str, float]:
    """Median milliseconds of one single-image call, and images per second of batch calls (after a warm-up)."""
    batch = pixels[:batch_size]
    run(pixels[:1])
    run(batch)
    single = []
    for i in range(runs):
        start = time.perf_counter()
        run(pixels[i % len(pixels)][None])
        single.append(time.perf_counter() - start)
    batched = []
    for _ in range(5):
        start = time.perf_counter()
        run(batch)
        batched.append(time.perf_counter() - start)
    return {"latency_ms": round(1000 * statistics.median(single), 3),
            "images_per_s": round(len(batch) / statistics.median(batched), 1)}


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 3)


def export_chosen(p: dict) -> dict:
    """The export stage: the model export.model names (best: by export.metric) in export.formats, each checked against
    the Keras model on evaluate.split images, with classes.txt and the model card; returns the export metric."""
    cfg = p["export"]
    models = params.model_names(p["models"])
    name = selection.choose(cfg["model"], models, cfg["metric"], "params.yaml: 'export.model'")
    chosen_by = selection.chosen_by(cfg["model"], models, cfg["metric"], p["evaluate"]["split"])
    meta = read_meta(paths.PREPARED)
    model, _ = scoring.load_model(name, paths.MODELS / name, meta["classes"])
    split, batch = p["evaluate"]["split"], p["evaluate"]["batch_size"]
    pixels = load_split(paths.PREPARED, split)[0][:cfg["parity_images"]]
    if not len(pixels):
        raise UserError(f"evaluate.split '{split}' has no images to check the exported formats on")
    scores = json.loads((paths.EVAL_REPORTS / name / "metrics.json").read_text())
    scale = temperature(name, scores, split) if cfg["calibrated"] else None
    reference = model.predict(pixels.astype(np.float32) / 255.0, batch_size=batch, verbose=0)
    if scale is not None:  # the numpy definition the exported layer is checked against
        reference = with_temperature(reference, scale)
    wrapped = pixel_model(model, tuple(meta["shape"]), scale)
    wrapped.predict_on_batch(pixels[:1])  # Keras' ONNX exporter refuses a model never called (seen with 2 devices)
    if paths.EXPORT.exists():
        shutil.rmtree(paths.EXPORT)
    paths.EXPORT.mkdir(parents=True)
    files = write(wrapped, paths.EXPORT, cfg["formats"])
    keras_model = paths.MODELS / name / "model.keras"
    formats = {"keras": {"file": str(keras_model), "size_mb": size_mb(keras_model),
                         **latency(wrapped.predict_on_batch, pixels, cfg["latency_runs"], batch)}}
    for fmt, path in files.items():
        run = runner(fmt, path)
        formats[fmt] = {"file": path.name, "size_mb": size_mb(path),
                        **parity(reference, predict(run, pixels, batch)),
                        **latency(run, pixels, cfg["latency_runs"], batch)}
        print(f"export {name} {fmt}: {formats[fmt]}")
    pairs = pd.read_csv(paths.EVAL_REPORTS / name / "confused_pairs.csv")
    entry = resolve_budget(config.model_config(p, name), meta["splits"]["train"]["count"], len(meta["classes"]))
    entry["hyper"] = config.hyperparameters(entry)  # the family's defaults too: the card lists every setting
    card = model_card.render(name, entry, chosen_by, p["data"], p["prepare"], meta, scores, split, pairs, formats,
                             cfg["tolerance"], model_card.provenance(name), scale)
    (paths.EXPORT / "classes.txt").write_text("\n".join(meta["classes"]) + "\n")
    (paths.EXPORT / "model_card.md").write_text(card)
    paths.EXPORT_REPORTS.mkdir(parents=True, exist_ok=True)
    (paths.EXPORT_REPORTS / "model_card.md").write_text(card)
    summary = {"model": name, "split": split, "images": len(pixels), "temperature": scale, **formats}
    (paths.EXPORT_REPORTS / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    off = [f"{fmt} (max |p difference| {formats[fmt]['max_abs_diff']:.2g})" for fmt in files
           if formats[fmt]["max_abs_diff"] > cfg["tolerance"]]
    if off:
        raise UserError(f"export: {', '.join(off)} disagree with the Keras model of {name} beyond export.tolerance="
                        f"{cfg['tolerance']:g}; see reports/export/metrics.json")
    print(f"export {name}: {', '.join(str(f) for f in files.values())}, model card {paths.EXPORT / 'model_card.md'}")
    return summary
