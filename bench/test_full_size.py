"""bench/full_size.py, the prepared GPU run: its check run (`run --tiny`) where TensorFlow is
not installed and the Inception weights are missing (it trains, exports, returns paintings and
says it did not score them), and `prepare`, which writes the two folders to carry."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import full_size
import numpy as np
import pytest
import tensorflow as tf

from monet_gan import inception

pytest.importorskip("jax", reason="jax[cpu] is in the test extra: pip install -e '.[test]'")
SCRIPT = Path(full_size.__file__)


def random_jpegs(folder: Path, prefix: str, count: int, seed: int) -> list[bytes]:
    folder.mkdir(parents=True)
    images = np.random.default_rng(seed).integers(0, 256, (count, 256, 256, 3), dtype=np.uint8)
    jpegs = [tf.io.encode_jpeg(image).numpy() for image in images]
    for i, jpeg in enumerate(jpegs):
        (folder / f"{prefix}{i}.jpg").write_bytes(jpeg)
    return jpegs


@pytest.fixture(scope="module")
def jpg_data(tmp_path_factory):
    """The competition's JPEG layout: 6 paintings and 10 photos of noise."""
    root = tmp_path_factory.mktemp("jpg")
    random_jpegs(root / "monet_jpg", "m", 6, seed=1)
    random_jpegs(root / "photo_jpg", "p", 10, seed=2)
    return root


def test_the_check_run_trains_exports_and_returns_paintings_without_tensorflow(jpg_data, tmp_path):
    code = ("import runpy, sys\nsys.modules['tensorflow'] = None\n"
            "sys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", MONET_GAN_CACHE=str(tmp_path / "cache"),
               MONET_GAN_INCEPTION_WEIGHTS=str(tmp_path / "no-weights.pt"))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", code, str(SCRIPT), "run", "--tiny", "--data", str(jpg_data),
                             "--validation", str(jpg_data / "monet_jpg"), "--out", str(out),
                             "--run-dir", str(tmp_path / "run")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "paintings-1.zip", "result.json",
                                                     "samples.png", "table.md"]
    figures = json.loads((out / "result.json").read_text())
    assert (figures["epochs_done"], figures["steps_done"], figures["config"]["backend"]) == (2, 6, "jax")
    assert figures["export_newest"]["images"] == 10
    assert figures["scores"].startswith("not scored here:") and "no-weights.pt" in figures["scores"]
    with zipfile.ZipFile(out / "paintings-1.zip") as archive:
        assert len(archive.namelist()) == 10
    assert "2 epochs (6 steps)" in (out / "table.md").read_text()


def test_the_table_has_a_row_per_scored_set():
    result = {"epochs_done": 25, "steps_done": 7500, "train_seconds": 400.0,
              "steps_per_second_after_epoch_1": 20.5, "peak_gpu_bytes": 2**30,
              "export_newest": {"images": 3500, "seconds": 12.1, "images_per_second": 290.4},
              "validation_paintings": 447, "training_paintings": 300,
              "scores": {"the photos themselves": {"images": 3500, "fid": 120.04, "kid": 0.05,
                                                   "memorization_distance": 0.3, "mifid": 120.04}}}
    lines = full_size.table(result).splitlines()
    assert lines[0] == "25 epochs (7500 steps) in 400 s; 20.5 steps/s after the first epoch; peak GPU memory 1.0 GiB"
    assert lines[-1] == "| the photos themselves | 3500 | 120.0 | 50.0 | 0.300 | 120.0 |"


def test_prepare_writes_half_weights_the_paintings_and_a_subset_of_the_photos(tmp_path, monkeypatch):
    competition, validation = tmp_path / "competition", tmp_path / "validation"
    (competition / "monet_jpg").mkdir(parents=True)
    (competition / "monet_jpg" / "m.jpg").write_bytes(b"m")
    jpegs = random_jpegs(tmp_path / "photos", "p", 6, seed=3)
    (competition / "photo_tfrec").mkdir()
    with tf.io.TFRecordWriter(str(competition / "photo_tfrec" / "photo00-6.tfrec")) as writer:
        for i, jpeg in enumerate(jpegs):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image_name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"img{i}".encode()])),
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg]))})).SerializeToString())
    validation.mkdir()
    (validation / "v.jpg").write_bytes(b"v")
    monkeypatch.setattr(inception, "CACHE_DIR", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    weights = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.savez(tmp_path / "cache" / inception.CONVERTED, architecture=np.array("{}"), conv=weights)
    full_size.main(["prepare", "--competition", str(competition), "--validation", str(validation),
                    "--photos", "4", "--into", str(tmp_path / "carry")])
    stage, run = tmp_path / "carry" / full_size.STAGE, tmp_path / "carry" / full_size.RUN
    with np.load(stage / "cache" / inception.CONVERTED) as half:
        assert half["conv"].dtype == np.float16 and np.abs(half["conv"] - weights).max() < 1e-3
        assert str(half["architecture"]) == "{}"
    assert sorted(p.name for p in (run / "photo_jpg").iterdir()) == [f"img{i}.jpg" for i in range(4)]
    assert (run / "photo_jpg" / "img3.jpg").read_bytes() == jpegs[3]  # the bytes, unchanged
    assert (run / "monet_jpg" / "m.jpg").read_bytes() == b"m"
    assert (stage / "validation" / "v.jpg").read_bytes() == b"v"
    assert len(list((stage / "tiny" / "photo_jpg").iterdir())) == 4  # all there are, up to 40
