"""Painting quality of training variants, side by side, at equal compute.

    python bench/quality.py [--size 64] [--width 32] [--steps 600 | --time-budget 40m] [--stages 1]
                            [--seeds 0,1] [--photos 1000] [--validation DIR|none] [--export-size 256]
                            [--variants tutorial,augment,...] [--jobs 1]
                            [--results DIR] [--runs DIR] [--score-only] [--no-score] [--final-only]
                            [--time-only] [--out bench/QUALITY.md]

Each variant trains from scratch for the same number of steps (or, with --time-budget, the same
wall time) on the competition data beside the checkout (../shared/data/gan-getting-started, or
--data), on all 300 Monet paintings, and is scored against --validation, Monet paintings it never
saw (../shared/data/monet_validation: 447; never train on them, copy them or ship them). With
`--validation none`, 60 of the 300 are held out instead (every fifth by name), as the tables of
bench/QUALITY.md before 2026-12-04 were made. After --steps/--stages, 2 x --steps/--stages, ...
steps (the run's own checkpoints) the first --photos photos are translated (at the training
size, and back to --export-size, 256 by default with --validation: what users submit) and kept
as JPEGs, then scored with monet_gan.evaluate (FID, KID; the memorization distance and MiFID
against the training paintings) against the validation paintings; so are the photos
themselves, resized and encoded the same way (the `identity` row: a variant that does not beat
it has not learned the style yet, ../shared/QUALITY_NOTES.md). Below 256 px the validation
paintings pass through the same chain (down to --size and back), so that FID compares style
rather than the round trip's blur, as issue 21 measures; a column gives the FID against the
paintings unchanged as well. KID is shown beside FID: unbiased, where FID with
60 real paintings is biased up. Each run is a process of its own, --jobs of
them at a time. Also timed: seconds per training step of each variant, in its own process
(under the load of the others; `--time-only` times every variant alone, on the sample data).

The `tutorial` variant is the public tutorial's recipe (no input augmentation, BCE, U-Net,
identity weight 5, constant rate); every other variant changes one thing, `tta` scores the
tutorial's own runs with test-time augmentation, and `combo` is the recipe of the top entries
(all of augment, DiffAugment, LSGAN, history and the rate decay). When --best is given, `best`
runs afterwards with every change that beat the tutorial by more than the seed-to-seed spread
(largest minus smallest FID of a variant's seeds) of the tutorial and of the change itself.
`--baseline` compares with another variant instead (`laptop`, to screen changes to the preset).

--results keeps every run's translations and timings; a run whose results are there already
is not run again, so an interrupted benchmark continues (and with --runs, which keeps the run
folders, an interrupted run continues from its newest checkpoint), and `--no-score` followed by
`--score-only` splits training (on a machine with many cores) from scoring (where the
Inception weights are). SIGTERM, SIGINT (Ctrl-C) or SIGHUP to the benchmark reaches its runs:
each saves a checkpoint after its current step and stops, no new run starts, and the benchmark
exits 128 + the signal's number once they have (a second signal stops them at once, unsaved).
On Linux a benchmark killed outright (SIGKILL) stops its runs the same way, through the kernel.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DATA = HERE.parent.parent / "shared" / "data" / "gan-getting-started"
VALIDATION = HERE.parent.parent / "shared" / "data" / "monet_validation"
HELD_OUT_EVERY = 5  # every fifth Monet painting by name: 60 of 300 (with --validation none)

# The `laptop` preset in bfloat16, the base of the screens of 2026-12-06 and after
BFLOAT16_LAPTOP = {"augment": True, "generator_average": 0.999, "identity_weight": 0.0, "precision": "mixed_bfloat16"}
# ... at batch 4, averaged over about its last 500 steps (see "average_identity0_bf16_batch4")
BFLOAT16_BATCH4 = {**BFLOAT16_LAPTOP, "generator_average": 0.998, "batch_size": 4}
VARIANTS = {
    "tutorial": {"augment": False},
    "augment": {"augment": True},
    "diffaugment": {"augment": False, "diffaugment": "color,translation,cutout"},
    "lsgan": {"augment": False, "adversarial_loss": "lsgan"},
    "history": {"augment": False, "history_size": 50},
    "lr_decay": {"augment": False, "lr_decay_start": 0.5},
    "resnet": {"augment": False, "generator": "resnet"},
    "identity0": {"augment": False, "identity_weight": 0.0},
    # The `kaggle` preset (augmentation on) without the identity loss's pull towards the photo
    "augment_identity0": {"augment": True, "identity_weight": 0.0},
    "tta": {"augment": False, "export_tta": True},
    # The `laptop` preset trained on 128 px windows of the 256 px images: the scale it paints at
    "crops": {"augment": True, "crops": True},
    # Screens towards the laptop goal (issue 21): the preset's recipe trained on 64 px windows of
    # the 256 px images (more steps in the same time, strokes at the scale they are painted at),
    # at twice the learning rate, and with half the identity weight
    "crops64": {"augment": True, "crops": True, "image_size": 64},
    "lr2x": {"augment": True, "learning_rate": 4e-4},
    "identity2.5": {"augment": True, "identity_weight": 2.5},
    # The preset painting with a moving average of its generator's weights (momentum 0.999)
    "average": {"augment": True, "generator_average": 0.999},
    # Screens on top of it (issue 21): LSGAN's loss, DiffAugment before every critic call, and
    # half the cycle and identity weights (the GAN's pull on the generator doubled against them)
    "average_lsgan": {"augment": True, "generator_average": 0.999, "adversarial_loss": "lsgan"},
    "average_diffaugment": {"augment": True, "generator_average": 0.999, "diffaugment": "color,translation,cutout"},
    "average_cycle5": {"augment": True, "generator_average": 0.999, "cycle_weight": 5.0, "identity_weight": 2.5},
    # The critics at four times the generators' rate (the two time-scale rule of Heusel et al. 2017):
    # the preset's critics stay near chance (loss about 0.67 against ln 2), so the generator's
    # adversarial pull is weak
    "average_critic4x": {"augment": True, "generator_average": 0.999, "critic_learning_rate": 8e-4},
    # The paper's schedule on top of the average: the rate falls linearly to 0 over the second half,
    # so the weights the average gathers at the end wander less
    "average_decay": {"augment": True, "generator_average": 0.999, "lr_decay_start": 0.5},
    # A shorter average (about the last 500 steps of 3900, not 1000). Keras' average starts at the
    # first step's weights with no warm-up, so a longer one (0.9995) would keep 14% of them at 3900
    # steps and is not screened
    "average_momentum998": {"augment": True, "generator_average": 0.998},
    # No identity loss on top of the average: the critics' pull on the paintings' colours is then
    # held back by the cycle loss alone (the preset's paintings keep the photos' colours)
    "average_identity0": {"augment": True, "generator_average": 0.999, "identity_weight": 0.0},
    # Both screens that beat the preset's seed 0 on top of the average, together
    "average_identity0_momentum998": {"augment": True, "generator_average": 0.998, "identity_weight": 0.0},
    # Half the cycle weight on top of the preset without the identity loss: the cycle loss is then
    # all that holds a painting to its photo, so this lets the critics pull the paintings further
    "average_identity0_cycle5": {"augment": True, "generator_average": 0.999, "identity_weight": 0.0,
                                 "cycle_weight": 5.0},
    # Twice the rate of all four networks on top of the preset without the identity loss: its FID
    # still falls when the 40 minutes end, and the average quiets the larger steps' noise
    "average_identity0_lr2x": {"augment": True, "generator_average": 0.999, "identity_weight": 0.0,
                               "learning_rate": 4e-4},
    # 128 px windows of the 256 px images (the scale images.zip paints at; 2.0 better on the old
    # preset's three seeds, within their spread) on top of the shorter average without the identity
    # loss (1.49 better than the preset on the same three seeds, every seed lower)
    "average_identity0_momentum998_crops": {"augment": True, "generator_average": 0.998, "identity_weight": 0.0,
                                            "crops": True},
    # Contrastive translation (CUT, Park et al. 2020) in place of the cycle: one generator and one
    # critic, held to the photo by PatchNCE on the generator's own features; a step costs about
    # half the preset's (0.54 times at 128 px on the 2-core CPU), so the same time trains about
    # 1.85 times its steps; given the time of its 3900 (7200 steps) it scored 104.30 on three seeds,
    # a tie with its 104.53
    "average_patchnce": {"augment": True, "generator_average": 0.999, "translation_loss": "patchnce"},
    # The `laptop` preset in bfloat16 (Keras' mixed_bfloat16 policy): on a CPU with AVX512_BF16 its
    # step is 0.80 times float32's at 128 px, and 4800 steps (the preset's 3900 in time) scored 102.71
    # on three seeds against its 104.53 (bench/QUALITY.md): what `laptop` now does on such CPUs
    "average_identity0_bf16": BFLOAT16_LAPTOP,
    # Screens on top of the bf16 preset (2026-12-06): no dropout in the U-Net's up blocks (the
    # CycleGAN paper's generators have none): 103.05 on three seeds of 4800 steps against its
    # 102.71, a tie; the paper's ResNet generator (6 blocks at 128 px): 2.03 times its step, not screened
    "average_identity0_bf16_dropout0": {**BFLOAT16_LAPTOP, "dropout": 0.0},
    "average_identity0_bf16_resnet": {**BFLOAT16_LAPTOP, "generator": "resnet"},
    # The bf16 preset with the U-Net's filters capped at 4x its width (generator_filter_cap): 13.5M
    # weights instead of 41.8M at width 64, 128 px, 0.58 times the step; 99.69 on three seeds of 4800
    # steps (the bf16 preset: 102.71), 103.22 when continued to 7200 (less time): a tie at equal time
    "average_identity0_bf16_cap4": {**BFLOAT16_LAPTOP, "generator_filter_cap": 4},
    # The bf16 preset at batch 4 (2026-12-07): 0.960 s a step against its 0.421 alone, 0.57 times the
    # time per image; its average over 500 steps (0.998), 2000 images, as 0.999 keeps 12% of the first
    # weights after the ~2100 steps the preset's time gives it. 99.78 on three seeds of 2100 steps
    # (the preset's 102.71 in the same time), within either's seed spread (5.90, 3.92): a lead
    "average_identity0_bf16_batch4": BFLOAT16_BATCH4,
    # (Seeds 3 to 5, 2026-12-07: 100.95; 100.37 on all six, 2.34 below the preset, still a lead.)
    # Batch 4 with the capped U-Net: 0.752 s a step alone against batch 4's 1.002, so ~2930 steps
    # (39 epochs of 75) in the preset's time; 99.52 on three seeds (spread 9.62): level with batch 4
    "average_identity0_bf16_batch4_cap4": {**BFLOAT16_BATCH4, "generator_filter_cap": 4},
    # Batch 4 choosing its checkpoint by FID, as the `kaggle` preset does: every 4 epochs (300
    # steps) 300 photos painted and scored against the 300 training paintings, the best kept; the
    # run writes the `_best` row (that checkpoint) beside its last one, so the two compare seed by seed.
    # Seeds 0-2 (2026-12-07): 100.70 best against 100.22 last at 28 epochs, 98.70 against 98.80 at
    # 40: choosing gains nothing measurable, so the `laptop` preset paints with its last weights
    "average_identity0_bf16_batch4_fid4": {**BFLOAT16_BATCH4, "fid_every": 4},
    "combo": {"augment": True, "diffaugment": "color,translation,cutout", "adversarial_loss": "lsgan",
              "history_size": 50, "lr_decay_start": 0.5},
    "laptop": None,  # the `laptop` preset as shipped: its changes are preset_changes("laptop")
    "resize": {"augment": False, "upsample": "resize"},
    # The laptop preset of 2026-12-04 with resize-convolutions in the U-Net (its stripes, bench/QUALITY.md)
    "laptop_resize": {"image_size": 128, "generator_filters": 32, "critic_filters": 32, "adversarial_loss": "lsgan",
                      "upsample": "resize"},
}
# Variants that change only the export: scored from another variant's runs, not trained.
EXPORT_ONLY = {"tta": "tutorial"}


def preset_changes(name: str) -> dict:
    """The fields the preset `name` trains with where the `kaggle` preset differs, less how long
    it trains (this benchmark sets that for every variant alike)."""
    from monet_gan import config as config_lib

    kaggle, preset = config_lib.kaggle(), config_lib.preset(name)
    length = {"epochs", "time_budget", "fid_every", "data_dir"}
    return {key: value for key, value in vars(preset).items()
            if key not in length and value != getattr(kaggle, key)}


def variant_changes(name: str) -> dict:
    """What the variant `name` changes in the kaggle recipe at the benchmark's size and width."""
    return preset_changes(name) if VARIANTS[name] is None else VARIANTS[name]


def split_monet_records(data_dir: Path, workdir: Path) -> tuple[Path, Path]:
    """A data folder with 240 Monet paintings and all photos, and a folder of the 60 others."""
    import tensorflow as tf

    from monet_gan import data

    files = data.domain_files(str(data_dir), "monet")
    records = sorted(tf.data.TFRecordDataset(files).as_numpy_iterator(),
                     key=lambda r: data.parse_record(r)["image_name"].numpy())
    train_dir, held_out = workdir / "data", workdir / "held_out"
    (train_dir / "monet_tfrec").mkdir(parents=True)
    held_out.mkdir()
    (train_dir / "photo_tfrec").symlink_to((data_dir / "photo_tfrec").resolve())
    with tf.io.TFRecordWriter(str(train_dir / "monet_tfrec" / "train.tfrec")) as train_writer, \
            tf.io.TFRecordWriter(str(held_out / "held_out.tfrec")) as held_out_writer:
        for i, record in enumerate(records):
            (held_out_writer if i % HELD_OUT_EVERY == 0 else train_writer).write(record)
    return train_dir, held_out


def run_name(name: str, seed: int) -> str:
    return f"{name}-seed{seed}"


def variant_config(args, changes: dict, **fields):
    """The kaggle preset at the benchmark's size and width, with a variant's changes."""
    from monet_gan import config as config_lib

    return config_lib.kaggle().replace(**{"image_size": args.size, "generator_filters": args.width,
                                          "critic_filters": args.width, "export_mode": args.export_mode,
                                          **fields, **changes})


def seconds_per_step(config, model) -> float:
    """The median of 10 training steps, traced first, on one batch."""
    import tensorflow as tf

    from monet_gan import pipeline

    batch = next(iter(pipeline.training_dataset(config, config.batch_size)))
    step = tf.function(model.train_step)
    first_loss = model.LOSS_NAMES[0]
    float(step(batch)[first_loss])
    times = []
    for _ in range(10):
        begin = time.perf_counter()
        float(step(batch)[first_loss])
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def scored_photos(args) -> list:
    """The first --photos photos, in batches, at --export-size (resized as training and
    translation.translate resize them); translation takes them to the training size and back."""
    from monet_gan import data

    photos = data.scan_records(data.domain_files(str(args.data), "photo"))
    return [data.resize_to_uint8(batch, args.export_size)
            for batch in data.read_images(photos).take(args.photos).batch(32)]


def write_paintings(path: Path, generator, photos: list, size: int | None, tta: bool = False) -> None:
    """The generator's translations of `photos` (at `size` and back, or None: as they are) as
    a zip of JPEGs (written whole, then renamed)."""
    import tensorflow as tf

    from monet_gan.translation import translate

    paintings = tf.concat([translate(generator, batch, size, tta) for batch in photos], axis=0)
    partial = path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for i, painting in enumerate(paintings):
            archive.writestr(f"{i:04d}.jpg", tf.io.encode_jpeg(painting, quality=95).numpy())
    os.replace(partial, path)


def unchanged(photos, training=False):
    """The identity row's generator: every photo is its own painting."""
    return photos


def run_variant(name: str, changes: dict, seed: int, args, train_dir: Path, results: Path,
                workdir: Path) -> None:
    """Trains one variant (called in a fresh process) and writes, into `results`, a zip of
    JPEG paintings per stage (and per export-only variant built on it) and a JSON of timings."""
    from monet_gan import artifacts, checkpoints, cyclegan, run_folder, train
    from monet_gan.translation import export_generator

    if args.time_budget:  # epochs of the 300 paintings until the budget is spent; the last step scored
        length = dict(epochs=10_000, time_budget=args.time_budget, checkpoints_to_keep=1)
    elif args.epochs:  # whole epochs of the 300 paintings, as a time-budget run takes them; the last scored
        length = dict(epochs=args.epochs, checkpoints_to_keep=1)
    else:
        length = dict(epochs=args.stages, steps_per_epoch=args.steps // args.stages,
                      checkpoints_to_keep=args.stages)
    config = variant_config(args, changes, **length, data_dir=str(train_dir), export=False, fid_every=0,
                            seed=seed, sample_images=2)
    run_dir = workdir / run_name(name, seed)
    # A run folder kept in --runs from an interrupted benchmark continues from its newest
    # checkpoint (a time budget starts again there); its time so far is in its metrics.
    resume = bool(checkpoints.checkpoint_steps(run_dir / run_folder.CHECKPOINT_DIR))
    if run_dir.exists() and not resume:  # stopped before its first checkpoint: start again
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    model = train.train(config, run_dir, resume=resume)
    train_seconds = time.perf_counter() - start

    photos = scored_photos(args)
    exports = {name: config.export_tta, **{derived: True for derived, base in EXPORT_ONLY.items()
                               if base == name and derived in args.variant_names}}
    generator, optimizer = model.photo_to_monet, model.photo_to_monet_optimizer
    # With generator_average the optimizer keeps the average that images.zip paints with.
    average = optimizer if cyclegan.keeps_average(optimizer) else None
    for step in checkpoints.checkpoint_steps(run_dir / run_folder.CHECKPOINT_DIR):
        path = run_dir / run_folder.CHECKPOINT_DIR / f"{checkpoints.CHECKPOINT_PREFIX}-{step}"
        checkpoints.generator_checkpoint(generator, path.parent, average).restore(str(path)).expect_partial()
        stage = 0 if args.time_budget or args.epochs else step  # 0: the run's end (budget or epochs)
        with cyclegan.averaged_weights(generator, optimizer) as painting:
            painter, size = export_generator(painting, config)  # as images.zip paints (--export-mode)
            for export_name, tta in exports.items():
                write_paintings(results / f"{run_name(export_name, seed)}-step{stage}.zip",
                                painter, photos, size, tta)
    steps_done = max(checkpoints.checkpoint_steps(run_dir / run_folder.CHECKPOINT_DIR))
    timing = {"seconds_per_step": seconds_per_step(config, model), "train_seconds": train_seconds,
              "steps_done": steps_done, "export_mode": config.export_mode}
    for export_name in exports:
        (results / f"{run_name(export_name, seed)}.json").write_text(json.dumps(
            {"variant": export_name, "seed": seed, **timing,
             "changes": changes if export_name == name else variant_changes(export_name)}))
    best = run_dir / run_folder.BEST_CHECKPOINT_DIR / run_folder.BEST_SCORE_FILE
    if config.fid_every and best.is_file():  # also the checkpoint images.zip paints: the best by FID
        painter, size = export_generator(artifacts.load_generator(run_dir, config, "best"), config)
        best_run = run_name(f"{name}_best", seed)
        write_paintings(results / f"{best_run}-step0.zip", painter, photos, size)
        (results / f"{best_run}.json").write_text(json.dumps(
            {"variant": f"{name}_best", "seed": seed, **timing, "changes": {**changes, "checkpoint": "best"},
             "best": json.loads(best.read_text())}))


def in_subprocess(name: str, seed: int, args, train_dir, results: Path, workdir) -> None:
    spec = {"name": name, "changes": variant_changes(name) if name in VARIANTS else args.best_changes, "seed": seed,
            "train_dir": str(train_dir), "results": str(results), "workdir": str(workdir),
            "benchmark": os.getpid()}
    command = [sys.executable, __file__, "--data", str(args.data), "--size", str(args.size),
               "--width", str(args.width), "--steps", str(args.steps), "--stages", str(args.stages),
               "--photos", str(args.photos), "--variants", ",".join(args.variant_names),
               "--export-size", str(args.export_size), "--time-budget", args.time_budget or "",
               "--epochs", str(args.epochs), "--export-mode", args.export_mode,
               "--run", json.dumps(spec)]
    threads = str(max(1, (os.cpu_count() or 1) // args.jobs))
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads,
           "OMP_NUM_THREADS": threads}
    begin = time.perf_counter()
    result = RUNS_IN_PROGRESS.run(command, env)
    if result is None:
        print(f"{run_name(name, seed)}: not started (the signal)", flush=True)
    elif RUNS_IN_PROGRESS.stopping and result.returncode > 128:  # the run's own word on what it saved
        said = result.stderr.strip().splitlines()[-1:] or ["no message"]
        print(f"{run_name(name, seed)}: saved and stopped ({said[0]}); the same command with --runs "
              "continues it", flush=True)
    elif result.returncode:
        raise RuntimeError(f"{name} (seed {seed}) failed:\n{result.stderr[-3000:]}")
    else:
        print(f"{run_name(name, seed)} trained in {time.perf_counter() - begin:.0f} s", flush=True)


class RunProcesses:
    """The training processes of the benchmark, so that a signal to it reaches them. Each runs
    in a session of its own, so that Ctrl-C in a terminal reaches the benchmark alone and each
    run receives exactly one signal per signal the benchmark does: the first saves and stops
    it after its step, a second stops it at once (`checkpoints.StopSignals`)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self):
        self.lock = threading.Lock()
        self.live = set()
        self.stopping = None  # the first signal received

    def run(self, command: list, env: dict) -> subprocess.CompletedProcess | None:
        """`command`'s result, or None where a signal came before it could start."""
        with self.lock:
            if self.stopping:
                return None
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=env, start_new_session=True)
            self.live.add(process)
        try:
            stdout, stderr = process.communicate()
        finally:
            with self.lock:
                self.live.discard(process)
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def forward(self, signum, frame) -> None:
        """The signal handler: passes the signal on as SIGTERM to every run in progress and
        lets no new one start; `train_all` then waits for them."""
        with self.lock:
            self.stopping = self.stopping or signum
            for process in self.live:
                process.send_signal(signal.SIGTERM)
            signalled = len(self.live)
        print(f"\n{signal.Signals(signum).name}: {signalled} run(s) save after their step and "
              "stop; no new run starts.", file=sys.stderr, flush=True)


RUNS_IN_PROGRESS = RunProcesses()


def stop_when_the_benchmark_dies(benchmark: int) -> None:
    """In a run: on Linux, the kernel sends it SIGTERM (save after the step, stop) when the
    benchmark's thread that started it ends, so a benchmark killed by SIGKILL, which it cannot
    forward, leaves no run training unseen (prctl PR_SET_PDEATHSIG). Elsewhere, nothing."""
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # 1: PR_SET_PDEATHSIG
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != benchmark:  # it died before the request: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


def chains_references(args) -> bool:
    """Whether the paintings scored against pass through the photos' resize chain
    (`real_features`): where the runs train below the size their paintings are scored at and
    the export paints there (--export-mode resize), not at the photo's own size."""
    return args.size < args.export_size and args.export_mode == "resize"


def real_features(args, held_out: Path, memorization: Path | None, results: Path, workdir: Path) -> tuple:
    """Features of the paintings scored against; of the same paintings unchanged (None where
    they are scored unchanged); and of those the memorization distance is measured against
    (None: the first). Where the runs train at a smaller --size than --export-size, the
    paintings scored against pass through the photos' chain (down to --size, back up, JPEG
    95; the identity row's `write_paintings`), so that FID compares style, not the round
    trip's blur (issue 21); their features are kept in `results`, the images only in the
    temporary `workdir` (the validation paintings are never copied)."""
    import numpy as np

    from monet_gan import scores
    from monet_gan.image_sets import ImageSet

    unchanged_real = scores.image_set_features(ImageSet(str(held_out)), cache=True)
    trained_on = scores.image_set_features(ImageSet(str(memorization)), cache=True) if memorization else None
    if not chains_references(args):
        return unchanged_real, None, trained_on
    features_file = results / f"reference-{held_out.name}-{args.size}-{args.export_size}.features.npy"
    if not features_file.exists():
        paintings = np.stack(list(ImageSet(str(held_out)).arrays()))
        chained = workdir / "reference.zip"
        write_paintings(chained, unchanged, [paintings[i:i + 32] for i in range(0, len(paintings), 32)],
                        args.size)
        np.save(features_file, scores.image_set_features(ImageSet(str(chained))))
        chained.unlink()
    return np.load(features_file), unchanged_real, trained_on


def scores_against(generated, references: tuple) -> dict:
    """`scores.score` against the first of `real_features`' references, and the FID against
    the unchanged paintings (`fid_unchanged`) where those are another set."""
    from monet_gan import scores

    real, unchanged_real, trained_on = references
    result = scores.score(generated, real, trained_on)
    if unchanged_real is not None:
        result["fid_unchanged"] = scores.frechet_distance(*scores.statistics(generated),
                                                          *scores.statistics(unchanged_real))
    return result


def painted_otherwise(results: Path, export_mode: str) -> str | None:
    """What is wrong when a run in `results` was painted with another --export-mode than
    `export_mode` (its paintings and the references would not match); None when none was."""
    for timing_file in sorted(results.glob("*-seed*.json")):
        painted = json.loads(timing_file.read_text()).get("export_mode", "resize")  # before the flag: resize
        if painted != export_mode:
            return (f"{timing_file} was painted with --export-mode {painted}, not {export_mode}: pass "
                    f"--export-mode {painted}, or keep runs painted another way in another --results folder.")
    return None


def score_results(results: Path, references: tuple, final_only: bool = False) -> list[dict]:
    """One row per variant, seed and stage (the last stage only with `final_only`): FID and
    KID of its paintings against `real_features`' `references`, the memorization distance
    and MiFID. Features are kept beside each zip (Inception takes about a minute per 300
    images on 2 cores)."""
    import numpy as np

    from monet_gan import scores
    from monet_gan.image_sets import ImageSet

    rows = []
    for timing_file in sorted(results.glob("*-seed*.json")):
        timing = json.loads(timing_file.read_text())
        stages = sorted((int(path.stem.rsplit("-step", 1)[1]), path)
                        for path in results.glob(f"{timing_file.stem}-step*.zip"))
        for step, paintings in stages[-1:] if final_only else stages:
            features_file = paintings.with_suffix(".features.npy")
            if not features_file.exists():
                np.save(features_file, scores.image_set_features(ImageSet(str(paintings))))
            rows.append({**timing, "step": step, **scores_against(np.load(features_file), references)})
    return rows


def score_identity(args, results: Path, references: tuple) -> dict:
    """The identity row (../shared/QUALITY_NOTES.md): the scored photos themselves, through the
    same resizing and JPEG encoding as the paintings, against the same references. A
    variant that does not beat it has not learned the style yet."""
    import numpy as np

    from monet_gan import scores
    from monet_gan.image_sets import ImageSet

    chained = chains_references(args)
    paintings = results / (f"identity-{args.size}.zip" if chained else "identity.zip")
    if not paintings.exists():
        write_paintings(paintings, unchanged, scored_photos(args), args.size if chained else None)
    features_file = paintings.with_suffix(".features.npy")
    if not features_file.exists():
        np.save(features_file, scores.image_set_features(ImageSet(str(paintings))))
    return {"variant": "identity", **scores_against(np.load(features_file), references)}


def table(rows: list[dict], identity: dict | None = None, baseline: str = "tutorial") -> tuple[str, dict]:
    """The markdown table (FID per seed and stage, the seeds' spread, the final stage's mean
    against the `baseline` variant's on the same seeds, with the `identity` row last, its FID
    under every stage) and the final stage's mean FID of every variant."""
    final = max(r["step"] for r in rows)
    steps = sorted({r["step"] for r in rows})
    by_variant = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)

    def mean(runs, key, step=final):
        values = [r[key] for r in runs if r["step"] == step]
        return statistics.mean(values) if values else float("nan")

    means = {name: mean(runs, "fid") for name, runs in by_variant.items()}
    spreads = seed_spreads(rows)
    gains = {baseline: 0.0, **gains_vs_baseline(rows, baseline)}
    def at(step):  # step 0: each run's last step, where its time budget or epochs ended
        return f"at {step}" if step else "at the end"

    # Paintings scored against a chained reference (`real_features`) also show the FID against
    # the paintings unchanged: what the competition, with its 256 px paintings, would see.
    chained = all("fid_unchanged" in r for r in rows)

    def unchanged_column(runs):
        return f" {mean(runs, 'fid_unchanged'):.2f} |" if chained else ""

    lines = ["| variant | changes | seeds | " + " | ".join(f"FID {at(s)}" for s in steps)
             + f" | FID per seed {at(final)} | spread | MiFID {at(final)} | KID {at(final)} |"
             + (f" FID vs unchanged paintings {at(final)} |" if chained else "") + f" vs {baseline} | s/step |",
             "| --- " * (len(steps) + 9 + chained) + "|"]
    for name, runs in sorted(by_variant.items(), key=lambda item: means[item[0]]):
        changes = ", ".join(f"{k}={v}" for k, v in runs[0]["changes"].items())
        finals = sorted((r for r in runs if r["step"] == final), key=lambda r: r["seed"])
        lines.append(
            f"| {name} | {changes} | {len(finals)} | "
            + " | ".join(f"{mean(runs, 'fid', s):.2f}" for s in steps)
            + f" | {' / '.join(format(r['fid'], '.2f') for r in finals)} | "
            f"{format(spreads[name], '.2f') if name in spreads else '-'} | "
            f"{mean(runs, 'mifid'):.2f} | {mean(runs, 'kid'):.4f} |{unchanged_column(runs)} "
            f"{gains.get(name, float('nan')):+.2f} | "
            f"{statistics.mean(r['seconds_per_step'] for r in runs):.3f} |")
    if identity:
        compared = means.get(baseline, float("nan"))
        lines.append("| identity | the photos themselves | - | "
                     + " | ".join(f"{identity['fid']:.2f}" for _ in steps)
                     + f" | - | - | {identity['mifid']:.2f} | {identity['kid']:.4f} |"
                     + (f" {identity['fid_unchanged']:.2f} |" if chained else "")
                     + f" {identity['fid'] - compared:+.2f} | - |")
    return "\n".join(lines), means


def final_fids(rows: list[dict]) -> dict[str, dict[int, float]]:
    """Each variant's FID per seed at the final stage."""
    final = max(r["step"] for r in rows)
    fids = {}
    for r in rows:
        if r["step"] == final:
            fids.setdefault(r["variant"], {})[r["seed"]] = r["fid"]
    return fids


def seed_spreads(rows: list[dict]) -> dict[str, float]:
    """Each variant's largest FID difference between two of its seeds at the final stage
    (variants with one seed have none)."""
    return {name: max(by_seed.values()) - min(by_seed.values())
            for name, by_seed in final_fids(rows).items() if len(by_seed) > 1}


def gains_vs_baseline(rows: list[dict], baseline: str = "tutorial") -> dict[str, float]:
    """Each variant's mean FID at the final stage minus the `baseline` variant's, both over the
    seeds they share (a variant run with fewer seeds is compared on those seeds only)."""
    fids = final_fids(rows)
    compared = fids.get(baseline, {})
    gains = {}
    for name, by_seed in fids.items():
        shared = sorted(set(by_seed) & set(compared))
        if name != baseline and shared:
            gains[name] = (statistics.mean(by_seed[s] for s in shared)
                           - statistics.mean(compared[s] for s in shared))
    return gains


def time_variants(args) -> str:
    """A table of seconds per training step of every variant on this machine, in this process."""
    from monet_gan import config as config_lib
    from monet_gan import train

    lines = ["| variant | s/step | vs tutorial |", "| --- | --- | --- |"]
    times = {}
    for name in dict.fromkeys(["tutorial", *args.variant_names]):
        if name in EXPORT_ONLY:
            continue
        config = variant_config(args, variant_changes(name), data_dir=str(config_lib.SAMPLE_DATA_DIR))
        times[name] = seconds_per_step(config, train.build_model(config, total_steps=args.steps))
        lines.append(f"| {name} | {times[name]:.3f} | {times[name] / times['tutorial']:.2f}x |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def plan_runs(names: list[str], seeds: list[int], repeat: set[str],
              with_tutorial: bool = True) -> list[tuple[str, int]]:
    """(variant, seed) of every training run: the tutorial with every seed (unless not
    `with_tutorial`), the others with the first seed and, if in `repeat`, every seed;
    export-only variants are not trained."""
    first = ["tutorial"] if with_tutorial else []
    return [(name, seed) for seed in seeds for name in dict.fromkeys([*first, *names])
            if name not in EXPORT_ONLY and (seed == seeds[0] or name == "tutorial" or name in repeat)]


def beat_the_baseline(gains: dict[str, float], spreads: dict[str, float],
                      baseline: str = "tutorial") -> list[str]:
    """The variants whose mean FID is below the `baseline` variant's on the same seeds
    (`gains_vs_baseline`) by more than the seed-to-seed spread of either (the baseline's or their
    own; both need two seeds), best first."""
    if baseline not in spreads:
        return []
    return sorted((name for name in gains if name != "best" and name in spreads
                   and -gains[name] > max(spreads[baseline], spreads[name])),
                  key=gains.get)


def main() -> int:
    from monet_gan.config import EXPORT_MODES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the competition data folder")
    parser.add_argument("--size", type=int, default=64, help="training image size")
    parser.add_argument("--width", type=int, default=32, help="filters of the first layers (kaggle: 64)")
    parser.add_argument("--steps", type=int, default=600, help="training steps of every variant")
    parser.add_argument("--stages", type=int, default=1, help="also score after each 1/N of the steps")
    parser.add_argument("--seeds", default="0,1", help="every variant runs with each seed")
    parser.add_argument("--photos", type=int, default=1000, help="photos translated and scored")
    parser.add_argument("--validation", default=str(VALIDATION),
                        help="paintings to score against, never trained on (default: "
                             "../shared/data/monet_validation); none: hold 60 of the 300 out")
    parser.add_argument("--export-size", type=int,
                        help="paintings scored at this size (default: 256 with --validation, else --size)")
    parser.add_argument("--export-mode", choices=EXPORT_MODES, default="full",
                        help="below --export-size: paint each photo at that size (full, as images.zip "
                             "does by default) or at --size and back (resize; the references too)")
    parser.add_argument("--time-budget", help="train each run for this wall time (e.g. 40m) instead of --steps")
    parser.add_argument("--epochs", type=int, default=0,
                        help="train each run this many epochs of the 300 paintings instead of --steps")
    parser.add_argument("--without-tutorial", action="store_true",
                        help="train no tutorial runs (unless named in --variants): compared with another table's")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma list of: " + ", ".join(VARIANTS))
    parser.add_argument("--baseline", default="tutorial",
                        help="the variant every other is compared with: the table's 'vs' column, the "
                             "'beat' line and --best (e.g. laptop or average, to screen changes to the "
                             "preset; its runs must be in --results)")
    parser.add_argument("--repeat", help="variants run with every seed (default: all); the tutorial always is")
    parser.add_argument("--best", action="store_true",
                        help="then run `best`: every change that beat --baseline by more than the spread")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, sharing the cores")
    parser.add_argument("--results", type=Path, help="keep translations and timings here (default: temporary)")
    parser.add_argument("--runs", type=Path,
                        help="keep the run folders here (default: temporary); an interrupted run continues")
    parser.add_argument("--no-score", action="store_true", help="train and translate only")
    parser.add_argument("--score-only", action="store_true", help="score the runs in --results only")
    parser.add_argument("--final-only", action="store_true", help="score the last stage only")
    parser.add_argument("--time-only", action="store_true",
                        help="only time a training step of every variant here (no data needed)")
    parser.add_argument("--out", help="also write the table (with the command) to this file")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.variant_names = [n for n in args.variants.split(",") if n]
    args.validation = None if args.validation in ("none", "") else Path(args.validation)
    args.export_size = args.export_size or (256 if args.validation else args.size)
    args.time_budget = args.time_budget or None
    if args.run:  # through cli.run: a stop signal's message and exit code, as the train command's
        from monet_gan import cli

        spec = json.loads(args.run)
        stop_when_the_benchmark_dies(spec["benchmark"])
        return cli.run(lambda: run_variant(spec["name"], spec["changes"], spec["seed"], args,
                                           Path(spec["train_dir"]), Path(spec["results"]),
                                           Path(spec["workdir"])))
    unknown = sorted(set(args.variant_names) - set(VARIANTS))
    if unknown or args.baseline not in VARIANTS:
        what = f"variants {unknown}" if unknown else f"--baseline {args.baseline}"
        print(f"error: unknown {what}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.time_only:
        text = time_variants(args)
        if args.out:
            Path(args.out).write_text(f"`python bench/quality.py {' '.join(sys.argv[1:])}`\n\n{text}\n")
        return 0
    if not (args.data / "monet_tfrec").is_dir():
        print(f"error: {args.data} holds no monet_tfrec/: this benchmark needs the competition data "
              "(--data).", file=sys.stderr)
        return 2
    if args.score_only and not (args.results and args.results.is_dir()):
        print("error: --score-only needs --results DIR from an earlier run.", file=sys.stderr)
        return 2
    if args.validation and not args.validation.is_dir():
        print(f"error: --validation {args.validation}: no such folder; pass the validation paintings, "
              "or --validation none to hold 60 of the 300 out.", file=sys.stderr)
        return 2
    if (args.time_budget or args.epochs) and args.stages != 1:
        print("error: --time-budget and --epochs score each run's last step only; drop --stages.",
              file=sys.stderr)
        return 2
    if args.time_budget and args.epochs:
        print("error: give --time-budget or --epochs, not both.", file=sys.stderr)
        return 2
    if args.steps % args.stages:
        print(f"error: --steps {args.steps} is not a multiple of --stages {args.stages}.", file=sys.stderr)
        return 2

    seeds = [int(s) for s in args.seeds.split(",")]
    repeat = set(args.repeat.split(",")) if args.repeat else set(args.variant_names)
    runs = plan_runs(args.variant_names, seeds, repeat, with_tutorial=not args.without_tutorial)
    with tempfile.TemporaryDirectory(prefix="monet_quality_") as workdir:
        workdir = Path(workdir)
        results = args.results or workdir / "results"
        results.mkdir(parents=True, exist_ok=True)
        if problem := painted_otherwise(results, args.export_mode):
            print(f"error: {problem}", file=sys.stderr)
            return 2
        if args.validation:  # all 300 paintings trained on; memorization measured against them
            train_dir, held_out, memorization = args.data, args.validation, args.data / "monet_tfrec"
        else:
            (train_dir, held_out), memorization = split_monet_records(args.data, workdir), None
        if args.runs:
            args.runs.mkdir(parents=True, exist_ok=True)
        if not args.score_only:
            train_all(runs, args, train_dir, results, args.runs or workdir)
        if args.no_score:
            return 0
        references = real_features(args, held_out, memorization, results, workdir)
        rows = score_results(results, references, args.final_only)
        if not rows:
            print(f"error: {results} holds no finished runs (<variant>-seed<N>.json) to score.",
                  file=sys.stderr)
            return 2
        identity = score_identity(args, results, references)
        text, means = table(rows, identity, args.baseline)
        spreads = seed_spreads(rows)
        gains = gains_vs_baseline(rows, args.baseline)
        winners = beat_the_baseline(gains, spreads, args.baseline)
        if not gains:
            problem = f"no run of --baseline {args.baseline} in {results} shares a seed with another variant"
            if args.best and not args.score_only:
                print(f"error: {problem}, so --best has nothing to choose from: train it there or name "
                      "another baseline", file=sys.stderr)
                return 2
            print(f"note: {problem}: the table's 'vs' column is empty", file=sys.stderr)
        if args.best and not args.score_only:
            chosen = winners or [min(gains, key=gains.get)]
            args.best_changes = {k: v for n in chosen for k, v in variant_changes(n).items()
                                 if (k, v) != ("augment", False)}
            args.best_changes.setdefault("augment", False)
            train_all([("best", seed) for seed in seeds], args, train_dir, results, args.runs or workdir)
            rows = score_results(results, references, args.final_only)
            text, means = table(rows, identity, args.baseline)

    command = "python bench/quality.py " + " ".join(sys.argv[1:])
    against = (f"the {len(list(args.validation.iterdir()))} validation paintings ({args.validation.name})"
               if args.validation else "the 60 held-out paintings")
    if chains_references(args):
        against += (f", which pass through the same {args.export_size} -> {args.size} -> "
                    f"{args.export_size} px chain")
    length = args.time_budget or (f"{args.epochs} epochs" if args.epochs else f"{args.steps} steps")
    if args.score_only:  # as the runs trained, not as this command's flags say
        length = "/".join(str(n) for n in sorted({r["steps_done"] for r in rows})) + " steps"
    report = (f"`{command}`\n\n{length} at {args.size} px, width {args.width}, per variant; "
              f"FID/MiFID of {args.photos} translated photos at {args.export_size} px against {against}. "
              f"`{args.baseline}`'s seed-to-seed FID spread: {spreads.get(args.baseline, float('nan')):.2f}. "
              f"Beat `{args.baseline}` by more than its spread and their own: {', '.join(winners) or 'none'}. "
              f"The photos themselves (identity row): FID {identity['fid']:.2f}; mean FID below it: "
              f"{', '.join(n for n in means if means[n] < identity['fid']) or 'none'}.\n\n{text}\n")
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


def train_all(runs, args, train_dir: Path, results: Path, workdir: Path) -> None:
    """Trains the runs that have no results yet, --jobs at a time."""
    todo = [(name, seed) for name, seed in runs if not (results / f"{run_name(name, seed)}.json").exists()]
    previous = {signum: signal.signal(signum, RUNS_IN_PROGRESS.forward) for signum in RunProcesses.SIGNALS}
    try:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for future in [pool.submit(in_subprocess, name, seed, args, train_dir, results, workdir)
                           for name, seed in todo]:
                future.result()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if RUNS_IN_PROGRESS.stopping:
        raise SystemExit(128 + RUNS_IN_PROGRESS.stopping)


if __name__ == "__main__":
    sys.exit(main())
