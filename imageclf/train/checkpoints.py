"""Resume state of a training run: early stopping counters, the last and best epoch, seeds, wall time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import keras


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


class ResumableSwapEMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras' SwapEMAWeights with swap_on_epoch: validation, early stopping and the checkpoints after it see the
    optimizer's moving average of the weights, and each epoch trains on the raw ones. A checkpoint is saved with them
    swapped, so a run that resumes from one starts swapped: its first epoch swaps back, as an uninterrupted run's
    does (with the same arithmetic, so the weights stay bit for bit the same)."""

    def __init__(self, resumed: bool):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed


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

    def restore(self, state: dict) -> keras.Model:
        """The fitted model of the last finished epoch, with its dropout seeds and early-stopping counters."""
        fitted = keras.models.load_model(self.last)
        for variable, value in zip(seed_states(fitted), state["seed_states"], strict=True):
            variable.assign(value)
        self.early.restored = {**state["early"], "best_weights": keras.models.load_model(self.best).get_weights()}
        return fitted

    def start_fresh(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.early.best_epoch == epoch:
            _atomic_save(self.model, self.best)
        _atomic_save(self.model, self.last)
        state = {"fingerprint": self.fingerprint, "epoch": epoch, "early": self.early.state(),
                 "seed_states": [v.numpy().tolist() for v in seed_states(self.model)], **self.extra}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def finish(self) -> None:
        for path in (self.last, self.state_file):
            path.unlink(missing_ok=True)


def seed_states(model: keras.Model) -> list:
    """The random-state variables of dropout & co., in model order: .keras files do not keep them."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _atomic_save(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def fingerprint(cfg: dict, meta: dict) -> str:
    blob = json.dumps({"cfg": cfg, "data": meta["splits"], "shape": meta["shape"]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def drop_logged_steps(live_dir: Path, first: int) -> None:
    """Forget dvclive rows of epochs >= first (logged before an interruption; they are trained again)."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        step = lines[0].split("\t").index("step")
        tsv.write_text("\n".join([lines[0], *(r for r in lines[1:] if int(r.split("\t")[step]) < first)]) + "\n")


class Timer(keras.callbacks.Callback):
    """Accumulates training wall time across resumes (kept in the checkpoint state) and puts the seconds so far in
    the epoch's logs, which dvclive (a later callback) writes as train/time_s."""

    def __init__(self, ckpt: Checkpoints):
        super().__init__()
        self.ckpt = ckpt

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.ckpt.extra["train_time_s"] += time.perf_counter() - self.start
        if logs is not None:
            logs["time_s"] = round(self.ckpt.extra["train_time_s"], 2)
