"""A run folder: what it holds, how it is named, and reading its config back.

    config.json        the resolved config (what --resume and the export read back)
    checkpoints/       tf.train checkpoints, ckpt-STEP: networks, optimizers, dropout state, step
    best_checkpoint/   the checkpoint with the lowest FID so far, and its score.json
    samples/           epoch-NNN.png: photos (top row) and their paintings (bottom row)
    samples.png        the newest of those
    metrics.csv        the seconds and mean losses (and scores) of each epoch
    curves.png         the same, drawn
    tensorboard/       the same, for TensorBoard
    images.zip         one 256x256 JPEG painting per photo (the competition submission)
    saved_model/       the photo -> Monet generator, uint8 in, uint8 out
"""

from pathlib import Path

from monet_gan.config import Config
from monet_gan.errors import RunError
from monet_gan.files import write_atomically

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT_DIR = "best_checkpoint"
BEST_SCORE_FILE = "score.json"  # in BEST_CHECKPOINT_DIR
SAMPLES_DIR = "samples"
SAMPLES_FILE = "samples.png"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
IMAGES_ZIP = "images.zip"
SAVED_MODEL_DIR = "saved_model"


def new_run_dir(root: Path, preset: str) -> Path:
    """The next numbered folder under `root`: runs/000-sample, runs/001-sample, ..."""
    numbers = [int(p.name.split("-")[0]) for p in root.glob("[0-9][0-9][0-9]-*") if p.is_dir()]
    return root / f"{max(numbers, default=-1) + 1:03d}-{preset}"


def holds_run(run_dir: Path) -> bool:
    return (Path(run_dir) / CONFIG_FILE).exists()


def check_new(run_dir: Path) -> None:
    """A new run may not start in a folder that holds another."""
    if holds_run(run_dir):
        raise RunError(f"--run-dir {run_dir} already holds a run. Continue it with --resume "
                       f"{run_dir}, or choose another --run-dir.")


def load_run_config(run_dir: Path) -> Config:
    """The config a run folder was trained with (its config.json)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} is not a monet_gan run folder: it has no {CONFIG_FILE}.")
    return Config.from_json(path.read_text(), source=str(path))


def write_run_config(run_dir: Path, config: Config) -> None:
    write_atomically(Path(run_dir) / CONFIG_FILE, config.to_json().encode())
