"""A progress bar over the batches a user waits on: each epoch of fit, or one predict (tqdm on standard error)."""

from __future__ import annotations

import keras
from tqdm import tqdm


class BatchProgress(keras.callbacks.Callback):
    """tqdm's bar (batches done, rate, time left) for each epoch of fit and for a predict; transient, so the
    epoch's log line stays the record. Keras reports every steps_per_execution batches, with the index the last one
    would have (past the end in a short last run)."""

    def __init__(self, desc: str):
        super().__init__()
        self.desc = desc
        self.bar: tqdm | None = None
        self._title = desc

    def _open(self, _batch: int, logs=None) -> None:
        """The bar opens with the first batch: after Keras' own "Epoch N/M" line (a later callback), not under it."""
        if self.bar is None:
            self.bar = tqdm(total=self.params.get("steps"), desc=self._title, unit="batch", leave=False)

    def _advance(self, end_step: int, logs=None) -> None:
        done = end_step + 1 if self.bar.total is None else min(end_step + 1, self.bar.total)
        self.bar.update(done - self.bar.n)

    def _close(self, *_args) -> None:
        if self.bar is not None:
            self.bar.refresh()  # the last count is shown (and logged) even when it came within tqdm's update interval
            self.bar.close()
            self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._title = f"{self.desc} epoch {epoch + 1}"

    on_train_batch_begin = on_predict_batch_begin = _open
    on_train_batch_end = on_predict_batch_end = _advance
    on_epoch_end = on_predict_end = _close
