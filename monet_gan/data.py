"""Reading the competition's TFRecords: every record checked, then decoded by `tf.data`.

Every record holds `image_name`, `image` (a 256x256 RGB JPEG) and `target` ("monet" or
"photo"). A data folder holds `monet_tfrec/` and `photo_tfrec/`, as the competition does
(`pipeline` also takes its `monet_jpg/` and `photo_jpg/`). Also here: the resize-and-round
chain of the `tf.data` input (`translation.resize_to_uint8` is the same under TensorFlow, in
`keras.ops`), and the [-1, 1] scaling.
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from monet_gan import data_folder
from monet_gan.data_folder import RECORD_SIZE, TFRECORD_SUFFIXES, apply_policy, check_policy
from monet_gan.errors import DataError

FEATURES = {
    "image_name": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
    "target": tf.io.FixedLenFeature([], tf.string),
}
OPTIONAL_FEATURES = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in FEATURES}


def resolve_data_dir(data_dir: str | None) -> str:
    """`data_folder.resolve_data_dir`, for local and `gs://` paths alike."""
    return data_folder.resolve_data_dir(data_dir, tf.io.gfile.isdir)


def list_files(pattern: str, suffixes=TFRECORD_SUFFIXES) -> list[str]:
    """Files matching `pattern`: a folder (its files with `suffixes`), a glob, or one file.

    Works for local paths and `gs://` alike. Raises DataError when nothing matches.
    """
    if tf.io.gfile.isdir(pattern):
        names = sorted(tf.io.gfile.listdir(pattern))
        files = [os.path.join(pattern, n) for n in names if n.lower().endswith(suffixes)]
    else:
        files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(
            f"No {' / '.join(suffixes)} files found at {pattern}. Check the path; a folder "
            "or a glob such as 'data/photo_tfrec/*.tfrec' are accepted."
        )
    return files


def domain_files(data_dir: str, domain: str) -> list[str]:
    """The TFRecords of `domain` ('monet' or 'photo') in a competition-layout folder."""
    folder = os.path.join(data_dir, f"{domain}_tfrec")
    if not tf.io.gfile.isdir(folder):
        raise DataError(
            f"{folder} does not exist: --data {data_dir} must hold monet_tfrec/ and photo_tfrec/ "
            "(write them from image folders with `python -m monet_gan.make_tfrecords`)."
        )
    return list_files(folder)


def parse_record(serialized: tf.Tensor) -> dict:
    """A record's features; a missing `image_name` or `target` reads as "" (only `image`
    is needed, and `scan_records` checks it)."""
    return tf.io.parse_single_example(serialized, OPTIONAL_FEATURES)


def resize_to_uint8(images: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 (or float [0, 255]) [..., H, W, 3] -> uint8 [..., size, size, 3]: area-averaged
    (antialiased) and rounded: records for training and images made into records (the export
    and the SavedModel resize through `translation.resize_to_uint8`, the same ops)."""
    resized = tf.image.resize(images, [size, size], method="area", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(resized, 0, 255)), tf.uint8)


def square_to_uint8(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [H, W, 3] of any size -> uint8 [size, size, 3]: the centred square of the image
    (nothing is stretched), then `resize_to_uint8`."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)
    return resize_to_uint8(image, size)


def decode_image(jpeg: tf.Tensor, size: int = RECORD_SIZE) -> tf.Tensor:
    """JPEG bytes -> uint8 [size, size, 3], resized from the 256x256 record if needed."""
    image = tf.io.decode_jpeg(jpeg, channels=3)
    image = tf.ensure_shape(image, [RECORD_SIZE, RECORD_SIZE, 3])
    return image if size == RECORD_SIZE else resize_to_uint8(image, size)


def to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((image + 1.0) * 127.5), 0, 255), tf.uint8)


# Why a record cannot be used, by the code `_check_record` gives it.
_PROBLEMS = {
    1: "has no `image` feature (the competition's records hold image_name, image and target)",
    2: "its `image` is not a JPEG",
    3: "its image is not 256x256 RGB",
    4: "is not a tf.train.Example, or its JPEG is corrupt",
}


@dataclasses.dataclass
class Records:
    """The usable records of some TFRecord files, found by reading every one of them."""

    files: list[str]
    readable: list[int]  # records read from each file (a damaged file ends at its damage)
    usable: np.ndarray  # bool, one per readable record, file after file
    problems: list[str]  # "FILE record N: why", one per record or file that cannot be used

    @property
    def count(self) -> int:
        return int(self.usable.sum())


def op_error_text(error: tf.errors.OpError) -> str:
    """The first line of a TensorFlow error, without the names of its internal functions
    and ops ({{function_node __wrapped__...}}, [Op:...])."""
    text = (error.message.splitlines() or [type(error).__name__])[0]
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip() or type(error).__name__


def _check_record(serialized: tf.Tensor) -> tf.Tensor:
    """0 when the record holds a 256x256 RGB JPEG `image`, else a key of _PROBLEMS. Raises
    (code 4, via ignore_errors) on what is no Example or a JPEG that does not decode."""
    jpeg = tf.io.parse_single_example(serialized, OPTIONAL_FEATURES)["image"]

    def check_shape():
        shape = tf.shape(tf.io.decode_jpeg(jpeg))  # decodes it all: catches corrupt data
        return tf.where(tf.reduce_all(shape == [RECORD_SIZE, RECORD_SIZE, 3]), 0, 3)

    return tf.cond(tf.strings.length(jpeg) == 0, lambda: 1,
                   lambda: tf.cond(tf.io.is_jpeg(jpeg), check_shape, lambda: 2))


def _raw_records(files: list[str], readable: list[int]) -> tf.data.Dataset:
    """The first `readable[i]` records of each file, file after file."""
    counts = tf.constant(readable, tf.int64)
    return tf.data.Dataset.from_tensor_slices((files, counts)).flat_map(
        lambda path, count: tf.data.TFRecordDataset(path).take(count))


def scan_records(files: list[str], on_bad_record: str = "fail") -> Records:
    """Reads and checks every record of `files`. With `on_bad_record` 'fail', the first
    unusable record or file is a DataError naming it; with 'skip', they are left out,
    counted and reported. No usable record at all is an error either way."""
    check_policy(on_bad_record)
    readable, problems = [], []
    for path in files:
        count = 0
        try:
            for _ in tf.data.TFRecordDataset(path):
                count += 1
        except tf.errors.OpError as error:
            problems.append(f"{path} record {count}: cannot be read, the file is truncated or "
                            f"corrupt from there on ({op_error_text(error)})")
        else:
            if count == 0:
                problems.append(f"{path}: holds no records")
        readable.append(count)

    total = sum(readable)
    codes = np.full(total, 4, np.int64)
    if total:
        checked = _raw_records(files, readable).enumerate().map(
            lambda index, record: (index, _check_record(record)),
            num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
        for index, code in checked.batch(1024).as_numpy_iterator():
            codes[index] = code
    starts = np.cumsum([0, *readable])
    for index in np.flatnonzero(codes):
        file_index = int(np.searchsorted(starts, index, side="right")) - 1
        problems.append(f"{files[file_index]} record {index - starts[file_index]}: "
                        f"{_PROBLEMS[int(codes[index])]}")
    records = Records(list(files), readable, codes == 0, problems)
    apply_policy(problems, on_bad_record, records.count, ", ".join(files),
                  "Rewrite the records with `python -m monet_gan.make_tfrecords`, which converts "
                  "and resizes, or remove the file")
    return records


def read_images(source: "Records | list[str]", size: int = RECORD_SIZE, with_names: bool = False):
    """A dataset of uint8 [size, size, 3] images (and their names), in order: the usable
    records of a `Records`, or every record of a list of files already known to be good."""
    if not isinstance(source, Records):
        records = tf.data.TFRecordDataset(source, num_parallel_reads=tf.data.AUTOTUNE)
    else:
        records = _raw_records(source.files, source.readable)
        if not source.usable.all():
            usable = tf.constant(source.usable)
            records = records.enumerate().filter(lambda i, _: usable[i]).map(lambda _, r: r)

    def decode(serialized):
        record = parse_record(serialized)
        image = decode_image(record["image"], size)
        return (image, record["image_name"]) if with_names else image

    return records.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
