"""Domain-shift evaluation: score a trained model on another dataset source through a class mapping."""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np

from imageclf.cache.settings import from_shape, image_size
from imageclf.core.errors import UserError
from imageclf.core.params import validate_section
from imageclf.data import images, sources
from imageclf.evaluate import metrics


def evaluate(model: keras.Model, classes: list[str], data: dict, prepare: dict, shift: dict, cfg: dict) -> dict:
    """Metrics of the model on the mapped images of shift['data'] (merged over the main data block)."""
    prepare = from_shape(prepare, model.input_shape[1:])  # auto size and colour as the model was trained with
    other = validate_section("evaluate.domain_shift.data", {**data, **shift["data"]}, sources.PARAMS)
    unknown = sorted(set(shift["class_map"].values()) - set(classes))
    if unknown:
        raise UserError(f"evaluate.domain_shift.class_map: {unknown} are not classes of the model ({classes})")
    kept: list[tuple[sources.Item, int]] = []
    dropped: Counter[str] = Counter()
    per_class: Counter[str] = Counter()
    for item in sorted(sources.collect(other).items, key=lambda i: i.path):
        target = shift["class_map"].get(item.class_name)
        if target is None:
            dropped[item.class_name] += 1
        elif shift["max_per_class"] is None or per_class[item.class_name] < shift["max_per_class"]:
            per_class[item.class_name] += 1
            kept.append((item, classes.index(target)))
    pixels, labels, unreadable = [], [], 0
    for item, label in kept:
        try:
            img = images.open_image(item.read(), other["max_image_pixels"])
        except (ValueError, OSError):
            unreadable += 1
            continue
        pixels.append(images.to_array(img, image_size(prepare), prepare["color"], prepare["resize"],
                                      prepare["invert"]))
        labels.append(label)
    if not labels:
        raise UserError("evaluate.domain_shift: no readable image of the other dataset maps to a model class; "
                        "check class_map against its class names")
    probs = model.predict(np.stack(pixels).astype(np.float32) / 255.0, batch_size=cfg["batch_size"], verbose=0)
    result = metrics.split_metrics(np.array(labels), probs.astype(np.float64), cfg["top_k"], cfg["ece_bins"])
    return {**result, "source": other["source"], "dropped_unmapped": sum(dropped.values()),
            "dropped_by_class": dict(sorted(dropped.items())), "unreadable": unreadable}
