"""A run's checkpoints: what they hold, when they are written, which one a resume uses.

A checkpoint holds the four networks, their optimizers (moments and iteration count), the
random state of the generators' dropout and of DiffAugment, the fake-image history if one is
used, and the training step. The data position follows
from the step (the input pipeline is a function of the seed and the step, see
`data.training_dataset`), so a resumed run takes the steps an uninterrupted one would have.

Checkpoints are numbered by step. They are written every `checkpoint_every_steps` steps,
at the end of every `checkpoint_every_epochs`-th epoch, at the end of training, and when
the process is asked to stop (SIGTERM, SIGINT); never after a loss went NaN or infinite.
"""

import math
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from monet_gan.cyclegan import NETWORK_NAMES
from monet_gan.errors import RunError, TrainingStopped

CHECKPOINT_PREFIX = "ckpt"
DAMAGED_DIR = "damaged"  # where a resume moves checkpoints that do not restore


def dropout_random_state(network: keras.Model) -> list:
    """The state variables of a network's dropout seed generators (not among its weights)."""
    return [v for v in network.non_trainable_variables if v.path.endswith("seed_generator_state")]


def make_checkpoint(model, step: tf.Variable) -> tf.train.Checkpoint:
    """Everything a run needs to continue exactly."""
    parts = {}
    for name, (optimizer, network) in zip(NETWORK_NAMES, model.optimized_networks()):
        parts.update({name: network, f"{name}_optimizer": optimizer,
                      f"{name}_dropout_state": dropout_random_state(network)})
    parts["augment_random_state"] = [model.seed_generator.state]  # DiffAugment, image history
    if model.histories:
        parts["image_history"] = [v for h in model.histories.values() for v in h.variables]
    return tf.train.Checkpoint(step=step, **parts)


def checkpoint_steps(directory: Path) -> list[int]:
    """The steps of the checkpoints in `directory` (those with an index file), oldest first."""
    steps = [re.fullmatch(rf"{CHECKPOINT_PREFIX}-(\d+)\.index", p.name) for p in directory.glob("*.index")]
    return sorted(int(m.group(1)) for m in steps if m)


def _damage(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be restored (every tensor is read), or None."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 (OpError, IndexError, ...: any failure is damage)
        return (str(getattr(error, "message", error)).splitlines() or [type(error).__name__])[0]
    return None


def restore_newest(checkpoint: tf.train.Checkpoint, directory: Path, partial: bool = False,
                   move_damaged: bool = True) -> str | None:
    """Restores the newest checkpoint in `directory` that reads back whole; returns its path,
    or None when there is none. A damaged one is reported and (with `move_damaged`) moved to
    `damaged/`, never deleted; when every checkpoint is damaged that is an error. `partial`:
    `checkpoint` holds only some of what was saved (export restores one generator)."""
    steps = checkpoint_steps(directory)
    for step in reversed(steps):
        path = str(directory / f"{CHECKPOINT_PREFIX}-{step}")
        problem = _damage(path)
        if problem is None:
            status = checkpoint.restore(path)
            try:
                status.expect_partial() if partial else status.assert_consumed()
            except AssertionError as error:
                raise RunError(
                    f"{path} does not fit this run's networks (written by another version of "
                    f"monet_gan, or for another config): {str(error).splitlines()[0][:300]}"
                ) from None
            return path
        note = "skipping it"
        if move_damaged:
            aside = directory / DAMAGED_DIR
            aside.mkdir(exist_ok=True)
            for part in directory.glob(f"{CHECKPOINT_PREFIX}-{step}.*"):
                shutil.move(str(part), aside / part.name)
            note = f"moved it to {aside}"
        print(f"warning: checkpoint {path} is damaged ({problem}); {note} and using the one "
              "before.", file=sys.stderr)
    if steps:
        raise RunError(f"No checkpoint in {directory} can be restored; the damaged ones are "
                       f"in {directory / DAMAGED_DIR}.")
    return None


def all_finite(variables) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables
               if np.issubdtype(np.dtype(v.dtype), np.floating))


class StopSignals:
    """While active, the first SIGTERM or SIGINT asks training to save and stop after the
    current step; a second one exits at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is not None:
            print(f"\n{name} again: exiting at once, without saving.", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.received = signum
        print(f"\n{name}: saving a checkpoint after the current step, then stopping "
              f"(send {name} again to exit at once).", file=sys.stderr, flush=True)

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they were
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class CheckpointCallback(keras.callbacks.Callback):
    """Saves checkpoints as the module docstring says, and stops training on a non-finite
    loss (before anything is saved) or on a stop signal (after saving)."""

    def __init__(self, manager: tf.train.CheckpointManager, step: tf.Variable, *, start_step: int,
                 steps_per_epoch: int, every_steps: int, every_epochs: int, epochs: int,
                 signals: StopSignals):
        super().__init__()
        self.manager = manager
        self.step = step
        self.start_step = start_step
        self.steps_per_epoch = steps_per_epoch
        self.every_steps = every_steps
        self.every_epochs = every_epochs
        self.epochs = epochs
        self.signals = signals
        self.saved_step = start_step
        self.epoch_first_step = start_step

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_first_step = max(epoch * self.steps_per_epoch, self.start_step)

    def on_train_batch_end(self, batch, logs=None):
        done = self.epoch_first_step + batch + 1  # steps taken since the run began
        self.check_finite(done, logs or {})
        if self.every_steps and done // self.every_steps > self.saved_step // self.every_steps:
            self.save(done)
        if self.signals.received is not None:
            self.stop_for_signal(done, "continue with --resume RUN_DIR")

    def stop_for_signal(self, done: int, what_next: str):
        self.save(done)
        self.model.stop_training = True
        name = signal.Signals(self.signals.received).name
        raise TrainingStopped(f"Stopped by {name} after step {done}; saved "
                              f"{self.manager.latest_checkpoint}: {what_next}.",
                              exit_code=128 + self.signals.received)

    def on_epoch_end(self, epoch, logs=None):
        done = (epoch + 1) * self.steps_per_epoch
        if (epoch + 1) % self.every_epochs == 0 or epoch + 1 == self.epochs:
            self.save(done)

    def check_finite(self, done: int, logs: dict):
        bad = sorted(name for name, value in logs.items() if not math.isfinite(float(value)))
        if bad:
            last = self.manager.latest_checkpoint or "none was written"
            raise TrainingStopped(
                f"{bad[0]} became {float(logs[bad[0]])} by step {done} "
                f"(non-finite: {', '.join(bad)}). Training stopped; nothing was saved after it, "
                f"the newest checkpoint ({last}) holds the last good weights. Lower the learning "
                "rate or use float32, then resume from there.", exit_code=3)

    def save(self, done: int):
        if done == self.saved_step and self.manager.latest_checkpoint:
            return
        if not all_finite(self.model.trainable_variables):
            raise TrainingStopped(f"Weights are not finite after step {done}; not saving them. "
                                  f"The newest checkpoint is {self.manager.latest_checkpoint}.",
                                  exit_code=3)
        self.step.assign(done)
        self.manager.save(checkpoint_number=done)
        self.saved_step = done


def estimated_checkpoint_bytes(model) -> int:
    """Bytes of one checkpoint: every float variable of the networks and optimizers."""
    variables = list(model.variables)
    for optimizer, _ in model.optimized_networks():
        variables += list(optimizer.variables)
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables))
