"""Training a CycleGAN: `python -m monet_gan.train` and `train(config, run_dir)`.

The run folder's layout is `monet_gan.run_folder`'s; at the end, training exports
images.zip and the SavedModel there (`monet_gan.artifacts`).
"""

import argparse
import contextlib
import dataclasses
import functools
import sys
import tempfile
import time
from pathlib import Path

import keras

from monet_gan import (artifacts, checkpoints, cli, contrastive, cyclegan, data_folder, distribute, inputs,
                       run_folder, scores)
from monet_gan import config as config_lib
from monet_gan import steps as steps_lib
from monet_gan.callbacks import DecayOutOfBudgetWarning, RunCallback, fid_callback
from monet_gan.config import Config
from monet_gan.errors import ConfigError, RunError
from monet_gan.files import check_free_space, check_writable


@dataclasses.dataclass
class Setup:
    """What a run trains with, once its data is checked and its model built."""

    config: Config
    strategy: object  # a tf.distribute.Strategy (distribute.NoStrategy under JAX)
    chief: bool  # writes the run folder (every process but non-chief workers)
    multiworker: bool
    global_batch: int
    steps: int  # per epoch
    sets: tuple  # (photo, Monet) inputs.ImageSet
    model: cyclegan.CycleGAN | contrastive.ContrastiveGAN
    step: keras.Variable  # training steps done, checkpointed (a tf.Variable under TensorFlow)


def train(config: Config, run_dir: str | Path, resume: bool = False,
          strategy=None) -> cyclegan.CycleGAN | contrastive.ContrastiveGAN:
    """Trains (or, with `resume`, continues) the run in `run_dir`; returns the model.

    A new run refuses a folder that already holds a run. `strategy` defaults to
    `get_strategy(config.strategy)`. Exports images.zip and the SavedModel at the end
    when `config.export` is set. Raises errors.TrainingStopped when a signal or a
    non-finite loss ends training early (after saving, or without saving, respectively).
    """
    started = time.monotonic()  # the time budget counts from here
    run_dir = Path(run_dir)
    if not resume:
        run_folder.check_new(run_dir)
    setup = _set_up(_with_backend(config, run_dir, resume), run_dir, strategy, resume)
    config = setup.config
    # Every worker saves (saving is collective); only the chief's copy is the run's.
    scratch = None if setup.chief else tempfile.TemporaryDirectory(prefix="monet_gan_worker_")
    checkpoint = checkpoints.make_checkpoint(setup.model, setup.step)
    if resume:
        _restore(checkpoint, run_dir, setup)
    manager = checkpoints.make_manager(
        checkpoint, run_dir / run_folder.CHECKPOINT_DIR if setup.chief else Path(scratch.name),
        config.checkpoints_to_keep)
    _train_epochs(setup, run_dir, checkpoint, manager, started)
    if scratch is not None:
        scratch.cleanup()
    skipped = sum(image_set.skipped for image_set in setup.sets)
    if skipped:
        print(f"Left out {skipped} unusable records or files (--on-bad-record skip).")
    if config.export and setup.chief:
        # From the newest checkpoint, into a generator outside the strategy: its variables
        # then live on this host, which also holds on a TPU.
        artifacts.export_run(run_dir)
    return setup.model


def build_model(config: Config, total_steps: int | None = None):
    """The model `config.translation_loss` names, compiled (inside the strategy's scope): the
    CycleGAN, or contrastive translation (CUT)."""
    if config.translation_loss == "patchnce":
        return contrastive.build_contrastive_gan(config, total_steps)
    return cyclegan.build_cyclegan(config, total_steps)


def _with_backend(config: Config, run_dir: Path, resume: bool) -> Config:
    """The config with the backend Keras runs on, which must be the one it names, if any."""
    running = keras.backend.backend()
    if config.backend not in (None, running):
        if resume:
            raise RunError(f"{run_dir} trained under Keras' {config.backend} backend; resume it "
                           f"under the same: KERAS_BACKEND={config.backend} python -m monet_gan.train "
                           f"--resume {run_dir}")
        raise ConfigError(f"--backend {config.backend}: this process runs Keras on {running}. Choose "
                          f"the backend with KERAS_BACKEND={config.backend} before starting.")
    return config.replace(backend=running)


def _set_up(config: Config, run_dir: Path, strategy, resume: bool) -> Setup:
    """Checks the data and the run folder, builds the model in the strategy's scope, and
    only then writes config.json (a start that fails leaves the folder free for a retry)."""
    config = config.replace(data_dir=data_folder.resolve_data_dir(config.data_dir, inputs.isdir))
    keras.utils.set_random_seed(config.seed)
    strategy, replicas = distribute.choose(config.strategy, strategy)
    _check_precision(config, resume, run_dir)  # after `choose`: a TPU is listed once it is reached
    chief = distribute.is_chief(strategy)
    global_batch = config.batch_size * replicas
    sets = inputs.training_sets(config, global_batch)
    steps = config.steps_per_epoch or sets[1].count // global_batch  # per epoch
    if chief:
        check_writable(run_dir, "--run-dir")
    with strategy.scope():
        model = build_model(config, total_steps=config.epochs * steps)
        step = steps_lib.step_counter()
    if chief:  # two checkpoints must fit: the one being written and the newest before it
        check_free_space(run_dir, 2 * checkpoints.estimated_checkpoint_bytes(model),
                         "this model's checkpoints (two of them)", "--run-dir")
        run_folder.write_run_config(run_dir, config)
    multiworker = distribute.is_multiworker(strategy)
    return Setup(config, strategy, chief, multiworker, global_batch, steps, sets, model, step)


def _check_precision(config: Config, resume: bool, run_dir: Path) -> None:
    """Refuses bfloat16 on a CPU without bfloat16 instructions, before training: TensorFlow's
    CPU convolutions (oneDNN) have no bfloat16 kernel there and would fail at the first step
    (bench/QUALITY.md). A run folder moved from a CPU that has them resumes in float32: its
    checkpoints hold float32 weights under either policy."""
    if (config.precision != "mixed_bfloat16" or not distribute.tensorflow_on_cpu()
            or config_lib.cpu_has_bfloat16()):
        return
    then = (f"resume it in float32: python -m monet_gan.train --resume {run_dir} --precision float32" if resume
            else "train in float32: --precision float32")
    raise ConfigError("--precision mixed_bfloat16: this CPU has no bfloat16 instructions (Linux lists neither "
                      "avx512_bf16 nor amx_bf16), and TensorFlow's CPU convolutions need them; " + then)


def _restore(checkpoint, run_dir: Path, setup: Setup) -> None:
    restored = checkpoints.restore_newest(checkpoint, run_dir / run_folder.CHECKPOINT_DIR,
                                          move_damaged=setup.chief)
    if restored:
        done = int(keras.ops.convert_to_numpy(setup.step))
        epochs_done, offset = divmod(done, setup.steps)
        print(f"Resumed {restored} at step {done} ({epochs_done} epochs and {offset} steps done).")


def _callbacks(setup: Setup, run_dir: Path, checkpoint, saver) -> list:
    """Checkpoints (first: it stops on a NaN before anything logs it), FID scores (before
    the callbacks that log them), sample grids with metrics.csv, and TensorBoard."""
    config, chief = setup.config, setup.chief
    sample_photos = inputs.square_arrays(setup.sets[0], config.image_size, config.sample_images)
    columns = setup.model.LOSS_NAMES + (scores.SCORE_NAMES if config.fid_every else ())
    callbacks = [saver, RunCallback(run_dir, sample_photos, chief, columns)]
    scorer = None
    if config.fid_every and chief:
        fid_photos = inputs.square_arrays(setup.sets[0], data_folder.RECORD_SIZE, config.fid_images)
        scorer = fid_callback(config, checkpoint, run_dir, fid_photos, setup.sets[1])
    if scorer:
        callbacks.insert(1, scorer)
    if chief and _tensorflow_for_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / run_folder.TENSORBOARD_DIR)))
    return callbacks


def _tensorflow_for_tensorboard() -> bool:
    """Whether Keras' TensorBoard callback can run: it writes through TensorFlow, which under
    JAX need not be installed, and where it is, is kept off the GPUs (JAX holds them)."""
    if keras.backend.backend() == "tensorflow":
        return True
    try:
        import tensorflow as tf
    except ImportError:
        print("TensorFlow is not installed: no TensorBoard logs (metrics.csv has the losses).")
        return False
    with contextlib.suppress(RuntimeError):  # raised once TensorFlow has started: too late
        tf.config.set_visible_devices([], "GPU")
    return True


def _train_epochs(setup: Setup, run_dir: Path, checkpoint, manager, started: float) -> None:
    """Runs the epochs not yet done, finishing first the epoch a checkpoint was written in,
    until the time budget (counted from `started`, a time.monotonic()) is spent."""
    config, steps = setup.config, setup.steps
    start_step = int(keras.ops.convert_to_numpy(setup.step))
    if start_step >= config.epochs * steps:
        print(f"{run_dir} has trained {start_step // steps} of {config.epochs} epochs already; "
              "pass --epochs N with --resume to train more.")
        return
    signals = checkpoints.StopSignals()
    budget = config_lib.duration_seconds(config.time_budget)
    if budget and setup.multiworker:  # each worker's clock would stop it at another step
        raise ConfigError("--time-budget trains on one machine; with several workers, set --epochs.")
    saver = checkpoints.CheckpointCallback(
        manager, setup.step, start_step=start_step, steps_per_epoch=steps,
        every_steps=config.checkpoint_every_steps, every_epochs=config.checkpoint_every_epochs,
        epochs=config.epochs, signals=signals, deadline=started + budget if budget else None)
    callbacks = _callbacks(setup, run_dir, checkpoint, saver)
    if budget and config.lr_decay_start < 1.0 and setup.chief:
        callbacks.append(DecayOutOfBudgetWarning(
            started + budget, cyclegan.decay_start_step(config, config.epochs * steps), steps,
            f"--lr-decay-start {config.lr_decay_start:g} of --epochs {config.epochs}"))
    if keras.backend.backend() == "jax":
        fit = functools.partial(steps_lib.fit_jax, setup.model)
    elif setup.multiworker:
        fit = functools.partial(distribute.fit_multiworker, setup.model)
    else:
        fit = setup.model.fit

    def run_epochs(first_step: int, epochs: int, steps_per_epoch: int):
        pairs = inputs.training_batches(config, setup.global_batch, first_step, setup.sets)
        fit(pairs, epochs=epochs, initial_epoch=first_step // steps,
            steps_per_epoch=steps_per_epoch, callbacks=callbacks, shuffle=False,
            verbose=1 if sys.stdout.isatty() else 2)

    # Signals are left alone with several workers: saving is collective there.
    with (signals if not setup.multiworker else contextlib.nullcontext()):
        epoch, offset = divmod(start_step, steps)
        if offset:  # finish the epoch the checkpoint was written in
            run_epochs(start_step, epoch + 1, steps - offset)
            epoch += 1
        if epoch < config.epochs and saver.out_of_time is None:
            run_epochs(epoch * steps, config.epochs, steps)
        if signals.received is not None:  # it came after the last step
            saver.stop_for_signal(saver.out_of_time or config.epochs * steps, "the export was not written")


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m monet_gan.train", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=run_folder.__doc__)
    parser.add_argument("--preset", default="sample", choices=config_lib.PRESETS,
                        help="starting config (default: sample)")
    parser.add_argument("--run-dir", help="default: runs/NNN-PRESET, the next free number")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue this run with its saved config")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    cli.add_config_flags(parser)
    return parser


def config_from_args(args) -> Config:
    """The preset (or, with --resume, the run's saved config) with the flags' changes."""
    changes = cli.config_changes(args)
    if not args.resume:
        return config_lib.preset(args.preset).replace(**changes)
    fixed = sorted(config_lib.flag(field) for field in dataclasses.fields(Config)
                   if field.name in changes and field.name not in config_lib.CHANGEABLE_ON_RESUME)
    if fixed:
        raise RunError(f"--resume continues with the run's saved config; drop {', '.join(fixed)}.")
    if args.run_dir and Path(args.run_dir) != Path(args.resume):
        raise RunError("--resume RUN_DIR names the run folder; drop --run-dir.")
    return run_folder.load_run_config(Path(args.resume)).replace(**changes)


def _warn_if_average_turned_off(args, config: Config) -> None:
    """A preset that paints with the moving average of its generator's weights was measured
    with it: on `laptop` its last weights painted 4.6 to 27.0 FID worse (bench/QUALITY.md)."""
    measured = config_lib.preset(args.preset).generator_average
    if not args.resume and measured > 0 and config.generator_average == 0:
        print(f"warning: --generator-average 0 paints with the last weights, not the average "
              f"({measured}) the {args.preset} preset was measured with; on laptop the last weights "
              "painted 4.6 to 27.0 FID worse (bench/QUALITY.md). Leave the flag out to keep the "
              "average.", file=sys.stderr)


def main(argv=None) -> int:
    def run():
        args = build_parser().parse_args(argv)
        config = config_from_args(args)
        _warn_if_average_turned_off(args, config)
        if args.dry_run:
            print(config.to_json(), end="")
            return
        run_dir = Path(args.resume or args.run_dir or run_folder.new_run_dir(Path("runs"), args.preset))
        print(f"Run folder: {run_dir}")
        train(config, run_dir, resume=bool(args.resume))

    return cli.run(run)


if __name__ == "__main__":
    sys.exit(main())
