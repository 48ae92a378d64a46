"""A run's checkpoints: what they hold, when they are written, which one a resume uses.

A checkpoint holds the networks (the CycleGAN's four, or contrastive translation's three),
their optimizers (moments and iteration count, and the
moving average of the photo -> Monet generator's weights with `generator_average`), the
random state of the generators' dropout and of DiffAugment, the fake-image history if one is
used, and the training step. The data position follows
from the step (the input pipeline is a function of the seed and the step, see
`pipeline.training_dataset`), so a resumed run takes the steps an uninterrupted one would have.

Checkpoints are numbered by step. They are written every `checkpoint_every_steps` steps,
at the end of every `checkpoint_every_epochs`-th epoch, at the end of training, and when
the process is asked to stop (SIGTERM, SIGINT); never after a loss went NaN or infinite.
"""

import io
import math
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np

from monet_gan.errors import RunError, TrainingStopped
from monet_gan.files import write_atomically

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

CHECKPOINT_PREFIX = "ckpt"
ARRAY_SUFFIX = ".npz"  # an ArrayCheckpoint's file
DAMAGED_DIR = "damaged"  # where a resume moves checkpoints that do not restore


def dropout_random_state(network: keras.Model) -> list:
    """The state variables of a network's dropout seed generators (not among its weights)."""
    return [v for v in network.non_trainable_variables if v.path.endswith("seed_generator_state")]


def make_checkpoint(model, step):
    """Everything a run needs to continue exactly: a tf.train.Checkpoint under TensorFlow, an
    ArrayCheckpoint of the same parts under any other backend."""
    parts = {"step": [step]}
    for name, (optimizer, network) in zip(model.NETWORK_NAMES, model.optimized_networks()):
        parts.update({name: network, f"{name}_optimizer": optimizer,
                      f"{name}_dropout_state": dropout_random_state(network)})
    parts["augment_random_state"] = [model.seed_generator.state]  # DiffAugment, image history
    if model.histories:
        parts["image_history"] = [v for h in model.histories.values() for v in h.variables]
    if keras.backend.backend() == "tensorflow":
        parts["step"] = step
        return tf.train.Checkpoint(**parts)
    return ArrayCheckpoint(parts)


def generator_checkpoint(generator: keras.Model, directory: Path, optimizer=None):
    """A checkpoint holding the photo -> Monet generator alone (and its `optimizer`, when
    given: where the moving average of its weights is kept), in the format of the
    checkpoints in `directory` (the export reads a JAX run's from TensorFlow too)."""
    parts = {"photo_to_monet": generator}
    if optimizer is not None:
        parts["photo_to_monet_optimizer"] = optimizer
    arrays = any(Path(directory).glob(f"{CHECKPOINT_PREFIX}-*{ARRAY_SUFFIX}"))
    if keras.backend.backend() == "tensorflow" and not arrays:
        return tf.train.Checkpoint(**parts)
    return ArrayCheckpoint(parts)


def make_manager(checkpoint, directory: Path, max_to_keep: int):
    """Writes numbered checkpoints into `directory`, keeping the newest `max_to_keep`."""
    if isinstance(checkpoint, ArrayCheckpoint):
        return ArrayCheckpointManager(checkpoint, directory, max_to_keep)
    return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep,
                                      checkpoint_name=CHECKPOINT_PREFIX)


class ArrayCheckpoint:
    """The parts of `make_checkpoint` as one `.npz` of arrays, for backends without
    TensorFlow's variables (JAX). A network's weights are keyed by their paths (so a
    TensorFlow process can read a JAX run's generator), every other variable by its part and
    position. Written whole under a temporary name, then renamed."""

    def __init__(self, parts: dict):
        self.variables = {}
        for part, holder in parts.items():
            if isinstance(holder, keras.Model):
                self.variables.update({f"{part}/{v.path}": v for v in holder.weights
                                       if not v.path.endswith("seed_generator_state")})
            else:
                variables = holder.variables if isinstance(holder, keras.optimizers.Optimizer) else holder
                self.variables.update({f"{part}/{i}": v for i, v in enumerate(variables)})

    def write(self, path: str) -> str:
        arrays = {name: keras.ops.convert_to_numpy(v.value) for name, v in self.variables.items()}
        content = io.BytesIO()
        np.savez(content, **arrays)
        write_atomically(Path(f"{path}{ARRAY_SUFFIX}"), content.getvalue())
        return path

    def restore(self, path: str, partial: bool = False) -> None:
        """Raises AssertionError (as tf.train's status checks do) when the file does not hold
        exactly these variables (with `partial`: at least these), with their shapes."""
        with np.load(f"{path}{ARRAY_SUFFIX}", allow_pickle=False) as stored:
            missing = sorted(set(self.variables) - set(stored.files))
            unused = sorted(set(stored.files) - set(self.variables))
            if missing or (unused and not partial):
                raise AssertionError(f"missing {missing[:3]}, unused {unused[:3]}")
            values = {name: stored[name] for name in self.variables}
        for name, variable in self.variables.items():
            if tuple(values[name].shape) != tuple(variable.shape):
                raise AssertionError(f"{name} is {values[name].shape} there, {variable.shape} here")
            variable.assign(values[name])


class ArrayCheckpointManager:
    """tf.train.CheckpointManager's part that training uses, for ArrayCheckpoints."""

    def __init__(self, checkpoint: ArrayCheckpoint, directory: Path, max_to_keep: int):
        self.checkpoint, self.directory, self.max_to_keep = checkpoint, Path(directory), max_to_keep

    @property
    def latest_checkpoint(self) -> str | None:
        steps = checkpoint_steps(self.directory)
        return str(self.directory / f"{CHECKPOINT_PREFIX}-{steps[-1]}") if steps else None

    def save(self, checkpoint_number: int) -> str:
        path = self.checkpoint.write(str(self.directory / f"{CHECKPOINT_PREFIX}-{checkpoint_number}"))
        for old in checkpoint_steps(self.directory)[:-self.max_to_keep]:
            (self.directory / f"{CHECKPOINT_PREFIX}-{old}{ARRAY_SUFFIX}").unlink(missing_ok=True)
        return path


def checkpoint_steps(directory: Path) -> list[int]:
    """The steps of the checkpoints in `directory` (those with an index file, or .npz arrays),
    oldest first."""
    pattern = rf"{CHECKPOINT_PREFIX}-(\d+)(\.index|{re.escape(ARRAY_SUFFIX)})"
    steps = [re.fullmatch(pattern, p.name) for p in Path(directory).glob(f"{CHECKPOINT_PREFIX}-*")]
    return sorted({int(m.group(1)) for m in steps if m})


def _damage(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be restored (every tensor is read), or None."""
    try:
        if Path(f"{path}{ARRAY_SUFFIX}").exists():
            with np.load(f"{path}{ARRAY_SUFFIX}", allow_pickle=False) as stored:
                for name in stored.files:
                    stored[name]
        else:
            reader = tf.train.load_checkpoint(path)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 (OpError, IndexError, ...: any failure is damage)
        return (str(getattr(error, "message", error)).splitlines() or [type(error).__name__])[0]
    return None


def restore_newest(checkpoint, directory: Path, partial: bool = False,
                   move_damaged: bool = True) -> str | None:
    """Restores the newest checkpoint in `directory` that reads back whole; returns its path,
    or None when there is none (either format). A damaged one is reported and (with `move_damaged`) moved to
    `damaged/`, never deleted; when every checkpoint is damaged that is an error. `partial`:
    `checkpoint` holds only some of what was saved (export restores one generator)."""
    steps = checkpoint_steps(directory)
    for step in reversed(steps):
        path = str(directory / f"{CHECKPOINT_PREFIX}-{step}")
        problem = _damage(path)
        if problem is None:
            try:
                if isinstance(checkpoint, ArrayCheckpoint):
                    checkpoint.restore(path, partial)
                else:
                    status = checkpoint.restore(path)
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
    return all(np.isfinite(keras.ops.convert_to_numpy(v.value)).all() for v in variables
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

    def __init__(self, manager, step, *, start_step: int,
                 steps_per_epoch: int, every_steps: int, every_epochs: int, epochs: int,
                 signals: StopSignals, deadline: float | None = None):
        super().__init__()
        self.deadline = deadline  # time.monotonic() after which training saves and ends
        self.out_of_time = None  # the step it ended at, then
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
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.save(done)
            self.model.stop_training = True
            self.out_of_time = done
            print(f"\nThe time budget is spent: stopped after step {done} of "
                  f"{self.epochs * self.steps_per_epoch}, saved {self.manager.latest_checkpoint}.",
                  flush=True)

    def stop_for_signal(self, done: int, what_next: str):
        self.save(done)
        self.model.stop_training = True
        name = signal.Signals(self.signals.received).name
        raise TrainingStopped(f"Stopped by {name} after step {done}; saved "
                              f"{self.manager.latest_checkpoint}: {what_next}.",
                              exit_code=128 + self.signals.received)

    def on_epoch_end(self, epoch, logs=None):
        if self.out_of_time is not None:  # the epoch ended early; its step is saved
            return
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
        if hasattr(self.model, "sync_variables"):  # a CycleGAN trained under JAX: its state
            self.model.sync_variables()
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
