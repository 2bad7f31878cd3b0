"""Train one model entry: optimizer, schedule, the fit phases with resume, dvclive logging, the optional retrain.

The configuration comes from config.model_config, the resume state lives in checkpoints.py, and what the fit reads
(images through the whole model, or cached features through a transfer model's head) is an `inputs` object of
loader.Images or features.Features.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback
from scmrepo.exceptions import SCMError
from sklearn.utils.class_weight import compute_class_weight

from imageclf.cache import loader
from imageclf.cache.shards import read_meta
from imageclf.core.errors import UserError
from imageclf.models.registry import REGISTRY
from imageclf.train.checkpoints import (
    Checkpoints,
    ResumableEarlyStopping,
    ResumableSwapEMAWeights,
    Timer,
    drop_logged_steps,
    fingerprint,
)
from imageclf.train.config import check_input
from imageclf.train.progress import BatchProgress
from imageclf.train.settings import MONITORS, OPTIMIZERS, budget_line, learning_rate, resolve_budget


class Phase(NamedTuple):
    """One fit: epochs [start, stop) at lr * lr_factor, after `unfreeze` (if any) changed the trainable layers."""

    start: int
    stop: int
    lr_factor: float = 1.0
    unfreeze: Callable[[keras.Model], bool] | None = None
    note: str = ""


def single_phase(epochs: int) -> list[Phase]:
    return [Phase(0, epochs)]


def make_optimizer(cfg: dict) -> keras.optimizers.Optimizer:
    """The entry's optimizer (settings.OPTIMIZERS names the Keras class and the keys it takes)."""
    name, keys = OPTIMIZERS[cfg["optimizer"]]
    ema = {"use_ema": True, "ema_momentum": cfg["ema"]} if cfg["ema"] else {}
    return getattr(keras.optimizers, name)(cfg["lr"], weight_decay=cfg["weight_decay"] or None,
                                           **{key: cfg[key] for key in keys}, **ema)


def make_loss(cfg: dict) -> keras.losses.Loss:
    """Cross-entropy on the labels the inputs give: one-hot with label smoothing, mixup or cutmix, else integers."""
    if loader.soft_labels(cfg):
        return keras.losses.CategoricalCrossentropy(label_smoothing=cfg["label_smoothing"])
    return keras.losses.SparseCategoricalCrossentropy()


AUTO_STEPS_PER_EXECUTION = 16  # bench/steps_bench.py: small models gain most, none loses


# Keras 3.15.1 / TF 2.21: fit under MirroredStrategy with more than one replica fails for steps_per_execution > 1
# ("You must feed a value for placeholder tensor ... int32" in multi_step_on_iterator); set True once a release
# fixes it (tests/test_train.py trains on two logical CPU devices either way).
MULTI_REPLICA_STEPS = False


def steps_per_execution(cfg: dict, steps_per_epoch: int, replicas: int = 1) -> int:
    """Batches per call into TensorFlow (fewer Python round trips: what small models pay most): the largest divisor
    of the steps per epoch up to the param (auto: 16). Keras rounds an epoch up to a multiple of it, which would
    shift the epoch-keyed training data and break exact resume. With several replicas: 1 (see MULTI_REPLICA_STEPS)."""
    if replicas > 1 and not MULTI_REPLICA_STEPS:
        return 1
    limit = AUTO_STEPS_PER_EXECUTION if cfg["steps_per_execution"] == "auto" else cfg["steps_per_execution"]
    return max(d for d in range(1, min(limit, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """sklearn's 'balanced' weights; classes absent from train keep weight 1."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    out = {k: 1.0 for k in range(n_classes)}
    out.update({int(k): float(w) for k, w in zip(present, weights, strict=True)})
    return out


def distribution() -> tf.distribute.Strategy:
    """MirroredStrategy with several GPUs, else the default strategy.

    Multi-worker training (TF_CONFIG) is refused: Keras 3's fit fails under MultiWorkerMirroredStrategy
    (keras-team/keras#20585, open in Keras 3.15.1, the newest release), so a run would crash after start-up.
    """
    if os.environ.get("TF_CONFIG"):
        raise UserError("TF_CONFIG is set, but Keras 3 cannot fit() under MultiWorkerMirroredStrategy "
                        "(keras-team/keras#20585); unset TF_CONFIG to train on this machine's devices (several GPUs: "
                        "MirroredStrategy), or spread a sweep over machines (README: Sweeps across machines)")
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def accelerator_settings(cfg: dict, gpu: bool) -> tuple[bool, bool]:
    """(mixed precision, XLA): 'auto' means on when a GPU is visible."""
    return ({"auto": gpu, "on": True, "off": False}[cfg["mixed_precision"]],
            {"auto": gpu, "on": True, "off": False}[cfg["xla"]])


def build(cfg: dict, shape: tuple, n_classes: int, steps: int) -> keras.Model:
    """The entry's model for `steps` training batches a pass over the data; a problem the builder finds (weights file,
    offline download) names the entry."""
    try:
        model = REGISTRY[cfg["family"]].build(shape, n_classes, **cfg["hyper"])
    except UserError as err:
        raise UserError(f"train.{cfg['name']}: {err}") from None
    momentum = batch_norm_momentum(steps)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and momentum < layer.momentum:
            layer.momentum = momentum
    return model


def batch_norm_momentum(steps: int) -> float:
    """BatchNorm's moving statistics forget over about one pass over the data when a pass is short (Keras' 0.99
    averages over ~100 steps: after a 15-step pass they would still be near their initial values), never below
    0.9."""
    return min(0.99, max(0.9, 1 - 1 / steps))


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _compile(model: keras.Model, cfg: dict, xla: bool, steps: int) -> None:
    """Compile for `steps` training batches per epoch."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync  # (compiled inside the strategy's scope)
    model.compile(make_optimizer(cfg), loss=make_loss(cfg), metrics=["accuracy"], jit_compile=xla,
                  steps_per_execution=steps_per_execution(cfg, steps, replicas))


def _fitted(model: keras.Model, inputs) -> keras.Model:
    """The part of the model the inputs feed: the whole model, or its head on cached features."""
    return model if inputs.part is None else model.get_layer(inputs.part)


def _finish(model: keras.Model, fitted: keras.Model, inputs) -> keras.Model:
    if inputs.part is None:
        return fitted
    model.get_layer(inputs.part).set_weights(fitted.get_weights())
    return model


def fit(fitted: keras.Model, cfg: dict, inputs, phases: list[Phase], splits: tuple[str, ...], n_classes: int,
        xla: bool, *, first: int = 0, callbacks: list | None = None,
        early: ResumableEarlyStopping | None = None) -> int:
    """Run the phases on `splits` from epoch `first` on (validating on val when early stopping); epochs run."""
    labels = inputs.labels(splits)
    weights = class_weights(labels, n_classes) if cfg["class_weight"] == "balanced" else None
    passes = cfg["passes_per_epoch"]  # an epoch of a small dataset is several passes over it (resolve_budget)
    steps = math.ceil(len(labels) / cfg["batch_size"]) * passes

    def lr(epoch: int, _lr: float) -> float:
        return learning_rate(cfg, epoch) * next(p.lr_factor for p in reversed(phases) if epoch >= p.start)

    swap = [ResumableSwapEMAWeights(resumed=first > 0)] if cfg["ema"] and early else []  # (before early stopping)
    callbacks = [keras.callbacks.LearningRateScheduler(lr), *swap, *([early] if early else []), *(callbacks or []),
                 BatchProgress(f"train {cfg['name']}")]
    epochs_run = first
    for phase in phases:
        if phase.stop <= first:
            continue
        if phase.unfreeze and phase.unfreeze(fitted):
            print(f"train {cfg['name']}: {phase.note} from epoch {phase.start + 1}")
            _compile(fitted, cfg, xla, steps)  # a changed trainable set needs a new optimizer
            if early and early.restored is None:  # (a resume at this very epoch restored its own state)
                early.restored = {**early.state(), "wait": 0, "best_weights": early.best_weights}
        begin = max(first, phase.start)
        history = fitted.fit(inputs.train(splits, (begin, phase.stop)),
                             validation_data=inputs.val() if early else None, epochs=phase.stop, initial_epoch=begin,
                             steps_per_epoch=steps, class_weight=weights,
                             callbacks=callbacks, shuffle=False, verbose=2)  # the data is shuffled per epoch
        epochs_run = history.epoch[-1] + 1 if history.epoch else epochs_run
    return epochs_run


def train(cfg: dict, prepared: Path, model_dir: Path, live_dir: Path, inputs=None,
          phases: Callable[[int], list[Phase]] = single_phase) -> dict:
    """Train (or resume) one model entry; write model_dir/model.keras and dvclive logs; return summary metrics.

    inputs: what the fit reads (default: the prepared images); phases: the fits of a run of N epochs.
    """
    meta = read_meta(prepared)
    shape, n_classes = tuple(meta["shape"]), len(meta["classes"])
    check_input(REGISTRY[cfg["family"]], shape, cfg["name"])
    if "budget" not in cfg:  # (train/transfer.py resolves it before building its inputs)
        cfg = resolve_budget(cfg, meta["splits"]["train"]["count"], n_classes)
    inputs = inputs or loader.Images(prepared, cfg)
    keras.utils.set_random_seed(cfg["seed"])
    tf.config.experimental.enable_op_determinism()
    # Transfer models train on one device: under MirroredStrategy (TF 2.21 / Keras 3.15.1) their replicas disagree on
    # the trainable variables they all-reduce ("Shape mismatch in the collective instance"), both for a frozen head on
    # cached features and for fine-tuning; the from-scratch families use every replica (tests/test_multi_replica.py)
    strategy = distribution() if cfg["family"] != "transfer" else tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    mixed, xla = accelerator_settings(cfg, bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    devices = ", ".join(d.name for d in gpus) or f"CPU ({os.cpu_count()} cores)"
    print(f"train {cfg['name']}: devices {devices}; {type(strategy).__name__} with {strategy.num_replicas_in_sync} "
          f"replica(s), mixed precision {'on' if mixed else 'off'}, XLA {'on' if xla else 'off'}")

    early = ResumableEarlyStopping(monitor=cfg["monitor"], patience=cfg["patience"], restore_best_weights=True)
    ckpt = Checkpoints(model_dir / "checkpoints", fingerprint({**cfg, "inputs": inputs.part}, meta), early)
    state = ckpt.resume_state()
    steps = cfg["budget"]["steps_per_pass"]  # (resolve_budget counted them)
    replicas = strategy.num_replicas_in_sync
    why = " (several replicas: Keras 3.15 fails above 1)" if replicas > 1 and not MULTI_REPLICA_STEPS else ""
    print(f"train {cfg['name']}: {budget_line(cfg)}; "
          f"{steps_per_execution(cfg, cfg['budget']['steps_per_epoch'], replicas)} steps per execution{why}, "
          f"BatchNorm momentum {batch_norm_momentum(steps):g}")
    with strategy.scope():
        model = build(cfg, shape, n_classes, steps)
        if state:
            fitted = ckpt.restore(state)
            print(f"train {cfg['name']}: resuming after epoch {state['epoch'] + 1} from {ckpt.last}")
        else:
            ckpt.start_fresh()
            fitted = _fitted(model, inputs)
            _compile(fitted, cfg, xla, cfg["budget"]["steps_per_epoch"])
    first = state["epoch"] + 1 if state else 0
    ckpt.extra = {"train_time_s": state["train_time_s"] if state else 0.0}
    try:
        live = Live(str(live_dir), dvcyaml=False, resume=bool(state), save_dvc_exp=False)
    except SCMError as err:  # e.g. a git repository without any commit
        raise UserError(f"dvclive cannot read this git repository ({err}); make a first commit "
                        "(git add -A && git commit -m init) and run again") from None
    with live:
        if state:
            live.step = first
            drop_logged_steps(live_dir, first)
        # dvclive logs an epoch before its checkpoint is written: a kill in between re-runs (and re-logs) it
        epochs_run = fit(fitted, cfg, inputs, phases(cfg["epochs"]), ("train",), n_classes, xla, first=first,
                         early=early, callbacks=[Timer(ckpt), DVCLiveCallback(live=live), ckpt])
        if early.best_weights is not None:
            fitted.set_weights(early.best_weights)
        model = _finish(model, fitted, inputs)
        summary = {"best_epoch": early.best_epoch + 1, f"best_{cfg['monitor']}": float(early.best),
                   "epochs_run": epochs_run, "train_time_s": round(ckpt.extra["train_time_s"], 2),
                   **param_counts(model)}
        if cfg["retrain_full_epochs"]:
            model = retrain_full(cfg, inputs, phases, shape, n_classes, xla, strategy)
        summary["retrained_on_train_val"] = bool(cfg["retrain_full_epochs"])
        budget = {**{k: int(v) if isinstance(v, bool) else v for k, v in cfg["budget"].items()},
                  "batch_norm_momentum": batch_norm_momentum(steps)}
        for key, value in [*summary.items(), *((f"budget/{k}", v) for k, v in budget.items())]:
            live.log_metric(key, value, plot=False)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / "model.keras")
    trained_on = ["train", "val"] if cfg["retrain_full_epochs"] else ["train"]
    info = {"classes": meta["classes"], "trained_on": trained_on}
    (model_dir / "classes.json").write_text(json.dumps(info, ensure_ascii=False) + "\n")
    (live_dir / "summary.txt").write_text(_summary_text(model))
    ckpt.finish()
    return summary


def retrain_full(cfg: dict, inputs, phases: Callable[[int], list[Phase]], shape: tuple, n_classes: int, xla: bool,
                 strategy: tf.distribute.Strategy) -> keras.Model:
    """A fresh model trained on train+val for retrain_full_epochs epochs with the entry's own settings (class
    weights, oversampling, augmentation, fine-tuning phases), without early stopping."""
    keras.utils.set_random_seed(cfg["seed"])
    steps = math.ceil(len(inputs.labels(("train", "val"))) / cfg["batch_size"])
    with strategy.scope():
        model = build(cfg, shape, n_classes, steps)
        fitted = _fitted(model, inputs)
        _compile(fitted, cfg, xla, steps * cfg["passes_per_epoch"])
    epochs = cfg["retrain_full_epochs"]
    fit(fitted, {**cfg, "epochs": epochs}, inputs, phases(epochs), ("train", "val"), n_classes, xla)
    print(f"train {cfg['name']}: retrained on train+val for {epochs} epoch(s)")
    return _finish(model, fitted, inputs)


def summary_line(summary: dict, name: str) -> str:
    """What a train stage prints at the end."""
    best = next(f"best_{m}" for m in MONITORS if f"best_{m}" in summary)
    return (f"train {name}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
            f"{best[5:].replace('_', ' ')} {summary[best]:.4f}, {summary['train_time_s']:.0f} s")


def param_counts(model: keras.Model) -> dict[str, int]:
    """Weights, and global_pooling 1 when the head pools its feature map over every place (pooling max or avg: the
    report then does not suggest it)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(sum(np.prod(w.shape) for w in model.weights))
    # the head's pooling is a layer of the model or of a model it nests (transfer: the extractor), not of a backbone
    # nested deeper (whose squeeze-excite blocks pool too)
    pooled = any(isinstance(inner, keras.layers.GlobalMaxPooling2D | keras.layers.GlobalAveragePooling2D)
                 for layer in model.layers
                 for inner in ([layer, *layer.layers] if isinstance(layer, keras.Model) else [layer]))
    return {"params_total": total, "params_trainable": trainable, "params_non_trainable": total - trainable,
            "global_pooling": int(pooled)}


def _summary_text(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=100)
    return "\n".join(lines) + "\n"
