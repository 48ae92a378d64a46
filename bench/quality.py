"""Painting quality of training variants, side by side, at equal compute.

    python bench/quality.py [--size 64] [--width 32] [--steps 600] [--seeds 0,1]
                            [--photos 300] [--variants tutorial,augment,...] [--out bench/QUALITY.md]

Each variant trains from scratch for the same number of steps on the competition data beside
the checkout (../shared/data/gan-getting-started) with 60 of the 300 Monet paintings held out
(every fifth by name); then the first --photos photos are translated and scored with
monet_gan.evaluate (FID and MiFID) against the 60 held-out paintings, which no variant trained
on. Each run is a process of its own. Also timed: seconds per training step of each variant.

The `tutorial` variant is the public tutorial's recipe (no input augmentation, BCE, U-Net,
identity weight 5, constant rate); every other variant changes one thing, and `best` combines
every change that beat the tutorial by more than the seed-to-seed spread (or the best single
one when none did).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DATA = HERE.parent.parent / "shared" / "data" / "gan-getting-started"
HELD_OUT_EVERY = 5  # every fifth Monet painting by name: 60 of 300

VARIANTS = {
    "tutorial": {"augment": False},
    "augment": {"augment": True},
    "diffaugment": {"augment": False, "diffaugment": "color,translation,cutout"},
    "lsgan": {"augment": False, "adversarial_loss": "lsgan"},
    "history": {"augment": False, "history_size": 50},
    "lr_decay": {"augment": False, "lr_decay_start": 0.5},
    "resnet": {"augment": False, "generator": "resnet"},
    "identity0": {"augment": False, "identity_weight": 0.0},
    "tta": {"augment": False, "export_tta": True},
}


def split_monet_records(workdir: Path) -> tuple[Path, Path]:
    """A data folder with 240 Monet paintings and all photos, and a folder of the 60 others."""
    import tensorflow as tf

    from monet_gan import data

    files = data.domain_files(str(DATA), "monet")
    records = sorted(tf.data.TFRecordDataset(files).as_numpy_iterator(),
                     key=lambda r: data.parse_record(r)["image_name"].numpy())
    train_dir, held_out = workdir / "data", workdir / "held_out"
    (train_dir / "monet_tfrec").mkdir(parents=True)
    held_out.mkdir()
    (train_dir / "photo_tfrec").symlink_to(DATA / "photo_tfrec")
    with tf.io.TFRecordWriter(str(train_dir / "monet_tfrec" / "train.tfrec")) as train_writer, \
            tf.io.TFRecordWriter(str(held_out / "held_out.tfrec")) as held_out_writer:
        for i, record in enumerate(records):
            (held_out_writer if i % HELD_OUT_EVERY == 0 else train_writer).write(record)
    return train_dir, held_out


def run_variant(name: str, changes: dict, seed: int, args, train_dir: Path, held_out: Path,
                workdir: Path) -> dict:
    """Trains and scores one variant in this process (called in a fresh process)."""
    import numpy as np
    import tensorflow as tf

    from monet_gan import config as config_lib
    from monet_gan import data, evaluate, export, train

    config = config_lib.kaggle().replace(
        image_size=args.size, generator_filters=args.width, critic_filters=args.width,
        epochs=1, steps_per_epoch=args.steps, data_dir=str(train_dir),
        export=False, fid_every=0, seed=seed, sample_images=2, **changes)
    run_dir = workdir / f"{name}-{seed}"
    start = time.perf_counter()
    model = train.train(config, run_dir)
    train_seconds = time.perf_counter() - start

    # Seconds per step, after the run (traced already): the median of 10.
    batch = next(iter(data.training_dataset(config, 1)))
    step = tf.function(model.train_step)
    step(batch)
    times = []
    for _ in range(10):
        begin = time.perf_counter()
        float(step(batch)["cycle_loss"])
        times.append(time.perf_counter() - begin)

    photos = data.scan_records(data.domain_files(str(DATA), "photo"))
    images = np.stack(list(data.read_images(photos).take(args.photos).as_numpy_iterator()))
    generator = model.photo_to_monet
    paintings = np.concatenate([export.translate(generator, images[i:i + 32], args.size,
                                                 config.export_tta).numpy()
                                for i in range(0, len(images), 32)])
    real = evaluate.ImageSet(str(held_out)).features(cache=True)
    scores = evaluate.score(evaluate.inception_features(paintings, progress=False), real)
    return {"variant": name, "seed": seed, **scores, "seconds_per_step": statistics.median(times),
            "train_seconds": train_seconds}


def in_subprocess(name: str, changes: dict, seed: int, args, train_dir, held_out, workdir) -> dict:
    spec = {"name": name, "changes": changes, "seed": seed, "train_dir": str(train_dir),
            "held_out": str(held_out), "workdir": str(workdir)}
    command = [sys.executable, __file__, "--size", str(args.size), "--width", str(args.width),
               "--steps", str(args.steps), "--photos", str(args.photos), "--run", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{name} (seed {seed}) failed:\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{name:12s} seed {seed}: FID {row['fid']:7.2f}  MiFID {row['mifid']:7.2f}  "
          f"{row['seconds_per_step']:.3f} s/step", flush=True)
    return row


def table(rows: list[dict], baseline_fid: float) -> str:
    lines = ["| variant | changes | seeds | FID (mean) | FID per seed | MiFID (mean) | vs tutorial | s/step |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_variant = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    for name, runs in by_variant.items():
        fid = statistics.mean(r["fid"] for r in runs)
        changes = ", ".join(f"{k}={v}" for k, v in runs[0]["changes"].items())
        lines.append(
            f"| {name} | {changes} | {len(runs)} | {fid:.2f} | "
            f"{' / '.join(format(r['fid'], '.2f') for r in runs)} | "
            f"{statistics.mean(r['mifid'] for r in runs):.2f} | {fid - baseline_fid:+.2f} | "
            f"{statistics.mean(r['seconds_per_step'] for r in runs):.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64, help="training image size")
    parser.add_argument("--width", type=int, default=32, help="filters of the first layers (kaggle: 64)")
    parser.add_argument("--steps", type=int, default=600, help="training steps of every variant")
    parser.add_argument("--seeds", default="0,1", help="every variant runs with each seed")
    parser.add_argument("--photos", type=int, default=300, help="photos translated and scored")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma list; `best` is added")
    parser.add_argument("--repeat", help="variants run with every seed (default: all); the tutorial always is")
    parser.add_argument("--out", help="also write the table (with the command) to this file")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        spec = json.loads(args.run)
        row = run_variant(spec["name"], spec["changes"], spec["seed"], args, Path(spec["train_dir"]),
                          Path(spec["held_out"]), Path(spec["workdir"]))
        print(json.dumps({**row, "changes": spec["changes"]}))
        return 0
    if not DATA.is_dir():
        print(f"error: {DATA} is missing: this benchmark needs the competition data.", file=sys.stderr)
        return 2

    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in args.variants.split(",") if n]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        print(f"error: unknown variants {unknown}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="monet_quality_") as workdir:
        workdir = Path(workdir)
        train_dir, held_out = split_monet_records(workdir)
        # Every variant with the first seed; the tutorial with every seed (the noise), and
        # with --repeat, those variants with every seed too.
        repeat = set(args.repeat.split(",")) if args.repeat else set(names)
        rows = [in_subprocess(name, VARIANTS[name], seed, args, train_dir, held_out, workdir)
                for seed in seeds for name in ["tutorial", *[n for n in names if n != "tutorial"]]
                if seed == seeds[0] or name == "tutorial" or name in repeat]

        def mean_fid(name):
            return statistics.mean(r["fid"] for r in rows if r["variant"] == name)

        baseline = mean_fid("tutorial")
        spreads = [abs(a["fid"] - b["fid"]) for a in rows for b in rows
                   if a["variant"] == b["variant"] and a["seed"] < b["seed"]]
        noise = max(spreads) if spreads else 0.0
        winners = [n for n in names if n != "tutorial" and baseline - mean_fid(n) > noise]
        best_single = min((n for n in names if n != "tutorial"), key=mean_fid, default=None)
        chosen = winners or ([best_single] if best_single else [])
        combined = {k: v for n in chosen for k, v in VARIANTS[n].items() if (k, v) != ("augment", False)}
        combined.setdefault("augment", False)
        if chosen:
            rows += [in_subprocess("best", combined, seed, args, train_dir, held_out, workdir)
                     for seed in seeds]

    command = "python bench/quality.py " + " ".join(sys.argv[1:])
    report = (f"`{command}`\n\n{args.steps} steps at {args.size} px, width {args.width}, per variant; FID/MiFID of "
              f"{args.photos} translated photos against the 60 held-out paintings. Largest "
              f"seed-to-seed FID spread of any variant: {noise:.2f}. Beat the tutorial by more than "
              f"that: {', '.join(winners) or 'none'}.\n\n{table(rows, baseline)}\n")
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
