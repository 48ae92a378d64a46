"""Training a CycleGAN: `python -m monet_gan.train` and `train(config, run_dir)`.

A run folder holds everything one run made:
    config.json        the resolved config (what --resume reads back)
    checkpoints/       tf.train checkpoints, ckpt-STEP: networks, optimizers, dropout state, step
    samples/           epoch-NNN.png: photos (top row) and their paintings (bottom row)
    metrics.csv        the mean losses of each epoch
    tensorboard/       the same losses for TensorBoard
    images.zip         one 256x256 JPEG painting per photo (the competition submission)
    saved_model/       the photo -> Monet generator, uint8 in, uint8 out
"""

import argparse
import contextlib
import functools
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from monet_gan import checkpoints, cyclegan, data, distribute, evaluate
from monet_gan import config as config_lib
from monet_gan.config import Config
from monet_gan.files import OutputError, check_writable, write_atomically

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT_DIR = "best_checkpoint"  # written by evaluate.FidCallback


class RunError(ValueError):
    """A run folder or flag that cannot be used; the message says what to do."""


def new_run_dir(root: Path, preset: str) -> Path:
    """The next numbered folder under `root`: runs/000-sample, runs/001-sample, ..."""
    numbers = [int(p.name.split("-")[0]) for p in root.glob("[0-9][0-9][0-9]-*") if p.is_dir()]
    return root / f"{max(numbers, default=-1) + 1:03d}-{preset}"


def load_run_config(run_dir: Path) -> Config:
    """The config a run folder was trained with (its config.json)."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} is not a monet_gan run folder: it has no {CONFIG_FILE}.")
    return Config.from_json(path.read_text(), source=str(path))


def sample_grid(generator: keras.Model, photos: np.ndarray, tile: int = 128) -> np.ndarray:
    """uint8 image: the photos in the top row, their paintings below, tiles >= `tile` px."""
    paintings = generator(data.to_float(photos), training=False)
    rows = tf.concat([tf.concat(list(photos), axis=1),
                      tf.concat(list(data.to_uint8(paintings)), axis=1)], axis=0)
    scale = max(1, tile // photos.shape[1])
    size = [rows.shape[0] * scale, rows.shape[1] * scale]
    return tf.image.resize(rows, size, method="nearest").numpy()


class RunCallback(keras.callbacks.Callback):
    """After each epoch, on the chief: a sample grid PNG and a row of mean losses in
    metrics.csv (the mean over the steps this process took in that epoch)."""

    def __init__(self, run_dir: Path, sample_photos, chief: bool, columns=cyclegan.LOSS_NAMES):
        super().__init__()
        self.columns = columns
        self.run_dir = run_dir
        self.sample_photos = sample_photos
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        if self.chief:
            grid = sample_grid(self.model.photo_to_monet, self.sample_photos)
            png = tf.io.encode_png(grid).numpy()
            write_atomically(self.run_dir / "samples" / f"epoch-{epoch + 1:03d}.png", png)
            write_atomically(self.run_dir / "samples.png", png)
            self._write_metrics(epoch + 1, logs or {})

    def _write_metrics(self, epoch: int, logs: dict):
        """Rewrites metrics.csv with this epoch's row last (rows of a later epoch, left by a
        run that was resumed from an earlier checkpoint, are dropped). A score not computed
        this epoch is left empty."""
        path = self.run_dir / "metrics.csv"
        header = ",".join(["epoch", *self.columns])
        rows = path.read_text().splitlines()[1:] if path.is_file() else []
        rows = [r for r in rows if r.split(",")[0].isdigit() and int(r.split(",")[0]) < epoch]
        values = [f"{float(logs[n]):.6g}" if n in logs else "" for n in self.columns]
        rows.append(",".join([str(epoch), *values]))
        write_atomically(path, ("\n".join([header, *rows]) + "\n").encode())


def fit_multiworker(model: cyclegan.CycleGAN, pairs: tf.data.Dataset, *, epochs: int,
                    initial_epoch: int, steps_per_epoch: int, callbacks: list, **unused):
    """`model.fit` for MultiWorkerMirroredStrategy, which Keras 3's fit does not support
    (keras-team/keras#20585): the same train_step, metrics and callbacks, without a bar."""
    strategy = model.distribute_strategy
    batches = iter(strategy.experimental_distribute_dataset(pairs))

    @tf.function
    def train_step():
        strategy.run(model.train_step, args=(next(batches),))

    def logs():  # read outside the replicas, the trackers hold the mean over all workers
        return {metric.name: float(metric.result()) for metric in model.metrics}

    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            train_step()
            callback_list.on_train_batch_end(batch, logs())
        print(f"Epoch {epoch + 1}/{epochs}: " + " - ".join(f"{k}: {v:.4f}" for k, v in logs().items()))
        callback_list.on_epoch_end(epoch, logs())
    callback_list.on_train_end()


def check_free_space(run_dir: Path, model: cyclegan.CycleGAN) -> None:
    """Two checkpoints must fit (the one being written and the newest before it)."""
    one = checkpoints.estimated_checkpoint_bytes(model)
    free = shutil.disk_usage(run_dir).free
    if free < 2 * one:
        raise OutputError(
            f"{run_dir} has {free / 2**30:.2f} GiB free; this model's checkpoints need about "
            f"{2 * one / 2**30:.2f} GiB (two of {one / 2**30:.2f} GiB). Free some space or "
            "choose another --run-dir."
        )


def train(config: Config, run_dir: str | Path, resume: bool = False,
          strategy: tf.distribute.Strategy | None = None) -> cyclegan.CycleGAN:
    """Trains (or, with `resume`, continues) the run in `run_dir`; returns the model.

    A new run refuses a folder that already holds a run. `strategy` defaults to
    `get_strategy(config.strategy)`. Exports images.zip and the SavedModel at the end
    when `config.export` is set. Raises checkpoints.TrainingStopped when a signal or a
    non-finite loss ends training early (after saving, or without saving, respectively).
    """
    run_dir = Path(run_dir)
    if not resume and (run_dir / CONFIG_FILE).exists():
        raise RunError(
            f"--run-dir {run_dir} already holds a run. Continue it with --resume {run_dir}, "
            "or choose another --run-dir."
        )
    config = config.replace(data_dir=data.resolve_data_dir(config.data_dir))
    keras.utils.set_random_seed(config.seed)
    strategy = strategy or distribute.get_strategy(config.strategy)
    chief = distribute.is_chief(strategy)
    multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    records = data.training_records(config, global_batch)
    steps = config.steps_per_epoch or records[1].count // global_batch

    if chief:
        check_writable(run_dir, "--run-dir")
        write_atomically(run_dir / CONFIG_FILE, config.to_json().encode())
    # Every worker saves (saving is collective); only the chief's copy is the run's.
    scratch = None if chief else tempfile.TemporaryDirectory(prefix="monet_gan_worker_")
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    with strategy.scope():
        model = cyclegan.build_cyclegan(config, total_steps=config.epochs * steps)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    if chief:
        check_free_space(run_dir, model)
    checkpoint = checkpoints.make_checkpoint(model, step)
    if resume:
        restored = checkpoints.restore_newest(checkpoint, checkpoint_dir, move_damaged=chief)
        if restored:
            epochs_done, offset = divmod(int(step.numpy()), steps)
            print(f"Resumed {restored} at step {int(step.numpy())} ({epochs_done} epochs and "
                  f"{offset} steps done).")
    manager = tf.train.CheckpointManager(
        checkpoint, str(checkpoint_dir if chief else scratch.name), config.checkpoints_to_keep,
        checkpoint_name=checkpoints.CHECKPOINT_PREFIX)

    sample_photos = np.stack(list(data.read_images(records[0], config.image_size)
                                  .take(config.sample_images).as_numpy_iterator()))
    columns = cyclegan.LOSS_NAMES + (evaluate.SCORE_NAMES if config.fid_every else ())
    start_step = int(step.numpy())
    signals = checkpoints.StopSignals()
    saver = checkpoints.CheckpointCallback(
        manager, step, start_step=start_step, steps_per_epoch=steps,
        every_steps=config.checkpoint_every_steps, every_epochs=config.checkpoint_every_epochs,
        epochs=config.epochs, signals=signals)
    callbacks = [saver, RunCallback(run_dir, sample_photos, chief, columns)]
    scorer = (evaluate.fid_callback(config, checkpoint, run_dir, *records)
              if config.fid_every and chief else None)
    if scorer:
        callbacks.insert(1, scorer)  # after the NaN check, before the callbacks that log its scores
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))

    fit = functools.partial(fit_multiworker, model) if multiworker else model.fit
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def run_epochs(first_step: int, epochs: int, steps_per_epoch: int):
        pairs = data.training_dataset(config, global_batch, first_step, records).with_options(options)
        fit(pairs, epochs=epochs, initial_epoch=first_step // steps, steps_per_epoch=steps_per_epoch,
            callbacks=callbacks, shuffle=False, verbose=1 if sys.stdout.isatty() else 2)

    if start_step >= config.epochs * steps:
        print(f"{run_dir} has trained {start_step // steps} of {config.epochs} epochs already; "
              "pass --epochs N with --resume to train more.")
    else:
        # Signals are left alone with several workers: saving is collective there.
        with (signals if not multiworker else contextlib.nullcontext()):
            epoch, offset = divmod(start_step, steps)
            if offset:  # finish the epoch the checkpoint was written in
                run_epochs(start_step, epoch + 1, steps - offset)
                epoch += 1
            if epoch < config.epochs:
                run_epochs(epoch * steps, config.epochs, steps)
            if signals.received is not None:  # it came after the last step
                saver.stop_for_signal(config.epochs * steps, "the export was not written")

    if scratch is not None:
        scratch.cleanup()
    skipped = sum(len(r.problems) for r in records)
    if skipped:
        print(f"Left out {skipped} unusable records or files (--on-bad-record skip).")
    if config.export and chief:
        from monet_gan import export  # noqa: PLC0415 (export imports train)

        # From the newest checkpoint, into a generator outside the strategy: its variables
        # then live on this host, which also holds on a TPU.
        export.export_run(run_dir)
    return model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m monet_gan.train", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1],
    )
    parser.add_argument("--preset", default="sample", choices=config_lib.PRESETS,
                        help="starting config (default: sample)")
    parser.add_argument("--data", help="folder holding monet_tfrec/ and photo_tfrec/")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int, help="default: Monet images // batch")
    parser.add_argument("--batch-size", type=int, help="per replica")
    parser.add_argument("--image-size", type=int, help="a power of two from 32 to 256")
    parser.add_argument("--run-dir", help="default: runs/NNN-PRESET, the next free number")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue this run with its saved config")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--strategy", choices=("auto", "tpu", "mirrored", "multiworker", "default"))
    parser.add_argument("--precision", choices=config_lib.PRECISIONS)
    parser.add_argument("--jit-compile", action="store_true", default=None, help="XLA-compile the train step")
    parser.add_argument("--steps-per-execution", type=int)
    parser.add_argument("--no-fastest-cpu-kernels", action="store_true",
                        help="train every convolution with TensorFlow's own CPU kernel, untimed")
    parser.add_argument("--generator", choices=("unet", "resnet"), help="default: unet (the tutorial's)")
    parser.add_argument("--adversarial-loss", choices=("bce", "lsgan"), help="default: bce (the tutorial's)")
    parser.add_argument("--diffaugment", metavar="PARTS",
                        help="DiffAugment before every critic call: a comma list of color, translation, cutout")
    parser.add_argument("--diffaugment-strength", type=float, help="scales DiffAugment's ranges (default 1)")
    parser.add_argument("--history-size", type=int, help="fake images kept per critic (the paper: 50)")
    parser.add_argument("--lr-decay-start", type=float,
                        help="fraction of the run after which the rate falls linearly to 0 (default 1: never)")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--cycle-weight", type=float)
    parser.add_argument("--identity-weight", type=float, help="0 turns the identity loss off")
    parser.add_argument("--no-augment", action="store_true", help="no random flip and crop jitter of the inputs")
    parser.add_argument("--export-tta", action="store_true", default=None,
                        help="export: average each photo's painting with its mirror image's")
    parser.add_argument("--export-checkpoint", choices=("best", "newest"),
                        help="export from the best checkpoint by FID (default, when scored) or the newest")
    parser.add_argument("--fid-every", type=int, help="score FID every N epochs (0: never)")
    parser.add_argument("--checkpoint-every-steps", type=int,
                        help="also save a checkpoint every N steps (default 0: at epoch ends only)")
    parser.add_argument("--checkpoint-every-epochs", type=int, help="save at every Nth epoch end (default 1)")
    parser.add_argument("--on-bad-record", choices=data.BAD_RECORD_POLICIES,
                        help="an unusable record: fail (default; stop, naming it) or skip it and count")
    parser.add_argument("--no-export", action="store_true", help="skip images.zip and SavedModel")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    return parser.parse_args(argv)


# Flags that change the config, by config field.
CONFIG_FLAGS = {
    "data": "data_dir", "epochs": "epochs", "steps_per_epoch": "steps_per_epoch",
    "batch_size": "batch_size", "image_size": "image_size", "seed": "seed",
    "strategy": "strategy", "precision": "precision", "jit_compile": "jit_compile",
    "steps_per_execution": "steps_per_execution", "on_bad_record": "on_bad_record",
    "checkpoint_every_steps": "checkpoint_every_steps",
    "checkpoint_every_epochs": "checkpoint_every_epochs", "generator": "generator",
    "adversarial_loss": "adversarial_loss", "diffaugment": "diffaugment",
    "diffaugment_strength": "diffaugment_strength", "history_size": "history_size",
    "lr_decay_start": "lr_decay_start", "learning_rate": "learning_rate",
    "cycle_weight": "cycle_weight", "identity_weight": "identity_weight",
    "export_tta": "export_tta", "export_checkpoint": "export_checkpoint", "fid_every": "fid_every",
}
# What --resume may still change: the run's length, where and how fast it runs, the export.
RESUME_FLAGS = ("epochs", "strategy", "data", "precision", "jit_compile", "steps_per_execution",
                "on_bad_record", "checkpoint_every_steps", "checkpoint_every_epochs", "export_tta",
                "export_checkpoint", "fid_every")


def config_from_args(args: argparse.Namespace) -> Config:
    changes = {field: getattr(args, flag) for flag, field in CONFIG_FLAGS.items()
               if getattr(args, flag) is not None}
    if args.no_export:
        changes["export"] = False
    if args.no_augment:
        changes["augment"] = False
    if args.no_fastest_cpu_kernels:
        changes["fastest_cpu_kernels"] = False
    if args.resume:
        fixed = sorted(f"--{flag.replace('_', '-')}" for flag, field in CONFIG_FLAGS.items()
                       if field in changes and flag not in RESUME_FLAGS)
        if fixed:
            raise RunError(f"--resume continues with the run's saved config; drop {', '.join(fixed)}.")
        return load_run_config(Path(args.resume)).replace(**changes)
    return config_lib.preset(args.preset).replace(**changes)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
        if args.resume and args.run_dir and Path(args.run_dir) != Path(args.resume):
            raise RunError("--resume RUN_DIR names the run folder; drop --run-dir.")
        if args.dry_run:
            print(config.to_json(), end="")
            return 0
        run_dir = Path(args.resume or args.run_dir or new_run_dir(Path("runs"), args.preset))
        print(f"Run folder: {run_dir}")
        train(config, run_dir, resume=bool(args.resume))
    except (config_lib.ConfigError, data.DataError, RunError, distribute.StrategyError,
            OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except checkpoints.TrainingStopped as stopped:
        print(f"error: {stopped}" if stopped.exit_code == 3 else str(stopped), file=sys.stderr)
        return stopped.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
