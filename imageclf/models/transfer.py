"""ImageNet backbones for transfer learning: which ones exist, their preprocessing, their weights, their freezing.

A transfer model is `head(extractor(image))`. The extractor takes the pipeline's [0, 1] image, repeats a grey
channel to RGB, upsamples images smaller than the backbone's minimum, applies the backbone's own preprocessing,
runs the backbone and pools its feature map into a vector; the head (models.transfer_model) classifies that.
Both are nested Keras models, so frozen training can fit the head alone on cached features (features.py) and
the saved model.keras still runs end-to-end.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
from keras import applications as apps
from keras import layers

from imageclf.core.errors import UserError
from imageclf.core.params import did_you_mean
from imageclf.models import efficientnet_lite
from imageclf.models.registry import classifier_head, register, to_vector

KERAS_FILES = ".h5 or .weights.h5"


def _keras_file(base: keras.Model, path: Path) -> None:
    """Keras' own reader: legacy .h5 (the files keras.applications caches) and Keras 3 .weights.h5."""
    with warnings.catch_warnings(record=True) as caught:  # keras warns (and skips) on a partial match
        warnings.simplefilter("always")
        try:
            base.load_weights(path)
            problem = next((str(w.message) for w in caught if "load" in str(w.message).lower()
                            or "skipping" in str(w.message).lower()), None)
        except (ValueError, KeyError) as err:
            problem = str(err)
    if problem:
        raise ValueError(problem)


@dataclass(frozen=True)
class Backbone:
    """Everything about one backbone: how to build it, its ImageNet weights, its weight files, its preprocessing."""

    name: str
    build: Callable[[tuple], keras.Model]  # (height, width, 3) -> randomly initialised model without top
    imagenet: Callable[[tuple], keras.Model]  # the same with its ImageNet weights
    preprocess: Callable  # 0-255 RGB -> what the backbone was trained on
    min_size: int = 32
    weight_files: str = KERAS_FILES  # the weight-file types load_file reads
    load_file: Callable[[keras.Model, Path], None] = _keras_file


def _application(constructor: Callable, module, name: str, min_size: int = 32) -> Backbone:
    def imagenet(shape: tuple) -> keras.Model:
        try:
            return constructor(include_top=False, weights="imagenet", input_shape=shape)
        except Exception as err:  # keras' get_file raises a bare Exception when the download fails
            match = re.search(r"URL fetch failure on (\S+):", str(err))
            if not match:
                raise
            url = match.group(1)
            cache = Path(keras.src.backend.config.keras_home()) / "models" / Path(url).name
            raise UserError(f"weights: imagenet for {name} needs {Path(url).name}, which cannot be downloaded "
                            f"here ({url}); place that file at {cache} (the Keras cache; KERAS_HOME moves it) or set "
                            "weights to its local path") from None

    return Backbone(name, lambda shape: constructor(include_top=False, weights=None, input_shape=shape), imagenet,
                    module.preprocess_input, min_size)


def _lite0_file(base: keras.Model, path: Path) -> None:
    (efficientnet_lite.load_pth if path.suffix == ".pth" else _keras_file)(base, path)


def _lite0_imagenet(shape: tuple) -> keras.Model:
    base = efficientnet_lite.efficientnet_lite0(shape)
    efficientnet_lite.load_pth(base, efficientnet_lite.packaged_weights())
    return base


BACKBONES: dict[str, Backbone] = {b.name: b for b in [
    _application(apps.MobileNetV2, apps.mobilenet_v2, "mobilenet_v2"),
    _application(apps.MobileNetV3Small, apps.mobilenet_v3, "mobilenet_v3_small"),
    _application(apps.ResNet50, apps.resnet50, "resnet50"),
    _application(apps.VGG16, apps.vgg16, "vgg16"),
    _application(apps.VGG19, apps.vgg19, "vgg19"),
    _application(apps.Xception, apps.xception, "xception", min_size=71),
    _application(apps.InceptionV3, apps.inception_v3, "inception_v3", min_size=75),
    _application(apps.EfficientNetB0, apps.efficientnet, "efficientnet_b0"),
    Backbone("efficientnet_lite0", efficientnet_lite.efficientnet_lite0, _lite0_imagenet, efficientnet_lite.preprocess,
             efficientnet_lite.MIN_SIZE, f".pth (EfficientNet-PyTorch state dict), {KERAS_FILES}", _lite0_file),
]}


def check_hyper(hyper: dict, training: dict, where: str) -> None:
    """Semantic checks of a transfer entry (types were checked already), before anything is built."""
    backbone = hyper["backbone"]
    if backbone not in BACKBONES:
        raise UserError(f"params.yaml: '{where}.backbone' is {backbone!r}, not a known backbone"
                        f"{did_you_mean(backbone, BACKBONES)}; known: {', '.join(BACKBONES)}")
    if hyper["mode"] == "scratch" and hyper["weights"] is not None:
        raise UserError(f"params.yaml: '{where}' has mode scratch (random initial weights) but weights "
                        f"{hyper['weights']!r}; set weights: null, or mode: frozen / finetune")
    if hyper["mode"] != "scratch" and hyper["weights"] is None:
        raise UserError(f"params.yaml: '{where}' has mode {hyper['mode']} but weights: null (nothing to transfer); "
                        "set weights: imagenet or a weight file path, or mode: scratch")
    size, minimum = hyper["input_size"], BACKBONES[backbone].min_size
    if isinstance(size, int) and size < minimum:
        raise UserError(f"params.yaml: '{where}.input_size' must be null (image size, raised to the backbone's "
                        f"minimum), auto or an integer >= {minimum} for {backbone}; got {size!r}")
    if isinstance(hyper["weights"], str) and hyper["weights"] != "imagenet":
        weight_file(hyper["weights"], backbone, f"{where}.weights")
    if hyper["mode"] == "finetune" and hyper["head_epochs"]:
        for key in ("epochs", "retrain_full_epochs"):
            if training.get(key) and hyper["head_epochs"] >= training[key]:
                raise UserError(f"params.yaml: '{where}.head_epochs' ({hyper['head_epochs']}) must be less than "
                                f"{key} ({training[key]}), or the top layers never train; lower it or raise {key}")


def phases(hyper: dict, epochs: int) -> list[tuple]:
    """(first, stop, lr factor, change of the trainable layers, what it does) of each fit of `epochs` epochs:
    fine-tuning with head_epochs trains the head alone first, then the top layers at lr * finetune_lr_factor."""
    if hyper["mode"] != "finetune" or not hyper["head_epochs"]:
        return [(0, epochs)]
    top = hyper["finetune_top_n"]
    return [(0, hyper["head_epochs"]), (hyper["head_epochs"], epochs, hyper["finetune_lr_factor"],
                                        lambda model: unfreeze_top(model, top), f"fine-tuning the top {top} "
                                        "backbone layers")]


# --- weights -----------------------------------------------------------------------------------------------------


def weight_file(value: str, backbone: str, key: str) -> Path:
    """A user's weights path, checked: it exists and has a weight-file type this backbone can read."""
    path = Path(value).expanduser()
    kinds = BACKBONES[backbone].weight_files
    if not path.is_file():
        raise UserError(f"params.yaml: '{key}' is {value!r}, which does not exist; give imagenet, null or "
                        f"the path of a {kinds} file")
    readable = ".pth" in kinds if path.suffix == ".pth" else path.suffix == ".h5" and h5py.is_hdf5(path)
    if not readable:
        raise UserError(f"params.yaml: '{key}': {path} is not a weight file for {backbone} (expected {kinds})")
    return path


def load_backbone(backbone: str, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """The backbone without its top, on `shape` RGB input, with weights imagenet, none or from a file."""
    spec = BACKBONES[backbone]
    if weights == "imagenet":
        return spec.imagenet(shape)
    base = spec.build(shape)
    if weights is not None:
        path = weight_file(weights, backbone, "weights")
        try:
            spec.load_file(base, path)
        except ValueError as err:
            raise UserError(f"{path} does not fit {backbone}: {str(err).strip().splitlines()[0]}") from None
    return base


# --- the extractor -----------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable("imageclf")
class BackbonePreprocess(layers.Layer):
    """[0, 1] RGB -> the backbone's own input range (saved by name, so model.keras reloads it)."""

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, x):
        return BACKBONES[self.backbone].preprocess(x * 255.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "backbone": self.backbone}


AUTO_INPUT_MIN, AUTO_INPUT_MAX = 48, 224
# input_size auto upsamples small images as far as this extraction budget allows: Fashion-MNIST's 70,000 images at
# 48 px (what the default run affords in its 15 minutes); a smaller dataset sees them larger, up to AUTO_INPUT_MAX,
# the ImageNet backbones' own resolution (folder_rgb_50class_5000's 32 px images: Lite0 62.0% at 48 px, 73.2% at 96,
# 75.8% at 128, 78.6% at 176; docs/benchmarks.md)
AUTO_PIXELS = 70_000 * 48 * 48


def auto_input_size(image: tuple[int, int], images: int | None) -> tuple[int, int]:
    """input_size auto for `images` prepared images: the image, raised to at least the largest multiple of 16 in
    [AUTO_INPUT_MIN, AUTO_INPUT_MAX] at which extracting them all stays within AUTO_PIXELS (AUTO_INPUT_MIN when the
    count is unknown); photos keep their prepared size."""
    side = AUTO_INPUT_MIN
    if images:
        side = min(AUTO_INPUT_MAX, max(AUTO_INPUT_MIN, int(math.sqrt(AUTO_PIXELS / images)) // 16 * 16))
    return max(image[0], side), max(image[1], side)


def resolve_input_size(hyper: dict, prepared_meta: dict) -> dict:
    """The hyperparameters as the features and train stages build with and key a feature set on: input_size auto
    decided from the prepared images' size and count (their meta.json) as [height, width] (both stages read the same
    prepared cache, so they agree; a set extracted at another size is not reused)."""
    if hyper["input_size"] != "auto":
        return hyper
    images = sum(split["count"] for split in prepared_meta["splits"].values())
    return {**hyper, "input_size": list(auto_input_size(tuple(prepared_meta["shape"][:2]), images))}


def input_size(image: tuple[int, int], backbone: str, size: int | str | tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) the backbone sees: input_size if a number (or an already resolved (height, width)); auto: as
    auto_input_size with the count unknown; null: the image raised to the backbone's minimum."""
    minimum = BACKBONES[backbone].min_size
    if size == "auto":
        size = auto_input_size(image, None)
    if isinstance(size, tuple | list):
        return max(size[0], minimum), max(size[1], minimum)
    if size:
        return size, size
    return max(image[0], minimum), max(image[1], minimum)


def extractor(shape: tuple[int, int, int], backbone: str, weights: str | None,
              size: int | str | tuple[int, int] | None, mode: str, pooling: str) -> keras.Model:
    """[0, 1] image -> pooled backbone features (a vector), as one nested model named 'extractor'."""
    inputs = keras.Input(shape)
    x = inputs if shape[-1] == 3 else layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
    target = input_size(shape[:2], backbone, size)
    if size is None and target != tuple(shape[:2]):
        print(f"warning: {shape[0]}x{shape[1]} px images are smaller than {backbone}'s minimum of "
              f"{BACKBONES[backbone].min_size} px; they are upsampled to {target[0]}x{target[1]} inside the model "
              "(set input_size for a larger size)", file=sys.stderr)
    if target != tuple(shape[:2]):
        x = layers.Resizing(*target, name="resize")(x)
    x = BackbonePreprocess(backbone, name="preprocess")(x)
    base = load_backbone(backbone, (*target, 3), weights)
    base.trainable = mode == "scratch"
    # a pretrained base keeps its BatchNorm statistics, also when its top layers are fine-tuned
    x = base(x, training=None if mode == "scratch" else False)
    x = to_vector(x, pooling, f"{backbone} at {target[0]}x{target[1]} px")
    return keras.Model(inputs, x, name="extractor")


def base_of(model: keras.Model) -> keras.Model:
    """The backbone inside a transfer model."""
    extractor_model = model.get_layer("extractor")
    return next(layer for layer in extractor_model.layers if isinstance(layer, keras.Model))


def unfreeze_top(model: keras.Model, top_n: int) -> bool:
    """Make the top `top_n` layers of the backbone trainable (the rest frozen); True if anything changed."""
    base = base_of(model)
    wanted = [i >= len(base.layers) - top_n for i in range(len(base.layers))]
    if base.trainable and [layer.trainable for layer in base.layers] == wanted:
        return False
    base.trainable = True
    for layer, trainable in zip(base.layers, wanted, strict=True):
        layer.trainable = trainable
    return True


@register("transfer", check=check_hyper)
def transfer_model(input_shape: tuple, num_classes: int, *, backbone: str = "efficientnet_lite0",
                   weights: str | None = "imagenet", mode: str = "frozen",
                   input_size: int | str | tuple[int, int] | None = None,
                   pooling: str = "avg", features: str | None = None, finetune_top_n: int = 20, head_epochs: int = 0,
                   finetune_lr_factor: float = 0.1, dense: list[int] = (256,), dropout: float = 0.2,
                   batch_norm: bool = False) -> keras.Model:
    """ImageNet backbone + head: pooled features, hidden dense layers, classifier."""
    del features  # the feature set's keys are already merged into the others (config.model_config)
    extractor_model = extractor(input_shape, backbone, weights, input_size, mode, pooling)
    head_in = keras.Input(extractor_model.output.shape[1:])
    head = keras.Model(head_in, classifier_head(head_in, num_classes, dense=dense, dropout=dropout,
                                                batch_norm=batch_norm), name="head")
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, head(extractor_model(inputs)), name=f"transfer_{backbone}")
    if mode == "finetune" and not head_epochs:
        unfreeze_top(model, finetune_top_n)
    return model
