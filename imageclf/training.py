"""Train one model entry of params.yaml: config, optimizer, schedule, checkpoints with resume, dvclive logging."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback
from scmrepo.exceptions import SCMError
from sklearn.utils.class_weight import compute_class_weight

from imageclf import features, loader, transfer
from imageclf.errors import UserError
from imageclf.models import REGISTRY, Family
from imageclf.params import SCHEMA, validate_section
from imageclf.shards import load_split, read_meta

TRAIN_KEYS = SCHEMA["train_defaults"]


# --- configuration -----------------------------------------------------------------------------------------------


def model_config(params: dict, name: str) -> dict:
    """Merge train_defaults with the entry train.<name>; validate both before anything is built."""
    entries = params.get("train")
    if not isinstance(entries, dict) or not entries:
        raise UserError("params.yaml: 'train' must map model names to entries like {family: lenet5, lr: 0.001}")
    if name not in entries:
        raise UserError(f"params.yaml: no model entry 'train.{name}'; entries: {', '.join(entries)}")
    entry = entries[name]
    if not isinstance(entry, dict) or "family" not in entry:
        raise UserError(f"params.yaml: 'train.{name}' needs a 'family' key (one of {', '.join(sorted(REGISTRY))})")
    family = REGISTRY.get(entry["family"])
    if family is None:
        hint = difflib.get_close_matches(str(entry["family"]), REGISTRY, n=1)
        tip = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise UserError(f"params.yaml: 'train.{name}.family' is '{entry['family']}', not a known family{tip}; "
                        f"known: {', '.join(sorted(REGISTRY))}")
    training = dict(params["train_defaults"])
    hyper = family.hyperparameters()
    chosen: dict[str, object] = {}
    for key, value in entry.items():
        if key == "family":
            continue
        if key in TRAIN_KEYS:
            training[key] = value
        elif key in hyper:
            chosen[key] = _check_hyper(name, key, value, hyper[key])
        else:
            hint = difflib.get_close_matches(key, [*TRAIN_KEYS, *hyper], n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise UserError(f"params.yaml: 'train.{name}.{key}' is neither a training key nor a hyperparameter of "
                            f"family '{family.name}'{tip}; family keys: {', '.join(hyper) or 'none'}")
    validate_section(f"train.{name}", training, TRAIN_KEYS)
    if family.check:
        family.check({**hyper, **chosen}, f"train.{name}")
    cfg = {"name": name, "family": family.name, "hyper": chosen, **training}
    phases(cfg)  # a fine-tuning schedule that does not fit in epochs is an error now, not after the head phase
    return cfg


def _check_hyper(name: str, key: str, value: object, default: object) -> object:
    if default is None:  # optional value: the family's own check validates it
        return value
    if isinstance(default, (list, tuple)):
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        expected = "a list of numbers"
    elif isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true/false"
    elif isinstance(default, float):
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0, "a number >= 0"
    elif isinstance(default, int):
        low = min(default, 1)  # a count whose default is 0 may be 0
        ok, expected = isinstance(value, int) and not isinstance(value, bool) and value >= low, f"an integer >= {low}"
    elif isinstance(default, str):
        ok, expected = value is None or isinstance(value, str), "a string or null"
    else:
        ok, expected = isinstance(value, type(default)), type(default).__name__
    if not ok:
        raise UserError(f"params.yaml: 'train.{name}.{key}' must be {expected}, got {value!r}")
    return value


def check_input(family: Family, shape: tuple[int, int, int], name: str) -> None:
    if min(shape[:2]) < family.min_size:
        raise UserError(f"train.{name}: images of {shape[0]}x{shape[1]} px are too small for family "
                        f"'{family.name}' (needs >= {family.min_size} px); raise prepare.image_size")


# --- pieces of a run ---------------------------------------------------------------------------------------------


def make_optimizer(cfg: dict) -> keras.optimizers.Optimizer:
    wd = cfg["weight_decay"] or None
    lr = cfg["lr"]
    return {
        "adam": lambda: keras.optimizers.Adam(lr, weight_decay=wd),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=cfg["momentum"], weight_decay=wd),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr, momentum=cfg["momentum"], weight_decay=wd),
        "adadelta": lambda: keras.optimizers.Adadelta(lr, weight_decay=wd),
    }[cfg["optimizer"]]()


def learning_rate(cfg: dict, epoch: int) -> float:
    """lr for an epoch: constant; exp_decay (lr * exp(-k) each epoch from decay_start on); cosine to 0."""
    lr = cfg["lr"]
    if cfg["lr_schedule"] == "exp_decay" and epoch >= cfg["decay_start"]:
        return lr * math.exp(-cfg["decay_rate"] * (epoch - cfg["decay_start"] + 1))
    if cfg["lr_schedule"] == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg["epochs"]))
    return lr


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
    (keras-team/keras#20585, open), so a run would crash after start-up instead of training.
    """
    if os.environ.get("TF_CONFIG"):
        raise UserError("TF_CONFIG is set, but Keras 3 cannot fit() under MultiWorkerMirroredStrategy "
                        "(keras-team/keras#20585); unset TF_CONFIG to train on this machine's devices")
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def accelerator_settings(cfg: dict) -> tuple[bool, bool]:
    """(mixed precision, XLA): 'auto' means on when a GPU is visible."""
    gpu = bool(tf.config.list_physical_devices("GPU"))
    return ({"auto": gpu, "on": True, "off": False}[cfg["mixed_precision"]],
            {"auto": gpu, "on": True, "off": False}[cfg["xla"]])


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras EarlyStopping whose counters can be restored after an interrupted run."""

    restored: dict | None = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.restored:  # used once: a later fit (next fine-tuning phase) starts from what it is then
            self.wait, self.best, self.best_epoch = (self.restored[k] for k in ("wait", "best", "best_epoch"))
            self.best_weights = self.restored["best_weights"]
            self.restored = None

    def state(self) -> dict:
        return {"wait": self.wait, "best": float(self.best), "best_epoch": self.best_epoch}


class Checkpoints(keras.callbacks.Callback):
    """Keep the last epoch (model with optimizer state + run state) and the best epoch; nothing per epoch.

    An interrupted run (even kill -9) leaves last.keras and state.json; the next run with the same config
    resumes after that epoch. A finished run removes them, keeping best.keras.
    """

    def __init__(self, directory: Path, fingerprint: str, early: ResumableEarlyStopping):
        super().__init__()
        self.dir, self.fingerprint, self.early = directory, fingerprint, early
        self.last, self.best = directory / "last.keras", directory / "best.keras"
        self.state_file = directory / "state.json"
        self.extra: dict = {}

    def resume_state(self) -> dict | None:
        if not (self.state_file.exists() and self.last.exists()):
            return None
        state = json.loads(self.state_file.read_text())
        return state if state.get("fingerprint") == self.fingerprint else None

    def start_fresh(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.early.best_epoch == epoch:
            _atomic_save(self.model, self.best)
        _atomic_save(self.model, self.last)
        state = {"fingerprint": self.fingerprint, "epoch": epoch, "early": self.early.state(),
                 "seed_states": [v.numpy().tolist() for v in _seed_states(self.model)], **self.extra}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def finish(self) -> None:
        for path in (self.last, self.state_file):
            path.unlink(missing_ok=True)


def _seed_states(model: keras.Model) -> list:
    """The random-state variables of dropout & co., in model order: .keras files do not keep them."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _atomic_save(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def fingerprint(cfg: dict, meta: dict) -> str:
    blob = json.dumps({"cfg": cfg, "data": meta["splits"], "shape": meta["shape"]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- the run -----------------------------------------------------------------------------------------------------


def build(cfg: dict, family: Family, shape: tuple, n_classes: int) -> keras.Model:
    """The entry's model; a problem the builder finds (weights file, offline download) names the entry."""
    try:
        return family.build(shape, n_classes, **cfg["hyper"])
    except UserError as err:
        raise UserError(f"train.{cfg['name']}: {err}") from None


def cached_features(cfg: dict, prepared: Path, features_root: Path | None) -> Path | None:
    """The feature set a frozen transfer entry trains its head on, or None (with the reason in the log)."""
    hyper = hyperparameters(cfg)
    if cfg["family"] != "transfer" or hyper["mode"] != "frozen" or features_root is None:
        return None
    if cfg["augment"]:
        print(f"train {cfg['name']}: augment {cfg['augment']} changes every image each epoch, so cached features "
              "are not used: training through the frozen backbone (slower)")
        return None
    found = features.find(features_root, features.fingerprint(prepared), hyper)
    if found is None:
        print(f"train {cfg['name']}: no cached features for {features.key(hyper)} in {features_root}: training "
              f"through the frozen backbone (slower); add that key to params.yaml 'features:' to cache them")
    else:
        print(f"train {cfg['name']}: training the head on cached features {found}")
    return found


def hyperparameters(cfg: dict) -> dict:
    """The entry's family hyperparameters, defaults included."""
    return {**REGISTRY[cfg["family"]].hyperparameters(), **cfg["hyper"]}


def phases(cfg: dict) -> list[tuple[int, int]]:
    """(first, stop) epochs of each fit: fine-tuning with head_epochs trains the head alone first."""
    hyper = hyperparameters(cfg)
    if cfg["family"] != "transfer" or hyper["mode"] != "finetune" or not hyper["head_epochs"]:
        return [(0, cfg["epochs"])]
    if hyper["head_epochs"] >= cfg["epochs"]:
        raise UserError(f"params.yaml: 'train.{cfg['name']}.head_epochs' ({hyper['head_epochs']}) must be less than "
                        f"epochs ({cfg['epochs']}), or the top layers never train; lower it or raise epochs")
    return [(0, hyper["head_epochs"]), (hyper["head_epochs"], cfg["epochs"])]


def _compile(model: keras.Model, cfg: dict, xla: bool) -> None:
    model.compile(make_optimizer(cfg), loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=xla)


def train(cfg: dict, prepared: Path, model_dir: Path, live_dir: Path, features_root: Path | None = None) -> dict:
    """Train (or resume) one model entry; write model_dir/model.keras and dvclive logs; return summary metrics."""
    meta = read_meta(prepared)
    shape, n_classes = tuple(meta["shape"]), len(meta["classes"])
    family = REGISTRY[cfg["family"]]
    check_input(family, shape, cfg["name"])
    if meta["splits"]["val"]["count"] == 0:
        raise UserError("training needs a val split (early stopping, best epoch): set split.fractions.val > 0")
    keras.utils.set_random_seed(cfg["seed"])
    tf.config.experimental.enable_op_determinism()
    strategy = distribution()
    mixed, xla = accelerator_settings(cfg)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    print(f"train {cfg['name']}: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s), "
          f"mixed precision {'on' if mixed else 'off'}, XLA {'on' if xla else 'off'}")
    cached = cached_features(cfg, prepared, features_root)

    early = ResumableEarlyStopping(monitor="val_loss", patience=cfg["patience"], restore_best_weights=True)
    ckpt = Checkpoints(model_dir / "checkpoints", fingerprint({**cfg, "features": bool(cached)}, meta), early)
    state = ckpt.resume_state()
    with strategy.scope():
        model = None if state and not cached else build(cfg, family, shape, n_classes)
        if state:  # the fitted model: the whole model, or its head when it trains on cached features
            fitted = keras.models.load_model(ckpt.last)
            for variable, value in zip(_seed_states(fitted), state["seed_states"], strict=True):
                variable.assign(value)
            early.restored = {**state["early"], "best_weights": keras.models.load_model(ckpt.best).get_weights()}
            print(f"train {cfg['name']}: resuming after epoch {state['epoch'] + 1} from {ckpt.last}")
        else:
            ckpt.start_fresh()
            fitted = model.get_layer("head") if cached else model
            _compile(fitted, cfg, xla)
    first = state["epoch"] + 1 if state else 0
    train_labels = load_split(prepared, "train")[1]
    weights = class_weights(train_labels, n_classes) if cfg["class_weight"] == "balanced" else None
    batch, n_train = cfg["batch_size"], len(train_labels)

    def train_data(epochs: tuple[int, int]) -> tf.data.Dataset:
        if cached:
            return features.dataset(cached, "train", batch, shuffle=True, seed=cfg["seed"], epochs=epochs,
                                    oversample=cfg["oversample"])
        return loader.dataset(prepared, "train", batch, shuffle=True, augment=cfg["augment"], seed=cfg["seed"],
                              epochs=epochs, oversample=cfg["oversample"])

    val_ds = features.dataset(cached, "val", batch) if cached else loader.dataset(prepared, "val", batch)
    ckpt.extra = {"train_time_s": state["train_time_s"] if state else 0.0}
    try:
        live = Live(str(live_dir), dvcyaml=False, resume=bool(state), save_dvc_exp=False)
    except SCMError as err:  # e.g. a git repository without any commit
        raise UserError(f"dvclive cannot read this git repository ({err}); make a first commit "
                        "(git add -A && git commit -m init) and run again") from None
    with live:
        if state:
            live.step = first
            _drop_logged_steps(live_dir, first)
        timer = _Timer(ckpt)
        runs, hyper = phases(cfg), hyperparameters(cfg)

        def lr(epoch: int, _lr: float) -> float:
            second = len(runs) > 1 and epoch >= runs[1][0]
            return learning_rate(cfg, epoch) * (hyper["finetune_lr_factor"] if second else 1.0)

        # dvclive logs an epoch before its checkpoint is written: a kill in between re-runs (and re-logs) it
        callbacks = [keras.callbacks.LearningRateScheduler(lr), early, timer, DVCLiveCallback(live=live), ckpt]
        epochs_run = first
        for phase, (start, stop) in enumerate(runs):
            if stop <= first:
                continue
            if phase and transfer.unfreeze_top(fitted, hyper["finetune_top_n"]):
                print(f"train {cfg['name']}: fine-tuning the top {hyper['finetune_top_n']} backbone layers "
                      f"from epoch {start + 1}")
                _compile(fitted, cfg, xla)  # a changed trainable set needs a new optimizer
                if early.restored is None:  # (a resume at this very epoch restored its own state)
                    early.restored = {**early.state(), "wait": 0, "best_weights": early.best_weights}
            begin = max(first, start)
            history = fitted.fit(train_data((begin, stop)), validation_data=val_ds, epochs=stop, initial_epoch=begin,
                                 steps_per_epoch=math.ceil(n_train / batch), class_weight=weights,
                                 callbacks=callbacks, shuffle=False, verbose=2)  # the data is shuffled per epoch
            epochs_run = history.epoch[-1] + 1 if history.epoch else epochs_run
        if early.best_weights is not None:
            fitted.set_weights(early.best_weights)
        if cached:
            model.get_layer("head").set_weights(fitted.get_weights())
        else:
            model = fitted
        summary = {"best_epoch": early.best_epoch + 1, "best_val_loss": float(early.best), "epochs_run": epochs_run,
                   "train_time_s": round(ckpt.extra["train_time_s"], 2), **param_counts(model)}
        if cfg["retrain_full_epochs"]:
            model = retrain_full(cfg, family, prepared, shape, n_classes, xla, strategy)
            print(f"train {cfg['name']}: retrained on train+val for {cfg['retrain_full_epochs']} epoch(s)")
        summary["retrained_on_train_val"] = bool(cfg["retrain_full_epochs"])
        for key, value in summary.items():
            live.log_metric(key, value, plot=False)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / "model.keras")
    (model_dir / "classes.json").write_text(json.dumps({"classes": meta["classes"]}, ensure_ascii=False) + "\n")
    (live_dir / "summary.txt").write_text(_summary_text(model))
    ckpt.finish()
    return summary


def _drop_logged_steps(live_dir: Path, first: int) -> None:
    """Forget dvclive rows of epochs >= first (logged before an interruption; they are trained again)."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        step = lines[0].split("\t").index("step")
        tsv.write_text("\n".join([lines[0], *(r for r in lines[1:] if int(r.split("\t")[step]) < first)]) + "\n")


class _Timer(keras.callbacks.Callback):
    """Accumulates training wall time across resumes (kept in the checkpoint state)."""

    def __init__(self, ckpt: Checkpoints):
        super().__init__()
        self.ckpt = ckpt

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.ckpt.extra["train_time_s"] += time.perf_counter() - self.start


def retrain_full(cfg: dict, family: Family, prepared: Path, shape: tuple, n_classes: int, xla: bool,
                 strategy: tf.distribute.Strategy) -> keras.Model:
    """A fresh model trained on train+val for retrain_full_epochs epochs (no early stopping)."""
    keras.utils.set_random_seed(cfg["seed"])
    with strategy.scope():
        model = build(cfg, family, shape, n_classes)
        _compile(model, cfg, xla)
    splits = ("train", "val")
    data = loader.dataset(prepared, splits, cfg["batch_size"], shuffle=True, augment=cfg["augment"],
                          seed=cfg["seed"], epochs=(0, cfg["retrain_full_epochs"]))
    count = sum(read_meta(prepared)["splits"][s]["count"] for s in splits)
    schedule = keras.callbacks.LearningRateScheduler(lambda e, _lr: learning_rate(cfg, e))
    model.fit(data, epochs=cfg["retrain_full_epochs"], steps_per_epoch=math.ceil(count / cfg["batch_size"]),
              shuffle=False, verbose=2, callbacks=[schedule])
    return model


def param_counts(model: keras.Model) -> dict[str, int]:
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(sum(np.prod(w.shape) for w in model.weights))
    return {"params_total": total, "params_trainable": trainable, "params_non_trainable": total - trainable}


def _summary_text(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=100)
    return "\n".join(lines) + "\n"
