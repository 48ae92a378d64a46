"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same random colour, translation and cutout applied to real and generated
images before every critic call. Every op is differentiable, so the generators learn
through it; with 300 paintings it keeps the critics from memorising them.

Images are float [-1, 1], [batch, height, width, 3]. Written in `keras.ops`, for every backend. `strength` scales every range (1.0 is
the paper's); each call draws new random parameters from the Keras `seed` generator.

The parts are named in `config.DIFFAUGMENT_PARTS`, which checks a config's list of them.
"""

import keras
from keras import ops


def _uniform(batch, seed, low, high):
    return keras.random.uniform([batch, 1, 1, 1], low, high, seed=seed)


def random_ints(shape, high: int, seed):
    """Integers drawn uniformly from [0, high), as int32."""
    return ops.cast(ops.floor(keras.random.uniform(shape, 0, high, seed=seed)), "int32")


def color(x, strength: float, seed):
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per image."""
    batch = ops.shape(x)[0]
    x = x + (_uniform(batch, seed, -0.5, 0.5)) * strength
    mean = ops.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (1.0 + (_uniform(batch, seed, 0.0, 2.0) - 1.0) * strength) + mean
    mean = ops.mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (1.0 + (_uniform(batch, seed, 0.5, 1.5) - 1.0) * strength) + mean


def translation(x, strength: float, seed, ratio: float = 0.125):
    """Shifts each image by up to `ratio` x strength of its size, filling with zeros."""
    size = x.shape[1]
    shift = int(size * ratio * strength + 0.5)
    if shift == 0:
        return x
    batch = ops.shape(x)[0]
    offsets = [random_ints([batch, 1], 2 * shift + 1, seed) for _ in range(2)]
    padded = ops.pad(x, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
    rows = ops.arange(size, dtype="int32")[None, :] + offsets[0]  # [batch, size], into the padding
    cols = ops.arange(size, dtype="int32")[None, :] + offsets[1]
    x = ops.take_along_axis(padded, rows[:, :, None, None], axis=1)
    return ops.take_along_axis(x, cols[:, None, :, None], axis=2)


def cutout(x, strength: float, seed, ratio: float = 0.5):
    """Zeroes one square of `ratio` x strength of the size per image, anywhere in it."""
    size = x.shape[1]
    side = int(size * ratio * strength + 0.5)
    if side == 0:
        return x
    batch = ops.shape(x)[0]
    corners = [random_ints([batch, 1, 1], size + side, seed) - side for _ in range(2)]
    rows = ops.arange(size, dtype="int32")[None, :, None]
    cols = ops.arange(size, dtype="int32")[None, None, :]
    inside = ((rows >= corners[0]) & (rows < corners[0] + side)
              & (cols >= corners[1]) & (cols < corners[1] + side))
    return x * ops.cast(ops.logical_not(inside), x.dtype)[..., None]


def diff_augment(x, policy: tuple[str, ...], strength: float, seed):
    """The parts of `policy` (from config.diffaugment_parts), in order."""
    for part in policy:
        x = {"color": color, "translation": translation, "cutout": cutout}[part](x, strength, seed)
    return x
