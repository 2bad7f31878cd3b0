"""The model zoo: one registered builder function per family.

A builder takes the input shape, the number of classes and its own keyword hyperparameters (the entry's keys in
params.yaml) and returns an uncompiled Keras model whose input is an image in [0, 1] and whose output is softmax
probabilities (float32 even under mixed precision). Every hyperparameter name means the same thing in every family
(HYPERPARAMETERS below says what, and checks it). The from-scratch families are in scratch.py, the transfer family
in transfer.py; adding one is one decorated function. `python -m imageclf.models` lists the families.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers, regularizers

from imageclf.core.errors import UserError
from imageclf.core.params import NUMBER, Field, did_you_mean, int_list, positive, rate

FEATURE_KEYS = ("backbone", "weights", "input_size", "pooling")  # what a features: set fixes for its entries
POOLINGS = ("auto", "flatten", "avg", "max", "avgpool4")  # to_vector: a feature map to a vector
# pooling auto: flatten a map of at most this many cells (a 28-32 px image after two 2x2 poolings), max over a larger
# one, whose flattened head would grow with the image's area (docs/training.md "Where the objects are")
AUTO_FLATTEN_CELLS = 64
ACTIVATIONS = ("relu", "relu6", "elu", "selu", "gelu", "silu", "swish", "leaky_relu", "mish", "tanh", "sigmoid")

# Family hyperparameters: one meaning per name, in every family that has it (register checks each builder).
HYPERPARAMETERS: dict[str, Field] = {
    "filters": Field((list,), check=int_list(1), doc="convolution filters of each block, first to last"),
    "kernel": Field((int,), minimum=1, doc="convolution kernel size"),
    "convs": Field((int,), minimum=1, doc="convolutions per block, before its pooling"),
    "conv_dropout": Field(NUMBER, check=rate, doc="dropout rate after each convolution block"),
    "dense": Field((list,), check=int_list(0), doc="units of each hidden dense layer before the classifier"),
    "dropout": Field(NUMBER, check=rate,
                     doc="dropout rate after each hidden dense layer (with none: before the classifier)"),
    "l2": Field(NUMBER, minimum=0, doc="L2 penalty on the convolution and dense kernels"),
    "activation": Field((str,), choices=ACTIVATIONS, doc="activation of the convolution and hidden dense layers"),
    "batch_norm": Field((bool,), doc="batch normalisation after each hidden dense layer"),
    "backbone": Field((str,), doc="ImageNet backbone (efficientnet_lite0 or a keras.applications one)"),
    "weights": Field((str,), nullable=True, doc="backbone weights: imagenet, null (random) or a weight file path"),
    "mode": Field((str,), choices=("frozen", "finetune", "scratch"),
                  doc="frozen backbone, finetune its top layers, or train it from scratch"),
    "input_size": Field((int, str), nullable=True,
                        check=lambda v: None if v == "auto" or (isinstance(v, int) and v >= 1)
                        else f"must be auto, null or an integer >= 1, got {v!r}",
                        doc="side the backbone sees (null: the image, raised to the backbone's minimum; auto: the "
                            "image, at least 48 px, up to 224 px for fewer images)"),
    "pooling": Field((str,), choices=POOLINGS,
                     doc="feature map to vector: flatten (where each feature is stays), avg or max over the whole "
                         "map (a feature counts wherever it is: objects anywhere in the picture), avgpool4 (4x4 "
                         f"average pooling + flatten); auto: flatten a map of at most {AUTO_FLATTEN_CELLS} cells, "
                         "else max"),
    "finetune_top_n": Field((int,), minimum=1, doc="backbone layers (from the top) that fine-tuning trains"),
    "head_epochs": Field((int,), minimum=0, doc="finetune: epochs the head trains alone before the top layers join"),
    "finetune_lr_factor": Field(NUMBER, check=positive,
                                doc="finetune: lr factor once the top layers join"),
    "features": Field((str,), nullable=True,
                      doc="frozen: the params.yaml `features:` set whose cached features the head trains on; "
                          "backbone, weights, input_size and pooling come from that set"),
}

# Where each family is defined, imported when an entry names it: the from-scratch families never read transfer code
# (dvc.yaml keeps each out of the other's stages).
HOMES = {"transfer": "imageclf.models.transfer"}
SCRATCH = "imageclf.models.scratch"


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[..., keras.Model]
    min_size: int  # smallest input height/width the architecture accepts
    check: Callable[[dict, str], None] | None = None  # semantic checks of the chosen hyperparameters

    def hyperparameters(self) -> dict[str, object]:
        """The builder's keyword hyperparameters and their defaults."""
        return {n: p.default for n, p in inspect.signature(self.build).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def summary(self) -> str:
        """The builder's one-line description."""
        return inspect.getdoc(self.build).split("\n")[0]


REGISTRY: dict[str, Family] = {}


def register(name: str, min_size: int = 1, check: Callable[[dict, str], None] | None = None) -> Callable:
    def wrap(build: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        unknown = [k for k in Family(name, build, min_size).hyperparameters() if k not in HYPERPARAMETERS]
        if unknown:
            raise TypeError(f"family {name}: hyperparameters {unknown} have no entry in registry.HYPERPARAMETERS")
        REGISTRY[name] = Family(name, build, min_size, check)
        return build

    return wrap


def family(name: object, where: str) -> Family:
    """The registered family called `name`, importing the module of one defined elsewhere."""
    if name not in REGISTRY:
        importlib.import_module(HOMES.get(name, SCRATCH) if isinstance(name, str) else SCRATCH)
    if name not in REGISTRY:
        known = sorted({*REGISTRY, *HOMES})
        raise UserError(f"params.yaml: '{where}' is {name!r}, not a known family{did_you_mean(name, known)}; "
                        f"known: {', '.join(known)}")
    return REGISTRY[name]


def l2_penalty(weight: float) -> regularizers.Regularizer | None:
    return regularizers.L2(weight) if weight else None


def resolve_pooling(pooling: str, height: int, width: int) -> str:
    """The pooling a map of height x width cells gets: `pooling` itself unless auto."""
    if pooling != "auto":
        return pooling
    return "flatten" if height * width <= AUTO_FLATTEN_CELLS else "max"


def to_vector(x, pooling: str, source: str):
    """A feature map to a vector, by POOLINGS; `source` names what made the map (for the error)."""
    pooling = resolve_pooling(pooling, x.shape[1], x.shape[2])
    if pooling == "flatten":
        return layers.Flatten(name="flatten")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    if min(x.shape[1:3]) < 4:
        raise UserError(f"pooling avgpool4 needs a feature map of at least 4x4; {source} gives {x.shape[1]}x"
                        f"{x.shape[2]}: raise input_size or use avg")
    return layers.Flatten(name="flatten")(layers.AveragePooling2D(4, name="avg_pool_4x4")(x))


def classifier_head(x, num_classes: int, *, dense=(), dropout: float = 0.0, l2: float = 0.0,
                    activation: str = "relu", batch_norm: bool = False):
    """Hidden dense layers (each followed by batch norm and dropout when set; with none, dropout acts on the
    input), then the softmax classifier in float32, so mixed precision never rounds the probabilities."""
    for n in dense:
        x = layers.Dense(n, activation=activation, kernel_regularizer=l2_penalty(l2))(x)
        if batch_norm:
            x = layers.BatchNormalization()(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    if not dense and dropout:
        x = layers.Dropout(dropout)(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def listing() -> str:
    """Markdown table of every family with its hyperparameters and defaults (the README's family table)."""
    modules = (SCRATCH, *HOMES.values())
    for module in modules:
        importlib.import_module(module)
    # by defining module, then registration: REGISTRY's own order is whichever module was imported first
    families = sorted(REGISTRY.values(), key=lambda f: modules.index(f.build.__module__)
                      if f.build.__module__ in modules else len(modules))
    rows = ["| family | architecture | hyperparameters (defaults) | min size |", "|---|---|---|---|"]
    for fam in families:
        hyper = ", ".join(f"`{k}` {_value(v)}" for k, v in fam.hyperparameters().items())
        rows.append(f"| `{fam.name}` | {fam.summary()} | {hyper} | {fam.min_size} |")
    meanings = ["", "| hyperparameter | meaning (the same in every family) |", "|---|---|"]
    used = {k for fam in REGISTRY.values() for k in fam.hyperparameters()}
    meanings += [f"| `{k}` | {field.doc} |" for k, field in HYPERPARAMETERS.items() if k in used]
    return "\n".join(rows + meanings)
