import numpy as np
import pytest
import tensorflow as tf

from conftest import window_places

from monet_gan import config as config_lib
from monet_gan import data, pipeline
from monet_gan.errors import DataError
from monet_gan.image_sets import ImageSet


def test_training_pairs_are_scaled_batches_of_both_domains(tiny_config):
    config = tiny_config.replace(image_size=256, augment=False)
    photos, monets = pipeline.training_sets(config, 2)
    assert (photos.count, monets.count) == (10, 6)
    pairs = pipeline.training_dataset(config, 2, sets=(photos, monets))
    photos, monets = next(iter(pairs))
    assert photos.shape == monets.shape == (2, 256, 256, 3)
    for batch in (photos.numpy(), monets.numpy()):
        assert batch.dtype == np.float32
        assert -1.0 <= batch.min() < -0.9 and 0.9 < batch.max() <= 1.0


def test_values_are_the_decoded_jpeg_scaled_to_minus_one_one(data_dir):
    files = data.domain_files(str(data_dir), "monet")
    image = next(iter(data.read_images(files)))
    record = next(iter(tf.data.TFRecordDataset(files)))
    expected = tf.io.decode_jpeg(data.parse_record(record)["image"])
    np.testing.assert_array_equal(image, expected)
    np.testing.assert_allclose(data.to_float(image), expected.numpy() / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(data.to_uint8(data.to_float(image)), expected)


def test_every_epoch_pairs_paintings_with_different_photos(tiny_config):
    monet_count = 6
    photos = [p.numpy() for p, _ in pipeline.training_dataset(tiny_config, 1).take(3 * monet_count)]
    epochs = [np.stack(photos[i * monet_count:(i + 1) * monet_count]) for i in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])
    # Each domain is still a permutation of its records within an epoch of its own length.
    assert len({p.tobytes() for p in photos[:10]}) == 10


def test_augmentation_keeps_shape_and_range(tiny_config):
    photos, monets = next(iter(pipeline.training_dataset(tiny_config.replace(augment=True), 2)))
    assert photos.shape == (2, 32, 32, 3)
    assert -1.0 <= float(tf.reduce_min(monets)) and float(tf.reduce_max(monets)) <= 1.0


def test_crops_are_windows_of_the_full_size_images_drawn_anew_each_pass(tiny_config):
    """--crops: 32 px windows of the 256 px images at their own scale, not the images resized."""
    config = tiny_config.replace(crops=True, augment=False)
    photos, monets = pipeline.training_sets(config, 1)
    full_size = pipeline.square_arrays(monets, 256)
    windows = [data.to_uint8(m[0]).numpy() for _, m in pipeline.training_dataset(config, 1).take(12)]
    places = window_places(np.stack(windows), full_size)
    assert None not in places
    assert sorted(i for i, _, _ in places[:6]) == list(range(6))  # each painting once per pass
    assert len({(top, left) for _, top, left in places}) > 6  # at random places
    resumed = next(iter(pipeline.training_dataset(config, 1, start_step=7)))[1]
    np.testing.assert_array_equal(data.to_uint8(resumed[0]), windows[7])


def test_globs_and_folders_are_accepted(data_dir):
    by_folder = data.list_files(str(data_dir / "photo_tfrec"))
    by_glob = data.list_files(str(data_dir / "photo_tfrec" / "*.tfrec"))
    assert by_folder == by_glob and len(by_folder) == 1


def test_the_shipped_sample_is_competition_data():
    files = data.domain_files(str(config_lib.SAMPLE_DATA_DIR), "monet")
    records = data.scan_records(files)
    assert records.count == 30 and records.problems == []


# --- bad input: each error names the path or flag and what to do ---

def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match=f"--data {tmp_path}/nope: no such folder"):
        data.resolve_data_dir(str(tmp_path / "nope"))


def test_no_data_folder_and_no_kaggle_input():
    with pytest.raises(DataError, match="pass --data DIR"):
        data.resolve_data_dir(None)


def test_folder_without_the_competition_layout(tmp_path):
    with pytest.raises(DataError, match="monet_tfrec does not exist"):
        data.domain_files(str(tmp_path), "monet")


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(DataError, match=r"No .tfrec.* files found at .*\*.tfrec"):
        data.list_files(str(tmp_path / "*.tfrec"))


def test_fewer_paintings_than_one_batch(tiny_config):
    with pytest.raises(DataError, match="holds 6 usable paintings, fewer than one global batch of 8"):
        pipeline.training_sets(tiny_config, 8)


# --- the competition's other layout: monet_jpg/ and photo_jpg/ ---

def test_a_folder_of_jpgs_trains_like_one_of_records(tmp_path):
    rng = np.random.default_rng(0)
    for domain, count in (("monet", 3), ("photo", 4)):
        (tmp_path / f"{domain}_jpg").mkdir()
        for i in range(count):
            image = rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)  # any size
            (tmp_path / f"{domain}_jpg" / f"{domain}{i}.jpg").write_bytes(tf.io.encode_jpeg(image).numpy())
    config = config_lib.tiny().replace(data_dir=str(tmp_path))
    photos, monets = pipeline.training_sets(config, 2)
    assert (photos.kind, photos.count, monets.count) == ("images", 4, 3)
    batch_photos, batch_monets = next(iter(pipeline.training_dataset(config, 2)))
    assert batch_photos.shape == batch_monets.shape == (2, 32, 32, 3)


def test_images_are_centre_cropped_to_a_square_not_squashed(tmp_path):
    image = np.zeros((32, 96, 3), np.uint8)
    image[:, 32:64] = 255  # white middle third, black sides
    (tmp_path / "wide.png").write_bytes(tf.io.encode_png(image).numpy())
    [square] = list(pipeline.square_images(ImageSet(str(tmp_path)), 16).as_numpy_iterator())
    assert square.shape == (16, 16, 3) and (square == 255).all()


def test_a_data_folder_of_neither_layout_names_both(tmp_path):
    with pytest.raises(DataError, match="holds neither monet_tfrec/ nor monet_jpg/"):
        pipeline.training_sets(config_lib.tiny().replace(data_dir=str(tmp_path)), 1)
