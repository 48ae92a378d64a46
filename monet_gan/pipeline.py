"""The training input: a data folder, in either of the competition's layouts, to endless
(photo, Monet) batches.

A data folder holds `monet_tfrec/` and `photo_tfrec/` (TFRecords) or `monet_jpg/` and
`photo_jpg/` (JPEG or PNG files of any size, centre-cropped to a square); the competition ships
both. Every image is checked first (`image_sets.ImageSet`, `--on-bad-record`). Pipelines run:
read -> decode -> resize -> cache -> shuffle/repeat -> augment -> batch -> prefetch. With
`--crops` the images are kept at 256 px and each training image is a random window of one.
"""

import numpy as np
import tensorflow as tf

from monet_gan import data, data_folder
from monet_gan.config import Config
from monet_gan.image_sets import ImageSet


def domain_set(data_dir: str, domain: str, on_bad_record: str = "fail") -> ImageSet:
    """The checked images of `domain` ('monet' or 'photo') in a data folder of either layout."""
    return ImageSet(data_folder.domain_folder(data_dir, domain, tf.io.gfile.isdir), on_bad_record)


def training_sets(config: Config, global_batch_size: int) -> tuple[ImageSet, ImageSet]:
    """The usable (photo, Monet) images of the config's data folder, every one checked
    (config.on_bad_record says what to do with unusable ones)."""
    data_dir = data.resolve_data_dir(config.data_dir)
    monets = domain_set(data_dir, "monet", config.on_bad_record)
    photos = domain_set(data_dir, "photo", config.on_bad_record)
    data_folder.check_enough_paintings(monets, global_batch_size)
    return photos, monets


def square_images(image_set: ImageSet, size: int) -> tf.data.Dataset:
    """uint8 [size, size, 3] images of a set, by `data.square_to_uint8` (records already
    256x256 only resize)."""
    return image_set.dataset().map(lambda image: data.square_to_uint8(image, size),
                                   num_parallel_calls=tf.data.AUTOTUNE)


def square_arrays(image_set: ImageSet, size: int, count: int | None = None) -> np.ndarray:
    """The first `count` (default: all) `square_images` of a set, as uint8 [N, size, size, 3]."""
    images = square_images(image_set, size)
    return np.stack(list((images if count is None else images.take(count)).as_numpy_iterator()))


def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random horizontal flip and resize-and-crop jitter (enlarge by 12%, crop back), drawn
    from `seed` (shape [2]) alone, so that a resumed run draws what the first run would have."""
    size = image.shape[0]
    flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    enlarged = int(size * 1.12)
    image = tf.image.resize(image, [enlarged, enlarged], method="bilinear")
    return tf.image.stateless_random_crop(image, [size, size, 3], crop_seed)


def domain_dataset(image_set: ImageSet, size: int, augmented: bool, shuffle_buffer: int, seed: int,
                   start: int = 0, crops: bool = False):
    """Endless shuffled float [-1, 1] images of one domain, cached after decoding, from its
    `start`-th image on: the whole images at `size`, or with `crops` random `size` windows of
    the images at 256 px (augmented first at 256). The sequence depends on `seed` only, so a run
    resumed at image `start` sees exactly what an uninterrupted one would have."""
    stored = data_folder.stored_size(size, crops)
    images = square_images(image_set, stored).cache()
    images = images.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    # Skipping costs no decoding after the first pass (the cache) and no augmentation.
    images = images.enumerate().skip(start)

    def prepare(index, image):
        image, image_seed = data.to_float(image), tf.stack([tf.constant(seed, tf.int64), index])
        image = augment(image, image_seed) if augmented else image
        if stored == size:
            return image
        window_seed = tf.random.experimental.stateless_fold_in(image_seed, 1)
        return tf.image.stateless_random_crop(image, [size, size, 3], window_seed)

    return images.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def training_dataset(config: Config, global_batch_size: int, start_step: int = 0,
                     sets: tuple[ImageSet, ImageSet] | None = None) -> tf.data.Dataset:
    """Endless (photo, Monet) batches, from training step `start_step` on.

    Each domain is shuffled and repeated on its own, so every epoch (one pass over the
    Monet set) pairs the paintings with different photos. `sets` defaults to
    `training_sets(config, global_batch_size)`.
    """
    photos, monets = sets or training_sets(config, global_batch_size)
    options = dict(size=config.image_size, augmented=config.augment, crops=config.crops,
                   shuffle_buffer=config.shuffle_buffer, start=start_step * global_batch_size)
    pairs = tf.data.Dataset.zip(domain_dataset(photos, seed=config.seed, **options),
                                domain_dataset(monets, seed=config.seed + 1, **options))
    return pairs.batch(global_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def training_batches(config: Config, global_batch_size: int, start_step: int = 0,
                     sets: tuple[ImageSet, ImageSet] | None = None) -> tf.data.Dataset:
    """`training_dataset`, which several workers shard by data (each reads its share)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return training_dataset(config, global_batch_size, start_step, sets).with_options(options)
