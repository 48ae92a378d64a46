"""What training writes after each epoch, besides checkpoints (`checkpoints.CheckpointCallback`):
sample grids, metrics.csv and curves.png (`RunCallback`), and FID scores with the best checkpoint by FID
(`FidCallback`). Both write on the chief only, into the run folder (`run_folder`). And a warning
where a time budget will end the run before its learning rate decays (`DecayOutOfBudgetWarning`)."""

import io
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from monet_gan import checkpoints, inception, run_folder, scores
from monet_gan.config import Config
from monet_gan.cyclegan import LOSS_NAMES, averaged_weights
from monet_gan.errors import WeightsError
from monet_gan.figures import write_curves
from monet_gan.files import write_atomically
from monet_gan.translation import export_generator, sample_grid, translate


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes."""
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format="PNG")
    return encoded.getvalue()


class RunCallback(keras.callbacks.Callback):
    """After each epoch, on the chief: a sample grid PNG, a row of its seconds and mean
    losses (and scores, when computed) in metrics.csv (the means over the steps this process
    took in that epoch), and curves.png drawn from metrics.csv."""

    def __init__(self, run_dir: Path, sample_photos: np.ndarray, chief: bool, columns=LOSS_NAMES,
                 draw_samples=None):
        super().__init__()
        self.columns = columns
        self.run_dir = run_dir
        self.sample_photos = sample_photos
        self.chief = chief
        # uint8 image of the model's samples; default: the photos over their paintings
        self.draw_samples = draw_samples or self._draw_paintings

    def _draw_paintings(self, model) -> np.ndarray:
        with averaged_weights(model.photo_to_monet, model.photo_to_monet_optimizer) as generator:
            return sample_grid(generator, self.sample_photos)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.chief:
            seconds = time.perf_counter() - self.epoch_started  # before the grid and files
            png = encode_png(self.draw_samples(self.model))
            write_atomically(self.run_dir / run_folder.SAMPLES_DIR / f"epoch-{epoch + 1:03d}.png", png)
            write_atomically(self.run_dir / run_folder.SAMPLES_FILE, png)
            self._write_metrics(epoch + 1, seconds, logs or {})
            write_curves(self.run_dir / run_folder.METRICS_FILE, self.run_dir / run_folder.CURVES_FILE)

    def _write_metrics(self, epoch: int, seconds: float, logs: dict):
        """Rewrites metrics.csv with this epoch's row last (rows of a later epoch, left by a
        run that was resumed from an earlier checkpoint, are dropped): the epoch, its wall
        seconds (FID scoring of the epoch included), then the columns. A score not computed
        this epoch is left empty."""
        path = self.run_dir / run_folder.METRICS_FILE
        header = ",".join(["epoch", "seconds", *self.columns])
        rows = path.read_text().splitlines()[1:] if path.is_file() else []
        rows = [r for r in rows if r.split(",")[0].isdigit() and int(r.split(",")[0]) < epoch]
        values = [f"{float(logs[n]):.6g}" if n in logs else "" for n in self.columns]
        rows.append(",".join([str(epoch), f"{seconds:.2f}", *values]))
        write_atomically(path, ("\n".join([header, *rows]) + "\n").encode())


class DecayOutOfBudgetWarning(keras.callbacks.Callback):
    """Warns once when, at the speed of the run's last epoch, its time budget (`deadline`, a
    time.monotonic()) ends it before the learning rate starts to decay at `decay_start` (a
    step): --lr-decay-start counts in --epochs, which a time-budget run (the `laptop` preset:
    1000 epochs, until the budget) may never reach. The speed is measured between two epoch
    ends, so the first epoch's tracing does not count. `clock` is time.monotonic (tests set it)."""

    def __init__(self, deadline: float, decay_start: int, steps_per_epoch: int, settings: str,
                 clock=time.monotonic):
        super().__init__()
        self.deadline, self.decay_start, self.steps_per_epoch = deadline, decay_start, steps_per_epoch
        self.clock = clock
        self.settings = settings  # the flags, as the user gave them
        self.last_end = None  # (clock(), steps done) at the last epoch end
        self.warned = False

    def on_epoch_end(self, epoch, logs=None):
        now, done = self.clock(), (epoch + 1) * self.steps_per_epoch
        last, self.last_end = self.last_end, (now, done)
        if self.warned or last is None or done >= self.decay_start or done <= last[1]:
            return
        seconds_per_step = (now - last[0]) / (done - last[1])
        reach = int(done + max(self.deadline - now, 0.0) / seconds_per_step)
        if reach < self.decay_start:
            self.warned = True
            print(f"\nWarning: at {seconds_per_step:.3f} s per step the time budget ends this run "
                  f"near step {reach}, before the learning rate starts to decay at step "
                  f"{self.decay_start} ({self.settings}). For the decay to fall within the budget, "
                  f"set --epochs to about {max(reach // self.steps_per_epoch, 1)}.",
                  file=sys.stderr, flush=True)


class FidCallback(keras.callbacks.Callback):
    """Every `every` epochs: translates fixed photos, scores them against the paintings,
    adds the scores to the epoch's logs (so metrics.csv and TensorBoard get them), and
    saves the best-scoring checkpoint by FID in its own folder beside the latest ones."""

    def __init__(self, every: int, photos: np.ndarray, real_features: np.ndarray, config: Config,
                 best_manager, best_file: Path):
        super().__init__()
        self.config = config  # translate as the export will: its export_mode and export_tta
        self.every = every
        self.photos = photos
        self.real_features = real_features
        self.best_manager = best_manager
        self.best_file = best_file
        self.best = json.loads(best_file.read_text())["fid"] if best_file.is_file() else float("inf")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        with averaged_weights(self.model.photo_to_monet, self.model.photo_to_monet_optimizer) as trained:
            generator, size = export_generator(trained, self.config)
            paintings = np.concatenate([keras.ops.convert_to_numpy(
                translate(generator, self.photos[i:i + 16], size, self.config.export_tta))
                for i in range(0, len(self.photos), 16)])
        result = scores.score(scores.inception_features(paintings, progress=False), self.real_features)
        print(f"\nEpoch {epoch + 1}: FID {result['fid']:.2f}, MiFID {result['mifid']:.2f} "
              f"({len(paintings)} paintings)")
        if logs is not None:
            logs.update(result)
        if result["fid"] < self.best:
            self.best = result["fid"]
            self.best_manager.save(checkpoint_number=epoch + 1)
            write_atomically(self.best_file, (json.dumps({"epoch": epoch + 1, **result}) + "\n").encode())


def fid_callback(config: Config, checkpoint, run_dir: Path, photos: np.ndarray,
                 monet_set) -> FidCallback | None:
    """The FID callback of a run (None, with a warning, when the Inception weights are missing):
    it translates `photos` (uint8 [N, 256, 256, 3]) and scores them against `monet_set` (an
    `inputs.ImageSet`)."""
    try:
        inception.load_model()
    except WeightsError as error:
        print(f"warning: FID scoring during training is off: {error}", file=sys.stderr)
        return None
    real_features = scores.image_set_features(monet_set, cache=True)
    best_dir = run_dir / run_folder.BEST_CHECKPOINT_DIR
    manager = checkpoints.make_manager(checkpoint, best_dir, max_to_keep=1)
    return FidCallback(config.fid_every, photos, real_features, config, manager,
                       best_dir / run_folder.BEST_SCORE_FILE)
