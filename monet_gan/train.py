"""Training a CycleGAN: `python -m monet_gan.train` and `train(config, run_dir)`.

A run folder holds everything one run made:
    config.json        the resolved config (what --resume reads back)
    checkpoints/       tf.train checkpoints: networks, optimizers, epoch
    samples/           epoch-NNN.png: photos (top row) and their paintings (bottom row)
    metrics.csv        the mean losses of each epoch
    tensorboard/       the same losses for TensorBoard
    images.zip         one 256x256 JPEG painting per photo (the competition submission)
    saved_model/       the photo -> Monet generator, uint8 in, uint8 out
"""

import argparse
import functools
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from monet_gan import config as config_lib
from monet_gan import cyclegan, data, distribute, evaluate
from monet_gan.files import write_atomically
from monet_gan.config import Config

CONFIG_FILE = "config.json"


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


def make_checkpoint(model: cyclegan.CycleGAN, epoch: tf.Variable) -> tf.train.Checkpoint:
    """Everything a run needs to continue: the four networks, their optimizers, the epoch."""
    return tf.train.Checkpoint(
        photo_to_monet=model.photo_to_monet,
        monet_to_photo=model.monet_to_photo,
        monet_critic=model.monet_critic,
        photo_critic=model.photo_critic,
        photo_to_monet_optimizer=model.photo_to_monet_optimizer,
        monet_to_photo_optimizer=model.monet_to_photo_optimizer,
        monet_critic_optimizer=model.monet_critic_optimizer,
        photo_critic_optimizer=model.photo_critic_optimizer,
        epoch=epoch,
    )


def sample_grid(generator: keras.Model, photos: np.ndarray, tile: int = 128) -> np.ndarray:
    """uint8 image: the photos in the top row, their paintings below, tiles >= `tile` px."""
    paintings = generator(data.to_float(photos), training=False)
    rows = tf.concat([tf.concat(list(photos), axis=1),
                      tf.concat(list(data.to_uint8(paintings)), axis=1)], axis=0)
    scale = max(1, tile // photos.shape[1])
    size = [rows.shape[0] * scale, rows.shape[1] * scale]
    return tf.image.resize(rows, size, method="nearest").numpy()


class RunCallback(keras.callbacks.Callback):
    """After each epoch: saves a checkpoint and, on the chief, a sample grid PNG and a
    row of mean losses in metrics.csv."""

    def __init__(self, manager, epoch, run_dir: Path, sample_photos, chief: bool,
                 columns=cyclegan.LOSS_NAMES):
        super().__init__()
        self.columns = columns
        self.manager = manager
        self.epoch = epoch
        self.run_dir = run_dir
        self.sample_photos = sample_photos
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        if self.chief:
            grid = sample_grid(self.model.photo_to_monet, self.sample_photos)
            png = tf.io.encode_png(grid).numpy()
            write_atomically(self.run_dir / "samples" / f"epoch-{epoch + 1:03d}.png", png)
            write_atomically(self.run_dir / "samples.png", png)
            self._append_metrics(epoch + 1, logs or {})

    def _append_metrics(self, epoch: int, logs: dict):
        """One row per epoch; a score not computed this epoch is left empty."""
        with open(self.run_dir / "metrics.csv", "a", newline="") as f:
            if f.tell() == 0:
                f.write(",".join(["epoch", *self.columns]) + "\n")
            values = [f"{float(logs[n]):.6g}" if n in logs else "" for n in self.columns]
            f.write(",".join([str(epoch), *values]) + "\n")


def fit_multiworker(model: cyclegan.CycleGAN, pairs: tf.data.Dataset, *, epochs: int,
                    initial_epoch: int, steps_per_epoch: int, callbacks: list, **unused):
    """`model.fit` for MultiWorkerMirroredStrategy, which Keras 3's fit does not support
    (keras-team/keras#20585): the same train_step, metrics and callbacks, without a bar."""
    strategy = model.distribute_strategy
    batches = iter(strategy.experimental_distribute_dataset(pairs))

    @tf.function
    def train_step():
        strategy.run(model.train_step, args=(next(batches),))

    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        for _ in range(steps_per_epoch):
            train_step()
        # Read outside the replicas, the trackers hold the mean over all workers.
        logs = {metric.name: float(metric.result()) for metric in model.metrics}
        print(f"Epoch {epoch + 1}/{epochs}: " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end()


def train(config: Config, run_dir: str | Path, resume: bool = False,
          strategy: tf.distribute.Strategy | None = None) -> cyclegan.CycleGAN:
    """Trains (or, with `resume`, continues) the run in `run_dir`; returns the model.

    A new run refuses a folder that already holds a run. `strategy` defaults to
    `get_strategy(config.strategy)`. Exports images.zip and the SavedModel at the end
    when `config.export` is set.
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
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    pairs, monet_count = data.training_dataset(config, global_batch)
    steps = config.steps_per_epoch or monet_count // global_batch
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    pairs = pairs.with_options(options)

    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(run_dir / CONFIG_FILE, config.to_json().encode())
    # Every worker saves (saving is collective); only the chief's copy is the run's.
    scratch = None if chief else tempfile.TemporaryDirectory(prefix="monet_gan_worker_")
    checkpoint_dir = run_dir / "checkpoints" if chief else Path(scratch.name)

    with strategy.scope():
        model = cyclegan.build_cyclegan(config)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = make_checkpoint(model, epoch)
    manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), config.checkpoints_to_keep)
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resumed {manager.latest_checkpoint} after epoch {int(epoch.numpy())}.")

    photo_files = data.domain_files(config.data_dir, "photo")
    sample_photos = np.stack(list(data.read_images(photo_files, config.image_size)
                                  .take(config.sample_images).as_numpy_iterator()))
    columns = cyclegan.LOSS_NAMES + (evaluate.SCORE_NAMES if config.fid_every else ())
    callbacks = [RunCallback(manager, epoch, run_dir, sample_photos, chief, columns)]
    scorer = evaluate.fid_callback(config, checkpoint, run_dir) if config.fid_every and chief else None
    if scorer:
        callbacks.insert(0, scorer)  # first, so the callbacks after it log its scores
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
    initial_epoch = int(epoch.numpy())
    if initial_epoch >= config.epochs:
        print(f"{run_dir} has trained {initial_epoch} of {config.epochs} epochs already; "
              "pass --epochs N with --resume to train more.")
    else:
        fit = model.fit
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            fit = functools.partial(fit_multiworker, model)
        fit(pairs, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
            callbacks=callbacks, shuffle=False, verbose=1 if sys.stdout.isatty() else 2)

    if scratch is not None:
        scratch.cleanup()
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
    parser.add_argument("--no-export", action="store_true", help="skip images.zip and SavedModel")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    return parser.parse_args(argv)


# Flags that change the config, by config field.
CONFIG_FLAGS = {
    "data": "data_dir", "epochs": "epochs", "steps_per_epoch": "steps_per_epoch",
    "batch_size": "batch_size", "image_size": "image_size", "seed": "seed",
    "strategy": "strategy", "precision": "precision", "jit_compile": "jit_compile",
    "steps_per_execution": "steps_per_execution",
}
# What --resume may still change: the run's length, where and how fast it runs, the export.
RESUME_FLAGS = ("epochs", "strategy", "data", "precision", "jit_compile", "steps_per_execution")


def config_from_args(args: argparse.Namespace) -> Config:
    changes = {field: getattr(args, flag) for flag, field in CONFIG_FLAGS.items()
               if getattr(args, flag) is not None}
    if args.no_export:
        changes["export"] = False
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
    except (config_lib.ConfigError, data.DataError, RunError, distribute.StrategyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
