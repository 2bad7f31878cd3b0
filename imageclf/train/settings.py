"""The training keys (params.yaml `train_defaults:`, overridable per entry), the optimizers and learning-rate schedules
they name, validated without loading TensorFlow."""

from __future__ import annotations

import math
from collections.abc import Callable

from imageclf.cache.augment_levels import LEVELS
from imageclf.core.errors import UserError
from imageclf.core.params import NUMBER, Field, Section, positive, rate

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


def _auto_or(accepts: Callable[[int], bool], expected: str) -> Callable[[int | str], str | None]:
    """A check for keys that take auto or an integer `accepts` allows."""
    def check(value: int | str) -> str | None:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and accepts(value)):
            return None
        return f"must be auto or {expected}, got {value!r}"
    check.expects = f"auto or {expected}"
    return check


_auto_or_count = _auto_or(lambda n: n >= 1, "an integer >= 1")
_auto_or_level = _auto_or(lambda n: n in LEVELS, f"one of {', '.join(map(str, LEVELS))}")


# Budgets from the data: batch_size auto and min_steps keep a small dataset from ending training after a few dozen
# optimizer steps (a 288-image set at batch 128 got 2 steps an epoch and 12 in all before early stopping).
AUTO_BATCHES = (128, 64, 32, 16)  # batch_size auto: the largest that gives MIN_STEPS_PER_EPOCH steps an epoch
MIN_STEPS_PER_EPOCH = 20
# augment auto: level AUTO_AUGMENT for a training set under AUTO_AUGMENT_BELOW images a class, none above; never for an
# entry that trains its head on cached features (augmented images have no cached features). Opt-in: it helped shapes at
# any position and turn and hurt upright Fashion-MNIST (docs/training.md)
AUTO_AUGMENT, AUTO_AUGMENT_BELOW = 2, 100


def resolve_budget(cfg: dict, n_train: int, n_classes: int) -> dict:
    """The entry's settings with batch_size auto decided from the training images, and an epoch made of the smallest
    whole number of passes over them that gives at least min_steps optimizer steps in `epochs` epochs. Every count in
    epochs (patience, warm-up, decay, head_epochs) keeps its meaning and validation runs once an epoch, so a small
    dataset gets the updates of a large one without hundreds of tiny epochs. augment auto is decided from the images
    per class. cfg['budget'] says what was decided."""
    batch = cfg["batch_size"]
    if batch == "auto":
        batch = next((b for b in AUTO_BATCHES if n_train / b >= MIN_STEPS_PER_EPOCH), AUTO_BATCHES[-1])
    steps = max(1, math.ceil(n_train / batch))
    passes = max(1, math.ceil(cfg["min_steps"] / (cfg["epochs"] * steps)))
    augment = cfg.get("augment", 0)
    if augment == "auto":
        few = n_train / max(1, n_classes) < AUTO_AUGMENT_BELOW
        augment = AUTO_AUGMENT if few and not cfg.get("hyper", {}).get("features") else 0
    out = {**cfg, "batch_size": batch, "passes_per_epoch": passes, "augment": augment}
    out["budget"] = {"train_images": n_train, "batch_size": batch, "auto_batch": cfg["batch_size"] == "auto",
                     "steps_per_pass": steps, "passes_per_epoch": passes, "steps_per_epoch": steps * passes,
                     "epochs": cfg["epochs"], "min_steps": cfg["min_steps"], "augment": augment,
                     "auto_augment": cfg.get("augment") == "auto"}
    return out


def budget_line(cfg: dict) -> str:
    """The resolved budget in words, for the train log."""
    b = cfg["budget"]
    text = (f"batch {b['batch_size']}{' (auto)' if b['auto_batch'] else ''}, {b['steps_per_pass']} steps per pass "
            f"over {b['train_images']} training images")
    if b["passes_per_epoch"] > 1:
        text += (f"; {b['passes_per_epoch']} passes per epoch ({b['steps_per_epoch']} steps) for at least min_steps "
                 f"{b['min_steps']} optimizer steps in {cfg['epochs']} epochs")
    if b["auto_augment"]:
        text += f"; augment {b['augment']} (auto: {b['train_images']} training images)"
    return text


def _one_mixer(cfg: dict, where: str) -> None:
    if cfg["mixup"] and cfg["cutmix"]:
        raise UserError(f"{where} has mixup {cfg['mixup']} and cutmix {cfg['cutmix']}: they are alternatives, set "
                        "one of them to 0")


MONITORS = ("val_loss", "val_accuracy")  # what early stopping follows and which epoch's weights are kept

PARAMS = Section({
    "seed": Field((int,), doc="weights, shuffling and augmentation seed"),
    "epochs": Field((int,), minimum=1, doc="training epochs at most (early stopping may end sooner)"),
    "batch_size": Field((int, str), check=_auto_or_count,
                        doc=f"images a step; auto: the largest of {', '.join(map(str, AUTO_BATCHES))} that gives "
                            f">= {MIN_STEPS_PER_EPOCH} steps a pass"),
    "min_steps": Field((int,), minimum=0, doc="optimizer steps a run gets at least: an epoch of a small dataset is "
                                              "several passes over it"),
    "optimizer": Field((str,), choices=tuple(OPTIMIZERS), doc="Keras optimizer"),
    "lr": Field(NUMBER, check=positive, doc="learning rate (the schedule's peak)"),
    "momentum": Field(NUMBER, minimum=0, maximum=1, doc="sgd and rmsprop momentum"),
    "weight_decay": Field(NUMBER, minimum=0, doc="decoupled weight decay of the optimizer"),
    "lr_schedule": Field((str,), choices=tuple(SCHEDULES),
                         doc="exp_decay: lr * exp(-decay_rate) per epoch from decay_start; warmup_cosine: a linear "
                             "rise over warmup_epochs, then cosine to 0"),
    "warmup_epochs": Field((int,), minimum=0, doc="warmup_cosine: epochs of the linear rise"),
    "decay_start": Field((int,), minimum=0, doc="exp_decay: first decayed epoch"),
    "decay_rate": Field(NUMBER, minimum=0, doc="exp_decay: rate per epoch"),
    "patience": Field((int,), minimum=1, doc="early stopping: epochs without a better monitor value"),
    "monitor": Field((str,), choices=MONITORS, doc="what early stopping follows; the best epoch's weights are kept"),
    "augment": Field((int, str), check=_auto_or_level,
                     doc=f"augmentation level (table below); auto: {AUTO_AUGMENT} under {AUTO_AUGMENT_BELOW} "
                         "training images a class, else 0"),
    "class_weight": Field((str,), choices=("none", "balanced"), doc="balanced: loss weights against class skew"),
    "oversample": Field((bool,), doc="draw every class equally often"),
    "retrain_full_epochs": Field((int,), minimum=0, doc="> 0: retrain a fresh model on train+val for that many "
                                                        "epochs"),
    "steps_per_execution": Field((int, str), check=_auto_or_count, doc="batches per call into TensorFlow (auto: 16)"),
    "mixed_precision": Field((str,), choices=("auto", "on", "off"), doc="float16 compute (auto: on with a GPU)"),
    "xla": Field((str,), choices=("auto", "on", "off"), doc="XLA compilation (auto: on with a GPU)"),
    # training recipes, each off at 0 (docs/training.md "Training recipes")
    "label_smoothing": Field(NUMBER, check=rate, doc="share of the target spread evenly over every class"),
    "ema": Field(NUMBER, check=rate, doc="momentum of the optimizer's moving average of the weights, which is "
                                         "validated and kept; 0: off"),
    "mixup": Field(NUMBER, minimum=0, maximum=1, doc="MixUp alpha: pairs of images and their labels blended by a "
                                                     "Beta(alpha, alpha) weight"),
    "cutmix": Field(NUMBER, minimum=0, maximum=1, doc="CutMix alpha: a patch of another image pasted, the labels mixed "
                                                      "by its area; not with mixup"),
    "random_erasing": Field(NUMBER, minimum=0, maximum=1, doc="probability that a patch (2-33% of the image) of "
                                                              "each training image is replaced by noise"),
}, rules=_one_mixer)
