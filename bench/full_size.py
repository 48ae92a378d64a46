"""The full-size run on a GPU machine that has JAX and no TensorFlow: the `kaggle()` recipe at
256 px for 25 epochs under Keras' JAX backend, its paintings scored against Monet paintings it
never saw.

    python bench/full_size.py run --data DATA --validation PAINTINGS --out OUT

trains `monet_gan.train.train` with the `kaggle` preset (a time budget stops it cleanly if the
machine is slower than planned, and the table says how far it got), writes the competition's
images.zip of every photo in DATA with the newest checkpoint and with the best one by FID,
scores both (FID and KID against PAINTINGS, the memorization distance and MiFID against the 300
training paintings) beside the photos themselves, and writes into OUT: table.md, result.json
(the figures, steps/s, export images/s, peak GPU memory), metrics.csv (per-epoch seconds and
losses), samples.png, the log, and the first 1000 paintings as zips of at most 16 MB (to check
the score elsewhere with the float32 Inception network under TensorFlow).

The data plan. The device tool carries at most 64 MiB per command, and a machine kept warm
between two commands keeps the ignored folders the first one left, unless a later command
carries a path inside them (carrying `.device/run` once removed a `.device/stage` beside it:
keep the two apart). So

    python bench/full_size.py prepare --competition ../shared/data/gan-getting-started \
        --validation ../shared/data/monet_validation --photos 3500

(here, where the data and the float32 Inception weights are) writes two ignored folders:
  - `.full_size_stage` (command 1, 59.5 MB): the Inception weights as float16 (43.6 MB; read
    back as float32: the features of the 16 reference images move by at most 0.02 of 4.5, and
    the FID of the 447 validation paintings against the 300 by 0.003), the 447 validation
    paintings (15 MB), and 20 paintings and 40 photos for a check run (`--tiny`) on the GPU;
  - `.full_size_run` (command 2, 54.2 MB): the 300 training paintings (monet_jpg/, 5.4 MB) and
    the first 3500 of the 7038 photos (photo_jpg/, 49 MB: each record's JPEG bytes unchanged,
    named by its image_name), as the competition's JPEG layout.
Both commands also carry the wheels the machine lacks (keras, namex, optree: 2.9 MB). Command 1
runs the check run (about 170 s, most of it compiling); command 2 must follow within the 30 s
the machine stays warm. Training draws its photos from the 3500 (a 25-epoch run sees 7500, each
about twice; on Kaggle it sees 7500 of the 7038 about once); the export of all 7038 photos is
timed on these 3500 and scaled. Without the stage (a machine given back between the commands)
the run still trains and writes the paintings, says that it did not score them, and returns
1000 of them to score here:
    python -m monet_gan.evaluate PAINTINGS ../shared/data/monet_validation \
        --memorization ../shared/data/gan-getting-started/monet_jpg

The two commands, as run on 2026-12-04 (the device tool's `run`, from the repository root;
`--time-budget` leaves room for the export and scoring inside the 10 minutes):
    1. carry .whl .full_size_stage:
       python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; \
       export PYTHONPATH=/tmp/site MONET_GAN_CACHE=.full_size_stage/cache KERAS_BACKEND=jax; \
       python3 bench/full_size.py run --tiny --data .full_size_stage/tiny \
           --validation .full_size_stage/tiny/monet_jpg --out $OUT/tiny
    2. carry .whl .full_size_run: the same set-up, then
       python3 bench/full_size.py run --data .full_size_run \
           --validation .full_size_stage/validation --out $OUT/full --time-budget 5m

`--tiny` runs every part at 32 px in seconds, on the CPU, as the check before a GPU run.
"""

import argparse
import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

INCEPTION_FILE = "inception-2015-12-05.npz"
STAGE, RUN = ".full_size_stage", ".full_size_run"  # the two folders to carry
RETURNED_PAINTINGS = 1000
ZIP_PART_BYTES = 15 * 2**20  # files come back from the device at 16 MB at most


# --- here: the two folders to carry -------------------------------------------------------

def prepare(args) -> None:
    from monet_gan import inception, numpy_images

    stage, run = Path(args.into) / STAGE, Path(args.into) / RUN
    for folder in (stage, run):
        shutil.rmtree(folder, ignore_errors=True)
    (stage / "cache").mkdir(parents=True)
    with np.load(inception.converted_weights(), allow_pickle=False) as stored:
        half = {k: stored[k] if k == "architecture" else stored[k].astype(np.float16) for k in stored.files}
    np.savez(stage / "cache" / INCEPTION_FILE, **half)
    shutil.copytree(args.validation, stage / "validation")
    competition = Path(args.competition)
    shutil.copytree(competition / "monet_jpg", run / "monet_jpg")
    photos = run / "photo_jpg"
    photos.mkdir()
    written = 0
    for path in sorted((competition / "photo_tfrec").glob("*.tfrec")):
        records, damage = numpy_images.read_records(str(path))
        for record in records:
            if written == args.photos:
                break
            features = numpy_images.example_bytes(record)
            (photos / f"{features['image_name'].decode()}.jpg").write_bytes(features["image"])
            written += 1
    for domain, count in (("monet", 20), ("photo", 40)):  # for the check run (--tiny) in command 1
        (stage / "tiny" / f"{domain}_jpg").mkdir(parents=True)
        for path in sorted((run / f"{domain}_jpg").iterdir())[:count]:
            shutil.copy(path, stage / "tiny" / f"{domain}_jpg" / path.name)
    for folder in (stage, run):
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"{folder}: {size / 1e6:.1f} MB")


def check_half_weights(args) -> None:
    """How far float16 weights move the features of the reference images, and an FID."""
    from monet_gan import inception, scores
    from monet_gan.inputs import ImageSet

    sets = [ImageSet(str(Path(args.reference) / "images")), ImageSet(args.validation), ImageSet(args.paintings)]
    full = [scores.image_set_features(images) for images in sets]
    inception._MODEL = None
    inception.CACHE_DIR = Path(args.into) / STAGE / "cache"
    half = [scores.image_set_features(images) for images in sets]
    print(f"float16 weights: features differ by at most {np.abs(half[0] - full[0]).max():.2e} "
          f"(scale {np.abs(full[0]).max():.2f}) on the {len(full[0])} reference images")
    fids = [scores.score(features[1], features[2])["fid"] for features in (full, half)]
    print(f"FID of {args.validation} against {args.paintings}: {fids[0]:.3f} with float32 weights, "
          f"{fids[1]:.3f} with float16")


# --- there: train, export, score --------------------------------------------------------

def _config(args):
    from monet_gan import config as config_lib

    config = config_lib.preset("kaggle").replace(
        data_dir=str(args.data), time_budget=args.time_budget, export=False, seed=args.seed)
    if args.tiny:
        config = config.replace(image_size=32, generator_filters=4, critic_filters=4, epochs=2,
                                steps_per_epoch=3, fid_every=1, fid_images=8, export_batch_size=8)
    return config


def _peak_gpu_bytes() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _zip_images(path: Path) -> np.ndarray:
    from monet_gan import numpy_images

    with zipfile.ZipFile(path) as archive:
        return np.stack([numpy_images.decode(archive.read(name)) for name in sorted(archive.namelist())])


def _return_paintings(zip_path: Path, out: Path) -> list[str]:
    """The first RETURNED_PAINTINGS entries of an images.zip, as zips under ZIP_PART_BYTES."""
    parts, part, size = [], None, 0
    with zipfile.ZipFile(zip_path) as archive:
        for name in sorted(archive.namelist())[:RETURNED_PAINTINGS]:
            payload = archive.read(name)
            if part is None or size + len(payload) > ZIP_PART_BYTES:
                if part is not None:
                    part.close()
                parts.append(f"paintings-{len(parts) + 1}.zip")
                part, size = zipfile.ZipFile(out / parts[-1], "w", zipfile.ZIP_STORED), 0
            part.writestr(name, payload)
            size += len(payload) + 100
    if part is not None:
        part.close()
    return parts


def run(args) -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    started = time.perf_counter()
    from monet_gan import artifacts, checkpoints, inception, run_folder, scores, train
    from monet_gan.errors import WeightsError
    from monet_gan.inputs import ImageSet

    out, run_dir = Path(args.out), Path(args.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    config = _config(args)
    print(f"Keras {__import__('keras').__version__} on {__import__('keras').backend.backend()}, "
          f"devices: {__import__('jax').devices()}", flush=True)

    train_started = time.perf_counter()
    train.train(config, run_dir)
    train_seconds = time.perf_counter() - train_started
    config = run_folder.load_run_config(run_dir)
    metrics = (run_dir / run_folder.METRICS_FILE).read_text()
    (out / "metrics.csv").write_text(metrics)
    shutil.copy(run_dir / run_folder.SAMPLES_FILE, out / "samples.png")
    header, *rows = [line.split(",") for line in metrics.splitlines()]
    epoch_seconds = [float(r[header.index("seconds")]) for r in rows]
    steps_per_epoch = config.steps_per_epoch or ImageSet(str(Path(args.data) / "monet_jpg")).count // config.batch_size
    steps_done = checkpoints.checkpoint_steps(run_dir / run_folder.CHECKPOINT_DIR)[-1]
    whole = len(rows) if steps_done == len(rows) * steps_per_epoch else len(rows) - 1  # the last may be cut short
    result = {
        "config": json.loads(config.to_json()), "epochs_done": len(rows), "steps_done": steps_done,
        "train_seconds": round(train_seconds, 1), "epoch_seconds": epoch_seconds,
        # the whole epochs after the first, which compiles the step (each epoch's seconds hold
        # its checkpoint, sample grid and FID scoring)
        "steps_per_second_after_epoch_1": (round(steps_per_epoch * (whole - 1) / sum(epoch_seconds[1:whole]), 2)
                                           if whole > 1 else None),
    }

    write_result(out, result)

    photos = ImageSet(str(Path(args.data) / "photo_jpg"))
    zips = {}
    best = run_dir / run_folder.BEST_CHECKPOINT_DIR / run_folder.BEST_SCORE_FILE
    best_epoch = json.loads(best.read_text())["epoch"] if best.is_file() else None
    result["best_epoch_by_fid_during_training"] = best_epoch
    for which in ("newest", "best"):
        if which == "best" and best_epoch in (None, len(rows)):  # none, or the newest one
            continue
        generator = artifacts.load_generator(run_dir, config, which)
        zips[which] = run_dir / f"images-{which}.zip"
        export_started = time.perf_counter()
        count = artifacts.write_images_zip(generator, config, photos, zips[which])
        seconds = time.perf_counter() - export_started
        result[f"export_{which}"] = {"images": count, "seconds": round(seconds, 1),
                                     "images_per_second": round(count / seconds, 1)}
    result["returned_paintings"] = _return_paintings(zips["newest"], out)
    write_result(out, result)

    try:
        inception.load_model()
    except WeightsError as error:
        result["scores"] = f"not scored here: {error}"
    else:
        validation = scores.image_set_features(ImageSet(args.validation), cache=True)
        training = scores.image_set_features(ImageSet(str(Path(args.data) / "monet_jpg")), cache=True)
        rows = {"the photos themselves": scores.inception_features(photos.arrays(), photos.count)}
        for which, path in zips.items():
            rows[f"paintings, {which} checkpoint"] = scores.inception_features(_zip_images(path))
        # the paintings that come back, to score again with float32 weights under TensorFlow
        rows[f"paintings, newest checkpoint, the first {RETURNED_PAINTINGS}"] = (
            rows["paintings, newest checkpoint"][:RETURNED_PAINTINGS])
        result["scores"] = {name: scores.score(features, validation, training) | {"images": len(features)}
                            for name, features in rows.items()}
        result["validation_paintings"] = len(validation)
        result["training_paintings"] = len(training)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    write_result(out, result)
    (out / "table.md").write_text(table(result))
    print(table(result))


def write_result(out: Path, result: dict) -> None:
    """result.json as far as the run got (a command stopped at its limit keeps it)."""
    result["peak_gpu_bytes"] = _peak_gpu_bytes()
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


def step_time(args) -> None:
    """Where a training step's time goes under JAX, on random batches: the compiled step alone
    (waiting for each), steps dispatched back to back (the device's own rate), and the step as
    `steps.fit_jax` takes it (its logs brought to the host every step)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax

    from monet_gan import config as config_lib
    from monet_gan import cyclegan, steps

    config = config_lib.kaggle().replace(image_size=args.size, batch_size=args.batch,
                                         generator_filters=args.filters, critic_filters=args.filters)
    model = cyclegan.build_cyclegan(config, total_steps=10**6)
    step = steps.JaxStep(model)
    rng = np.random.default_rng(0)
    photos, monets = (rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(np.float32)
                      for _ in range(2))
    state = [step.state()]
    started = time.perf_counter()
    state[0], losses = step(state[0], photos, monets)
    jax.block_until_ready(losses)
    compile_seconds = time.perf_counter() - started

    def waited():
        state[0], losses = step(state[0], photos, monets)
        jax.block_until_ready(losses)

    def dispatched():
        state[0], _ = step(state[0], photos, monets)

    def as_trained():  # steps.fit_jax's take_step
        state[0], _ = step(state[0], photos, monets)
        return {name: float(value) for name, value in jax.device_get(step.results).items()}

    timings = {}
    for name, take in (("waited", waited), ("dispatched", dispatched), ("as_trained", as_trained)):
        take()
        jax.block_until_ready(state[0])
        started = time.perf_counter()
        for _ in range(args.steps):
            take()
        jax.block_until_ready(state[0])
        timings[name] = 1000 * (time.perf_counter() - started) / args.steps
    result = {"size": args.size, "batch": args.batch, "filters": args.filters, "steps": args.steps, "devices": str(jax.devices()),
              "compile_seconds": round(compile_seconds, 1),
              "ms_per_step": {k: round(v, 2) for k, v in timings.items()},
              "peak_gpu_bytes": _peak_gpu_bytes()}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "step_time.json").write_text(json.dumps(result, indent=2) + "\n")


def table(result: dict) -> str:
    lines = [f"{result['epochs_done']} epochs ({result['steps_done']} steps) in "
             f"{result['train_seconds']:.0f} s; {result['steps_per_second_after_epoch_1']} steps/s after "
             f"the first epoch; peak GPU memory {(result['peak_gpu_bytes'] or 0) / 2**30:.1f} GiB", ""]
    for which in ("newest", "best"):
        if f"export_{which}" in result:
            export = result[f"export_{which}"]
            lines.append(f"export ({which}): {export['images']} photos in {export['seconds']} s, "
                         f"{export['images_per_second']} images/s")
    if isinstance(result["scores"], str):
        return "\n".join(lines + ["", result["scores"], ""])
    lines += ["", f"| images | count | FID vs validation ({result['validation_paintings']}) | KID x 1000 | "
              f"memorization distance (vs the {result['training_paintings']} training paintings) | MiFID |", "| --- | --- | --- | --- | --- | --- |"]
    for name, figures in result["scores"].items():
        lines.append(f"| {name} | {figures['images']} | {figures['fid']:.1f} | {1000 * figures['kid']:.1f} | "
                     f"{figures['memorization_distance']:.3f} | {figures['mifid']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ready = commands.add_parser("prepare", help="here: write the two folders to carry")
    ready.add_argument("--competition", required=True)
    ready.add_argument("--validation", required=True)
    ready.add_argument("--photos", type=int, default=3500)
    ready.add_argument("--into", default=".", help="where to write the two folders (default: here)")
    half = commands.add_parser("check-half", help="here: float16 against float32 Inception weights")
    half.add_argument("--reference", required=True, help="a folder with images/ (../shared/fid_reference)")
    half.add_argument("--validation", required=True)
    half.add_argument("--paintings", required=True, help="another set, scored against --validation")
    half.add_argument("--into", default=".")
    go = commands.add_parser("run", help="there: train, export, score")
    go.add_argument("--data", required=True, help="a folder with monet_jpg/ and photo_jpg/")
    go.add_argument("--validation", required=True)
    go.add_argument("--out", required=True)
    go.add_argument("--run-dir", default="/tmp/monet_gan_full_size")
    go.add_argument("--time-budget", default="6m30s")
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--tiny", action="store_true", help="32 px, 2 epochs of 3 steps: a CPU check")
    timing = commands.add_parser("step-time", help="there: where a step's time goes")
    timing.add_argument("--size", type=int, default=256)
    timing.add_argument("--batch", type=int, default=1)
    timing.add_argument("--steps", type=int, default=200)
    timing.add_argument("--filters", type=int, default=64, help="fewer: the host's share shows on a CPU")
    timing.add_argument("--out")
    args = parser.parse_args(argv)
    {"prepare": prepare, "check-half": check_half_weights, "run": run, "step-time": step_time}[args.command](args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
