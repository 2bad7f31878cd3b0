"""ImageNet backbones for transfer learning: which ones exist, their preprocessing, their weights, their freezing.

A transfer model is `head(extractor(image))`. The extractor takes the pipeline's [0, 1] image, repeats a grey
channel to RGB, upsamples images smaller than the backbone's minimum, applies the backbone's own preprocessing,
runs the backbone and pools its feature map into a vector; the head (models.transfer_model) classifies that.
Both are nested Keras models, so frozen training can fit the head alone on cached features (features.py) and
the saved model.keras still runs end-to-end.
"""

from __future__ import annotations

import difflib
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

from imageclf import efficientnet_lite
from imageclf.errors import UserError


@dataclass(frozen=True)
class Backbone:
    name: str
    build: Callable[..., keras.Model]  # (input_shape, weights: "imagenet" | None) -> model without top
    preprocess: Callable  # 0-255 RGB -> what the backbone was trained on
    min_size: int


def _application(constructor: Callable, module, name: str, min_size: int = 32) -> Backbone:
    def build(shape: tuple, weights: str | None) -> keras.Model:
        return constructor(include_top=False, weights=weights, input_shape=shape)

    return Backbone(name, build, module.preprocess_input, min_size)


BACKBONES: dict[str, Backbone] = {b.name: b for b in [
    _application(apps.MobileNetV2, apps.mobilenet_v2, "mobilenet_v2"),
    _application(apps.MobileNetV3Small, apps.mobilenet_v3, "mobilenet_v3_small"),
    _application(apps.ResNet50, apps.resnet50, "resnet50"),
    _application(apps.VGG16, apps.vgg16, "vgg16"),
    _application(apps.VGG19, apps.vgg19, "vgg19"),
    _application(apps.Xception, apps.xception, "xception", min_size=71),
    _application(apps.InceptionV3, apps.inception_v3, "inception_v3", min_size=75),
    _application(apps.EfficientNetB0, apps.efficientnet, "efficientnet_b0"),
    Backbone("efficientnet_lite0", lambda shape, _weights: efficientnet_lite.efficientnet_lite0(shape),
             efficientnet_lite.preprocess, efficientnet_lite.MIN_SIZE),
]}
MODES = ("frozen", "finetune", "scratch")
POOLINGS = ("avg", "avgpool4")


def check_hyper(hyper: dict, where: str) -> None:
    """Semantic checks of a transfer entry (types were checked already), before anything is built."""
    backbone = hyper["backbone"]
    if backbone not in BACKBONES:
        hint = difflib.get_close_matches(str(backbone), BACKBONES, n=1)
        tip = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise UserError(f"params.yaml: '{where}.backbone' is {backbone!r}, not a known backbone{tip}; "
                        f"known: {', '.join(BACKBONES)}")
    for key, choices in (("mode", MODES), ("pooling", POOLINGS)):
        if hyper[key] not in choices:
            raise UserError(f"params.yaml: '{where}.{key}' must be one of {', '.join(choices)}; got {hyper[key]!r}")
    if hyper["mode"] == "scratch" and hyper["weights"] is not None:
        raise UserError(f"params.yaml: '{where}' has mode scratch (random initial weights) but weights "
                        f"{hyper['weights']!r}; set weights: null, or mode: frozen / finetune")
    if hyper["mode"] != "scratch" and hyper["weights"] is None:
        raise UserError(f"params.yaml: '{where}' has mode {hyper['mode']} but weights: null (nothing to transfer); "
                        "set weights: imagenet or a weight file path, or mode: scratch")
    size, minimum = hyper["input_size"], BACKBONES[backbone].min_size
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < minimum):
        raise UserError(f"params.yaml: '{where}.input_size' must be null (image size, raised to the backbone's "
                        f"minimum) or an integer >= {minimum} for {backbone}; got {size!r}")
    if isinstance(hyper["weights"], str) and hyper["weights"] != "imagenet":
        weight_file(hyper["weights"], backbone, f"{where}.weights")


# --- weights -----------------------------------------------------------------------------------------------------


def weight_file(value: str, backbone: str, key: str) -> Path:
    """A user's weights path, checked: it exists and has a weight-file type this backbone can read."""
    path = Path(value).expanduser()
    kinds = ".pth (EfficientNet-PyTorch state dict), .h5 or .weights.h5" if backbone == "efficientnet_lite0" \
        else ".h5 or .weights.h5"
    if not path.is_file():
        raise UserError(f"params.yaml: '{key}' is {value!r}, which does not exist; give imagenet, null or "
                        f"the path of a {kinds} file")
    if path.suffix == ".pth" and backbone == "efficientnet_lite0":
        return path
    if path.suffix != ".h5" or not h5py.is_hdf5(path):
        raise UserError(f"params.yaml: '{key}': {path} is not a weight file for {backbone} "
                        f"(expected {kinds})")
    return path


def load_backbone(backbone: str, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """The backbone without its top, on `shape` RGB input, with weights imagenet, none or from a file."""
    spec = BACKBONES[backbone]
    if weights == "imagenet" and backbone == "efficientnet_lite0":
        base = spec.build(shape, None)
        efficientnet_lite.load_pth(base, efficientnet_lite.packaged_weights())
        return base
    if weights == "imagenet":
        try:
            return spec.build(shape, "imagenet")
        except Exception as err:  # keras' get_file raises a bare Exception when the download fails
            match = re.search(r"URL fetch failure on (\S+):", str(err))
            if not match:
                raise
            url = match.group(1)
            cache = Path(keras.src.backend.config.keras_home()) / "models" / Path(url).name
            raise UserError(f"weights: imagenet for {backbone} needs {Path(url).name}, which cannot be downloaded "
                            f"here ({url}); place that file at {cache} (the Keras cache; KERAS_HOME moves it) or set "
                            "weights to its local path") from None
    base = spec.build(shape, None)
    if weights is not None:
        path = weight_file(weights, backbone, "weights")
        if path.suffix == ".pth":
            efficientnet_lite.load_pth(base, path)
        else:
            _load_h5(base, path, backbone)
    return base


def _load_h5(base: keras.Model, path: Path, backbone: str) -> None:
    """Legacy Keras .h5 weights (the files keras.applications caches) by layer order, or Keras 3 .weights.h5."""
    with h5py.File(path, "r") as f:
        group = f.get("model_weights", f)
        if "layer_names" not in group.attrs:  # Keras 3 format: keras matches by name and names what fails
            with warnings.catch_warnings(record=True) as caught:  # keras warns (and skips) on a partial match
                warnings.simplefilter("always")
                try:
                    base.load_weights(path)
                    problem = next((str(w.message) for w in caught if "load" in str(w.message).lower()
                                    or "skipping" in str(w.message).lower()), None)
                except (ValueError, KeyError) as err:
                    problem = str(err)
            if problem:
                raise UserError(f"{path} does not fit {backbone}: {problem.strip().splitlines()[0]}")
            return
        saved = []
        for name in (n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]):
            names = [w.decode() if isinstance(w, bytes) else w for w in group[name].attrs["weight_names"]]
            if names:
                saved.append((name, [group[name][w][()] for w in names]))
    targets = [layer for layer in base.layers if layer.weights]
    for i, layer in enumerate(targets):
        expected = [tuple(w.shape) for w in layer.weights]
        if i >= len(saved):
            raise UserError(f"{path} holds weights of another architecture: it ends before layer "
                            f"'{layer.name}' of {backbone} ({len(saved)} layers with weights, {len(targets)} needed)")
        name, arrays = saved[i]
        if [a.shape for a in arrays] != expected:
            raise UserError(f"{path} holds weights of another architecture: first difference at layer "
                            f"'{layer.name}' of {backbone}, which expects {expected}; the file's layer '{name}' has "
                            f"{[a.shape for a in arrays]}")
    if len(saved) != len(targets):
        raise UserError(f"{path} holds weights of another architecture: {len(saved)} layers with weights, "
                        f"{backbone} has {len(targets)}")
    for layer, (_name, arrays) in zip(targets, saved, strict=True):
        layer.set_weights(arrays)


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


def input_size(image: tuple[int, int], backbone: str, size: int | None) -> tuple[int, int]:
    """(height, width) the backbone sees: input_size if set, else the image raised to the backbone's minimum."""
    minimum = BACKBONES[backbone].min_size
    if size:
        return size, size
    if min(image) >= minimum:
        return image
    target = (max(image[0], minimum), max(image[1], minimum))
    print(f"warning: {image[0]}x{image[1]} px images are smaller than {backbone}'s minimum of {minimum} px; "
          f"they are upsampled to {target[0]}x{target[1]} inside the model (set input_size for a larger size)",
          file=sys.stderr)
    return target


def extractor(shape: tuple[int, int, int], backbone: str, weights: str | None, size: int | None, mode: str,
              pooling: str) -> keras.Model:
    """[0, 1] image -> pooled backbone features (a vector), as one nested model named 'extractor'."""
    inputs = keras.Input(shape)
    x = inputs if shape[-1] == 3 else layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
    target = input_size(shape[:2], backbone, size)
    if target != tuple(shape[:2]):
        x = layers.Resizing(*target, name="resize")(x)
    x = BackbonePreprocess(backbone, name="preprocess")(x)
    base = load_backbone(backbone, (*target, 3), weights)
    base.trainable = mode == "scratch"
    # a pretrained base keeps its BatchNorm statistics, also when its top layers are fine-tuned
    x = base(x, training=None if mode == "scratch" else False)
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    else:
        if min(x.shape[1:3]) < 4:
            raise UserError(f"pooling avgpool4 needs a feature map of at least 4x4; {backbone} gives "
                            f"{x.shape[1]}x{x.shape[2]} at {target[0]}x{target[1]} px: raise input_size or use avg")
        x = layers.Flatten(name="flatten")(layers.AveragePooling2D(4, name="avg_pool_4x4")(x))
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
