import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, write_records

from monet_gan import config as config_lib
from monet_gan import data


def test_training_pairs_are_scaled_batches_of_both_domains(tiny_config):
    pairs, monet_count = data.training_dataset(tiny_config.replace(image_size=256, augment=False), 2)
    assert monet_count == 6
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
    pairs, monet_count = data.training_dataset(tiny_config, 1)
    photos = [p.numpy() for p, _ in pairs.take(3 * monet_count)]
    epochs = [np.stack(photos[i * monet_count:(i + 1) * monet_count]) for i in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])
    # Each domain is still a permutation of its records within an epoch of its own length.
    assert len({p.tobytes() for p in photos[:10]}) == 10


def test_augmentation_keeps_shape_and_range(tiny_config):
    pairs, _ = data.training_dataset(tiny_config.replace(augment=True), 2)
    photos, monets = next(iter(pairs))
    assert photos.shape == (2, 32, 32, 3)
    assert -1.0 <= float(tf.reduce_min(monets)) and float(tf.reduce_max(monets)) <= 1.0


def test_record_counts_come_from_names_or_reading(tmp_path, data_dir):
    assert data.count_records(data.domain_files(str(data_dir), "photo")) == 10
    unnamed = write_records(tmp_path / "x.tfrec", random_images(3, 32))
    assert data.count_records([str(unnamed)]) == 3


def test_globs_and_folders_are_accepted(data_dir):
    by_folder = data.list_files(str(data_dir / "photo_tfrec"))
    by_glob = data.list_files(str(data_dir / "photo_tfrec" / "*.tfrec"))
    assert by_folder == by_glob and len(by_folder) == 1


def test_the_shipped_sample_is_competition_data():
    files = data.domain_files(str(config_lib.SAMPLE_DATA_DIR), "monet")
    data.check_records(files)
    assert data.count_records(files) == 30


# --- bad input: each error names the path or flag and what to do ---

def test_missing_data_folder(tmp_path):
    with pytest.raises(data.DataError, match=f"--data {tmp_path}/nope: no such folder"):
        data.resolve_data_dir(str(tmp_path / "nope"))


def test_no_data_folder_and_no_kaggle_input():
    with pytest.raises(data.DataError, match="pass --data DIR"):
        data.resolve_data_dir(None)


def test_folder_without_the_competition_layout(tmp_path):
    with pytest.raises(data.DataError, match="monet_tfrec does not exist"):
        data.domain_files(str(tmp_path), "monet")


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(data.DataError, match=r"No .tfrec.* files found at .*\*.tfrec"):
        data.list_files(str(tmp_path / "*.tfrec"))


def test_record_without_the_expected_features(tmp_path):
    path = write_records(tmp_path / "a.tfrec", features=[{"img": b"x"}])
    with pytest.raises(data.DataError, match=r"a.tfrec: record 0 lacks the features \['image', "):
        data.check_records([str(path)])


def test_bytes_that_are_not_an_image(tmp_path):
    features = [{"image_name": b"a", "image": b"not a jpeg", "target": b"monet"}]
    path = write_records(tmp_path / "b.tfrec", features=features)
    with pytest.raises(data.DataError, match="b.tfrec: record 0's `image` is not a JPEG"):
        data.check_records([str(path)])


def test_images_that_are_not_256(tmp_path):
    path = write_records(tmp_path / "c.tfrec", random_images(1, 128))
    with pytest.raises(data.DataError, match="c.tfrec: record 0's image is 128x128.*make_tfrecords"):
        data.check_records([str(path)])


def test_file_that_is_not_a_tfrecord(tmp_path):
    path = tmp_path / "d.tfrec"
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(data.DataError, match="d.tfrec is not a readable TFRecord"):
        data.check_records([str(path)])


def test_fewer_paintings_than_one_batch(tiny_config):
    with pytest.raises(data.DataError, match="holds 6 paintings, fewer than one global batch of 8"):
        data.training_dataset(tiny_config, 8)
