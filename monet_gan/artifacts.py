"""A run's exports: `images.zip` for the competition and a SavedModel of the generator.

Both are written under a temporary name, checked, and only then renamed into place, so an
interrupted export never leaves a partial or broken file behind, and an older export is
replaced only by a complete one. `python -m monet_gan.export` and the end of training call
`export_run`.
"""

import io
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from monet_gan import checkpoints, cyclegan, data_folder, inputs, networks, run_folder, steps
from monet_gan.config import Config
from monet_gan.errors import OutputError, RunError
from monet_gan.files import check_file_destination, check_folder_destination
from monet_gan.translation import (PHOTO_RESIZE, SUBMISSION_SIZE, export_generator, resize_to_uint8, round_to_uint8,
                                   translate)

if keras.backend.backend() == "tensorflow":  # the SavedModel is TensorFlow's
    import tensorflow as tf

JPEG_QUALITY = 95


def _entry_name(raw_name: str, used: set) -> str:
    """A safe, unique `NAME.jpg` zip entry: no folders, no '..'."""
    stem = os.path.basename(raw_name.replace("\\", "/")) or "image"
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
            raise OutputError(f"{path} holds {len(names)} images, expected {expected_count}; "
                              "the export was not written.")
        for name in names:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                shape = (image.height, image.width, len(image.getbands())) if image.format == "JPEG" else None
            if shape != (SUBMISSION_SIZE, SUBMISSION_SIZE, 3):
                raise OutputError(f"{path}: {name} is {shape}, expected 256x256x3; the export "
                                  "was not written.")


def encode_jpeg(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> JPEG bytes at JPEG_QUALITY."""
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format="JPEG", quality=JPEG_QUALITY)
    return encoded.getvalue()


def _photo_batches(photo_set, batch_size: int):
    """(uint8 [batch_size, 256, 256, 3] photos, their names) of a set, the last batch filled
    up with copies of its first photo (so every call has one shape; the names say how many
    are real)."""
    photos, names = [], []
    for photo, name in photo_set.arrays(with_names=True):
        if photo.shape[:2] != (SUBMISSION_SIZE, SUBMISSION_SIZE):
            photo = keras.ops.convert_to_numpy(resize_to_uint8(photo[np.newaxis], SUBMISSION_SIZE))[0]
        photos.append(photo)
        names.append(name)
        if len(photos) == batch_size:
            yield np.stack(photos), names
            photos, names = [], []
    if photos:
        yield np.stack(photos + photos[:1] * (batch_size - len(photos))), names


def write_images_zip(generator: keras.Model, config: Config, photos, out: Path,
                     batch_size: int | None = None, on_bad_record: str = "fail") -> int:
    """Translates every photo (`photos`: a folder, glob or zip of TFRecords or images, any
    size, or their `inputs.ImageSet`), brought to 256x256 and painted as `config.export_mode`
    says, and writes the paintings, as 256x256 JPEGs, into `out`.

    Returns the number of images. The zip is checked before it replaces `out`.
    """
    photo_set = inputs.ImageSet(photos, on_bad_record, flag="--photos") if isinstance(photos, (str, Path)) else photos
    batch_size = batch_size or config.export_batch_size

    # Painted as config.export_mode says: one graph under TensorFlow; under JAX, one compiled
    # program for the generator.
    painter, size = export_generator(generator, config)
    painter = painter if keras.backend.backend() == "tensorflow" else steps.jax_inference(painter)

    def translate_batch(images):
        return translate(painter, images, size, config.export_tta)

    if keras.backend.backend() == "tensorflow":
        translate_batch = tf.function(translate_batch)

    def paintings():
        for images, names in _photo_batches(photo_set, batch_size):
            # the copies filling up the batch are left out
            yield from zip(keras.ops.convert_to_numpy(translate_batch(images)), names)

    return write_zip(paintings(), photo_set.count, out)


def write_zip(images, count: int, out: Path) -> int:
    """Writes `count` (uint8 [256, 256, 3] image, name) pairs as JPEGs into the zip `out`,
    with a progress bar; the zip is checked before it replaces `out`. Returns the count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    used_names, written = set(), 0
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
            progress = keras.utils.Progbar(count, unit_name="image", verbose=1 if sys.stdout.isatty() else 2)
            for image, name in images:
                archive.writestr(_entry_name(name, used_names), encode_jpeg(image))
                written += 1
                if written % 64 == 0 or written == count:
                    progress.update(written)
        check_zip(partial, count)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written


def write_saved_model(generator: keras.Model, config: Config, out: Path) -> None:
    """A SavedModel of `generator` alone; its `serve` signature maps uint8 [N, H, W, 3]
    photos to uint8 paintings of the same shape, painted as images.zip paints them (a 256 px
    photo gives the same painting), and `image_size` holds the training size.
    Checked against `generator`, then moved into place (replacing an older export only once
    the new one is complete)."""
    painter, size = export_generator(generator, config)
    if size is None:  # export_mode 'full': at the photo's own scale
        def serve(images):
            return _translate_at_nearest_multiple(painter, images, config.image_size, config.export_tta)
    else:
        def serve(images):
            return translate(painter, images, size, config.export_tta)

    archive = keras.export.ExportArchive()
    archive.track(painter)
    archive.add_endpoint(
        name="serve",
        fn=serve,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    # The training size, for painting in tiles of it (`monet_gan.paint`): `loaded.image_size[0]`.
    archive.add_variable_collection("image_size", [tf.Variable(config.image_size, trainable=False,
                                                               name="image_size")])
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
        expected = translate(painter, probe, size, config.export_tta)  # as images.zip paints it
        difference = int(tf.reduce_max(tf.abs(tf.cast(reloaded, tf.int32) - tf.cast(expected, tf.int32))))
        if difference > 1:
            raise OutputError(f"The SavedModel written to {partial} differs from the generator by "
                              f"{difference} levels; {out} was left as it was.")
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


def _translate_at_nearest_multiple(painter: keras.Model, images, unit: int, tta: bool):
    """uint8 [N, H, W, 3] photos of any size -> uint8 paintings of the same shape, by `painter`,
    which takes any multiple of the training size `unit` (`networks.any_size_copy`): each photo
    is resized to the multiples of `unit` nearest H and W (at least `unit`), painted, and the
    painting brought back to H x W. Sides that are multiples already are painted as they are:
    a 256 px photo as images.zip paints it. (TensorFlow ops: the sizes are known only when the
    SavedModel runs.)"""
    shape = tf.shape(images)
    sides = tf.maximum(tf.cast(tf.round(tf.cast(shape[1:3], tf.float32) / unit), tf.int32), 1) * unit
    resized = tf.image.resize(tf.cast(images, tf.float32), sides, method=PHOTO_RESIZE, antialias=True)
    paintings = translate(painter, round_to_uint8(resized), None, tta)
    return round_to_uint8(tf.image.resize(tf.cast(paintings, tf.float32), shape[1:3], method="bilinear"))


def load_generator(run_dir: Path, config: Config, which: str | None = None) -> keras.Model:
    """The photo -> Monet generator of the run's best checkpoint by FID (`which` 'best',
    when the run scored any) or newest one ('newest'); default: config.export_checkpoint.
    A checkpoint that does not read back whole is passed over for the one before. With
    config.generator_average, the generator holds the moving average of its weights."""
    with networks.float32_policy():  # exports compute in float32
        generator = networks.build_generator(config, name="photo_to_monet")
        optimizer = None
        if config.generator_average:  # it keeps the average
            optimizer = cyclegan.make_optimizer(config, config.learning_rate, "photo_to_monet",
                                                average=config.generator_average)
            optimizer.build(generator.trainable_variables)
    folders = [run_dir / run_folder.CHECKPOINT_DIR]
    if (which or config.export_checkpoint) == "best":
        folders.insert(0, run_dir / run_folder.BEST_CHECKPOINT_DIR)
    for folder in folders:
        wanted = checkpoints.generator_checkpoint(generator, folder, optimizer)
        restored = checkpoints.restore_newest(wanted, folder, partial=True, move_damaged=False)
        if restored:
            what = ""
            if optimizer is not None:
                cyclegan.use_average(generator, optimizer)
                what = " (the moving average of its weights)"
            print(f"Exporting the generator of {restored}{what}.")
            return generator
    raise RunError(f"{folders[-1]} holds no checkpoint: train the run first.")


def export_run(run_dir: str | Path, generator: keras.Model | None = None,
               photos: str | None = None, out: str | Path | None = None,
               saved_model: str | Path | None = None, on_bad_record: str | None = None,
               checkpoint: str | None = None, tta: bool | None = None, mode: str | None = None) -> dict:
    """Writes the run's images.zip and SavedModel; returns where, how many and how fast.

    Defaults: the run's best or newest checkpoint (its export_checkpoint), the photos of its
    data folder, the run's on_bad_record, export_tta and export_mode, RUN_DIR/images.zip and
    RUN_DIR/saved_model.
    """
    run_dir = Path(run_dir)
    config = run_folder.load_run_config(run_dir)
    if tta is not None:
        config = config.replace(export_tta=tta)
    if mode is not None:
        config = config.replace(export_mode=mode)
    photos = photos or data_folder.domain_folder(
        data_folder.resolve_data_dir(config.data_dir, inputs.isdir), "photo", inputs.isdir)
    # Errors name the flag that chose a place; the run folder's own places need none.
    out_flag, saved_model_flag = "--out" if out else None, "--saved-model" if saved_model else None
    out = Path(out or run_dir / run_folder.IMAGES_ZIP)
    saved_model = Path(saved_model or run_dir / run_folder.SAVED_MODEL_DIR)
    check_file_destination(out, out_flag)
    check_folder_destination(saved_model, saved_model_flag)
    photo_set = inputs.ImageSet(photos, on_bad_record or config.on_bad_record, flag="--photos")
    generator = generator or load_generator(run_dir, config, checkpoint)

    start = time.perf_counter()
    count = write_images_zip(generator, config, photo_set, out)
    seconds = time.perf_counter() - start
    print(f"Wrote {out}: {count} paintings in {seconds:.1f} s ({seconds / count:.3f} s/image).")
    if keras.backend.backend() != "tensorflow":  # a SavedModel is TensorFlow's graph
        print(f"No SavedModel under Keras' {keras.backend.backend()} backend: write it where "
              f"TensorFlow is installed with KERAS_BACKEND=tensorflow python -m monet_gan.export {run_dir}")
        return {"images_zip": out, "count": count, "seconds": seconds, "saved_model": None}
    write_saved_model(generator, config, saved_model)
    print(f"Wrote {saved_model}: serve(uint8 [N, H, W, 3]) -> uint8 paintings.")
    return {"images_zip": out, "count": count, "seconds": seconds, "saved_model": saved_model}
