"""Load params.yaml and validate it early, with messages that name the key and what was expected."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imageclf.errors import UserError

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class Field:
    """One expected key: accepted types, optional choices / bounds, whether null is allowed."""

    types: tuple[type, ...]
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None  # extra rule; returns a problem or None
    doc: str = ""  # what the value means (listings)

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else f"must be set ({self.describe()}), got null"
        if isinstance(value, bool) and bool not in self.types:
            return f"must be {self.describe()}, got {value!r}"
        if not isinstance(value, self.types):
            return f"must be {self.describe()}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            hint = did_you_mean(value, self.choices)
            return f"must be one of {', '.join(map(str, self.choices))}; got {value!r}{hint}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}, got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum}, got {value!r}"
        return self.check(value) if self.check else None

    def describe(self) -> str:
        names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
                 list: "a list", dict: "a mapping"}
        text = " or ".join(names.get(t, t.__name__) for t in self.types)
        return text + (" or null" if self.nullable else "")


def did_you_mean(value: object, known) -> str:
    """' (did you mean 'x'?)' for the closest known name, or ''."""
    hint = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def _image_size(value: Any) -> str | None:
    if isinstance(value, int) and value >= 8:
        return None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v >= 8 for v in value):
        return None
    return f"must be an integer >= 8 or [height, width] of such integers, got {value!r}"


def _fractions(value: Any) -> str | None:
    if set(value) != {"train", "val", "test"}:
        return f"must have exactly the keys train, val, test; got {sorted(value)}"
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 for v in value.values()):
        return f"values must be numbers >= 0, got {value}"
    if abs(sum(value.values()) - 1.0) > 1e-6 or value["train"] <= 0:
        return f"must sum to 1 with train > 0, got {value}"
    return None


def _int_list(min_len: int) -> Callable[[Any], str | None]:
    def check(value: list) -> str | None:
        if len(value) < min_len or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
            least = f"at least {min_len} " if min_len else ""
            return f"must be a list of {least}integers >= 1, got {value!r}"
        return None

    return check


def _steps(value: int | str) -> str | None:
    if value == "auto" or (isinstance(value, int) and value >= 1):
        return None
    return f"must be auto or an integer >= 1, got {value!r}"


def _rate(value: float) -> str | None:
    return None if 0 <= value < 1 else f"must be a rate in [0, 1), got {value!r}"


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


NUMBER = (int, float)
FEATURE_KEYS = ("backbone", "weights", "input_size", "pooling")  # what a features: set fixes for its entries
ACTIVATIONS = ("relu", "relu6", "elu", "selu", "gelu", "silu", "swish", "leaky_relu", "mish", "tanh", "sigmoid")

# Family hyperparameters: one meaning per name, in every family that has it (imageclf.models checks each builder).
HYPERPARAMETERS: dict[str, Field] = {
    "filters": Field((list,), check=_int_list(1), doc="convolution filters of each block, first to last"),
    "kernel": Field((int,), minimum=1, doc="convolution kernel size"),
    "convs": Field((int,), minimum=1, doc="convolutions per block, before its pooling"),
    "conv_dropout": Field(NUMBER, check=_rate, doc="dropout rate after each convolution block"),
    "dense": Field((list,), check=_int_list(0), doc="units of each hidden dense layer before the classifier"),
    "dropout": Field(NUMBER, check=_rate,
                     doc="dropout rate after each hidden dense layer (with none: before the classifier)"),
    "l2": Field(NUMBER, minimum=0, doc="L2 penalty on the convolution and dense kernels"),
    "activation": Field((str,), choices=ACTIVATIONS, doc="activation of the convolution and hidden dense layers"),
    "batch_norm": Field((bool,), doc="batch normalisation after each hidden dense layer"),
    "backbone": Field((str,), doc="ImageNet backbone (efficientnet_lite0 or a keras.applications one)"),
    "weights": Field((str,), nullable=True, doc="backbone weights: imagenet, null (random) or a weight file path"),
    "mode": Field((str,), choices=("frozen", "finetune", "scratch"),
                  doc="frozen backbone, finetune its top layers, or train it from scratch"),
    "input_size": Field((int,), nullable=True, doc="side the backbone sees (null: the image, raised to its minimum)"),
    "pooling": Field((str,), choices=("avg", "avgpool4"),
                     doc="backbone feature map to vector: global average, or 4x4 average pooling + flatten"),
    "finetune_top_n": Field((int,), minimum=1, doc="backbone layers (from the top) that fine-tuning trains"),
    "head_epochs": Field((int,), minimum=0, doc="finetune: epochs the head trains alone before the top layers join"),
    "finetune_lr_factor": Field(NUMBER, check=lambda v: None if v > 0 else f"must be > 0, got {v!r}",
                                doc="finetune: lr factor once the top layers join"),
    "features": Field((str,), nullable=True,
                      doc="frozen: the params.yaml `features:` set whose cached features the head trains on; "
                          "backbone, weights, input_size and pooling come from that set"),
}
SOURCES = ("fashion-mnist", "elpv", "url", "folder", "kaggle")

SCHEMA: dict[str, dict[str, Field]] = {
    "data": {
        "source": Field((str,), choices=SOURCES),
        "path": Field((str,)),
        "url": Field((str,), nullable=True),
        "sha256": Field((str,), nullable=True),
        "kaggle_dataset": Field((str,), nullable=True),
        "labels": Field((str,), choices=("folder", "csv", "regex")),
        "labels_csv": Field((str,), nullable=True),
        "filename_regex": Field((str,), nullable=True),
        "min_per_class": Field((int,), minimum=1),
        "max_per_class": Field((int,), minimum=1, nullable=True),
        "max_image_pixels": Field((int,), minimum=1),
    },
    "split": {
        "seed": Field((int,)),
        "fractions": Field((dict,), check=_fractions),
        "drop_leaked": Field((bool,)),
    },
    "prepare": {
        "image_size": Field((int, list), check=_image_size),
        "color": Field((str,), choices=("rgb", "grayscale")),
        "invert": Field((bool,)),
        "resize": Field((str,), choices=("stretch", "pad", "crop")),
        "offline_augment": Field((int,), minimum=0),
        "offline_augment_level": Field((int,), choices=(1, 2, 3)),
        "shard_mb": Field(NUMBER, minimum=0.001),
        "workers": Field((int,), minimum=0),
        "seed": Field((int,)),
    },
    "evaluate": {
        "split": Field((str,), choices=("train", "val", "test")),
        "batch_size": Field((int,), minimum=1),
        "top_k": Field((int,), minimum=1),
        "ece_bins": Field((int,), minimum=1),
        "min_errors": Field((int,), minimum=0),
        "gallery_pairs": Field((int,), minimum=1),
        "gallery_per_pair": Field((int,), minimum=1),
        "domain_shift": Field((dict,), nullable=True, check=_domain_shift),
        "bootstrap_resamples": Field((int,), minimum=0),  # 95% intervals of accuracy and macro F1; 0: none
        "seed": Field((int,)),  # of the bootstrap resampling
    },
    "compare": {
        "alpha": Field(NUMBER, check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), got {v!r}"),
        "target_val_accuracy": Field(NUMBER, minimum=0, maximum=1),  # "seconds to reach" this val accuracy
    },
    # shared defaults of every model entry under `train:`; an entry overrides any of them
    "train_defaults": {
        "seed": Field((int,)),
        "epochs": Field((int,), minimum=1),
        "batch_size": Field((int,), minimum=1),
        "optimizer": Field((str,), choices=("adam", "sgd", "rmsprop", "adadelta")),
        "lr": Field(NUMBER, check=lambda v: None if v > 0 else f"must be > 0, got {v!r}"),
        "momentum": Field(NUMBER, minimum=0, maximum=1),
        "weight_decay": Field(NUMBER, minimum=0),
        "lr_schedule": Field((str,), choices=("constant", "exp_decay", "cosine", "warmup_cosine")),
        "warmup_epochs": Field((int,), minimum=0),
        "decay_start": Field((int,), minimum=0),
        "decay_rate": Field(NUMBER, minimum=0),
        "patience": Field((int,), minimum=1),
        "monitor": Field((str,), choices=("val_loss", "val_accuracy")),  # what early stopping and the best epoch follow
        "augment": Field((int,), choices=(0, 1, 2, 3)),
        "class_weight": Field((str,), choices=("none", "balanced")),
        "oversample": Field((bool,)),
        "retrain_full_epochs": Field((int,), minimum=0),
        "steps_per_execution": Field((int, str), check=_steps),
        "mixed_precision": Field((str,), choices=("auto", "on", "off")),
        "xla": Field((str,), choices=("auto", "on", "off")),
    },
}


def validate_section(name: str, section: Any, schema: Mapping[str, Field], where: str = "params.yaml") -> dict:
    """Check one mapping against its schema: unknown keys, missing keys and bad values are one-line errors."""
    if not isinstance(section, dict):
        raise UserError(f"{where}: '{name}' must be a mapping of keys, got {section!r}")
    for key in section:
        if key not in schema:
            tip = did_you_mean(f"{name}.{key}", [f"{name}.{k}" for k in schema]) or f"; known keys: {', '.join(schema)}"
            raise UserError(f"{where}: unknown key '{name}.{key}'{tip}")
    for key, field in schema.items():
        if key not in section:
            raise UserError(f"{where}: missing key '{name}.{key}' ({field.describe()}); add it to the file")
        problem = field.problem(section[key])
        if problem:
            raise UserError(f"{where}: '{name}.{key}' {problem}")
    return section


# python -m stages.check: gated rules and reported (never gated) metrics
CHECK_RULE = {
    "files": Field((str,)),  # glob of metric files, e.g. reports/eval/*/metrics.json
    "metric": Field((str,)),  # dotted key inside each file, e.g. test.accuracy
    "direction": Field((str,), choices=("higher", "lower")),  # which way is better
    "tolerance": Field(NUMBER, minimum=0),  # allowed change in the bad direction
    "relative": Field((bool,)),  # tolerance in % of the baseline value instead of absolute
}
CHECK_REPORT = {k: CHECK_RULE[k] for k in ("files", "metric")}
SCHEMA["check"] = {
    "baseline": Field((str,), check=lambda v: None if v else "must name a git ref or a baseline JSON file"),
    "rules": Field((list,), check=lambda v: None if v else "must list at least one rule"),
    "report": Field((list,)),
}


def _names(value: Any) -> str | None:
    if all(isinstance(v, str) for v in value) and len(set(value)) == len(value):
        return None
    return f"must be a list of distinct entry names under 'train:', got {value!r}"


EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")  # what Keras' model.export writes itself
SELECTION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "cohen_kappa")


def _selection_metric(value: str) -> str | None:
    split, _, key = value.partition(".")
    if split in ("train", "val", "test") and key in SELECTION_METRICS:
        return None
    return f"must be <split>.<metric> (split train, val or test; metric {', '.join(SELECTION_METRICS)}), got {value!r}"


def _formats(value: list) -> str | None:
    if value and len(set(value)) == len(value) and all(v in EXPORT_FORMATS for v in value):
        return None
    return f"must list distinct formats among {', '.join(EXPORT_FORMATS)}, got {value!r}"


SCHEMA["export"] = {
    "model": Field((str,)),  # best, or a name listed under models:
    "metric": Field((str,), check=_selection_metric),  # what `best` maximises, e.g. test.accuracy
    "formats": Field((list,), check=_formats),
    "tolerance": Field(NUMBER, minimum=0),  # largest probability difference a format may show against Keras
    "parity_images": Field((int,), minimum=1),  # evaluate.split images of the parity check
    "latency_runs": Field((int,), minimum=1),  # single-image calls timed per format
}

SCHEMA["models"] = {  # one DVC stage group each: editing transfer code never re-runs a from-scratch model
    "scratch": Field((list,), check=_names),
    "transfer": Field((list,), check=_names),
}


def _seed_values(value: list) -> str | None:
    if value and len(set(value)) == len(value) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                       for v in value):
        return None
    return f"must be a list of distinct integers >= 0, got {value!r}"


SCHEMA["seeds"] = {  # training variance: listed models train once more per seed value (stage groups seed*)
    "scratch": Field((list,), check=_names),
    "transfer": Field((list,), check=_names),
    "values": Field((list,), check=_seed_values),
}


def model_names(models: dict) -> list[str]:
    """Every model dvc repro trains, from-scratch entries first."""
    return [*models["scratch"], *models["transfer"]]


def load(sections: tuple[str, ...], path: Path = PARAMS_FILE) -> dict[str, dict]:
    """Read params.yaml and return the validated sections asked for."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the stage from the project root") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    out = {}
    for name in sections:
        if name not in raw:
            raise UserError(f"{path}: missing section '{name}'")
        out[name] = validate_section(name, raw[name], SCHEMA[name], str(path)) if name in SCHEMA else raw[name]
    _cross_checks(out, str(path))
    return out


def _cross_checks(params: dict[str, dict], where: str) -> None:
    seeds, models = params.get("seeds"), params.get("models")
    for group in ("scratch", "transfer") if seeds and models else ():
        extra = [name for name in seeds[group] if name not in models[group]]
        if extra:
            raise UserError(f"{where}: seeds.{group} lists {', '.join(extra)}, not in models.{group}; seeded runs "
                            f"repeat listed models: add {'it' if len(extra) == 1 else 'them'} to models.{group} first")
    data = params.get("data")
    if not data:
        return
    needs = {"url": ("url", "sha256"), "kaggle": ("kaggle_dataset",)}
    for key in needs.get(data["source"], ()):
        if not data[key]:
            raise UserError(f"{where}: data.source is '{data['source']}' but 'data.{key}' is not set")
    if data["source"] == "url" and not _is_sha256(data["sha256"]):
        raise UserError(f"{where}: 'data.sha256' must be 64 hex characters, got {data['sha256']!r}")
    if data["labels"] == "csv" and not data["labels_csv"]:
        raise UserError(f"{where}: data.labels is 'csv' but 'data.labels_csv' (path,label file) is not set")
    if data["labels"] == "regex" and not data["filename_regex"]:
        raise UserError(f"{where}: data.labels is 'regex' but 'data.filename_regex' is not set")


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def image_size(prepare: dict) -> tuple[int, int]:
    """prepare.image_size as (height, width)."""
    size = prepare["image_size"]
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def model_argument(argv: list[str], stage: str) -> str:
    """The model name a per-model stage is called with."""
    if len(argv) != 2:
        raise UserError(f"usage: python -m stages.{stage} <model name listed in params.yaml 'models:'>")
    return argv[1]
