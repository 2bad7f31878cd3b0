"""The prepare stage's keys (params.yaml `prepare:`): how every image becomes a record of the cache. Read by every
stage that converts images as prepare does (evaluate's domain shift, export's card, predict)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from imageclf.cache.augment_levels import LEVELS
from imageclf.cache.shards import STORAGES
from imageclf.core.params import NUMBER, Field, Section
from imageclf.data import images

AUTO = "auto"
AUTO_MIN_SIZE = 16  # image_size: auto never goes below this side (LeNet-5 needs 12, small CNNs pool twice)


def _image_size(value) -> str | None:
    if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 8):
        return None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v >= 8 for v in value):
        return None
    return f"must be auto, an integer >= 8 or [height, width] of such integers, got {value!r}"


PARAMS = Section({
    "image_size": Field((int, list, str), check=_image_size),  # auto: the median shorter side, see resolve
    "max_auto_size": Field((int,), minimum=AUTO_MIN_SIZE),  # the largest side image_size: auto picks
    "color": Field((str,), choices=(AUTO, *images.COLORS)),  # auto: grayscale only when every image is grey
    "invert": Field((bool,)),
    "resize": Field((str,), choices=tuple(images.RESIZE)),
    "offline_augment": Field((int,), minimum=0),
    "offline_augment_level": Field((int,), choices=tuple(level for level in LEVELS if level)),
    "storage": Field((str,), choices=tuple(STORAGES)),  # how a record holds its image: raw pixels, PNG or JPEG
    "jpeg_quality": Field((int,), minimum=1, maximum=100),
    "shard_mb": Field(NUMBER, minimum=0.001),
    "workers": Field((int,), minimum=0),
    "seed": Field((int,)),
})


def image_size(prepare: dict) -> tuple[int, int]:
    """prepare.image_size as (height, width); `auto` must have been resolved first."""
    size = prepare["image_size"]
    if size == AUTO:
        raise ValueError("prepare.image_size is auto: resolve it from the images first (settings.resolve)")
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def resolve(prepare: dict, images_info: pd.DataFrame) -> tuple[dict, dict]:
    """prepare with `auto` image_size and color decided from the images (manifest columns width, height, grey), and
    what was decided and why. image_size: the median shorter side, rounded to a multiple of 4, kept within
    [AUTO_MIN_SIZE, max_auto_size]; color: grayscale only when every image is grey."""
    out, why = dict(prepare), {}
    if prepare["image_size"] == AUTO:
        median = float(np.median(np.minimum(images_info["width"], images_info["height"])))
        side = int(min(prepare["max_auto_size"], max(AUTO_MIN_SIZE, math.floor(median / 4 + 0.5) * 4)))
        out["image_size"] = side
        why["image_size"] = (f"auto: median shorter side {median:g} px" + (", capped by max_auto_size"
                             if side == prepare["max_auto_size"] and median > side else ""))
    else:
        why["image_size"] = "set in params.yaml"
    if prepare["color"] == AUTO:
        colour = int((~images_info["grey"].astype(bool)).sum())
        out["color"] = "rgb" if colour else "grayscale"
        why["color"] = f"auto: {colour} of {len(images_info)} images in colour"
    else:
        why["color"] = "set in params.yaml"
    return out, why


def conflict(prepare: dict, shape: tuple[int, ...]) -> str | None:
    """What explicit (not auto) prepare values disagree with images of `shape`, or None."""
    said = []
    if prepare["image_size"] != AUTO and image_size(prepare) != tuple(shape[:2]):
        said.append(f"image_size {prepare['image_size']}")
    if prepare["color"] != AUTO and (prepare["color"] == "grayscale") != (shape[2] == 1):
        said.append(f"color {prepare['color']}")
    return ", ".join(said) or None


def from_shape(prepare: dict, shape: tuple[int, ...]) -> dict:
    """prepare with image_size and color as a model or cache of `shape` (height, width, channels) was made with."""
    return {**prepare, "image_size": [int(shape[0]), int(shape[1])],
            "color": "grayscale" if shape[2] == 1 else "rgb"}
