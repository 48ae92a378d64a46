"""Reading the competition's TFRecords into `tf.data` pipelines.

Every record holds `image_name`, `image` (a 256x256 RGB JPEG) and `target` ("monet" or
"photo"). A data folder holds `monet_tfrec/` and `photo_tfrec/`, as the competition does.
Pipelines run: read -> decode -> cache -> shuffle/repeat -> augment -> batch -> prefetch.
"""

import os
import re
from pathlib import Path

import tensorflow as tf

RECORD_SIZE = 256  # the competition's images are 256x256
KAGGLE_DATA_DIR = "/kaggle/input/gan-getting-started"
FEATURES = {
    "image_name": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
    "target": tf.io.FixedLenFeature([], tf.string),
}
TFRECORD_SUFFIXES = (".tfrec", ".tfrecord", ".tfrecords")
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


def check_records(files: list[str]) -> None:
    """Reads the first record of every file and fails early, naming the file, if it has
    not the competition's features or its image is not a 256x256 RGB JPEG."""
    for path in files:
        try:
            first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
        except tf.errors.OpError as error:
            raise DataError(f"{path} is not a readable TFRecord file: {error.message}") from None
        if first is None:
            raise DataError(f"{path} holds no records. Remove it or rewrite it.")
        example = tf.train.Example()
        try:
            example.ParseFromString(first.numpy())
        except Exception:
            raise DataError(f"{path}: record 0 is not a tf.train.Example.") from None
        missing = sorted(set(FEATURES) - set(example.features.feature))
        if missing:
            raise DataError(
                f"{path}: record 0 lacks the features {missing}; the competition's records "
                f"hold {sorted(FEATURES)}. Write records with `python -m monet_gan.make_tfrecords`."
            )
        jpeg = example.features.feature["image"].bytes_list.value
        try:
            shape = tuple(tf.io.decode_jpeg(jpeg[0], channels=3).shape) if jpeg else None
        except tf.errors.OpError:
            shape = None
        if shape is None:
            raise DataError(f"{path}: record 0's `image` is not a JPEG image.")
        if shape != (RECORD_SIZE, RECORD_SIZE, 3):
            raise DataError(
                f"{path}: record 0's image is {shape[1]}x{shape[0]}; the records must hold "
                f"{RECORD_SIZE}x{RECORD_SIZE} images. Rewrite them with "
                "`python -m monet_gan.make_tfrecords`, which resizes."
            )


def count_records(files: list[str]) -> int:
    """Records in `files`: from the competition's names (`monet00-60.tfrec` holds 60)
    when every file is so named, else by reading them."""
    counts = [re.search(r"-(\d+)\.tfrec", os.path.basename(f)) for f in files]
    if all(counts):
        return sum(int(m.group(1)) for m in counts)
    return int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1))


def read_images(files: list[str], size: int = RECORD_SIZE, with_names: bool = False):
    """A dataset of uint8 [size, size, 3] images (and their names) from TFRecords, in order."""

    def decode(serialized):
        record = parse_record(serialized)
        image = decode_image(record["image"], size)
        return (image, record["image_name"]) if with_names else image

    records = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
    return records.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def augment(image: tf.Tensor) -> tf.Tensor:
    """Random horizontal flip and resize-and-crop jitter (enlarge by 12%, crop back)."""
    size = image.shape[0]
    image = tf.image.random_flip_left_right(image)
    enlarged = int(size * 1.12)
    image = tf.image.resize(image, [enlarged, enlarged], method="bilinear")
    return tf.image.random_crop(image, [size, size, 3])


def domain_dataset(files, size: int, augmented: bool, shuffle_buffer: int, seed: int):
    """Endless shuffled float [-1, 1] images of one domain, cached after decoding."""
    images = read_images(files, size).cache()
    images = images.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    images = images.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if augmented:
        images = images.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return images


def training_dataset(config, global_batch_size: int) -> tuple[tf.data.Dataset, int]:
    """Endless (photo, monet) batches and the number of Monet images.

    Each domain is shuffled and repeated on its own, so every epoch (one pass over the
    Monet set) pairs the paintings with different photos.
    """
    data_dir = resolve_data_dir(config.data_dir)
    monet_files = domain_files(data_dir, "monet")
    photo_files = domain_files(data_dir, "photo")
    check_records(monet_files + photo_files)
    monet_count = count_records(monet_files)
    if monet_count < global_batch_size:
        raise DataError(
            f"{data_dir}/monet_tfrec holds {monet_count} paintings, fewer than one global "
            f"batch of {global_batch_size}: lower --batch-size or add paintings."
        )
    options = dict(size=config.image_size, augmented=config.augment,
                   shuffle_buffer=config.shuffle_buffer)
    photos = domain_dataset(photo_files, seed=config.seed, **options)
    monets = domain_dataset(monet_files, seed=config.seed + 1, **options)
    pairs = tf.data.Dataset.zip(photos, monets)
    pairs = pairs.batch(global_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return pairs, monet_count


def list_images(folder: str) -> list[str]:
    """JPEG and PNG files in `folder`, sorted; DataError when there are none."""
    return list_files(folder, IMAGE_SUFFIXES)


def decode_any_image(encoded: tf.Tensor) -> tf.Tensor:
    """JPEG, PNG (grey or RGBA too) bytes -> uint8 [H, W, 3]."""
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def read_image_file(path: str) -> tf.Tensor:
    """uint8 [H, W, 3] from a JPEG or PNG file; DataError naming the file if it is none."""
    try:
        return decode_any_image(tf.io.read_file(path))
    except tf.errors.OpError:
        raise DataError(f"{path} is not a readable JPEG or PNG image.") from None


def path_stem(path: str) -> str:
    return Path(path).stem
