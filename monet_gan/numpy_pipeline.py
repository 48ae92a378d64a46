"""The training input under Keras' JAX backend, without TensorFlow: a data folder, in either
of the competition's layouts, to endless (photo, Monet) batches of numpy arrays.

`pipeline` does this with `tf.data` for the TensorFlow backend; this module keeps its contract
with numpy and Pillow: every image checked first (`numpy_images.ImageSet`, `--on-bad-record`),
centre-cropped to a square and area-resized once, then kept in memory; each domain shuffled and
repeated on its own, so that every epoch pairs the paintings with other photos; a random flip
and the 12% resize-and-crop jitter; with `--crops`, a random window of the 256 px image; and a
sequence that depends on the seed alone, so that `--resume` continues with the batches an
uninterrupted run would have drawn.

The batches are other (equally random) ones than `tf.data` draws: each pass over a domain is a
permutation of all of it (a shuffle buffer as large as the set), and the image at place k of a
domain's endless sequence is augmented with the random numbers of (seed, k). Batches are made
ahead by a few threads (Pillow resizes without holding the GIL).
"""

import collections
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from monet_gan import data_folder
from monet_gan.config import Config
from monet_gan.numpy_images import ImageSet

THREADS = min(8, os.cpu_count() or 1)
BATCHES_AHEAD = 8
JITTER = 1.12  # the augmentation enlarges by 12%, then crops back


def domain_set(data_dir: str, domain: str, on_bad_record: str = "fail") -> ImageSet:
    """The checked images of `domain` ('monet' or 'photo') in a data folder of either layout."""
    return ImageSet(data_folder.domain_folder(data_dir, domain), on_bad_record)


def training_sets(config: Config, global_batch_size: int) -> tuple[ImageSet, ImageSet]:
    """The usable (photo, Monet) images of the config's data folder, every one checked."""
    data_dir = data_folder.resolve_data_dir(config.data_dir)
    monets = domain_set(data_dir, "monet", config.on_bad_record)
    photos = domain_set(data_dir, "photo", config.on_bad_record)
    data_folder.check_enough_paintings(monets, global_batch_size)
    return photos, monets


def square_to_uint8(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] of any size -> uint8 [size, size, 3]: the centred square of the image,
    area-averaged to `size` (Pillow's box filter), as `data.square_to_uint8` does with TensorFlow."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BOX))


def square_arrays(image_set: ImageSet, size: int, count: int | None = None) -> np.ndarray:
    """The first `count` (default: all) images of a set as squares, uint8 [N, size, size, 3]."""
    squares = []
    for image in image_set.arrays():
        if count is not None and len(squares) == count:
            break
        squares.append(square_to_uint8(image, size))
    return np.stack(squares)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.astype(np.float32) / 127.5 - 1.0


def window(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random `size` x `size` window of a square uint8 image."""
    top, left = rng.integers(0, image.shape[0] - size + 1, size=2)
    return image[top:top + size, left:left + size]


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [size, size, 3] -> the same, flipped left-right half the time, enlarged by 12%
    (bilinear) and cropped back at a random place."""
    size = image.shape[0]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    enlarged = int(size * JITTER)
    image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
        (enlarged, enlarged), Image.Resampling.BILINEAR))
    return window(image, size, rng)


class _Domain:
    """One domain's endless sequence: image k is the (k mod N)-th of pass k // N's permutation,
    augmented with the random numbers of (seed, 1, k), and where the images are larger than
    the training `size` (`--crops`), cut to a `size` window with those of (seed, 2, k)."""

    def __init__(self, images: np.ndarray, seed: int, augmented: bool, size: int):
        self.images, self.seed, self.augmented, self.size = images, seed, augmented, size

    @functools.lru_cache(maxsize=4)
    def order(self, n_pass: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 0, n_pass]).permutation(len(self.images))

    def __call__(self, k: int) -> np.ndarray:
        n_pass, place = divmod(k, len(self.images))
        image = self.images[self.order(n_pass)[place]]
        if self.augmented:
            image = augment(image, np.random.default_rng([self.seed, 1, k]))
        if len(image) > self.size:
            image = window(image, self.size, np.random.default_rng([self.seed, 2, k]))
        return to_float(image)


def training_batches(config: Config, global_batch_size: int, start_step: int = 0,
                     sets: tuple[ImageSet, ImageSet] | None = None):
    """Endless (photos, Monets) float32 [global batch, size, size, 3] pairs, from training
    step `start_step` on. `sets` defaults to `training_sets(config, global_batch_size)`."""
    photos, monets = sets or training_sets(config, global_batch_size)
    stored = data_folder.stored_size(config.image_size, config.crops)
    domains = [_Domain(square_arrays(image_set, stored), seed, config.augment, config.image_size)
               for image_set, seed in ((photos, config.seed), (monets, config.seed + 1))]

    def batch(step: int) -> tuple[np.ndarray, np.ndarray]:
        first = step * global_batch_size
        return tuple(np.stack([domain(k) for k in range(first, first + global_batch_size)])
                     for domain in domains)

    with ThreadPoolExecutor(THREADS) as pool:
        ahead = collections.deque(pool.submit(batch, step) for step in range(start_step, start_step + BATCHES_AHEAD))
        step = start_step + BATCHES_AHEAD
        while True:
            yield ahead.popleft().result()
            ahead.append(pool.submit(batch, step))
            step += 1
