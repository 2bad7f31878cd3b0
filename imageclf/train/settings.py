"""The training keys (params.yaml `train_defaults:`, overridable per entry), the optimizers and learning-rate schedules
they name, validated without loading TensorFlow."""

from __future__ import annotations

import math

from imageclf.cache.augment_levels import LEVELS
from imageclf.core.params import NUMBER, Field, Section, positive

# optimizer name -> (keras.optimizers class, the training keys it takes besides lr and weight_decay)
OPTIMIZERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "adam": ("Adam", ()),
    "sgd": ("SGD", ("momentum",)),
    "rmsprop": ("RMSprop", ("momentum",)),
    "adadelta": ("Adadelta", ()),
}


def _exp_decay(cfg: dict, epoch: int) -> float:
    """lr * exp(-decay_rate) each epoch from decay_start on."""
    if epoch < cfg["decay_start"]:
        return cfg["lr"]
    return cfg["lr"] * math.exp(-cfg["decay_rate"] * (epoch - cfg["decay_start"] + 1))


def _cosine(cfg: dict, epoch: int, warmup: int = 0) -> float:
    """Cosine from lr to 0 over the epochs after `warmup`, which rise linearly."""
    lr = cfg["lr"]
    if epoch < warmup:
        return lr * (epoch + 1) / (warmup + 1)
    return lr * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(1, cfg["epochs"] - warmup)))


# lr_schedule name -> lr of an epoch
SCHEDULES = {
    "constant": lambda cfg, epoch: cfg["lr"],
    "exp_decay": _exp_decay,
    "cosine": _cosine,
    "warmup_cosine": lambda cfg, epoch: _cosine(cfg, epoch, cfg["warmup_epochs"]),
}


def learning_rate(cfg: dict, epoch: int) -> float:
    """lr for an epoch under the entry's lr_schedule."""
    return SCHEDULES[cfg["lr_schedule"]](cfg, epoch)


def _steps(value: int | str) -> str | None:
    if value == "auto" or (isinstance(value, int) and value >= 1):
        return None
    return f"must be auto or an integer >= 1, got {value!r}"


MONITORS = ("val_loss", "val_accuracy")  # what early stopping follows and which epoch's weights are kept

PARAMS = Section({
    "seed": Field((int,)),
    "epochs": Field((int,), minimum=1),
    "batch_size": Field((int,), minimum=1),
    "optimizer": Field((str,), choices=tuple(OPTIMIZERS)),
    "lr": Field(NUMBER, check=positive),
    "momentum": Field(NUMBER, minimum=0, maximum=1),
    "weight_decay": Field(NUMBER, minimum=0),
    "lr_schedule": Field((str,), choices=tuple(SCHEDULES)),
    "warmup_epochs": Field((int,), minimum=0),
    "decay_start": Field((int,), minimum=0),
    "decay_rate": Field(NUMBER, minimum=0),
    "patience": Field((int,), minimum=1),
    "monitor": Field((str,), choices=MONITORS),
    "augment": Field((int,), choices=tuple(LEVELS)),
    "class_weight": Field((str,), choices=("none", "balanced")),
    "oversample": Field((bool,)),
    "retrain_full_epochs": Field((int,), minimum=0),
    "steps_per_execution": Field((int, str), check=_steps),
    "mixed_precision": Field((str,), choices=("auto", "on", "off")),
    "xla": Field((str,), choices=("auto", "on", "off")),
})
