"""Speed and memory of monet_gan against the public tutorial's way, on this machine.

    python bench/speed.py [--size 256] [--quick] [--only train|train_memory|roofline|jax|export|export_modes|data]
                          [--export-photos 300] [--export-rounds 3] [--export-baselines both|defaults]
                          [--memory-rounds 5]

Baseline (bench/tutorial_baseline.py) and monet_gan run the same networks on the same
inputs. Train steps of both are timed in one process, interleaved round by round (separate
processes drifted by up to 15% here). Exports run in processes of their own, alternating
baseline and monet_gan round by round; each peak RSS comes from a process of its own, and
training's is the median of several such processes. Times are medians after a warm-up. Prints
a Markdown table and ratios.

TensorFlow's oneDNN CPU kernels: the baseline runs as the tutorial does, with TensorFlow's
defaults (on this AVX2 CPU: off); monet_gan turns them on when it is imported (see
monet_gan/__init__.py). Rows marked "oneDNN on" run the baseline with them too, which isolates
what the code itself gains; the row "monet_gan as shipped" times each as it runs by default, in
processes of their own.

`--only export_modes --size 128` times the export of a run trained below 256 px both ways it
paints the 256 px photos (`--export-mode`): at 256 in one pass (full, the default) against at
the training size and back (resize), each in processes of its own, alternating.

The row "JAX step vs TensorFlow step" times monet_gan's step under Keras' JAX backend
(`steps.JaxStep`, one jit-compiled function) against the same step as shipped under TensorFlow,
each in processes of its own, alternating.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
DATA = HERE.parent.parent / "shared" / "data" / "gan-getting-started"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(step, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def photos_uint8(count: int, size: int):
    """Real competition photos when the data is beside the checkout, else the shipped sample."""
    import numpy as np

    from monet_gan import config, data

    folder = DATA if DATA.is_dir() else config.SAMPLE_DATA_DIR
    files = data.domain_files(str(folder), "photo")
    images = list(data.read_images(files, size).take(count).as_numpy_iterator())
    return np.stack([images[i % len(images)] for i in range(count)])


# --- the measurements, each run in its own process ----------------------------------

def train_step(kind: str, size: int, batch: int):
    """One step of the tutorial's ("baseline": its step and Keras' Adam) or ours (monet_gan's
    step and `FusedAdam`), on the same networks, weights and inputs."""
    import keras
    import tensorflow as tf

    from monet_gan import config, cyclegan, data
    from tutorial_baseline import TutorialStep, tutorial_model

    keras.utils.set_random_seed(0)
    cfg = config.kaggle().replace(image_size=size)
    model = tutorial_model(cfg) if kind == "baseline" else cyclegan.build_cyclegan(cfg)
    photos = data.to_float(photos_uint8(batch, size))
    monets = tf.reverse(photos, axis=[2])
    if kind == "baseline":
        tutorial = TutorialStep(model)
        return lambda: tutorial(photos, monets)["cycle_loss"].numpy()
    ours = tf.function(model.train_step)
    return lambda: ours((photos, monets))["cycle_loss"].numpy()


def measure_train(size: int, batch: int, repeats: int) -> dict:
    """Seconds per step of the tutorial (at batch 1) and of ours (at `batch`), interleaved
    round by round in this one process so that drift of the machine hits both alike."""
    baseline = train_step("baseline", size, 1)
    ours = train_step("ours", size, batch)
    for step in (baseline, ours, baseline, ours):  # warm-up: tracing, allocations
        step()
    times = {"baseline": [], "ours": []}
    for _ in range(repeats):
        for name, step in (("baseline", baseline), ("ours", ours)):
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {"baseline": 1 / statistics.median(times["baseline"]),
            "ours": batch / statistics.median(times["ours"])}


def measure_train_alone(kind: str, size: int, batch: int, repeats: int) -> dict:
    """Images/s of one kind's train step alone in this process (whose oneDNN setting the
    caller chose), to compare each as it runs by default: the tutorial with TensorFlow's
    defaults, monet_gan as shipped."""
    step = train_step(kind, size, batch)
    return {"images_per_s": batch / median_seconds(step, repeats)}


def measure_jax_train_alone(size: int, batch: int, repeats: int) -> dict:
    """Images/s of monet_gan's step under Keras' JAX backend (this process must have been
    started with KERAS_BACKEND=jax), on the same networks and inputs as `train_step`."""
    import jax
    import keras
    import numpy as np

    from monet_gan import config, cyclegan, data, steps

    assert keras.backend.backend() == "jax", keras.backend.backend()
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(config.kaggle().replace(image_size=size))
    photos = np.asarray(data.to_float(photos_uint8(batch, size)))
    monets = photos[:, :, ::-1]
    step = steps.JaxStep(model)
    state = [step.state()]

    def run():
        state[0], losses = step(state[0], photos, monets)
        jax.block_until_ready(losses)

    return {"images_per_s": batch / median_seconds(run, repeats)}


def measure_train_memory(kind: str, size: int, batch: int) -> dict:
    """Peak RSS of three training steps of one kind alone."""
    step = train_step(kind, size, batch)
    for _ in range(3):
        step()
    return {"peak_rss_mib": peak_rss_mib()}


def step_flops_per_image(size: int) -> float:
    """Floating-point operations of one training step per image: the convolutions of the
    tutorial's six generator and four critic calls, each differentiated (forward, input
    gradient and filter gradient: three times the forward's multiply-adds, x2 flops each).
    Normalization, activations and the optimizer are left out (a few percent)."""
    import keras

    from monet_gan import config, networks

    def forward(model):
        flops = 0
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2DTranspose):  # kernel [k, k, out, in]
                kh, kw, out_channels, in_channels = layer.kernel.shape
                flops += 2 * layer.input.shape[1] * layer.input.shape[2] * kh * kw * in_channels * out_channels
            elif isinstance(layer, keras.layers.Conv2D):  # kernel [k, k, in, out]
                kh, kw, in_channels, out_channels = layer.kernel.shape
                flops += 2 * layer.output.shape[1] * layer.output.shape[2] * kh * kw * in_channels * out_channels
        return flops

    cfg = config.kaggle().replace(image_size=size)
    return 3 * (6 * forward(networks.build_generator(cfg)) + 4 * forward(networks.build_discriminator(cfg)))


def measure_roofline(size: int, repeats: int) -> dict:
    """A step's flops per image, and what this machine's float32 matmul (2048^3, the kernel
    library in this process) sustains: the ceiling a training step could reach."""
    import tensorflow as tf

    a = tf.random.stateless_normal([2048, 2048], seed=[0, 0])
    matmul = tf.function(lambda: tf.matmul(a, a))
    seconds = median_seconds(lambda: matmul().numpy(), repeats)
    return {"step_gflop_per_image": step_flops_per_image(size) / 1e9,
            "matmul_gflop_per_s": 2 * 2048**3 / seconds / 1e9}


def measure_export(kind: str, size: int, count: int, mode: str = "full") -> dict:
    import keras

    from monet_gan import artifacts, config, networks
    from tutorial_baseline import tutorial_export

    keras.utils.set_random_seed(0)
    cfg = config.kaggle().replace(image_size=size, export_mode=mode)
    generator = networks.build_generator(cfg)
    photos = photos_uint8(count, 256)
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        if kind == "baseline":
            tutorial_export(generator, photos[:2], workdir / "warm.zip", workdir / "warm")  # warm-up
            start = time.perf_counter()
            written = tutorial_export(generator, photos, workdir / "images.zip", workdir)
        else:
            warm, records = workdir / "warm_tfrec", workdir / "photo_tfrec"
            write_photo_records(photos[:2], warm / "photos.tfrec")
            write_photo_records(photos, records / "photos.tfrec")
            artifacts.write_images_zip(generator, cfg, str(warm), workdir / "warm.zip")  # warm-up
            start = time.perf_counter()
            written = artifacts.write_images_zip(generator, cfg, str(records), workdir / "images.zip")
        seconds = time.perf_counter() - start
    return {"images_per_s": written / seconds, "images": written, "peak_rss_mib": peak_rss_mib()}


def median_export(runs: list[dict]) -> dict:
    """Export rounds of one kind: their median images/s and largest peak RSS."""
    return {"images_per_s": statistics.median(r["images_per_s"] for r in runs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def write_photo_records(photos, path: Path):
    import tensorflow as tf

    from monet_gan import make_tfrecords

    path.parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, photo in enumerate(photos):
            jpeg = tf.io.encode_jpeg(photo, quality=95).numpy()
            writer.write(make_tfrecords.make_example(f"p{i}".encode(), jpeg, "photo").SerializeToString())


def measure_data(size: int, batches: int) -> dict:
    from monet_gan import config, pipeline

    folder = DATA if DATA.is_dir() else config.SAMPLE_DATA_DIR
    cfg = config.kaggle().replace(data_dir=str(folder), image_size=size)
    pairs = pipeline.training_dataset(cfg, global_batch_size=8)
    iterator = iter(pairs)
    for _ in range(len(list(Path(folder, "photo_tfrec").iterdir())) * 60):  # fill the cache
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - start
    return {"images_per_s": 2 * 8 * batches / seconds, "peak_rss_mib": peak_rss_mib()}


def in_subprocess(name: str, onednn: bool, backend: str = "tensorflow", **kwargs) -> dict:
    """Runs one measurement in a fresh process, with TensorFlow's oneDNN kernels on or off,
    under Keras' `backend`."""
    command = [sys.executable, __file__, "--measure", json.dumps({"name": name, **kwargs})]
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0", "KERAS_BACKEND": backend}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f"{name} {kwargs} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


MEASURES = {"train": measure_train, "train_alone": measure_train_alone, "roofline": measure_roofline,
            "jax": measure_jax_train_alone,
            "train_memory": measure_train_memory,
            "export": measure_export, "export_modes": measure_export, "data": measure_data}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="training image size")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and images")
    parser.add_argument("--only", choices=sorted(MEASURES))
    parser.add_argument("--export-photos", type=int, help="photos per export (default 300, --quick 32; "
                        "the competition has 7038)")
    parser.add_argument("--export-rounds", type=int, help="export rounds, alternating baseline and "
                        "monet_gan (default 3, --quick 1)")
    parser.add_argument("--memory-rounds", type=int, help="processes per kind whose median peak RSS "
                        "of training is compared, alternating (default 5, --quick 1)")
    parser.add_argument("--export-baselines", choices=("both", "defaults"), default="both",
                        help="`defaults`: leave out the baseline with oneDNN on (it is the slowest row)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        spec = json.loads(args.measure)
        print(json.dumps(MEASURES[spec.pop("name")](**spec)))
        return 0

    repeats = 3 if args.quick else 7
    export_count = args.export_photos or (32 if args.quick else 300)
    export_rounds = args.export_rounds or (1 if args.quick else 3)
    memory_rounds = args.memory_rounds or (1 if args.quick else 5)
    train_rounds = 1 if args.quick else 3
    rows, roofline = [], ""

    def row(what, baseline, ours):
        ratio = ours["images_per_s"] / baseline["images_per_s"] if baseline else None
        rows.append((what, baseline, ours, ratio))
        print(f"{what}: {ours['images_per_s']:.2f} images/s"
              + (f" vs baseline {baseline['images_per_s']:.2f} ({ratio:.2f}x)" if baseline else ""),
              flush=True)

    if args.only in (None, "train", "train_memory"):
        # One process per measurement, alternating: a process's peak RSS varies by up to
        # ~290 MiB from run to run here (the baseline's 3308-3594 MiB over eleven), so one
        # each says little; the medians are compared.
        peaks = {"baseline": [], "ours": []}
        for _ in range(memory_rounds):
            for kind in peaks:
                peaks[kind].append(in_subprocess("train_memory", onednn=False, kind=kind,
                                                 size=args.size, batch=1)["peak_rss_mib"])
        for kind, values in peaks.items():
            print(f"train peak RSS, {kind}: median {statistics.median(values):.0f} MiB "
                  f"({', '.join(f'{v:.0f}' for v in values)})", flush=True)
        memory = {kind: statistics.median(values) for kind, values in peaks.items()}
        print(f"train peak RSS, monet_gan / baseline: {memory['ours'] / memory['baseline']:.3f}",
              flush=True)
    if args.only in (None, "train"):
        for onednn, batches in ((False, (1,)), (True, (1, 2, 4))):
            for batch in batches:
                speeds = in_subprocess("train", onednn=onednn, size=args.size, batch=batch,
                                       repeats=repeats)
                row(f"train, {args.size} px, batch {batch}, both oneDNN {'on' if onednn else 'off'}",
                    {"images_per_s": speeds["baseline"],
                     "peak_rss_mib": memory["baseline"] if batch == 1 and not onednn else None},
                    {"images_per_s": speeds["ours"],
                     "peak_rss_mib": memory["ours"] if batch == 1 and not onednn else None})
        # Each as users run it, in processes of their own (so its oneDNN setting can differ),
        # alternating round by round; noisier than the interleaved rows above.
        alone = {"baseline": [], "ours": []}
        for _ in range(train_rounds):
            for kind in alone:
                alone[kind].append(in_subprocess("train_alone", onednn=kind == "ours", kind=kind,
                                                 size=args.size, batch=1, repeats=repeats)["images_per_s"])
        row(f"train, {args.size} px, batch 1, baseline with TensorFlow's defaults, monet_gan as "
            f"shipped (separate processes, median of {train_rounds})",
            {"images_per_s": statistics.median(alone["baseline"]), "peak_rss_mib": None},
            {"images_per_s": statistics.median(alone["ours"]), "peak_rss_mib": None})
    if args.only in (None, "jax"):
        # Each in processes of its own, alternating round by round, as users run them.
        speeds = {"tensorflow": [], "jax": []}
        for _ in range(train_rounds):
            speeds["tensorflow"].append(in_subprocess("train_alone", onednn=True, kind="ours", size=args.size,
                                                      batch=1, repeats=repeats)["images_per_s"])
            speeds["jax"].append(in_subprocess("jax", onednn=True, backend="jax", size=args.size, batch=1,
                                               repeats=repeats)["images_per_s"])
        row(f"train, {args.size} px, batch 1, JAX step vs TensorFlow step as shipped (separate "
            f"processes, median of {train_rounds})",
            {"images_per_s": statistics.median(speeds["tensorflow"]), "peak_rss_mib": None},
            {"images_per_s": statistics.median(speeds["jax"]), "peak_rss_mib": None})
    if args.only in (None, "train", "roofline", "jax"):
        # How far each step is from what the machine's matmul sustains (oneDNN on, as both
        # train rows with batch > 1 and monet_gan as shipped run).
        roof = in_subprocess("roofline", onednn=True, size=args.size, repeats=repeats)
        roofline = (f"A {args.size} px train step is {roof['step_gflop_per_image']:.0f} GFLOP per image "
                    f"(convolutions, forward and both gradients); a 2048^3 float32 matmul runs at "
                    f"{roof['matmul_gflop_per_s']:.0f} GFLOP/s here (oneDNN on).")
        for what, baseline, ours, ratio in rows:
            if what.startswith("train"):
                roofline += "\n- " + what + ": " + ", ".join(
                    f"{name} {r['images_per_s'] * roof['step_gflop_per_image']:.0f} GFLOP/s "
                    f"({r['images_per_s'] * roof['step_gflop_per_image'] / roof['matmul_gflop_per_s']:.0%})"
                    for name, r in (("baseline", baseline), ("monet_gan", ours)))
        print(roofline, flush=True)
    if args.only in (None, "export"):
        kinds = [(kind, onednn) for kind, onednn in
                 (("baseline", False), ("baseline, oneDNN on", True), ("ours", True))
                 if args.export_baselines == "both" or kind != "baseline, oneDNN on"]
        rounds = {kind: [] for kind, _ in kinds}
        for _ in range(export_rounds):  # alternating, so drift hits all of them alike
            for kind, onednn in kinds:
                rounds[kind].append(in_subprocess("export", onednn=onednn, kind=kind.split(",")[0],
                                                  size=args.size, count=export_count))
        median = {kind: median_export(runs) for kind, runs in rounds.items()}
        row(f"export, {export_count} photos (baseline with TensorFlow's defaults)",
            median["baseline"], median["ours"])
        if "baseline, oneDNN on" in median:
            row(f"export, {export_count} photos (baseline with oneDNN on too)",
                median["baseline, oneDNN on"], median["ours"])
    if args.only == "export_modes":  # not in the default run: a question of runs below 256 px
        modes = {"resize": [], "full": []}
        for _ in range(export_rounds):
            for mode, runs in modes.items():
                runs.append(in_subprocess("export", onednn=True, kind="ours", size=args.size,
                                          count=export_count, mode=mode))
        median = {mode: median_export(runs) for mode, runs in modes.items()}
        row(f"export of a {args.size} px run, {export_count} photos: --export-mode full (one 256 px pass; "
            "the \"baseline\" column: resize, at the training size and back)", median["resize"], median["full"])
    if args.only in (None, "data"):
        row("data pipeline (decode, augment, batch)", None,
            in_subprocess("data", onednn=True, size=args.size, batches=50 if args.quick else 300))

    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}\n")
    print("| measurement | baseline images/s | monet_gan images/s | ratio | baseline peak RSS MiB | monet_gan peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for what, baseline, ours, ratio in rows:
        print(f"| {what} | {baseline['images_per_s']:.3f} | " if baseline else f"| {what} | - | ", end="")
        rss = f"{ours['peak_rss_mib']:.0f}" if ours["peak_rss_mib"] else "-"
        base_rss = f"{baseline['peak_rss_mib']:.0f}" if ratio and baseline["peak_rss_mib"] else "-"
        print(f"{ours['images_per_s']:.3f} | " + (f"{ratio:.2f}x | {base_rss} | " if ratio else "- | - | ")
              + f"{rss} |")
    if roofline:
        print("\n" + roofline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
