"""One typed config for a CycleGAN run, and its presets.

Presets are small functions that change a few fields of the default `Config`:
`kaggle()` is the competition recipe, `sample()` is what the README's main command
runs on a laptop in minutes, `tiny()` is what the tests run.
"""

import dataclasses
import json
from pathlib import Path

# The shipped sample data: `tfrecords/` at the top of the repository.
SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "tfrecords"

PRESETS = ("kaggle", "sample", "tiny")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DIFFAUGMENT_PARTS = ("color", "translation", "cutout")


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the field or flag."""


@dataclasses.dataclass(frozen=True)
class Config:
    # --- data ---
    data_dir: str | None = None  # holds monet_tfrec/ and photo_tfrec/; None: the Kaggle input folder
    image_size: int = 256  # side of the square training images; a power of two, 32..256
    augment: bool = True  # random flip and 12% resize-and-crop jitter (CycleGAN paper's 286->256)
    shuffle_buffer: int = 2048  # photos shuffled across this many records
    on_bad_record: str = "fail"  # an unusable record or image: fail (naming it) | skip (counted)

    # --- networks (the tutorial's U-Net and 70x70 PatchGAN at the defaults) ---
    generator_filters: int = 64  # filters of the first down block; doubles per block up to 8x
    critic_filters: int = 64  # filters of the critic's first block; doubles per block
    dropout: float = 0.5  # dropout rate in the generator's first three up blocks (U-Net)
    generator: str = "unet"  # unet (the tutorial's) | resnet (the CycleGAN paper's, 9 blocks at 256 px)

    # --- optimisation ---
    batch_size: int = 1  # per replica; the global batch is this times the replica count
    epochs: int = 25  # one epoch is one pass over the Monet set
    steps_per_epoch: int | None = None  # None: Monet images // global batch
    learning_rate: float = 2e-4  # Adam, for all four networks
    beta_1: float = 0.5  # Adam's first-moment decay
    cycle_weight: float = 10.0  # lambda of the cycle-consistency loss (CycleGAN paper, eq. 2)
    identity_weight: float = 5.0  # weight of the identity loss; the tutorial uses 0.5 * lambda
    adversarial_loss: str = "bce"  # bce (from logits, the tutorial) | lsgan (least squares, the paper)
    diffaugment: str = ""  # DiffAugment before every critic call, e.g. "color,translation,cutout"
    diffaugment_strength: float = 1.0  # scales DiffAugment's ranges; 1.0 is the paper's
    history_size: int = 0  # fake images kept per critic (the paper: 50); 0: none
    lr_decay_start: float = 1.0  # fraction of the run after which the rate falls linearly to 0; 1: never
    seed: int = 0  # seeds weights, shuffling and dropout

    # --- accelerators ---
    precision: str = "float32"  # float32 | mixed_bfloat16 (TPU, recent GPUs) | mixed_float16 (GPUs)
    jit_compile: bool = False  # compile the train step with XLA
    steps_per_execution: int = 1  # train steps per call into the device (TPUs like 32+)
    fastest_cpu_kernels: bool = True  # CPU training: U-Net/PatchGAN conv ops on the fastest of 3 kernels (conv_kernels.py)

    # --- run outputs ---
    strategy: str = "auto"  # auto|tpu|mirrored|multiworker|default (see distribute.py)
    sample_images: int = 4  # photos shown in the per-epoch sample grid
    checkpoints_to_keep: int = 3  # newest checkpoints kept in the run folder
    checkpoint_every_epochs: int = 1  # a checkpoint at the end of every this many epochs
    checkpoint_every_steps: int = 0  # and every this many steps; 0: only at epoch ends
    fid_every: int = 0  # score FID/MiFID of translated photos every this many epochs; 0: never
    fid_images: int = 300  # photos translated for each such score (scored against all paintings)
    export: bool = True  # write images.zip and the SavedModel when training ends
    export_batch_size: int = 8  # photos translated at once during export (fastest on a 2-core CPU)
    export_tta: bool = False  # paint each photo and its mirror image, average the two
    export_checkpoint: str = "best"  # best (by FID, when scored; else newest) | newest

    def __post_init__(self):
        size = self.image_size
        if size < 32 or size > 256 or size & (size - 1):
            raise ConfigError(
                "image_size must be a power of two from 32 to 256 (flag --image-size). "
                f"Received: image_size={size}"
            )
        if self.checkpoint_every_steps < 0:
            raise ConfigError("checkpoint_every_steps must be 0 (only at epoch ends) or more "
                              f"(flag --checkpoint-every-steps). Received: {self.checkpoint_every_steps}")
        if self.on_bad_record not in ("fail", "skip"):
            raise ConfigError("on_bad_record must be fail or skip (flag --on-bad-record). "
                              f"Received: {self.on_bad_record!r}")
        if self.fid_every < 0:
            raise ConfigError(f"fid_every must be 0 (off) or more. Received: fid_every={self.fid_every}")
        if self.fid_every and self.fid_images < 2:  # a covariance needs two images
            raise ConfigError(f"fid_images must be at least 2 to score FID. Received: fid_images={self.fid_images}")
        for name in ("batch_size", "epochs", "generator_filters", "critic_filters", "fid_images",
                     "steps_per_execution", "export_batch_size", "checkpoints_to_keep",
                     "checkpoint_every_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1. Received: {name}={getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(
                "steps_per_epoch must be at least 1 or None (flag --steps-per-epoch). "
                f"Received: steps_per_epoch={self.steps_per_epoch}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)} (flag --precision). "
                f"Received: precision={self.precision!r}"
            )
        choices = {"generator": ("unet", "resnet"), "adversarial_loss": ("bce", "lsgan"),
                   "export_checkpoint": ("best", "newest")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)} (flag "
                                  f"--{name.replace('_', '-')}). Received: {getattr(self, name)!r}")
        unknown = sorted({p.strip() for p in self.diffaugment.split(",") if p.strip()}
                         - set(DIFFAUGMENT_PARTS))
        if unknown:
            raise ConfigError(f"diffaugment (flag --diffaugment) may name {', '.join(DIFFAUGMENT_PARTS)}."
                              f" Received: {unknown}")
        if self.history_size < 0 or self.diffaugment_strength < 0:
            raise ConfigError("history_size and diffaugment_strength must be 0 or more.")
        if not 0.0 <= self.lr_decay_start <= 1.0:
            raise ConfigError(f"lr_decay_start must be in [0, 1]. Received: {self.lr_decay_start}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")

    def replace(self, **changes) -> "Config":
        """A copy with `changes` applied; unknown field names are an error."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"Unknown config fields: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "config.json") -> "Config":
        """Reads a config written by `to_json`, naming `source` in any error."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{source} is not valid JSON: {error}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"{source} has unknown config fields {sorted(unknown)}")
        return cls(**values)


def kaggle() -> Config:
    """The competition recipe of the public tutorial (256 px, 25 epochs, batch 1), scored
    every 5 epochs so the best checkpoint by FID is kept."""
    return Config(fid_every=5)


def sample() -> Config:
    """A few minutes on a 2-core laptop, on the sample shipped in `tfrecords/`."""
    return Config(
        data_dir=str(SAMPLE_DATA_DIR),
        image_size=64,
        generator_filters=32,
        critic_filters=32,
        epochs=20,
        export_batch_size=32,
        # Timing the kernels adds 15 s to the first epoch and saves about 10 ms of a 140 ms
        # step here: more than 600 steps at 64 px win back.
        fastest_cpu_kernels=False,
    )


def tiny() -> Config:
    """Seconds per run: what the tests train."""
    return Config(
        data_dir=str(SAMPLE_DATA_DIR),
        image_size=32,
        generator_filters=4,
        critic_filters=4,
        epochs=1,
        steps_per_epoch=2,
        sample_images=2,
        export_batch_size=8,
    )


def preset(name: str) -> Config:
    """The preset called `name` (flag --preset)."""
    presets = {"kaggle": kaggle, "sample": sample, "tiny": tiny}
    if name not in presets:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}. Received: {name!r}")
    return presets[name]()
