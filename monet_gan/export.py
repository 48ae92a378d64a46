"""Exporting a run: `images.zip` for the competition and a SavedModel of the generator.

    python -m monet_gan.export RUN_DIR [--photos GLOB_OR_DIR] [--out ZIP] [--saved-model DIR]

Both artifacts are written under a temporary name, checked, and only then renamed into
place, so an interrupted export never leaves a partial or broken file behind.
"""

import argparse
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from monet_gan import checkpoints, data, networks, train
from monet_gan.config import Config, ConfigError
from monet_gan.files import OutputError, check_writable

SUBMISSION_SIZE = 256  # the competition wants 256x256 JPEGs
JPEG_QUALITY = 95


def translate(generator: keras.Model, images: tf.Tensor, size: int, tta: bool = False) -> tf.Tensor:
    """uint8 [N, H, W, 3] photos -> uint8 [N, H, W, 3] paintings.

    Photos are resized to the generator's `size` and the paintings back to H x W. With
    `tta` (test-time augmentation) each painting is the mean of the photo's painting and
    the mirrored painting of its mirror image.
    """
    height_width = tf.shape(images)[1:3]
    x = tf.image.resize(images, [size, size], method="area", antialias=True) / 127.5 - 1.0
    paintings = generator(x, training=False)
    if tta:
        mirrored = generator(tf.reverse(x, axis=[2]), training=False)
        paintings = 0.5 * (paintings + tf.reverse(mirrored, axis=[2]))
    paintings = tf.image.resize(paintings, height_width, method="bilinear")
    return data.to_uint8(paintings)


def photo_dataset(photos: str, on_bad_record: str = "fail") -> tuple[tf.data.Dataset, int]:
    """(uint8 256x256x3 photo, name) pairs from TFRecords or image files, and their count.

    `photos` is a folder or glob of TFRecords, or a folder or glob of JPEG/PNG files. Every
    input is checked first; unusable ones fail or are skipped as `on_bad_record` says.
    """
    try:
        record_files = data.list_files(photos)
    except data.DataError:
        record_files = []
    if record_files:
        records = data.scan_records(record_files, on_bad_record)
        return data.read_images(records, with_names=True), records.count

    try:
        image_files = data.list_files(photos, data.IMAGE_SUFFIXES)
    except data.DataError:
        raise data.DataError(
            f"--photos {photos}: found neither TFRecords nor JPEG/PNG images there. Pass a "
            "folder or glob of either."
        ) from None
    image_files = data.scan_image_files(image_files, on_bad_record)

    def load(path):
        image = data.decode_any_image(tf.io.read_file(path))
        image = tf.image.resize(image, [SUBMISSION_SIZE] * 2, method="area", antialias=True)
        return tf.cast(tf.round(image), tf.uint8), tf.strings.regex_replace(
            tf.strings.split(path, "/")[-1], r"\.[^.]*$", "")

    paths = tf.data.Dataset.from_tensor_slices(image_files)
    return paths.map(load, num_parallel_calls=tf.data.AUTOTUNE), len(image_files)


def _entry_name(raw_name: bytes, used: set) -> str:
    """A safe, unique `NAME.jpg` zip entry: no folders, no '..'."""
    stem = os.path.basename(raw_name.decode("utf-8", "replace").replace("\\", "/")) or "image"
    stem = stem.lstrip(".") or "image"
    name, n = f"{stem}.jpg", 1
    while name in used:
        name, n = f"{stem}-{n}.jpg", n + 1
    used.add(name)
    return name


def check_zip(path: Path, expected_count: int) -> None:
    """Raises if the zip does not hold `expected_count` 256x256 RGB JPEGs."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if len(names) != expected_count:
            raise RuntimeError(f"{path} holds {len(names)} images, expected {expected_count}.")
        for name in names:
            shape = tuple(tf.io.decode_jpeg(archive.read(name)).shape)
            if shape != (SUBMISSION_SIZE, SUBMISSION_SIZE, 3):
                raise RuntimeError(f"{path}: {name} is {shape}, expected 256x256x3.")


def write_images_zip(generator: keras.Model, config: Config, photos: str, out: Path,
                     batch_size: int | None = None, on_bad_record: str = "fail") -> int:
    """Translates every photo and writes the paintings, as JPEGs, straight into `out`.

    Returns the number of images. The zip is checked before it replaces `out`.
    """
    dataset, count = photo_dataset(photos, on_bad_record)
    batch_size = batch_size or config.export_batch_size
    translate_batch = tf.function(lambda images: tf.map_fn(
        lambda image: tf.io.encode_jpeg(image, quality=JPEG_QUALITY),
        translate(generator, images, config.image_size, config.export_tta),
        fn_output_signature=tf.string))

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    used_names, written = set(), 0
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
            batches = dataset.batch(batch_size).prefetch(2)
            progress = keras.utils.Progbar(count, unit_name="image",
                                           verbose=1 if sys.stdout.isatty() else 2)
            for images, names in batches:
                short = batch_size - len(images)
                if short:  # a full batch, so the traced function and its kernels are reused
                    images = tf.concat([images, tf.repeat(images[:1], short, axis=0)], axis=0)
                jpegs = translate_batch(images).numpy()[:batch_size - short]
                for jpeg, name in zip(jpegs, names.numpy()):
                    archive.writestr(_entry_name(name, used_names), jpeg)
                written += len(jpegs)
                progress.update(written)
        check_zip(partial, count)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written


def write_saved_model(generator: keras.Model, config: Config, out: Path) -> None:
    """A SavedModel of `generator` alone; its `serve` signature maps uint8 [N, H, W, 3]
    photos to uint8 paintings of the same shape. Checked against `generator`, then moved
    into place (replacing an older export only once the new one is complete)."""
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(
        name="serve",
        fn=lambda images: translate(generator, images, config.image_size, config.export_tta),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    old = out.with_name(f".{out.name}.old")
    if old.exists() and not out.exists():  # an earlier export stopped between its renames
        os.replace(old, out)
    for leftover in (partial, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        archive.write_out(str(partial), verbose=False)
        probe = tf.constant(np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3)), tf.uint8)
        loaded = tf.saved_model.load(str(partial))  # keep it: its variables live with it
        reloaded = loaded.serve(probe)
        expected = translate(generator, probe, config.image_size, config.export_tta)
        difference = int(tf.reduce_max(tf.abs(tf.cast(reloaded, tf.int32) - tf.cast(expected, tf.int32))))
        if difference > 1:
            raise RuntimeError(f"The SavedModel differs from the generator by {difference} levels.")
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(partial, out)
        except OSError:
            if old.exists():
                os.replace(old, out)  # the previous export stays
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)


def load_generator(run_dir: Path, config: Config, which: str | None = None) -> keras.Model:
    """The photo -> Monet generator of the run's best checkpoint by FID (`which` 'best',
    when the run scored any) or newest one ('newest'); default: config.export_checkpoint.
    A checkpoint that does not read back whole is passed over for the one before."""
    with networks.float32_policy():  # exports compute in float32
        generator = networks.build_generator(config, name="photo_to_monet")
    wanted = tf.train.Checkpoint(photo_to_monet=generator)
    folders = [run_dir / train.CHECKPOINT_DIR]
    if (which or config.export_checkpoint) == "best":
        folders.insert(0, run_dir / train.BEST_CHECKPOINT_DIR)
    for folder in folders:
        restored = checkpoints.restore_newest(wanted, folder, partial=True, move_damaged=False)
        if restored:
            print(f"Exporting the generator of {restored}.")
            return generator
    raise train.RunError(f"{folders[-1]} holds no checkpoint: train the run first.")


def export_run(run_dir: str | Path, generator: keras.Model | None = None,
               photos: str | None = None, out: str | Path | None = None,
               saved_model: str | Path | None = None, on_bad_record: str | None = None,
               checkpoint: str | None = None, tta: bool | None = None) -> dict:
    """Writes the run's images.zip and SavedModel; returns where, how many and how fast.

    Defaults: the run's best or newest checkpoint (its export_checkpoint), the photos of its
    data folder, the run's on_bad_record and export_tta, RUN_DIR/images.zip and
    RUN_DIR/saved_model.
    """
    run_dir = Path(run_dir)
    config = train.load_run_config(run_dir)
    if tta is not None:
        config = config.replace(export_tta=tta)
    photos = photos or os.path.join(data.resolve_data_dir(config.data_dir), "photo_tfrec")
    out = Path(out or run_dir / "images.zip")
    saved_model = Path(saved_model or run_dir / "saved_model")
    for folder, flag in ((out.parent, "--out"), (saved_model.parent, "--saved-model")):
        check_writable(folder, flag)
    generator = generator or load_generator(run_dir, config, checkpoint)

    start = time.perf_counter()
    count = write_images_zip(generator, config, photos, out,
                             on_bad_record=on_bad_record or config.on_bad_record)
    seconds = time.perf_counter() - start
    print(f"Wrote {out}: {count} paintings in {seconds:.1f} s ({seconds / count:.3f} s/image).")
    write_saved_model(generator, config, saved_model)
    print(f"Wrote {saved_model}: serve(uint8 [N, H, W, 3]) -> uint8 paintings.")
    return {"images_zip": out, "count": count, "seconds": seconds, "saved_model": saved_model}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monet_gan.export", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder made by monet_gan.train")
    parser.add_argument("--photos", metavar="GLOB_OR_DIR",
                        help="TFRecords or JPEG/PNG images to translate (default: the run's photos)")
    parser.add_argument("--out", metavar="ZIP", help="default: RUN_DIR/images.zip")
    parser.add_argument("--saved-model", metavar="DIR", help="default: RUN_DIR/saved_model")
    parser.add_argument("--checkpoint", choices=("best", "newest"),
                        help="the best checkpoint by FID (when the run scored any) or the newest "
                             "(default: the run's export_checkpoint)")
    parser.add_argument("--tta", action="store_true", default=None,
                        help="average each photo's painting with its mirror image's (default: the run's)")
    parser.add_argument("--on-bad-record", choices=data.BAD_RECORD_POLICIES,
                        help="a photo that cannot be read: fail (stop, naming it) or skip it "
                             "(default: the run's setting)")
    args = parser.parse_args(argv)
    try:
        export_run(args.run_dir, photos=args.photos, out=args.out, saved_model=args.saved_model,
                   on_bad_record=args.on_bad_record, checkpoint=args.checkpoint, tta=args.tta)
    except (ConfigError, data.DataError, train.RunError, checkpoints.TrainingStopped,
            OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
