import numpy as np
import pytest
import tensorflow as tf

from monet_gan import data, make_tfrecords
from monet_gan.errors import DataError, OutputError


def test_any_folder_of_images_becomes_competition_records(tmp_path):
    images = tmp_path / "paintings"
    images.mkdir()
    rng = np.random.default_rng(0)
    (images / "wide.png").write_bytes(
        tf.io.encode_png(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).numpy())
    (images / "big.jpg").write_bytes(
        tf.io.encode_jpeg(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).numpy())
    (images / "grey.png").write_bytes(
        tf.io.encode_png(rng.integers(0, 256, (256, 256, 1), dtype=np.uint8)).numpy())
    (images / "notes.txt").write_text("not an image, and ignored")

    files = make_tfrecords.write_tfrecords(str(images), str(tmp_path / "out"), "monet", per_file=2)
    assert [f.name for f in files] == ["monet00-2.tfrec", "monet01-1.tfrec"]
    assert data.scan_records([str(f) for f in files]).problems == []  # the reader accepts them
    records = [data.parse_record(r) for r in tf.data.TFRecordDataset([str(f) for f in files])]
    assert [r["image_name"].numpy() for r in records] == [b"big", b"grey", b"wide"]
    assert {r["target"].numpy() for r in records} == {b"monet"}
    assert all(tf.io.decode_jpeg(r["image"]).shape == (256, 256, 3) for r in records)
    # The training reader finds them under OUT_DIR/monet_tfrec/.
    assert data.scan_records(data.domain_files(str(tmp_path / "out"), "monet")).count == 3


def test_an_unreadable_image_is_named(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match="broken.jpg: not a readable JPEG or PNG"):
        make_tfrecords.write_tfrecords(str(tmp_path), str(tmp_path / "out"), "photo")
    assert not (tmp_path / "out").exists()  # nothing written


def test_existing_records_are_not_overwritten(tmp_path):
    (tmp_path / "out" / "photo_tfrec").mkdir(parents=True)
    (tmp_path / "out" / "photo_tfrec" / "photo00-9.tfrec").write_bytes(b"mine")
    (tmp_path / "a.png").write_bytes(tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy())
    with pytest.raises(OutputError, match="photo_tfrec already holds files"):
        make_tfrecords.write_tfrecords(str(tmp_path), str(tmp_path / "out"), "photo")


def test_missing_image_folder(tmp_path):
    with pytest.raises(DataError, match="IMAGES .*nope: found no zip, TFRecords or JPEG/PNG images"):
        make_tfrecords.write_tfrecords(str(tmp_path / "nope"), str(tmp_path), "monet")
