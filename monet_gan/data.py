"""Reading the competition's TFRecords into `tf.data` pipelines.

Every record holds `image_name`, `image` (a 256x256 RGB JPEG) and `target` ("monet" or
"photo"). A data folder holds `monet_tfrec/` and `photo_tfrec/`, as the competition does.
Pipelines run: read -> decode -> cache -> shuffle/repeat -> augment -> batch -> prefetch.
"""

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

RECORD_SIZE = 256  # the competition's images are 256x256
KAGGLE_DATA_DIR = "/kaggle/input/gan-getting-started"
FEATURES = {
    "image_name": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
    "target": tf.io.FixedLenFeature([], tf.string),
}
OPTIONAL_FEATURES = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in FEATURES}
TFRECORD_SUFFIXES = (".tfrec", ".tfrecord", ".tfrecords")
BAD_RECORD_POLICIES = ("fail", "skip")  # flag --on-bad-record
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataError(ValueError):
    """Input data that cannot be used; the message names the file or flag."""


def resolve_data_dir(data_dir: str | None) -> str:
    """The folder holding `monet_tfrec/` and `photo_tfrec/` (flag --data).

    None means the Kaggle input folder, which must then exist.
    """
    if data_dir is None:
        if tf.io.gfile.isdir(KAGGLE_DATA_DIR):
            return KAGGLE_DATA_DIR
        raise DataError(
            "No data folder given and the Kaggle input folder "
            f"{KAGGLE_DATA_DIR} does not exist: pass --data DIR, a folder holding "
            "monet_tfrec/ and photo_tfrec/ (the competition's layout)."
        )
    if not tf.io.gfile.isdir(data_dir):
        raise DataError(
            f"--data {data_dir}: no such folder. Pass a folder holding monet_tfrec/ and "
            "photo_tfrec/, e.g. the competition download or the shipped sample `tfrecords`."
        )
    return data_dir


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
    return tf.io.parse_single_example(serialized, FEATURES)


def decode_image(jpeg: tf.Tensor, size: int = RECORD_SIZE) -> tf.Tensor:
    """JPEG bytes -> uint8 [size, size, 3], resized from the 256x256 record if needed."""
    image = tf.io.decode_jpeg(jpeg, channels=3)
    image = tf.ensure_shape(image, [RECORD_SIZE, RECORD_SIZE, 3])
    if size != RECORD_SIZE:
        image = tf.image.resize(image, [size, size], method="area", antialias=True)
        image = tf.cast(tf.round(image), tf.uint8)
    return image


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


def check_policy(on_bad_record: str) -> None:
    if on_bad_record not in BAD_RECORD_POLICIES:
        raise DataError(f"--on-bad-record must be fail or skip. Received: {on_bad_record!r}")


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
                            f"corrupt from there on ({error.message.splitlines()[0]})")
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
    _apply_policy(problems, on_bad_record, records.count, ", ".join(files),
                  "Rewrite the records with `python -m monet_gan.make_tfrecords`, which converts "
                  "and resizes, or remove the file")
    return records


def _apply_policy(problems: list[str], on_bad_record: str, usable: int, where: str, fix: str):
    """Fails on the first problem ('fail'), or warns with their count ('skip'); no usable
    input at all fails either way."""
    if problems and on_bad_record == "fail":
        more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}. {fix}; or pass --on-bad-record skip to leave "
                        "unusable inputs out.")
    if usable == 0:
        raise DataError(f"Nothing usable in {where}. {fix}.")
    if problems:
        print(f"warning: left out {len(problems)} unusable inputs (--on-bad-record skip), "
              f"the first: {problems[0]}", file=sys.stderr)


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


def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random horizontal flip and resize-and-crop jitter (enlarge by 12%, crop back), drawn
    from `seed` (shape [2]) alone, so that a resumed run draws what the first run would have."""
    size = image.shape[0]
    flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    enlarged = int(size * 1.12)
    image = tf.image.resize(image, [enlarged, enlarged], method="bilinear")
    return tf.image.stateless_random_crop(image, [size, size, 3], crop_seed)


def domain_dataset(records: Records, size: int, augmented: bool, shuffle_buffer: int, seed: int,
                   start: int = 0):
    """Endless shuffled float [-1, 1] images of one domain, cached after decoding, from its
    `start`-th image on. The sequence depends on `seed` only, so a run resumed at image
    `start` sees exactly what an uninterrupted one would have."""
    images = read_images(records, size).cache()
    images = images.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    # Skipping costs no decoding after the first pass (the cache) and no augmentation.
    images = images.enumerate().skip(start)

    def prepare(index, image):
        image = to_float(image)
        return augment(image, tf.stack([tf.constant(seed, tf.int64), index])) if augmented else image

    return images.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def training_records(config, global_batch_size: int) -> tuple[Records, Records]:
    """The usable (photo, Monet) records of the config's data folder, every record checked
    (config.on_bad_record says what to do with unusable ones)."""
    data_dir = resolve_data_dir(config.data_dir)
    monets = scan_records(domain_files(data_dir, "monet"), config.on_bad_record)
    photos = scan_records(domain_files(data_dir, "photo"), config.on_bad_record)
    if monets.count < global_batch_size:
        raise DataError(
            f"{data_dir}/monet_tfrec holds {monets.count} usable paintings, fewer than one global "
            f"batch of {global_batch_size}: lower --batch-size or add paintings."
        )
    return photos, monets


def training_dataset(config, global_batch_size: int, start_step: int = 0,
                     records: tuple[Records, Records] | None = None) -> tf.data.Dataset:
    """Endless (photo, Monet) batches, from training step `start_step` on.

    Each domain is shuffled and repeated on its own, so every epoch (one pass over the
    Monet set) pairs the paintings with different photos. `records` defaults to
    `training_records(config, global_batch_size)`.
    """
    photos, monets = records or training_records(config, global_batch_size)
    options = dict(size=config.image_size, augmented=config.augment,
                   shuffle_buffer=config.shuffle_buffer, start=start_step * global_batch_size)
    pairs = tf.data.Dataset.zip(domain_dataset(photos, seed=config.seed, **options),
                                domain_dataset(monets, seed=config.seed + 1, **options))
    return pairs.batch(global_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def list_images(folder: str) -> list[str]:
    """JPEG and PNG files in `folder`, sorted; DataError when there are none."""
    return list_files(folder, IMAGE_SUFFIXES)


MAX_IMAGE_BYTES = 64 * 2**20  # a bigger file is refused unread (zip bombs, stray files)
MAX_IMAGE_PIXELS = 64 * 2**20  # an image that would decode to more is refused undecoded


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
    as `scan_records` does."""
    check_policy(on_bad_record)
    sizes = [tf.io.gfile.stat(p).length for p in paths]
    problems = [f"{p}: larger than {MAX_IMAGE_BYTES} bytes" for p, n in zip(paths, sizes)
                if n > MAX_IMAGE_BYTES]
    small = [p for p, n in zip(paths, sizes) if n <= MAX_IMAGE_BYTES]
    usable, more = check_encoded_images(
        tf.data.Dataset.from_tensor_slices(tf.constant(small, tf.string)).map(tf.io.read_file), small)
    good = [p for p, ok in zip(small, usable) if ok]
    _apply_policy(problems + more, on_bad_record, len(good), os.path.dirname(paths[0]) or ".",
                  "Remove or replace those files")
    return good


def read_image_file(path: str) -> tf.Tensor:
    """uint8 [H, W, 3] from a JPEG or PNG file; DataError naming the file if it is none."""
    return read_image_bytes(path, tf.io.gfile.GFile(path, "rb").read(MAX_IMAGE_BYTES + 1))


def read_image_bytes(label: str, encoded: bytes) -> tf.Tensor:
    """uint8 [H, W, 3] from JPEG or PNG bytes; DataError naming `label` if they are none."""
    if len(encoded) > MAX_IMAGE_BYTES:
        raise DataError(f"{label} is larger than {MAX_IMAGE_BYTES} bytes; not read.")
    try:
        return _image_or_nothing(tf.constant(encoded))
    except tf.errors.OpError:
        raise DataError(f"{label} is not a readable JPEG or PNG image "
                        f"(or over {MAX_IMAGE_PIXELS} pixels).") from None


def path_stem(path: str) -> str:
    return Path(path).stem
