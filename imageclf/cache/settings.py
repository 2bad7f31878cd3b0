"""The prepare stage's keys (params.yaml `prepare:`): how every image becomes a record of the cache. Read by every
stage that converts images as prepare does (evaluate's domain shift, export's card, predict)."""

from __future__ import annotations

from imageclf.cache.augment_levels import LEVELS
from imageclf.core.params import NUMBER, Field, Section
from imageclf.data import images


def _image_size(value) -> str | None:
    if isinstance(value, int) and value >= 8:
        return None
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v >= 8 for v in value):
        return None
    return f"must be an integer >= 8 or [height, width] of such integers, got {value!r}"


PARAMS = Section({
    "image_size": Field((int, list), check=_image_size),
    "color": Field((str,), choices=images.COLORS),
    "invert": Field((bool,)),
    "resize": Field((str,), choices=tuple(images.RESIZE)),
    "offline_augment": Field((int,), minimum=0),
    "offline_augment_level": Field((int,), choices=tuple(level for level in LEVELS if level)),
    "shard_mb": Field(NUMBER, minimum=0.001),
    "workers": Field((int,), minimum=0),
    "seed": Field((int,)),
})


def image_size(prepare: dict) -> tuple[int, int]:
    """prepare.image_size as (height, width)."""
    size = prepare["image_size"]
    return (size, size) if isinstance(size, int) else (size[0], size[1])
