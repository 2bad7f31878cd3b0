"""The model zoo: one registered builder function per family.

A builder takes the input shape, the number of classes and its own keyword hyperparameters (the entry's keys in
params.yaml) and returns an uncompiled Keras model whose input is an image in [0, 1] and whose output is softmax
probabilities (float32 even under mixed precision). Every hyperparameter name means the same thing in every family
(params.HYPERPARAMETERS says what, and checks it). Adding a family is one decorated function here; the transfer
family registers itself in transfer.py. `python -m imageclf.models` lists the families.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers, regularizers

from imageclf.errors import UserError
from imageclf.params import HYPERPARAMETERS, did_you_mean

# Families defined outside this module, imported only when an entry asks for them: editing them never changes
# what a from-scratch model's training reads (dvc.yaml keeps them out of those stages' deps).
ELSEWHERE = {"transfer": "imageclf.transfer"}


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
            raise TypeError(f"family {name}: hyperparameters {unknown} have no entry in params.HYPERPARAMETERS")
        REGISTRY[name] = Family(name, build, min_size, check)
        return build

    return wrap


def family(name: object, where: str) -> Family:
    """The registered family called `name`, importing the module of one defined elsewhere."""
    if name in ELSEWHERE and name not in REGISTRY:
        importlib.import_module(ELSEWHERE[name])
    if name not in REGISTRY:
        known = sorted({*REGISTRY, *ELSEWHERE})
        raise UserError(f"params.yaml: '{where}' is {name!r}, not a known family{did_you_mean(name, known)}; "
                        f"known: {', '.join(known)}")
    return REGISTRY[name]


def _l2(weight: float) -> regularizers.Regularizer | None:
    return regularizers.L2(weight) if weight else None


def classifier_head(x, num_classes: int, *, dense=(), dropout: float = 0.0, l2: float = 0.0,
                    activation: str = "relu", batch_norm: bool = False):
    """Hidden dense layers (each followed by batch norm and dropout when set; with none, dropout acts on the
    input), then the softmax classifier in float32, so mixed precision never rounds the probabilities."""
    for n in dense:
        x = layers.Dense(n, activation=activation, kernel_regularizer=_l2(l2))(x)
        if batch_norm:
            x = layers.BatchNormalization()(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    if not dense and dropout:
        x = layers.Dropout(dropout)(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


@register("mlp")
def mlp(input_shape: tuple, num_classes: int, *, dense: list[int] = (512, 256, 256, 128, 128, 64),
        dropout: float = 0.0, l2: float = 0.0, activation: str = "relu") -> keras.Model:
    """Fully-connected stack on the flattened image."""
    inputs = keras.Input(input_shape)
    x = layers.Flatten()(inputs)
    outputs = classifier_head(x, num_classes, dense=dense, dropout=dropout, l2=l2, activation=activation)
    return keras.Model(inputs, outputs, name="mlp")


@register("lenet5", min_size=12)
def lenet5(input_shape: tuple, num_classes: int, *, filters: list[int] = (6, 16), dense: list[int] = (120, 84),
           dropout: float = 0.0, l2: float = 0.0, activation: str = "relu") -> keras.Model:
    """LeNet-5: 2x (conv 5x5 + avg-pool 2x2), then dense 120/84."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, n in enumerate(filters):
        x = layers.Conv2D(n, 5, padding="same" if i == 0 else "valid", activation=activation,
                          kernel_regularizer=_l2(l2))(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    outputs = classifier_head(x, num_classes, dense=dense, dropout=dropout, l2=l2, activation=activation)
    return keras.Model(inputs, outputs, name="lenet5")


@register("cnn_lego", min_size=8)
def cnn_lego(input_shape: tuple, num_classes: int, *, filters: list[int] = (16, 32, 64), kernel: int = 4,
             dense: list[int] = (2048, 1024), dropout: float = 0.2) -> keras.Model:
    """3x (conv 4x4 same + BN + avg-pool 2x2), then dense 2048/1024, each with BN and dropout."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        x = layers.Conv2D(n, kernel, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    outputs = classifier_head(x, num_classes, dense=dense, dropout=dropout, batch_norm=True)
    return keras.Model(inputs, outputs, name="cnn_lego")


@register("cnn_flowers", min_size=81)
def cnn_flowers(input_shape: tuple, num_classes: int, *, filters: list[int] = (32, 64, 128, 256), l2: float = 1e-3,
                conv_dropout: float = 0.3, dense: list[int] = (64,), dropout: float = 0.1) -> keras.Model:
    """4x (conv 3x3 L2 + BN + ReLU + max-pool 3/3 + dropout), global max pool, dense 64."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        x = layers.Conv2D(n, 3, padding="same", kernel_regularizer=_l2(l2))(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(3, strides=3)(x)
        if conv_dropout:
            x = layers.Dropout(conv_dropout)(x)
    x = layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dense=dense, dropout=dropout), name="cnn_flowers")


@register("cnn_small", min_size=10)
def cnn_small(input_shape: tuple, num_classes: int, *, filters: list[int] = (32, 64), dense: list[int] = (128,),
              dropout: float = 0.5) -> keras.Model:
    """Conv 32 3x3 + max-pool, conv 64 3x3 + max-pool, dense 128 + dropout 0.5."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        x = layers.Conv2D(n, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dense=dense, dropout=dropout), name="cnn_small")


@register("cnn_bn", min_size=4)
def cnn_bn(input_shape: tuple, num_classes: int, *, filters: list[int] = (16, 32), convs: int = 2,
           conv_dropout: float = 0.25, dense: list[int] = (256,), dropout: float = 0.4, l2: float = 0.0) -> keras.Model:
    """Modern small CNN: per block `convs` x (conv 3x3 + BN + ReLU), max-pool 2x2, dropout; dense + BN + dropout."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        for _ in range(convs):
            x = layers.Conv2D(n, 3, padding="same", use_bias=False, kernel_regularizer=_l2(l2))(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
        if conv_dropout:
            x = layers.Dropout(conv_dropout)(x)
    x = layers.Flatten()(x)
    outputs = classifier_head(x, num_classes, dense=dense, dropout=dropout, l2=l2, batch_norm=True)
    return keras.Model(inputs, outputs, name="cnn_bn")


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def listing() -> str:
    """Markdown table of every family with its hyperparameters and defaults (the README's family table)."""
    for name in ELSEWHERE:
        family(name, "family")
    rows = ["| family | architecture | hyperparameters (defaults) | min size |", "|---|---|---|---|"]
    for fam in REGISTRY.values():
        hyper = ", ".join(f"`{k}` {_value(v)}" for k, v in fam.hyperparameters().items())
        rows.append(f"| `{fam.name}` | {fam.summary()} | {hyper} | {fam.min_size} |")
    meanings = ["", "| hyperparameter | meaning (the same in every family) |", "|---|---|"]
    used = {k for fam in REGISTRY.values() for k in fam.hyperparameters()}
    meanings += [f"| `{k}` | {field.doc} |" for k, field in HYPERPARAMETERS.items() if k in used]
    return "\n".join(rows + meanings)


if __name__ == "__main__":
    print(listing())
