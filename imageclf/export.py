"""Export one trained model in the formats Keras writes itself (`model.export`), check each format against the Keras
model on real images (parity, file size, CPU latency), and describe the export in a model card.

Every exported model takes raw pixels: a uint8 tensor [batch, height, width, channels], values 0-255, the image
converted as the prepare stage converts it (colour mode, inversion, resize policy); it returns softmax probabilities
in the order of classes.txt.
"""

from __future__ import annotations

import shutil
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imageclf.errors import UserError

FILES = {"tf_saved_model": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}
Runner = Callable[[np.ndarray], np.ndarray]


def pixel_model(model: keras.Model, shape: tuple[int, int, int]) -> keras.Model:
    """`model` behind an input of raw uint8 pixels, so a consumer needs no preprocessing of ours."""
    pixels = keras.Input(shape, dtype="uint8", name="pixels")
    return keras.Model(pixels, model(keras.layers.Rescaling(1 / 255)(pixels)), name=f"{model.name}_pixels")


def write(model: keras.Model, out: Path, formats: list[str]) -> dict[str, Path]:
    """Each format's file (or folder) under out, written by Keras' own exporters."""
    paths = {}
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
        paths[fmt] = path
    return paths


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
