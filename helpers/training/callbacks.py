"""Keras callbacks of head training: live loss curves, sample captions, the epoch clock, the
resume state file.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import keras
import numpy as np

from helpers import plots
from helpers.predict import decoding
from helpers.training.features import FeatureCache


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LiveLossPlot(keras.callbacks.Callback):
    """Redraw training and validation loss curves after every epoch, in place, in a notebook
    (one `IPython.display` handle updated); does nothing outside a notebook."""

    def __init__(self, history_csv: Path | None = None):
        super().__init__()
        self.enabled = _in_notebook()
        self.history: dict[str, list[float]] = {}
        self.handle = None
        # A resumed run: start from the epochs already logged (read now, before CSVLogger opens it).
        if history_csv is not None and Path(history_csv).is_file() and Path(history_csv).stat().st_size:
            import pandas

            frame = pandas.read_csv(history_csv)
            self.history = {column: frame[column].tolist() for column in frame.columns if column != "epoch"}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if not self.enabled:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        figure = plots.plot_training_history(self.history)
        if self.handle is None:
            self.handle = display(figure, display_id=True)
        else:
            self.handle.update(figure)
        plt.close(figure)


class SampleCaptions(keras.callbacks.Callback):
    """Caption a few fixed validation images (greedy) after every epoch and print them."""

    def __init__(self, cache: FeatureCache, records, vocabulary, max_length: int,
                 count: int = 3):
        super().__init__()
        self.records = list(records)[:count]
        self.vocabulary, self.max_length = vocabulary, max_length
        self.pooled, self.grid = (cache.features([r.image_id for r in self.records]) if self.records
                                  else (None, None))

    def on_epoch_end(self, epoch, logs=None):
        if not self.records:
            return
        ids = decoding.greedy_token_ids(self.model.decoder, self.pooled, self.grid, self.max_length)
        for record, row in zip(self.records, ids):
            print(f"  [{record.image_id}] {self.vocabulary.decode(row)}   (ref: {record.captions[0]})")


class EpochClock(keras.callbacks.Callback):
    """The epoch a `fit` is in, and the random draws of that epoch as a function of (seed, epoch).

    `epoch` (0-based) is set before the epoch's data is read, for the training data whose order
    is a function of (seed, epoch) (`pipelines.caption_dataset`). At the same moment every random
    seed state of the model (Keras `SeedGenerator`s: the dropout masks) is set from
    `(seed, epoch, its index)`: a run killed during epoch e and resumed from its backup (which
    holds weights and optimizer, not seed states) draws the masks an uninterrupted run draws.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = int(seed)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)
        states = [variable for variable in self.model.variables
                  if variable.path.endswith("seed_generator_state")]
        for index, state in enumerate(states):     # the model's order: the same in every process
            start = np.random.default_rng([self.seed, self.epoch, index]).integers(0, 2**31 - 1)
            state.assign(np.array([start, 0], dtype=state.dtype))


class StateFile(keras.callbacks.Callback):
    """Write `checkpoints/state.json` (epoch, optimizer step, time) after every epoch."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        state = {"epochs_done": epoch + 1, "optimizer_step": int(self.model.optimizer.iterations.numpy()),
                 "logs": {key: float(value) for key, value in (logs or {}).items()}, "time": time.time()}
        self.path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def tensorboard_available() -> bool:
    """Whether the `tensorboard` package (needed by tf.summary) is installed."""
    return importlib.util.find_spec("tensorboard") is not None
