"""One typed config for a CycleGAN run, and its presets.

Every field says, in one place, its default, its help text and what values it takes; the
commands make their flags from these (`monet_gan.cli`), so every field has a flag
(`--image-size` for `image_size`, `--augment/--no-augment` for a switch).
Presets are small functions that change a few fields of the default `Config`:
`kaggle()` is the competition recipe, `sample()` is what the README's main command
runs on a laptop in minutes, `tiny()` is what the tests run.
"""

import dataclasses
import json
import math
import re
import types
from pathlib import Path

from monet_gan.errors import ConfigError

# The shipped sample data: `tfrecords/` at the top of the repository.
SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "tfrecords"

# The values a field may take, where they are a list.
PRESETS = ("kaggle", "laptop", "sample", "tiny")
BAD_RECORD_POLICIES = ("fail", "skip")
GENERATORS = ("unet", "resnet")
UPSAMPLINGS = ("transpose", "resize")
ADVERSARIAL_LOSSES = ("bce", "lsgan")
TRANSLATION_LOSSES = ("cycle", "patchnce")
DIFFAUGMENT_PARTS = ("color", "translation", "cutout")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "tpu", "mirrored", "multiworker", "default")
BACKENDS = ("tensorflow", "jax")  # Keras' backends monet_gan trains on
EXPORT_CHECKPOINTS = ("best", "newest")
EXPORT_MODES = ("full", "resize")

# What `--resume` may still change: the run's length, where and how fast it runs, what it
# saves and the export. The rest would make the resumed run another run.
CHANGEABLE_ON_RESUME = (
    "data_dir", "on_bad_record", "epochs", "precision", "jit_compile", "steps_per_execution",
    "fastest_cpu_kernels", "strategy", "sample_images", "checkpoints_to_keep",
    "checkpoint_every_epochs", "checkpoint_every_steps", "fid_every", "fid_images", "export",
    "export_batch_size", "export_tta", "export_checkpoint", "export_mode", "time_budget",
)
DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s?)?")


def setting(default, help: str, *, choices: tuple | None = None, minimum=None, maximum=None,
            below=None, above=None, flag: str | None = None):
    """A config field: its default, its help text (the flag's), the values it takes
    (`choices`, or a range: `minimum`/`maximum` inclusive, `above`/`below` exclusive) and its
    flag when that is not `--field-name`."""
    return dataclasses.field(default=default, metadata=dict(
        help=help, choices=choices, minimum=minimum, maximum=maximum, below=below, above=above,
        flag=flag))


@dataclasses.dataclass(frozen=True)
class Config:
    # --- data ---
    data_dir: str | None = setting(
        None, "folder holding monet_tfrec/ and photo_tfrec/ (default: the Kaggle input folder)",
        flag="--data")
    image_size: int = setting(256, "side of the square training images: a power of two, 32..256")
    augment: bool = setting(True, "random flip and 12% resize-and-crop jitter of both domains")
    crops: bool = setting(
        False, "below 256 px: train on random image_size windows of the 256 px images, at the scale "
        "images.zip paints them (export_mode full), instead of on the whole images resized down")
    shuffle_buffer: int = setting(2048, "photos shuffled across this many records", minimum=1)
    on_bad_record: str = setting(
        "fail", "an unusable record or image: fail (stop, naming it) or skip it (counted)",
        choices=BAD_RECORD_POLICIES)

    # --- networks (the tutorial's U-Net and 70x70 PatchGAN at the defaults) ---
    generator_filters: int = setting(64, "filters of the generator's first block; doubles per block up to "
                                     "generator_filter_cap times this", minimum=1)
    generator_filter_cap: int = setting(
        8, "the U-Net's filters stop doubling at this multiple of generator_filters (the tutorial's 8; 4 "
        "narrows the blocks nearest the bottleneck, a third of the weights)", minimum=1)
    critic_filters: int = setting(64, "filters of the critic's first block; doubles per block", minimum=1)
    dropout: float = setting(0.5, "dropout rate of the U-Net's first three up blocks", minimum=0.0, below=1.0)
    generator: str = setting(
        "unet", "unet (the tutorial's) or resnet (the CycleGAN paper's, 9 blocks at 256 px)", choices=GENERATORS)
    upsample: str = setting(
        "transpose", "how the U-Net doubles resolution: transpose (a 4x4 transposed conv, the tutorial's) or "
        "resize (nearest-neighbour upsampling, then a 3x3 conv: no checkerboard; Odena et al. 2016)",
        choices=UPSAMPLINGS)

    # --- optimisation ---
    batch_size: int = setting(1, "per replica; the global batch is this times the replica count", minimum=1)
    epochs: int = setting(25, "one epoch is one pass over the Monet paintings", minimum=1)
    steps_per_epoch: int | None = setting(None, "default: Monet paintings // global batch", minimum=1)
    learning_rate: float = setting(2e-4, "Adam's rate, for all four networks (the critics': see "
                                   "critic_learning_rate)", above=0.0)
    critic_learning_rate: float = setting(
        0.0, "the two critics' Adam rate, when it should differ from the generators' (the two time-scale "
        "rule, Heusel et al. 2017); 0: learning_rate", minimum=0.0)
    beta_1: float = setting(0.5, "Adam's first-moment decay", minimum=0.0, below=1.0)
    cycle_weight: float = setting(10.0, "lambda of the cycle-consistency loss (CycleGAN paper, eq. 2)",
                                  minimum=0.0)
    identity_weight: float = setting(5.0, "weight of the identity loss (the tutorial: 0.5 lambda); 0: off",
                                     minimum=0.0)
    translation_loss: str = setting(
        "cycle", "what holds each painting to its photo: cycle (the CycleGAN: a Monet -> photo generator and "
        "critic, and the cycle loss) or patchnce (contrastive translation, CUT: one generator and one critic, "
        "and PatchNCE on the generator's own features; cycle and identity weights unused)",
        choices=TRANSLATION_LOSSES)
    nce_weight: float = setting(1.0, "weight of PatchNCE (translation_loss patchnce; the CUT paper's 1)",
                                minimum=0.0)
    identity_nce: bool = setting(
        True, "translation_loss patchnce: PatchNCE on Monet paintings too, G(y) against y (the CUT paper's "
        "CUT; off: its FastCUT, a cheaper step)")
    adversarial_loss: str = setting(
        "bce", "bce (from logits, the tutorial's) or lsgan (least squares, the paper's)",
        choices=ADVERSARIAL_LOSSES)
    diffaugment: str = setting("", "DiffAugment before every critic call: a comma list of "
                               + ", ".join(DIFFAUGMENT_PARTS) + " (default: off)")
    diffaugment_strength: float = setting(1.0, "scales DiffAugment's ranges; 1 is the paper's", minimum=0.0)
    history_size: int = setting(0, "older fakes kept per critic (the paper: 50); 0: none", minimum=0)
    lr_decay_start: float = setting(
        1.0, "fraction of the run's epochs after which the rate falls linearly to 0 (of --epochs: a "
        "--time-budget that ends the run sooner does not bring it forward); 1: never", minimum=0.0, maximum=1.0)
    generator_average: float = setting(
        0.0, "momentum of a moving average of the photo -> Monet generator's weights (e.g. 0.999), "
        "which the export, the sample grids and FID scores paint with; 0: they use the trained weights",
        minimum=0.0, below=1.0)
    seed: int = setting(0, "seeds weights, shuffling, augmentation and dropout", minimum=0)

    # --- accelerators ---
    precision: str = setting(
        "float32", "float32, mixed_bfloat16 (TPUs, recent GPUs, CPUs with AVX512_BF16 or AMX; "
        "the laptop preset's default there) or mixed_float16 (GPUs)", choices=PRECISIONS)
    jit_compile: bool = setting(False, "compile the train step with XLA")
    steps_per_execution: int = setting(1, "train steps per call into the device (TPUs like 32)", minimum=1)
    fastest_cpu_kernels: bool = setting(
        True, "CPU training: each U-Net/PatchGAN convolution op on the fastest of 3 kernels (conv_kernels.py)")
    strategy: str = setting("auto", "auto, tpu, mirrored, multiworker or default (see distribute.py)",
                            choices=STRATEGIES)
    backend: str | None = setting(
        None, "Keras' backend, recorded by training; chosen with KERAS_BACKEND=jax|tensorflow before "
        "starting (default: the one Keras runs on)", choices=BACKENDS)

    # --- run outputs ---
    sample_images: int = setting(4, "photos shown in the per-epoch sample grid", minimum=1)
    checkpoints_to_keep: int = setting(3, "newest checkpoints kept in the run folder", minimum=1)
    checkpoint_every_epochs: int = setting(1, "a checkpoint at the end of every Nth epoch", minimum=1)
    checkpoint_every_steps: int = setting(0, "and one every N steps; 0: at epoch ends only", minimum=0)
    time_budget: str = setting(
        "", "wall time a training process may take, e.g. 40m, 1h30m, 90s: then it saves a checkpoint "
        "after the current step and exports ('': until the last epoch)")
    fid_every: int = setting(0, "score FID/MiFID/KID of translated photos every N epochs; 0: never",
                             minimum=0)
    fid_images: int = setting(300, "photos translated for each such score", minimum=1)
    export: bool = setting(True, "write images.zip and the SavedModel when training ends")
    export_batch_size: int = setting(8, "photos translated at once by the export", minimum=1)
    export_tta: bool = setting(False, "export: average each photo's painting with its mirror image's")
    export_checkpoint: str = setting(
        "best", "export from the best checkpoint by FID (when the run scored any; else the newest) or "
        "the newest", choices=EXPORT_CHECKPOINTS)
    export_mode: str = setting(
        "full", "images.zip below 256 px: paint each 256 px photo at 256 in one pass (full) or at "
        "the training size and resize the painting back (resize); the same at 256 px",
        choices=EXPORT_MODES)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_field(field, getattr(self, field.name))
        size = self.image_size
        if size < 32 or size > 256 or size & (size - 1):
            raise ConfigError("image_size must be a power of two from 32 to 256 (flag --image-size). "
                              f"Received: image_size={size}")
        if self.fid_every and self.fid_images < 2:  # a covariance needs two images
            raise ConfigError("fid_images must be at least 2 to score FID (flag --fid-images). "
                              f"Received: fid_images={self.fid_images}")
        diffaugment_parts(self.diffaugment)
        duration_seconds(self.time_budget)

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
        if not isinstance(values, dict):
            raise ConfigError(f"{source} does not hold a JSON object of config fields.")
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{source} has unknown config fields {sorted(unknown)}")
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None


def flag(field: dataclasses.Field) -> str:
    """The command-line flag of a config field."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def value_type(field: dataclasses.Field) -> type:
    """int, float, str or bool: the field's type without its `| None`."""
    if isinstance(field.type, types.UnionType):
        [kind] = [t for t in field.type.__args__ if t is not type(None)]
        return kind
    return field.type


def check_field(field: dataclasses.Field, value) -> None:
    """Raises ConfigError, naming the field, its flag and `value`, when `value` is not of the
    field's type or outside its choices or range."""
    kind, meta = value_type(field), field.metadata
    where = f"(flag {flag(field)}). Received: {field.name}={value!r}"
    if value is None and field.default is None:
        return
    # bool is an int in Python: a switch is no count, and a count no switch.
    right_type = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        right_type = True
    if not right_type:
        raise ConfigError(f"{field.name} must be of type {kind.__name__} {where}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{field.name} must be a finite number {where}")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{field.name} must be one of {', '.join(meta['choices'])} {where}")
    low, high, above, below = meta["minimum"], meta["maximum"], meta["above"], meta["below"]
    if ((low is not None and value < low) or (high is not None and value > high)
            or (above is not None and value <= above) or (below is not None and value >= below)):
        if low is not None and (high is not None or below is not None):
            bound = f"in [{low}, {high}]" if high is not None else f"in [{low}, {below})"
        else:
            bound = f"at least {low}" if low is not None else f"more than {above}"
        raise ConfigError(f"{field.name} must be {bound} {where}")


def duration_seconds(text: str) -> float | None:
    """'1h30m', '40m', '90s' or '90' -> seconds; '' -> None (no limit). Anything else, or no
    time at all, is a ConfigError."""
    if not text:
        return None
    match = DURATION.fullmatch(text.strip().lower())
    seconds = None
    if match and any(match.groups()):
        hours, minutes, rest = (float(part or 0) for part in match.groups())
        seconds = 3600 * hours + 60 * minutes + rest
    if not seconds:
        raise ConfigError("time_budget must be a duration such as 40m, 1h30m or 90s (flag "
                          f"--time-budget). Received: time_budget={text!r}")
    return seconds


def diffaugment_parts(policy: str) -> tuple[str, ...]:
    """'color,translation,cutout' -> its parts, in order; '' -> () (off). Unknown parts
    are a ConfigError."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = sorted(set(parts) - set(DIFFAUGMENT_PARTS))
    if unknown:
        raise ConfigError(f"diffaugment (flag --diffaugment) may name {', '.join(DIFFAUGMENT_PARTS)}. "
                          f"Received: {unknown}")
    return parts


def kaggle() -> Config:
    """The competition recipe of the public tutorial (256 px, 25 epochs, batch 1), scored
    every 5 epochs so the best checkpoint by FID is kept."""
    return Config(fid_every=5)


def laptop() -> Config:
    """The best paintings measured from 40 minutes of a 2-core CPU without an accelerator
    (bench/QUALITY.md, "Laptop budget"): the `kaggle` recipe at 128 px without the identity
    loss (7.0 FID better than with it, on three seeds of 3900 steps each), about 4150 steps in
    that time on the measuring machine (FID 104.5 against the validation paintings after 3900
    steps, 103.3 after 4500), painting with the moving average of the generator's weights (4.6
    to 27.0 FID better than its last weights on each of three seeds: without the identity loss
    the last weights vary most); training stops when the time budget is spent and the photos
    are painted at 256 px with the 128 px weights (export_mode 'full'). `--time-budget` sets
    another budget. (Half the width with LSGAN trains three times the steps in that time and
    painted less like Monet.) On a CPU with bfloat16 instructions (`cpu_has_bfloat16`), under
    TensorFlow, it computes in mixed_bfloat16: 0.80 times the step on the measuring machine,
    and as good paintings per step (FID 102.7 after 4800 steps, three seeds)."""
    import keras  # the backend Keras runs on; not imported at module level (base layer)

    fast_bfloat16 = cpu_has_bfloat16() and keras.backend.backend() == "tensorflow"
    return Config(image_size=128, epochs=1000, time_budget="40m", generator_average=0.999, identity_weight=0.0,
                  precision="mixed_bfloat16" if fast_bfloat16 else "float32")


def cpu_has_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has the bfloat16 instructions (AVX512_BF16 or AMX) that TensorFlow's
    oneDNN convolutions compute bfloat16 with, by the flags Linux lists in `cpuinfo`; False
    where it lists none (other systems). Without them oneDNN has no bfloat16 convolution
    (with them capped to AVX2, `ONEDNN_MAX_CPU_ISA=AVX2`, training fails at its first step)."""
    try:
        listed = cpuinfo.read_text()
    except OSError:
        return False
    return re.search(r"^flags\s*:.*\b(avx512_bf16|amx_bf16)\b", listed, re.MULTILINE) is not None


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
    presets = {"kaggle": kaggle, "laptop": laptop, "sample": sample, "tiny": tiny}
    if name not in presets:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}. Received: {name!r}")
    return presets[name]()
