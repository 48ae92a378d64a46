"""Photos to paintings, for every caller: the export, the SavedModel, the sample grids of
training, FID scoring and the quality benchmark all paint through `translate`."""

import keras
import numpy as np
import tensorflow as tf

from monet_gan import data


def translate(generator: keras.Model, images: tf.Tensor, size: int, tta: bool = False) -> tf.Tensor:
    """uint8 [N, H, W, 3] photos -> uint8 [N, H, W, 3] paintings.

    Photos are resized to the generator's `size` as training resized them
    (`data.resize_to_uint8`), and the paintings back to H x W. With `tta` (test-time
    augmentation) each painting is the mean of the photo's painting and the mirrored
    painting of its mirror image.
    """
    height_width = tf.shape(images)[1:3]
    x = data.to_float(data.resize_to_uint8(images, size))
    paintings = generator(x, training=False)
    if tta:
        mirrored = generator(tf.reverse(x, axis=[2]), training=False)
        paintings = 0.5 * (paintings + tf.reverse(mirrored, axis=[2]))
    paintings = tf.image.resize(paintings, height_width, method="bilinear")
    return data.to_uint8(paintings)


def sample_grid(generator: keras.Model, photos: np.ndarray, tile: int = 128) -> np.ndarray:
    """uint8 image: the photos in the top row, their paintings below, tiles >= `tile` px."""
    paintings = translate(generator, photos, photos.shape[1])
    rows = tf.concat([tf.concat(list(photos), axis=1), tf.concat(list(paintings), axis=1)], axis=0)
    scale = max(1, tile // photos.shape[1])
    size = [rows.shape[0] * scale, rows.shape[1] * scale]
    return tf.image.resize(rows, size, method="nearest").numpy()
