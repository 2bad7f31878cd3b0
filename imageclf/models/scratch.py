"""The from-scratch families: each one registered builder function (the transfer family is in transfer.py)."""

from __future__ import annotations

import keras
from keras import layers

from imageclf.models.registry import classifier_head, l2_penalty, register, to_vector


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
           dropout: float = 0.0, l2: float = 0.0, activation: str = "relu", pooling: str = "auto") -> keras.Model:
    """LeNet-5: 2x (conv 5x5 + avg-pool 2x2), `pooling` (flatten at 28 px, as published), then dense 120/84."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, n in enumerate(filters):
        x = layers.Conv2D(n, 5, padding="same" if i == 0 else "valid", activation=activation,
                          kernel_regularizer=l2_penalty(l2))(x)
        x = layers.AveragePooling2D(2)(x)
    x = to_vector(x, pooling, "lenet5's convolutions")
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
        x = layers.Conv2D(n, 3, padding="same", kernel_regularizer=l2_penalty(l2))(x)
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
           conv_dropout: float = 0.25, dense: list[int] = (256,), dropout: float = 0.4, l2: float = 0.0,
           pooling: str = "auto") -> keras.Model:
    """Modern small CNN: per block `convs` x (conv 3x3 + BN + ReLU), max-pool, dropout; `pooling`; dense + BN."""
    inputs = keras.Input(input_shape)
    x = inputs
    for n in filters:
        for _ in range(convs):
            x = layers.Conv2D(n, 3, padding="same", use_bias=False, kernel_regularizer=l2_penalty(l2))(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
        if conv_dropout:
            x = layers.Dropout(conv_dropout)(x)
    x = to_vector(x, pooling, "cnn_bn's convolution blocks")
    outputs = classifier_head(x, num_classes, dense=dense, dropout=dropout, l2=l2, batch_norm=True)
    return keras.Model(inputs, outputs, name="cnn_bn")
