"""The evaluate stage's keys (params.yaml `evaluate:`), validated without loading TensorFlow."""

from __future__ import annotations

from imageclf.core.params import Field, Section
from imageclf.core.paths import SPLITS


def _domain_shift(value: dict) -> str | None:
    keys = {"data", "class_map", "max_per_class"}
    if set(value) != keys:
        return f"must be null or have exactly the keys {', '.join(sorted(keys))}; got {sorted(value)}"
    if not isinstance(value["class_map"], dict) or not value["class_map"]:
        return "needs class_map: a mapping of the other dataset's class names to the model's class names"
    if not isinstance(value["data"], dict):
        return f"needs data: a mapping of the data keys to change, got {value['data']!r}"
    limit = value["max_per_class"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        return f"needs max_per_class: null or an integer >= 1, got {limit!r}"
    return None


PARAMS = Section({
    "split": Field((str,), choices=SPLITS),  # the split behind the per-class report, confusion, pairs, predictions
    "batch_size": Field((int,), minimum=1),
    "top_k": Field((int,), minimum=1),
    "ece_bins": Field((int,), minimum=1),
    "min_errors": Field((int,), minimum=0),
    "gallery_pairs": Field((int,), minimum=1),
    "gallery_per_pair": Field((int,), minimum=1),
    "domain_shift": Field((dict,), nullable=True, check=_domain_shift),
    "bootstrap_resamples": Field((int,), minimum=0),  # 95% intervals of accuracy and macro F1; 0: none
    "seed": Field((int,)),  # of the bootstrap resampling
    "tta": Field((str,), choices=("none", "flip", "dihedral")),  # test-time views averaged on evaluate.split
    "calibrate": Field((bool,)),  # temperature scaling fitted on val, NLL/ECE before and after on evaluate.split
})
