"""Photos to paintings, for every caller: the export, the SavedModel, the sample grids of
training, FID scoring and the quality benchmark all paint through `translate`.

Written in `keras.ops`, so it runs under either backend, eagerly or traced into the SavedModel.
"""

import keras
import numpy as np
from keras import ops

from monet_gan import networks
from monet_gan.config import Config

SUBMISSION_SIZE = 256  # the competition wants 256x256 JPEGs; also the largest training size

# How photos are resized to the generator's size: area averaging, as `data.resize_to_uint8`
# resizes training records, under TensorFlow; JAX has no area resize, so there an antialiased
# bilinear (triangle) filter averages instead (`numpy_pipeline` resizes its records with Pillow's box filter).
PHOTO_RESIZE = "area" if keras.backend.backend() == "tensorflow" else "bilinear"

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    def _resize_to(images, height, width):
        """Bilinear; `height` and `width` may be traced tensors (the SavedModel takes any
        size), which `keras.ops.image.resize` refuses."""
        return tf.image.resize(images, tf.stack([height, width]), method="bilinear")
else:
    def _resize_to(images, height, width):
        return ops.image.resize(images, (height, width), interpolation="bilinear")


def to_float(images):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return ops.cast(images, "float32") / 127.5 - 1.0


def to_uint8(images):
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return ops.cast(ops.clip(ops.round((images + 1.0) * 127.5), 0, 255), "uint8")


def round_to_uint8(images):
    """float [0, 255] -> uint8, clipped and rounded."""
    return ops.cast(ops.round(ops.clip(images, 0, 255)), "uint8")


def resize_to_uint8(images, size: int):
    """uint8 [N, H, W, 3] -> uint8 [N, size, size, 3] by `PHOTO_RESIZE`, rounded."""
    return round_to_uint8(ops.image.resize(ops.cast(images, "float32"), (size, size),
                                           interpolation=PHOTO_RESIZE, antialias=True))


def translate(generator: keras.Model, images, size: int | None, tta: bool = False):
    """uint8 [N, H, W, 3] photos -> uint8 [N, H, W, 3] paintings (a tensor of the backend).

    Photos are resized to the generator's `size` as training resized them (`PHOTO_RESIZE`,
    rounded to uint8), and the paintings back to H x W (bilinear); with `size` None they are
    painted as they are (H and W multiples of the training size, by a generator that takes
    them: `networks.any_size_copy`). With `tta` (test-time augmentation) each painting is
    the mean of the photo's painting and the mirrored painting of its mirror image.
    """
    images = ops.convert_to_tensor(images)
    height, width = images.shape[1], images.shape[2]
    # `same_size` is known only outside a traced SavedModel
    same_size = size is None or (height == size and width == size)
    if not same_size:
        shape = ops.shape(images)
        height, width = shape[1], shape[2]
        images = resize_to_uint8(images, size)
    x = to_float(images)
    paintings = generator(x, training=False)
    if tta:
        mirrored = generator(ops.flip(x, axis=2), training=False)
        paintings = 0.5 * (paintings + ops.flip(mirrored, axis=2))
    if not same_size:
        paintings = _resize_to(paintings, height, width)
    return to_uint8(paintings)


def export_generator(generator: keras.Model, config: Config) -> tuple[keras.Model, int | None]:
    """What the export paints SUBMISSION_SIZE photos with, and the `size` to `translate` at: with
    `config.export_mode` 'full', a copy of `generator` painting each photo at its own
    resolution (size None); with 'resize', or at 256 px where both are the same, `generator`
    at the training size."""
    if config.export_mode == "full" and config.image_size < SUBMISSION_SIZE:
        return networks.any_size_copy(generator, config), None
    return generator, config.image_size


def sample_grid(generator: keras.Model, photos: np.ndarray, tile: int = 128) -> np.ndarray:
    """uint8 image: the photos in the top row, their paintings below, tiles >= `tile` px."""
    paintings = ops.convert_to_numpy(translate(generator, photos, photos.shape[1]))
    return image_grid([photos, paintings], tile)


def image_grid(rows: list[np.ndarray], tile: int = 128) -> np.ndarray:
    """uint8 image: each row's images ([N, S, S, 3]) side by side, the rows stacked, enlarged
    (nearest neighbour) so that each image is at least `tile` px."""
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows])
    scale = max(1, tile // rows[0].shape[1])
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)
