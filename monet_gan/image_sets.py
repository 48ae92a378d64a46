"""One reader for every set of images a command is given: a folder, a glob, a zip or one
file, of TFRecords or of JPEG/PNG images.

`ImageSet(source)` finds what `source` holds, checks every image in it once (unusable ones
fail, naming them, or are left out with `on_bad_record` "skip"), and then reads the usable
ones as uint8 [H, W, 3] images with their names. The export reads its photos, `evaluate` its
generated and real sets, training its data folder (`pipeline`: records or JPEG folders), and
`make_tfrecords` its images through it. Nothing is decoded before its header says it fits `MAX_IMAGE_PIXELS`, and
no file or zip entry over `MAX_IMAGE_BYTES` is read.
"""

import hashlib
import os
from pathlib import PurePosixPath

import numpy as np
import tensorflow as tf

from monet_gan import data, data_folder
from monet_gan.data_folder import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS


def decode_any_image(encoded: tf.Tensor) -> tf.Tensor:
    """JPEG, PNG (grey or RGBA too) bytes -> uint8 [H, W, 3]."""
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def _pixels_in_header(encoded: tf.Tensor) -> tf.Tensor:
    """Width x height from a JPEG's or PNG's header (0 for other bytes): checked before
    decoding, so a small file cannot expand into gigabytes."""
    def png_pixels():
        size = tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8)
        size = tf.cast(size, tf.int64)
        width = size[0] * 2**24 + size[1] * 2**16 + size[2] * 2**8 + size[3]
        height = size[4] * 2**24 + size[5] * 2**16 + size[6] * 2**8 + size[7]
        return width * height

    is_png = tf.logical_and(tf.strings.length(encoded) >= 24,
                            tf.strings.substr(encoded, 0, 8) == b"\x89PNG\r\n\x1a\n")
    return tf.cond(tf.io.is_jpeg(encoded),
                   lambda: tf.reduce_prod(tf.cast(tf.io.extract_jpeg_shape(encoded)[:2], tf.int64)),
                   lambda: tf.cond(is_png, png_pixels, lambda: tf.constant(0, tf.int64)))


def _image_or_nothing(encoded: tf.Tensor) -> tf.Tensor:
    """decode_any_image, with an error (caught by ignore_errors) for oversized images."""
    pixels = _pixels_in_header(encoded)
    tf.debugging.assert_less_equal(pixels, tf.constant(MAX_IMAGE_PIXELS, tf.int64))
    with tf.control_dependencies([tf.debugging.assert_positive(pixels)]):
        return decode_any_image(encoded)


def check_encoded_images(encoded: tf.data.Dataset, labels: list[str]) -> tuple[np.ndarray, list]:
    """Which of the encoded images (one per label, in order) decode as JPEG or PNG within
    the size caps, as a bool array, and a problem line for each that does not."""
    usable = np.zeros(len(labels), bool)
    checked = encoded.enumerate().map(lambda i, image: (i, tf.shape(_image_or_nothing(image))),
                                      num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    for index, _ in checked.batch(256).as_numpy_iterator():
        usable[index] = True
    return usable, [f"{labels[i]}: not a readable JPEG or PNG image (or over "
                    f"{MAX_IMAGE_PIXELS} pixels)" for i in np.flatnonzero(~usable)]


def scan_image_files(paths: list[str], on_bad_record: str = "fail") -> list[str]:
    """The JPEG/PNG files among `paths` that can be used; the others fail or are skipped
    as `data.scan_records` does."""
    data_folder.check_policy(on_bad_record)
    sizes = [tf.io.gfile.stat(p).length for p in paths]
    problems = [f"{p}: larger than {MAX_IMAGE_BYTES} bytes" for p, n in zip(paths, sizes)
                if n > MAX_IMAGE_BYTES]
    small = [p for p, n in zip(paths, sizes) if n <= MAX_IMAGE_BYTES]
    usable, more = check_encoded_images(
        tf.data.Dataset.from_tensor_slices(tf.constant(small, tf.string)).map(tf.io.read_file), small)
    good = [p for p, ok in zip(small, usable) if ok]
    data_folder.apply_policy(problems + more, on_bad_record, len(good), os.path.dirname(paths[0]) or ".",
                      "Remove or replace those files")
    return good


def _stem(path: str) -> str:
    """A file's or zip entry's name without its folders and suffix."""
    return PurePosixPath(path.replace("\\", "/")).stem


# TensorFlow's file system: local paths and gs:// alike.
GFILE = data_folder.FileSystem(tf.io.gfile.isdir, tf.io.gfile.listdir, tf.io.gfile.glob, tf.io.gfile.GFile)


class ImageSet:
    """The usable images of a folder, glob, zip or file of TFRecords or JPEG/PNG images
    (or of `data.Records` already checked), with their names and a hash of their bytes.

    Every image is checked when the set is made; `on_bad_record` says whether an unusable
    one fails (naming it) or is left out (`skipped` counts them). `flag` names the flag that
    gave `source` in errors.
    """

    # Which decoder made the pixels: TensorFlow's fast IDCT and Pillow's accurate one differ by
    # up to 18 levels on the competition's JPEGs, so cached features name it.
    decoder = "tensorflow"

    def __init__(self, source: "str | data.Records", on_bad_record: str = "fail",
                 flag: str | None = None):
        data_folder.check_policy(on_bad_record)
        if isinstance(source, data.Records):
            self.source, self.kind, self.records = source.files[0], "tfrecord", source
            self.files, self.count, self.skipped = source.files, source.count, len(source.problems)
            return
        self.source = str(source)
        label = f"{flag} {source}" if flag else str(source)
        self.files, self.kind = data_folder.files_and_kind(self.source, label, GFILE)
        if self.kind == "tfrecord":
            self.records = data.scan_records(self.files, on_bad_record)
            self.count, self.skipped = self.records.count, len(self.records.problems)
        elif self.kind == "images":
            found = len(self.files)
            self.files = scan_image_files(self.files, on_bad_record)
            self.count, self.skipped = len(self.files), found - len(self.files)
        else:
            self._open_zip(self.files[0], on_bad_record)

    def _open_zip(self, source: str, on_bad_record: str):
        members, problems = data_folder.zip_members(source)
        usable, more = check_encoded_images(self._encoded_members(members), members)
        self.members = [m for m, ok in zip(members, usable) if ok]
        data_folder.apply_policy(problems + more, on_bad_record, len(self.members), source,
                                 "Remove those entries from the zip")
        self.count, self.skipped = len(self.members), len(problems + more)

    def _encoded_members(self, names: list[str] | None = None) -> tf.data.Dataset:
        def members():
            yield from data_folder.read_members(self.files[0], self.members if names is None else names)

        return tf.data.Dataset.from_generator(members, output_signature=tf.TensorSpec([], tf.string))

    def content_hash(self) -> str:
        """sha256 of the bytes of the set's files (all of them, as a cache key)."""
        digest = hashlib.sha256()
        for path in self.files:
            with tf.io.gfile.GFile(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    def dataset(self, with_names: bool = False) -> tf.data.Dataset:
        """The usable images, uint8 [H, W, 3], in order (and with `with_names`, their names:
        the records' `image_name`, the files' and entries' names without suffix)."""
        if self.kind == "tfrecord":
            return data.read_images(self.records, with_names=with_names)
        if self.kind == "images":
            encoded = tf.data.Dataset.from_tensor_slices(self.files).map(tf.io.read_file)
            names = [_stem(f) for f in self.files]
        else:
            encoded = self._encoded_members()
            names = [_stem(m) for m in self.members]
        images = encoded.map(decode_any_image, num_parallel_calls=tf.data.AUTOTUNE)
        if not with_names:
            return images
        return tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(tf.constant(names, tf.string)))

    def arrays(self, with_names: bool = False):
        """`dataset`'s images as numpy arrays (with `with_names`, (image, name) pairs, the
        name a str), for code that runs under either backend."""
        for item in self.dataset(with_names).as_numpy_iterator():
            yield (item[0], item[1].decode("utf-8", "replace")) if with_names else item
