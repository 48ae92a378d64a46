"""Property-based: random and mutated bytes given to the record and image readers. Every
outcome is either a correct result or the tool's own DataError naming the file in one line,
never a raw exception."""

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from conftest import random_images, write_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monet_gan import data, numpy_images
from monet_gan.config import BAD_RECORD_POLICIES
from monet_gan.errors import DataError
from monet_gan.image_sets import ImageSet

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
JPEG = tf.io.encode_jpeg(random_images(1, 256, seed=3)[0], quality=90).numpy()
PNG = tf.io.encode_png(random_images(1, 40, seed=4)[0]).numpy()


def _valid_tfrecord_file() -> bytes:
    path = Path(tempfile.mkdtemp()) / "valid.tfrec"
    return write_records(path, features=[{"image_name": b"a", "image": JPEG, "target": b"p"}] * 2).read_bytes()


def _valid_zip() -> bytes:
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.jpg", JPEG)
        archive.writestr("b.png", PNG)
    return content.getvalue()


TFRECORD_FILE = _valid_tfrecord_file()
ZIP = _valid_zip()


def mutated(original: bytes):
    """`original` with some bytes overwritten, cut short, or with bytes inserted."""
    return st.one_of(
        st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), min_size=1,
                 max_size=20).map(lambda edits: _overwrite(original, edits)),
        st.integers(0, len(original)).map(lambda n: original[:n]),
        st.tuples(st.integers(0, len(original)), st.binary(min_size=1, max_size=64)).map(
            lambda p: original[:p[0]] + p[1] + original[p[0]:]),
    )


def _overwrite(original: bytes, edits) -> bytes:
    content = bytearray(original)
    for index, value in edits:
        content[index] = value
    return bytes(content)


def read_or_refuse(read, path):
    """`read()`'s result, or None when it raised a DataError; that error must name `path`
    in one line, in the tool's words (no TensorFlow internals). Any other exception fails."""
    try:
        return read()
    except DataError as error:
        message = str(error)
        assert str(path) in message and "\n" not in message, message
        assert "function_node" not in message and "[Op:" not in message, message
        return None


@SETTINGS
@given(image=st.one_of(st.binary(max_size=300), mutated(JPEG)))
def test_record_images_of_any_bytes(tmp_path, image):
    path = write_records(tmp_path / "r.tfrec", features=[{"image_name": b"a", "image": image, "target": b"p"}])
    records = read_or_refuse(lambda: data.scan_records([str(path)]), path)
    if records is not None:  # accepted: then it reads as the 256x256 RGB image it is
        decoded = next(data.read_images(records).as_numpy_iterator())
        np.testing.assert_array_equal(decoded, tf.io.decode_jpeg(image).numpy())
    skipped = read_or_refuse(lambda: data.scan_records([str(path)], "skip"), path)
    assert (skipped is None) == (records is None)


@SETTINGS
@given(content=st.one_of(st.binary(max_size=400), mutated(TFRECORD_FILE)))
def test_tfrecord_files_of_any_bytes(tmp_path, content):
    path = tmp_path / "f.tfrec"
    path.write_bytes(content)
    for policy in BAD_RECORD_POLICIES:
        records = read_or_refuse(lambda: data.scan_records([str(path)], policy), path)
        if records is not None:
            images = list(data.read_images(records).as_numpy_iterator())
            assert len(images) == records.count and all(i.shape == (256, 256, 3) for i in images)
        # The reader without TensorFlow (JAX) accepts and refuses the same records.
        ours = read_or_refuse(lambda: numpy_images.ImageSet(str(path), policy), path)
        assert (ours is None) == (records is None)
        if ours is not None:
            assert ours.count == records.count
            assert all(i.shape == (256, 256, 3) for i in ours.arrays())


@SETTINGS
@given(content=st.one_of(st.binary(max_size=300), mutated(JPEG), mutated(PNG)))
def test_image_files_of_any_bytes(tmp_path, content):
    path = tmp_path / "i.png"
    path.write_bytes(content)
    image_set = read_or_refuse(lambda: ImageSet(str(path)), path)
    if image_set is not None:  # accepted: then it decodes as the image it is
        [image] = list(image_set.dataset().as_numpy_iterator())
        assert image.dtype == np.uint8 and image.shape[2] == 3
        np.testing.assert_array_equal(image, tf.io.decode_image(content, channels=3).numpy())
    skipped = read_or_refuse(lambda: ImageSet(str(path), "skip"), path)
    assert (skipped is None) == (image_set is None)
    ours = read_or_refuse(lambda: numpy_images.ImageSet(str(path)), path)  # Pillow's decoders
    if ours is not None:
        [image] = list(ours.arrays())
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@SETTINGS
@given(content=st.one_of(st.binary(max_size=300), mutated(ZIP)))
def test_zips_of_any_bytes(tmp_path, content):
    path = tmp_path / "z.zip"
    path.write_bytes(content)
    image_set = read_or_refuse(lambda: ImageSet(str(path), "skip"), path)
    if image_set is not None:
        assert len(list(image_set.dataset().as_numpy_iterator())) == image_set.count
