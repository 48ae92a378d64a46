"""The input under Keras' JAX backend, which needs no TensorFlow (`numpy_images`,
`numpy_pipeline`): read against TensorFlow's own readers, its checks and policy against
`image_sets`', and its batches for order, resumption and augmentation."""

import io
import itertools

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, window_places, write_records
from PIL import Image

from monet_gan import config as config_lib
from monet_gan import data, image_sets, inception, numpy_images, numpy_pipeline
from monet_gan.errors import DataError


def test_the_crc_is_castagnolis_and_masked_as_tfrecord_files_store_it():
    crc = 0xE3069283  # CRC-32C of b"123456789", the standard check value
    assert numpy_images.masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_records_and_their_features_read_as_tensorflow_reads_them(tmp_path):
    path = write_records(tmp_path / "a.tfrec", random_images(3, 256, seed=4))
    records, damage = numpy_images.read_records(str(path))
    assert damage is None
    assert records == [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    for record in records:
        expected = data.parse_record(record)
        features = numpy_images.example_bytes(record)
        assert features["image"] == expected["image"].numpy()
        assert features["image_name"] == expected["image_name"].numpy()
        assert features["target"] == b"photo"


def test_pillow_decodes_as_tensorflows_accurate_jpeg_decoder():
    """TensorFlow decodes with libjpeg's fast integer IDCT by default, Pillow with the
    accurate one: they differ by about 1.3 levels on average, up to 15."""
    for jpeg in numpy_images.ImageSet(str(config_lib.SAMPLE_DATA_DIR / "monet_tfrec")).jpegs[:5]:
        accurate = tf.io.decode_jpeg(jpeg, dct_method="INTEGER_ACCURATE").numpy()
        np.testing.assert_array_equal(numpy_images.decode(jpeg), accurate)
    image = random_images(1, 64, seed=3)[0]
    grey_png = io.BytesIO()
    Image.fromarray(image[..., 0]).save(grey_png, format="PNG")
    decoded = numpy_images.decode(grey_png.getvalue())
    assert decoded.shape == (64, 64, 3) and (decoded == image[..., :1]).all()


def _damaged_folder(tmp_path):
    """Good records, then a record of random bytes, a record without an image, a 128 px one,
    and a file cut inside its second record."""
    folder = tmp_path / "photo_tfrec"
    good = write_records(folder / "a.tfrec", random_images(2, seed=5))
    write_records(folder / "b.tfrec", features=[
        {"image_name": b"x", "image": tf.io.encode_jpeg(random_images(1, seed=6)[0]).numpy()},
        {"name_only": b"y"},
        {"image": tf.io.encode_jpeg(random_images(1, 128, seed=7)[0]).numpy()},
        {"image": b"\xff\xd8\xff not really"}])
    cut = (folder / "c.tfrec")
    cut.write_bytes(good.read_bytes()[:-100])
    return folder


def test_damaged_records_are_named_or_skipped_as_tensorflows_reader_does(tmp_path):
    folder = _damaged_folder(tmp_path)
    damage = (r"c.tfrec record 1: cannot be read, the file is truncated or corrupt from there on "
              r"\(.*\) \(3 more problems\)")
    for reader in (numpy_images.ImageSet, image_sets.ImageSet):  # damaged files first, as TensorFlow's
        with pytest.raises(DataError, match=damage):
            reader(str(folder))
    ours = numpy_images.ImageSet(str(folder), "skip")
    theirs = image_sets.ImageSet(str(folder), "skip")
    assert (ours.count, ours.skipped) == (theirs.count, theirs.skipped) == (4, 4)
    assert ours.names == ["img0", "img1", "x", "img0"]
    assert ours.content_hash() == theirs.content_hash()
    for mine, tensorflows in zip(ours.arrays(), theirs.arrays(), strict=True):
        assert mine.shape == tensorflows.shape
        assert np.abs(mine.astype(int) - tensorflows.astype(int)).mean() < 3  # the two IDCTs, on noise


def test_image_files_are_checked_before_decoding(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(random_images(2, 40, seed=8)):
        Image.fromarray(image).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match="broken.jpg: not a readable JPEG or PNG image"):
        numpy_images.ImageSet(str(folder))
    images = numpy_images.ImageSet(str(folder), "skip")
    assert (images.count, images.skipped, images.names) == (2, 1, ["p0", "p1"])
    monkeypatch.setattr(numpy_images, "MAX_IMAGE_PIXELS", 40 * 40 - 1)
    with pytest.raises(DataError, match="p0.png: not a readable JPEG or PNG image .or over 1599 pixels"):
        numpy_images.ImageSet(str(folder / "p*.png"))
    (tmp_path / "a.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="a.zip is not a readable zip"):
        numpy_images.ImageSet(str(tmp_path / "a.zip"))


def test_squares_are_centred_and_area_averaged_as_tensorflows_are():
    image = random_images(1, 96, seed=9)[0][:, :80]  # 96 x 80: a 80 x 80 square, 8 rows off each side
    ours = numpy_pipeline.square_to_uint8(image, 40).astype(int)
    theirs = data.square_to_uint8(tf.constant(image), 40).numpy().astype(int)
    assert ours.shape == (40, 40, 3) and np.abs(ours - theirs).max() <= 1  # rounding
    assert (numpy_pipeline.square_to_uint8(image, 80) == image[8:88]).all()


def test_the_inception_input_is_tf1s_bilinear_resize():
    images = random_images(2, 256, seed=10)
    expected = tf.raw_ops.ResizeBilinear(images=images, size=[299, 299], align_corners=False,
                                         half_pixel_centers=False)
    np.testing.assert_allclose(inception.preprocess(images), (expected.numpy() - 128) / 128, atol=2e-6)


@pytest.fixture(scope="module")
def sets(data_dir):
    config = config_lib.tiny().replace(data_dir=str(data_dir))
    return config, numpy_pipeline.training_sets(config, 1)


def test_batches_pair_shuffled_passes_of_each_domain(sets):
    config, (photos, monets) = sets
    plain = config.replace(augment=False)
    squares = numpy_pipeline.square_arrays(monets, plain.image_size)
    batches = list(itertools.islice(numpy_pipeline.training_batches(plain, 2, sets=(photos, monets)), 6))
    assert all(p.shape == m.shape == (2, 32, 32, 3) and p.dtype == np.float32 for p, m in batches)
    first_pass = np.concatenate([m for _, m in batches[:3]])  # 6 paintings: one pass
    to_uint8 = np.round((first_pass + 1) * 127.5).astype(np.uint8)
    order = [next(i for i, s in enumerate(squares) if (s == image).all()) for image in to_uint8]
    assert sorted(order) == list(range(6)) and order != list(range(6))
    second = np.concatenate([m for _, m in batches[3:]])
    assert not np.array_equal(first_pass, second)  # reshuffled


@pytest.mark.parametrize("crops", [False, True])
def test_a_resumed_pipeline_draws_the_batches_of_an_uninterrupted_one(sets, crops):
    config, pair = sets
    config = config.replace(crops=crops)
    whole = list(itertools.islice(numpy_pipeline.training_batches(config, 2, sets=pair), 7))
    resumed = list(itertools.islice(numpy_pipeline.training_batches(config, 2, start_step=4, sets=pair), 3))
    for (p, m), (p2, m2) in zip(whole[4:], resumed, strict=True):
        np.testing.assert_array_equal(p, p2)
        np.testing.assert_array_equal(m, m2)
    again = next(numpy_pipeline.training_batches(config.replace(seed=1), 2, sets=pair))
    assert not np.array_equal(again[0], whole[0][0])


def test_crops_are_windows_of_the_full_size_images(sets):
    """--crops: 32 px windows of the 256 px images at their own scale, not the images resized."""
    config, (photos, monets) = sets
    config = config.replace(crops=True, augment=False)
    batches = itertools.islice(numpy_pipeline.training_batches(config, 2, sets=(photos, monets)), 3)
    windows = np.concatenate([m for _, m in batches])
    assert windows.shape == (6, 32, 32, 3)
    places = window_places(np.round((windows + 1) * 127.5).astype(np.uint8),
                           numpy_pipeline.square_arrays(monets, 256))
    assert sorted(i for i, _, _ in places) == list(range(6))  # each painting once per pass
    assert len({(top, left) for _, top, left in places}) > 1


def test_augmentation_flips_and_jitters_within_the_image():
    image = random_images(1, 32, seed=11)[0]
    outcomes = [numpy_pipeline.augment(image, np.random.default_rng(seed)) for seed in range(40)]
    assert all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in outcomes)
    enlarged = np.asarray(Image.fromarray(image).resize((35, 35), Image.Resampling.BILINEAR))
    crops = {enlarged[t:t + 32, l:l + 32].tobytes() for t in range(4) for l in range(4)}
    enlarged_mirror = np.asarray(Image.fromarray(np.ascontiguousarray(image[:, ::-1])).resize(
        (35, 35), Image.Resampling.BILINEAR))
    mirrored = {enlarged_mirror[t:t + 32, l:l + 32].tobytes() for t in range(4) for l in range(4)}
    kinds = ["plain" if o.tobytes() in crops else "mirrored" if o.tobytes() in mirrored else "?" for o in outcomes]
    assert "?" not in kinds and 10 < kinds.count("mirrored") < 30


@pytest.mark.parametrize("extra, usable", [(5, True), (11, True), (12, False)])
def test_bytes_after_the_last_record_are_judged_as_tensorflow_judges_them(tmp_path, extra, usable):
    """Fewer bytes than a record's header end the file; a whole header of zeros is damage."""
    path = write_records(tmp_path / "a.tfrec", random_images(2, seed=12))
    path.write_bytes(path.read_bytes() + b"\0" * extra)
    for reader in (numpy_images.ImageSet, image_sets.ImageSet):
        if usable:
            assert reader(str(path)).count == 2
        else:
            with pytest.raises(DataError, match="a.tfrec record 2: cannot be read"):
                reader(str(path))
