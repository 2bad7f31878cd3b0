"""The model zoo: one registered builder function per family.

A builder takes the input shape, the number of classes and its own keyword hyperparameters (the family's params
block in params.yaml) and returns an uncompiled Keras model whose input is an image in [0, 1] and whose output is
softmax probabilities (float32 even under mixed precision). Adding a family is one decorated function here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers, regularizers

from imageclf import transfer


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


REGISTRY: dict[str, Family] = {}


def register(name: str, min_size: int = 1, check: Callable[[dict, str], None] | None = None) -> Callable:
    def wrap(build: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        REGISTRY[name] = Family(name, build, min_size, check)
        return build

    return wrap


def _l2(weight: float) -> regularizers.Regularizer | None:
    return regularizers.L2(weight) if weight else None


def _classifier(x, num_classes: int):
    """Softmax head in float32, so mixed precision never rounds the probabilities."""
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


@register("mlp")
def mlp(input_shape: tuple, num_classes: int, *, units: list[int] = (512, 256, 256, 128, 128, 64),
        dropout: float = 0.0, l2: float = 0.0) -> keras.Model:
    """Fully-connected stack on the flattened image (default 6 ReLU layers)."""
    inputs = keras.Input(input_shape)
    x = layers.Flatten()(inputs)
    for n in units:
        x = layers.Dense(n, activation="relu", kernel_regularizer=_l2(l2))(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="mlp")


@register("lenet5", min_size=12)
def lenet5(input_shape: tuple, num_classes: int, *, filters: list[int] = (6, 16), dense: list[int] = (120, 84),
           dropout: float = 0.0, l2: float = 0.0, activation: str = "relu") -> keras.Model:
    """LeNet-5: 2x (conv 5x5 + avg-pool 2x2), then dense 120/84; variants by filters, dropout, l2."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, n in enumerate(filters):
        x = layers.Conv2D(n, 5, padding="same" if i == 0 else "valid", activation=activation,
                          kernel_regularizer=_l2(l2))(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    for n in dense:
        x = layers.Dense(n, activation=activation, kernel_regularizer=_l2(l2))(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet5")


@register("cnn_lego", min_size=8)
def cnn_lego(input_shape: tuple, num_classes: int, *, filters: list[int] = (16, 32, 64), kernel: int = 4,
             dense: list[int] = (2048, 1024), dropout: float = 0.2) -> keras.Model:
    """3 blocks conv 4x4 (same) + BN + avg-pool 2x2; dense 2048 + BN + dropout, dense 1024."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        x = layers.Conv2D(n, kernel, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense[0], activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(dropout)(x)
    for n in dense[1:]:
        x = layers.Dense(n, activation="relu")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="cnn_lego")


@register("cnn_flowers", min_size=81)
def cnn_flowers(input_shape: tuple, num_classes: int, *, filters: list[int] = (32, 64, 128, 256), l2: float = 1e-3,
                dropout: float = 0.3, dense: int = 64, dense_dropout: float = 0.1) -> keras.Model:
    """4 blocks conv 3x3 (L2) + BN + ReLU + max-pool 3/stride 3 + dropout; global max pool, dense 64."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        x = layers.Conv2D(n, 3, padding="same", kernel_regularizer=_l2(l2))(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(3, strides=3)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dense(dense, activation="relu")(x)
    x = layers.Dropout(dense_dropout)(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="cnn_flowers")


@register("cnn_small", min_size=10)
def cnn_small(input_shape: tuple, num_classes: int, *, filters: list[int] = (32, 64), dense: int = 128,
              dropout: float = 0.5) -> keras.Model:
    """Conv 32 3x3 -> max-pool -> conv 64 3x3 -> max-pool -> dense 128 -> dropout 0.5."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        x = layers.Conv2D(n, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="cnn_small")


@register("transfer", check=transfer.check_hyper)
def transfer_model(input_shape: tuple, num_classes: int, *, backbone: str = "efficientnet_lite0",
                   weights: str | None = "imagenet", mode: str = "frozen", input_size: int | None = None,
                   finetune_top_n: int = 20, head_epochs: int = 0, finetune_lr_factor: float = 0.1,
                   pooling: str = "avg", dense: list[int] = (256,), dropout: float = 0.2,
                   batch_norm: bool = False) -> keras.Model:
    """ImageNet backbone (transfer.BACKBONES) + head: global average pooling (or avg-pool 4x4 + flatten), dense
    layers with optional batch norm and dropout. mode frozen: backbone fixed; finetune: its top finetune_top_n
    layers train too (after head_epochs epochs of head only, at lr * finetune_lr_factor); scratch: random init.
    """
    features = transfer.extractor(input_shape, backbone, weights, input_size, mode, pooling)
    head_in = keras.Input(features.output.shape[1:])
    x = head_in
    for n in dense:
        x = layers.Dense(n, activation="relu")(x)
        if batch_norm:
            x = layers.BatchNormalization()(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    if not dense and dropout:
        x = layers.Dropout(dropout)(x)
    head = keras.Model(head_in, _classifier(x, num_classes), name="head")
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, head(features(inputs)), name=f"transfer_{backbone}")
    if mode == "finetune" and not head_epochs:
        transfer.unfreeze_top(model, finetune_top_n)
    return model
