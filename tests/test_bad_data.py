"""Bad input: each fault either stops with an error naming the file and record
(--on-bad-record fail) or is left out and counted (skip); never a raw traceback."""

import zipfile

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, write_records

from monet_gan import artifacts, data, data_folder, make_tfrecords, networks, numpy_images, pipeline, train
from monet_gan.errors import DataError
from monet_gan.image_sets import ImageSet


def good_record(i=0, size=256):
    return {"image_name": f"ok{i}".encode(), "image": tf.io.encode_jpeg(random_images(1, size, i)[0]).numpy(),
            "target": b"photo"}


def grey_jpeg():
    return tf.io.encode_jpeg(np.zeros((256, 256, 1), np.uint8)).numpy()


def png_256():
    return tf.io.encode_png(random_images(1, 256)[0]).numpy()


# (name, features of record 1 between two good records, expected problem)
BAD_RECORDS = [
    ("no_image", {"image_name": b"x", "target": b"photo"}, "record 1: has no `image` feature"),
    ("not_an_image", {"image": b"hello, not a jpeg"}, "record 1: its `image` is not a JPEG"),
    ("png", {"image": png_256()}, "record 1: its `image` is not a JPEG"),
    ("grey", {"image": grey_jpeg()}, "record 1: its image is not 256x256 RGB"),
    ("small", {"image": tf.io.encode_jpeg(random_images(1, 64)[0]).numpy()},
     "record 1: its image is not 256x256 RGB"),
    ("corrupt_jpeg", {"image": tf.io.encode_jpeg(random_images(1, 256)[0]).numpy()[:600]},
     "record 1: is not a tf.train.Example, or its JPEG is corrupt"),
]


@pytest.mark.parametrize("name, features, problem", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_a_bad_record_fails_naming_it_or_is_skipped(tmp_path, name, features, problem):
    path = write_records(tmp_path / f"{name}.tfrec", features=[good_record(0), features, good_record(2)])
    with pytest.raises(DataError, match=f"{name}.tfrec {problem}.*--on-bad-record skip"):
        data.scan_records([str(path)])
    records = data.scan_records([str(path)], "skip")
    assert records.count == 2 and len(records.problems) == 1
    names = [n.decode() for _, n in data.read_images(records, with_names=True).as_numpy_iterator()]
    assert names == ["ok0", "ok2"]


def test_a_record_that_is_not_an_example(tmp_path):
    path = tmp_path / "raw.tfrec"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(b"\xff\x00 not a protocol buffer")
    with pytest.raises(DataError, match="raw.tfrec record 0: is not a tf.train.Example"):
        data.scan_records([str(path)])


def test_a_truncated_file_fails_or_keeps_the_records_before_the_damage(tmp_path):
    path = write_records(tmp_path / "cut.tfrec", features=[good_record(i) for i in range(3)])
    content = path.read_bytes()
    path.write_bytes(content[:len(content) - 100])  # the third record loses its end
    with pytest.raises(DataError, match="cut.tfrec record 2: cannot be read, the file is truncated"):
        data.scan_records([str(path)])
    assert data.scan_records([str(path)], "skip").count == 2


def test_empty_files_and_files_that_are_no_tfrecords(tmp_path):
    empty = tmp_path / "empty.tfrec"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.tfrec"
    garbage.write_bytes(b"garbage" * 10)
    good = write_records(tmp_path / "good.tfrec", features=[good_record()])
    with pytest.raises(DataError, match="empty.tfrec: holds no records"):
        data.scan_records([str(empty), str(good)])
    with pytest.raises(DataError, match="garbage.tfrec record 0: cannot be read") as raised:
        data.scan_records([str(garbage), str(good)])
    # TensorFlow's words for it, without the names of its internal functions and ops.
    assert "corrupt from there on (corrupted record at 0" in str(raised.value)
    assert "function_node" not in str(raised.value) and "[Op:" not in str(raised.value)
    records = data.scan_records([str(empty), str(garbage), str(good)], "skip")
    assert records.count == 1 and len(records.problems) == 2
    with pytest.raises(DataError, match="Nothing usable in .*empty.tfrec"):
        data.scan_records([str(empty)], "skip")


def test_training_skips_and_reports_bad_records(tiny_config, data_dir, tmp_path, capfd):
    folder = tmp_path / "data"
    for domain in ("monet", "photo"):
        (folder / f"{domain}_tfrec").mkdir(parents=True)
        for f in (data_dir / f"{domain}_tfrec").iterdir():
            (folder / f"{domain}_tfrec" / f.name).write_bytes(f.read_bytes())
    write_records(folder / "monet_tfrec" / "bad.tfrec", features=[{"image": b"junk"}])
    config = tiny_config.replace(data_dir=str(folder), export=False)
    with pytest.raises(DataError, match="bad.tfrec record 0: its `image` is not a JPEG"):
        train.train(config, tmp_path / "run_fail")
    assert not (tmp_path / "run_fail" / "checkpoints").exists()
    train.train(config.replace(on_bad_record="skip"), tmp_path / "run_skip")
    assert "Left out 1 unusable records or files (--on-bad-record skip)." in capfd.readouterr().out


def test_fewer_usable_paintings_than_one_batch(tiny_config, tmp_path):
    folder = tmp_path / "data"
    write_records(folder / "monet_tfrec" / "m.tfrec", features=[good_record(0), {"image": b"x"}])
    write_records(folder / "photo_tfrec" / "p.tfrec", features=[good_record(1)])
    config = tiny_config.replace(data_dir=str(folder), on_bad_record="skip")
    with pytest.raises(DataError, match="holds 1 usable paintings, fewer than one global batch of 2"):
        pipeline.training_sets(config, 2)


# --- image files and zips (export, evaluate, make_tfrecords) ---

def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_256())
    (folder / "b.jpg").write_bytes(grey_jpeg())  # grey is fine for image files: made RGB
    (folder / "c.jpg").write_bytes(b"\xff\xd8 a broken jpeg")
    (folder / "d.png").write_bytes(b"")
    return folder


def test_image_files_that_do_not_decode(tmp_path):
    folder = image_folder(tmp_path)
    with pytest.raises(DataError, match="c.jpg: not a readable JPEG or PNG .*--on-bad-record skip"):
        ImageSet(str(folder))
    good = ImageSet(str(folder), "skip")
    assert [p.rsplit("/", 1)[1] for p in good.files] == ["a.png", "b.jpg"]
    names = [name.decode() for _, name in good.dataset(with_names=True).as_numpy_iterator()]
    assert names == ["a", "b"]


def test_one_image_file_is_a_set_of_one_whatever_its_name(tmp_path):
    jpeg = tf.io.encode_jpeg(random_images(1, 40)[0]).numpy()
    for name in ("photo.jpg", "photo.dat"):  # a name that does not say: its first bytes do
        (tmp_path / name).write_bytes(jpeg)
        image_set = ImageSet(str(tmp_path / name))
        assert (image_set.kind, image_set.count) == ("images", 1)
        [(image, stem)] = list(image_set.dataset(with_names=True).as_numpy_iterator())
        assert image.shape == (40, 40, 3) and stem == b"photo"


def test_a_folder_or_glob_of_mixed_kinds_is_refused(tmp_path):
    write_records(tmp_path / "a.tfrec", features=[good_record()])
    (tmp_path / "b.png").write_bytes(png_256())
    for source in (str(tmp_path), str(tmp_path / "*")):
        with pytest.raises(DataError, match="holds JPEG/PNG images and TFRecords: pass a folder or glob of one kind"):
            ImageSet(source)
    assert ImageSet(str(tmp_path / "*.png")).count == 1


def test_an_image_that_would_decode_to_gigabytes_is_refused_undecoded(tmp_path):
    png = bytearray(png_256())
    png[16:24] = (100_000).to_bytes(4, "big") * 2  # the header claims 100000 x 100000
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(png))
    with pytest.raises(DataError, match="bomb.png: not a readable JPEG or PNG image .*pixels"):
        ImageSet(str(path))


def test_make_tfrecords_writes_nothing_unless_every_image_is_usable(tmp_path):
    folder = image_folder(tmp_path)
    with pytest.raises(DataError, match="c.jpg: not a readable"):
        make_tfrecords.write_tfrecords(str(folder), str(tmp_path / "out"), "photo")
    assert not (tmp_path / "out").exists()  # checked before anything was written
    files = make_tfrecords.write_tfrecords(str(folder), str(tmp_path / "out"), "photo", on_bad_record="skip")
    assert [f.name for f in files] == ["photo00-2.tfrec"]
    assert data.scan_records([str(f) for f in files]).count == 2


def write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return path


# Both readers: TensorFlow's, and the one without TensorFlow (Keras' JAX backend).
READERS = pytest.mark.parametrize("reader", [ImageSet, numpy_images.ImageSet], ids=["tf", "numpy"])


@READERS
def test_zips_with_unsafe_names_non_images_or_broken_images(tmp_path, reader):
    jpeg = tf.io.encode_jpeg(random_images(1, 64)[0]).numpy()
    path = write_zip(tmp_path / "mixed.zip", {"ok.jpg": jpeg, "../escape.jpg": jpeg, "notes.txt": b"hi",
                                              "broken.png": b"\x89PNG broken"})
    with pytest.raises(DataError, match=r"entry '../escape.jpg' has a path leading out"):
        reader(str(path))
    image_set = reader(str(path), "skip")
    assert (image_set.count, image_set.skipped, image_set.members) == (1, 3, ["ok.jpg"])
    assert [i.shape for i in image_set.arrays()] == [(64, 64, 3)]


@READERS
def test_a_zip_entry_that_expands_beyond_the_cap_is_not_read(tmp_path, monkeypatch, reader):
    monkeypatch.setattr(data_folder, "MAX_IMAGE_BYTES", 10_000)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.png", b"\0" * 1_000_000)  # 1 MB of zeros: a few kB compressed
        archive.writestr("ok.jpg", tf.io.encode_jpeg(random_images(1, 32)[0]).numpy())
    assert path.stat().st_size < 10_000
    with pytest.raises(DataError, match="entry 'big.png' expands to 1000000 bytes"):
        reader(str(path))
    assert reader(str(path), "skip").count == 1


def test_export_skips_unreadable_photos_when_asked(tmp_path, tiny_config):
    folder = image_folder(tmp_path)
    generator = networks.build_generator(tiny_config)
    with pytest.raises(DataError, match="c.jpg: not a readable"):
        artifacts.write_images_zip(generator, tiny_config, str(folder), tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    assert artifacts.write_images_zip(generator, tiny_config, str(folder), tmp_path / "x.zip",
                                   on_bad_record="skip") == 2
