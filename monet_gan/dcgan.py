"""A baseline that paints from noise: DCGAN, or the original GAN (`--architecture mlp`).

    python -m monet_gan.dcgan [--architecture dcgan|mlp] [--data DIR] [--run-dir DIR] [--epochs N]
                              [--time-budget 10m] [--images 7000] [--resume RUN_DIR]

Trains on the Monet paintings of a data folder (the competition's, as `monet_gan.train` reads
it), at 64 px (dcgan) or 32 px (mlp), then writes `images.zip`: --images samples of fresh noise,
brought to 256x256 (bilinear), as JPEGs. The run folder is laid out like a CycleGAN run's:
`baseline.json` (its settings), `checkpoints/`, `samples/` and `samples.png`, `metrics.csv`,
`curves.png`, `images.zip`. Score the zip with `python -m monet_gan.evaluate`: a generator
from noise trained on 300 images is where MiFID's memorization penalty bites.
"""

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from monet_gan import artifacts, checkpoints, cli, data_folder, inputs, noise_gan, run_folder, translation
from monet_gan.callbacks import RunCallback
from monet_gan.config import BAD_RECORD_POLICIES, duration_seconds
from monet_gan.errors import ConfigError, RunError
from monet_gan.files import check_writable, write_atomically

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

SETTINGS_FILE = "baseline.json"
SAMPLE_GRID = 8  # samples per row of samples.png (two rows)


def paintings_array(data_dir: str, size: int, on_bad_record: str) -> np.ndarray:
    """The Monet paintings of a data folder as float32 [N, size, size, 3] in [-1, 1]."""
    folder = data_folder.domain_folder(data_folder.resolve_data_dir(data_dir, inputs.isdir), "monet", inputs.isdir)
    paintings = inputs.ImageSet(folder, on_bad_record, flag="--data")
    return keras.ops.convert_to_numpy(translation.to_float(inputs.square_arrays(paintings, size)))


def samples(generator: keras.Model, count: int, seed: int, batch_size: int = 64):
    """(uint8 [256, 256, 3] image, name) of `count` samples of the noise seeded by `seed`."""
    rng = np.random.default_rng(seed)
    for first in range(0, count, batch_size):
        noise = rng.standard_normal((min(batch_size, count - first), generator.input_shape[-1])).astype("float32")
        images = keras.ops.image.resize(generator(noise, training=False), (artifacts.SUBMISSION_SIZE,) * 2,
                                        interpolation="bilinear")
        images = keras.ops.convert_to_numpy(translation.to_uint8(images))
        yield from ((image, f"sample{first + i:05d}") for i, image in enumerate(images))


def sample_grid(generator: keras.Model, noise: np.ndarray) -> np.ndarray:
    """uint8 image: two rows of samples, enlarged (nearest neighbour) to at least 128 px each."""
    images = keras.ops.convert_to_numpy(translation.to_uint8(generator(noise, training=False)))
    return translation.image_grid([images[:SAMPLE_GRID], images[SAMPLE_GRID:]])


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that ends after `deadline` (time.time())."""

    def __init__(self, deadline: float | None):
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch, logs=None):
        if self.deadline and time.time() >= self.deadline:
            self.model.stop_training = True


def train_baseline(settings: dict, run_dir: Path, resume: bool = False) -> dict:
    """Trains the baseline `settings` describe (see `parse_args`) in `run_dir`, writes its
    images.zip, and returns where, how many, and the steps trained."""
    if keras.backend.backend() != "tensorflow":
        raise ConfigError("monet_gan.dcgan trains under Keras' TensorFlow backend only; run it with "
                          "KERAS_BACKEND=tensorflow.")
    started = time.time()
    architecture = settings["architecture"]
    size = noise_gan.IMAGE_SIZES[architecture]
    paintings = paintings_array(settings["data"], size, settings["on_bad_record"])
    if len(paintings) < settings["batch_size"]:
        raise ConfigError(f"--batch-size {settings['batch_size']} is more than the {len(paintings)} "
                          "paintings there are; lower it.")
    if not resume:  # the run folder holds a run from here on
        write_atomically(run_dir / SETTINGS_FILE, (json.dumps(settings, indent=1) + "\n").encode())
    keras.utils.set_random_seed(settings["seed"])
    generator, critic = noise_gan.build_networks(architecture, settings["width"])
    model = noise_gan.NoiseGAN(generator, critic, seed=settings["seed"])
    model.compile(settings["learning_rate"])
    model.generator_optimizer.build(generator.trainable_variables)
    model.critic_optimizer.build(critic.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(generator=generator, critic=critic, step=step,
                                     generator_optimizer=model.generator_optimizer,
                                     critic_optimizer=model.critic_optimizer)
    directory = run_dir / run_folder.CHECKPOINT_DIR
    manager = checkpoints.make_manager(checkpoint, directory, max_to_keep=2)
    steps_per_epoch = len(paintings) // settings["batch_size"]
    initial_epoch = 0
    if resume and checkpoints.restore_newest(checkpoint, directory):
        initial_epoch = int(step.numpy()) // steps_per_epoch
        print(f"Resumed at step {int(step.numpy())} (epoch {initial_epoch}).")

    class Save(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            step.assign((epoch + 1) * steps_per_epoch)
            manager.save(checkpoint_number=int(step.numpy()))

    dataset = (tf.data.Dataset.from_tensor_slices(paintings).repeat()
               .shuffle(len(paintings), seed=settings["seed"]).batch(settings["batch_size"], drop_remainder=True)
               .prefetch(tf.data.AUTOTUNE))
    grid_noise = np.random.default_rng(12345).standard_normal((2 * SAMPLE_GRID, noise_gan.NOISE_DIM)).astype("float32")
    budget = duration_seconds(settings["time_budget"])
    callbacks = [Save(), RunCallback(run_dir, None, True, ("generator_loss", "critic_loss"),
                                     draw_samples=lambda m: sample_grid(m.generator, grid_noise)),
                 TimeBudget(started + budget if budget else None)]
    if initial_epoch < settings["epochs"]:
        model.fit(dataset, epochs=settings["epochs"], initial_epoch=initial_epoch,
                  steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=2, shuffle=False)
    out = run_dir / run_folder.IMAGES_ZIP
    count = artifacts.write_zip(samples(generator, settings["images"], settings["seed"]), settings["images"], out)
    print(f"Wrote {out}: {count} samples of {architecture} ({size} px, brought to 256).")
    return {"images_zip": out, "count": count, "steps": int(step.numpy())}


def parse_args(argv=None) -> dict:
    parser = cli.ArgumentParser(prog="python -m monet_gan.dcgan", description=__doc__.split("\n")[0])
    parser.add_argument("--architecture", choices=noise_gan.ARCHITECTURES, default="dcgan",
                        help="dcgan (64 px, convolutional) or mlp (the original GAN: 32 px, fully connected)")
    parser.add_argument("--data", help="a folder holding monet_tfrec/ or monet_jpg/ (default: Kaggle's)")
    parser.add_argument("--run-dir", help="default: runs/NNN-dcgan (or -mlp)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue this run (its settings) from its newest checkpoint")
    parser.add_argument("--epochs", type=int, default=200, help="passes over the paintings (default 200)")
    parser.add_argument("--time-budget", default="", help="stop at the first epoch end after this, e.g. 10m")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, help="filters (dcgan: 64) or units (mlp: 256) of the narrowest layer")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--images", type=int, default=7000, help="samples in images.zip (the competition: 7000-10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--on-bad-record", choices=BAD_RECORD_POLICIES, default="fail",
                        help="an unusable painting: fail (default; stop, naming it) or skip it")
    args = parser.parse_args(argv)
    for flag, value, least in (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 1),
                               ("--images", args.images, 1), ("--seed", args.seed, 0),
                               ("--width", args.width or 1, 1)):
        if value < least:
            raise ConfigError(f"{flag} must be at least {least}. Received: {value}")
    if not args.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be above 0. Received: {args.learning_rate}")
    duration_seconds(args.time_budget)  # a bad duration is a ConfigError naming the flag
    return vars(args)


def main(argv=None) -> int:
    def run():
        settings = parse_args(argv)
        resume = settings.pop("resume")
        if resume:
            run_dir = Path(resume)
            saved = run_dir / SETTINGS_FILE
            if not saved.is_file():
                raise RunError(f"--resume {run_dir}: no {SETTINGS_FILE} there; it is not a monet_gan.dcgan run.")
            settings = {**json.loads(saved.read_text()), "epochs": settings["epochs"],
                        "time_budget": settings["time_budget"]}
        else:
            run_dir = Path(settings["run_dir"] or run_folder.new_run_dir(Path("runs"), settings["architecture"]))
            if (run_dir / SETTINGS_FILE).exists() or run_folder.holds_run(run_dir):
                raise RunError(f"--run-dir {run_dir} already holds a run. Continue it with --resume "
                               f"{run_dir}, or choose another --run-dir.")
            check_writable(run_dir, "--run-dir")
            settings["run_dir"] = str(run_dir)
        train_baseline(settings, run_dir, resume=bool(resume))

    return cli.run(run)


if __name__ == "__main__":
    sys.exit(main())
