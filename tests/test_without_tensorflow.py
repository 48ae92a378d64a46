"""Keras' JAX backend where TensorFlow is not installed (a subprocess in which `import
tensorflow` fails): training from either of the competition's layouts, the time budget, the
export's images.zip, all through `numpy_pipeline` and `numpy_images`, and painting a photo."""

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from monet_gan import run_folder

pytest.importorskip("jax", reason="jax[cpu] is in the test extra: pip install -e '.[test]'")

WITHOUT_TENSORFLOW = ("import runpy, sys\n"
                      "sys.modules['tensorflow'] = None  # import tensorflow: ImportError\n"
                      "module = sys.argv.pop(1)\n"
                      "runpy.run_module(module, run_name='__main__', alter_sys=True)\n")


def run_without_tensorflow(module, *args):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, module, *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def jpg_data(data_dir, tmp_path_factory):
    """The records of `data_dir` as the competition's JPEG layout; the photos as PNGs of
    300x200 (a centre square is cropped)."""
    root = tmp_path_factory.mktemp("jpg")
    for domain in ("monet", "photo"):
        folder = root / f"{domain}_jpg"
        folder.mkdir()
        for path in (data_dir / f"{domain}_tfrec").iterdir():
            for i, record in enumerate(tf.data.TFRecordDataset(str(path))):
                jpeg = tf.io.parse_single_example(record, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
                if domain == "monet":
                    (folder / f"m{i}.jpg").write_bytes(jpeg.numpy())
                else:
                    image = tf.image.resize(tf.io.decode_jpeg(jpeg), [200, 300]).numpy().astype(np.uint8)
                    Image.fromarray(image).save(folder / f"p{i}.png")
    return root


def test_training_reads_jpeg_folders_and_exports_without_tensorflow(jpg_data, tmp_path):
    run_dir = tmp_path / "run"
    result = run_without_tensorflow("monet_gan.train", "--preset", "tiny", "--data", jpg_data,
                                    "--run-dir", run_dir, "--epochs", "2", "--steps-per-epoch", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TensorFlow is not installed: no TensorBoard logs" in result.stdout
    assert run_folder.load_run_config(run_dir).backend == "jax"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["ckpt-2.npz", "ckpt-4.npz"]
    header, *rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert header.startswith("epoch,seconds,") and [r.split(",")[0] for r in rows] == ["1", "2"]
    assert all(float(r.split(",")[1]) > 0 for r in rows)
    assert Image.open(run_dir / "curves.png").format == "PNG"
    with zipfile.ZipFile(run_dir / "images.zip") as archive:
        assert sorted(archive.namelist()) == [f"p{i}.jpg" for i in range(10)]
        with Image.open(io.BytesIO(archive.read("p0.jpg"))) as painting:
            assert (painting.format, painting.size, painting.mode) == ("JPEG", (256, 256), "RGB")
    assert not (run_dir / "saved_model").exists()


def test_the_time_budget_stops_after_a_step_saves_and_exports(data_dir, tmp_path):
    """From the TFRecords (read without TensorFlow): a budget spent before the first step ends
    stops training right after it."""
    run_dir = tmp_path / "run"
    result = run_without_tensorflow("monet_gan.train", "--preset", "tiny", "--data", data_dir,
                                    "--run-dir", run_dir, "--epochs", "50", "--time-budget", "0.1s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The time budget is spent: stopped after step 1 of 100, saved" in result.stdout
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["ckpt-1.npz"]
    assert (run_dir / "metrics.csv").read_text().splitlines()[1].startswith("1,")
    with zipfile.ZipFile(run_dir / "images.zip") as archive:
        assert len(archive.namelist()) == 10
    # The run's generator paints a photo of its own size, in tiles (JAX-compiled), without TensorFlow.
    photo = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(photo)
    result = run_without_tensorflow("monet_gan.paint", run_dir, photo, "--out", tmp_path / "paintings")
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(tmp_path / "paintings" / "wide.jpg") as painting:
        assert (painting.format, painting.size) == ("JPEG", (70, 50))
