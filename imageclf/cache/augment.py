"""Augmentation levels 0-3 as Keras preprocessing layers, for images already rescaled to [0, 1]."""

from __future__ import annotations

import keras

from imageclf.cache.augment_levels import LEVELS


class RandomFlipWithProbability(keras.layers.Layer):
    """Flip each image with a given probability (keras.layers.RandomFlip always uses 0.5)."""

    def __init__(self, axis: str, probability: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.probability, self.seed = axis, probability, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        batch = keras.ops.shape(images)[0]
        flip = keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < self.probability
        flipped = keras.ops.flip(images, axis=2 if self.axis == "horizontal" else 1)
        return keras.ops.where(flip, flipped, images)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "probability": self.probability, "seed": self.seed}


class RandomRot90(keras.layers.Layer):
    """Rotate each image by 0, 90, 180 or 270 degrees, equally likely; images that are not square keep their shape
    and get 0 or 180 degrees only."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        ops = keras.ops
        square = images.shape[1] == images.shape[2]
        turns = keras.random.randint((ops.shape(images)[0], 1, 1, 1), 0, 4 if square else 2, seed=self.generator)
        half = ops.flip(ops.flip(images, axis=1), axis=2)
        if not square:
            return ops.where(turns == 1, half, images)
        transposed = ops.transpose(images, (0, 2, 1, 3))
        quarter, three = ops.flip(transposed, axis=1), ops.flip(transposed, axis=2)  # as numpy.rot90 k=1, k=3
        return ops.where(turns == 1, quarter, ops.where(turns == 2, half, ops.where(turns == 3, three, images)))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def augmenter(level: int, seed: int) -> keras.Sequential | None:
    """The augmentation pipeline for a level (None for level 0); deterministic for a given seed."""
    if level not in LEVELS:
        raise ValueError(f"augmentation level must be one of {sorted(LEVELS)}, got {level!r}")
    cfg = LEVELS[level]
    if not cfg:
        return None
    layers: list[keras.layers.Layer] = []
    if "hflip" in cfg:
        layers.append(RandomFlipWithProbability("horizontal", cfg["hflip"], seed=seed + 1))
    if "vflip" in cfg:
        layers.append(RandomFlipWithProbability("vertical", cfg["vflip"], seed=seed + 2))
    if "rot90" in cfg:
        layers.append(RandomRot90(seed=seed + 7))
    if "rotation_deg" in cfg:
        layers.append(keras.layers.RandomRotation(cfg["rotation_deg"] / 360.0, fill_mode="constant", seed=seed + 3))
    if "zoom" in cfg:
        layers.append(keras.layers.RandomZoom(cfg["zoom"], fill_mode="constant", seed=seed + 4))
    if "width_shift" in cfg:
        layers.append(keras.layers.RandomTranslation(cfg["height_shift"], cfg["width_shift"], fill_mode="constant",
                                                     seed=seed + 5))
    if "contrast" in cfg:
        layers.append(keras.layers.RandomContrast(cfg["contrast"], value_range=(0, 1), seed=seed + 6))
    return keras.Sequential(layers, name=f"augment_level_{level}")


def recipe_layers(erase: float, mixup: float, cutmix: float, seed: int) -> list[keras.layers.Layer]:
    """The training-recipe augmentations after the level's: random erasing of a patch (2-33% of the image, noise) with
    probability `erase` per image, then MixUp (Beta(mixup, mixup) weights) or CutMix (Beta(cutmix, cutmix) patch
    areas) across the batch, which mix the one-hot labels too."""
    layers: list[keras.layers.Layer] = []
    if erase:
        layers.append(keras.layers.RandomErasing(factor=(erase, erase), value_range=(0, 1), seed=seed + 8,
                                                 dtype="float32"))
    if mixup:
        layers.append(keras.layers.MixUp(alpha=mixup, seed=seed + 9, dtype="float32"))
    if cutmix:
        layers.append(keras.layers.CutMix(factor=cutmix, seed=seed + 10, dtype="float32"))
    return layers


MIXING = (keras.layers.MixUp, keras.layers.CutMix)  # layers that take and mix the labels too


def augment_batch(layers: list[keras.layers.Layer], images, labels, epoch, step):
    """(images, labels) through the layers, with random state keyed on (layer seed, epoch, step): reproducible across
    resumes. Mixing layers need one-hot labels."""
    import tensorflow as tf

    for layer in layers:
        state = layer.generator.state
        key = tf.stack([tf.cast(layer.seed or 0, tf.int64), tf.cast(epoch, tf.int64) * (1 << 20) + step])
        state.assign(tf.cast(key, state.dtype))
        if isinstance(layer, MIXING):
            mixed = layer({"images": images, "labels": labels}, training=True)
            images, labels = mixed["images"], mixed["labels"]
        else:
            images = layer(images, training=True)
    return images, labels
