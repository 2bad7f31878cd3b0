"""The export stage's keys (params.yaml `export:`) and the formats it writes, validated without loading TensorFlow."""

from __future__ import annotations

from imageclf.core.params import NUMBER, Field, Section
from imageclf.deploy.selection import metric_problem

FILES = {"tf_saved_model": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}  # what model.export writes


def _formats(value: list) -> str | None:
    if value and len(set(value)) == len(value) and all(v in FILES for v in value):
        return None
    return f"must list distinct formats among {', '.join(FILES)}, got {value!r}"


PARAMS = Section({
    "model": Field((str,)),  # best, or a name listed under models:
    "metric": Field((str,), check=metric_problem),  # what `best` maximises, e.g. val.accuracy
    "formats": Field((list,), check=_formats),
    "tolerance": Field(NUMBER, minimum=0),  # largest probability difference a format may show against Keras
    "parity_images": Field((int,), minimum=1),  # evaluate.split images of the parity check
    "latency_runs": Field((int,), minimum=1),  # single-image calls timed per format
    "calibrated": Field((bool,)),  # the files give temperature-scaled probabilities (evaluate's temperature)
})
