"""The real training loop and export, end to end on tiny data."""

import os
import re
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images

from monet_gan import artifacts, callbacks, run_folder, train
from monet_gan import config as config_lib
from monet_gan.errors import ConfigError, DataError, RunError
from monet_gan.networks import any_size_copy
from monet_gan.translation import export_generator, translate


@pytest.fixture(scope="module")
def run(tiny_config, tmp_path_factory):
    """One tiny run (1 epoch of 2 steps, exported), shared by the tests that read it."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    model = train.train(tiny_config, run_dir)
    return run_dir, model


def test_the_run_folder_holds_config_samples_metrics_and_a_checkpoint(run, tiny_config):
    run_dir, _ = run
    assert run_folder.load_run_config(run_dir) == tiny_config.replace(backend="tensorflow")
    grid = tf.io.decode_png((run_dir / "samples" / "epoch-001.png").read_bytes())
    assert grid.shape == (2 * 128, 2 * 128, 3)  # 2 photos over 2 paintings, 32 px shown at 128
    assert (run_dir / "samples.png").read_bytes() == (run_dir / "samples" / "epoch-001.png").read_bytes()
    header, row = (run_dir / "metrics.csv").read_text().splitlines()
    assert header.split(",")[0] == "epoch" and row.startswith("1,")
    assert all(np.isfinite(float(v)) for v in row.split(",")[1:])
    assert tf.io.decode_png((run_dir / "curves.png").read_bytes()).shape[-1] in (3, 4)
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-2")  # by step
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))


def test_images_zip_holds_one_256_jpeg_per_photo(run):
    run_dir, _ = run
    with zipfile.ZipFile(run_dir / "images.zip") as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"img{i}.jpg" for i in range(10))
        for name in names:
            assert tf.io.decode_jpeg(archive.read(name)).shape == (256, 256, 3)
    assert not list(run_dir.glob(".images.zip*"))


def test_the_saved_model_paints_as_images_zip_does(run, tiny_config):
    run_dir, model = run
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))
    photos = tf.constant(random_images(3, 256, seed=5))
    served = loaded.serve(photos).numpy()
    painter, size = export_generator(model.photo_to_monet, tiny_config)
    assert size is None  # a 32 px run exported in full: 256 px photos painted as they are
    expected = translate(painter, photos, size).numpy()
    assert served.dtype == np.uint8 and served.shape == (3, 256, 256, 3)
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    # Any H x W comes back at its own size, painted at the nearest multiples of 32: 40 x 90 at 32 x 96.
    photo = np.random.default_rng(6).integers(0, 256, (1, 40, 90, 3), dtype=np.uint8)
    served = loaded.serve(tf.constant(photo)).numpy()
    at_multiples = tf.image.resize(tf.constant(photo, tf.float32), (32, 96), method="area", antialias=True)
    painted = translate(painter, tf.cast(tf.round(at_multiples), tf.uint8), None)
    expected = tf.image.resize(tf.cast(painted, tf.float32), (40, 90), method="bilinear")
    assert served.shape == (1, 40, 90, 3)
    assert np.abs(served.astype(int) - np.round(expected.numpy()).astype(int)).max() <= 1


def test_export_from_the_checkpoint_equals_the_in_memory_export(run, tmp_path):
    run_dir, model = run
    generator = artifacts.load_generator(run_dir, run_folder.load_run_config(run_dir))
    for a, b in zip(generator.weights, model.photo_to_monet.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_folder_holding_another_run_is_refused(run, tiny_config):
    run_dir, _ = run
    with pytest.raises(RunError, match=f"--run-dir {run_dir} already holds a run.*--resume"):
        train.train(tiny_config, run_dir)


@pytest.mark.parametrize("resume, advice", [(False, "train in float32: --precision float32"),
                                            (True, "resume it in float32: .*--resume .* --precision float32")])
def test_bfloat16_on_a_cpu_without_bfloat16_instructions_is_refused_before_training(
        tiny_config, tmp_path, monkeypatch, resume, advice):
    # TensorFlow's CPU convolutions fail at the first step there (oneDNN has no bfloat16 kernel)
    monkeypatch.setattr(config_lib, "cpu_has_bfloat16", lambda: False)
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=f"--precision mixed_bfloat16: this CPU has no bfloat16.*{advice}"):
        train.train(tiny_config.replace(precision="mixed_bfloat16"), run_dir, resume=resume)
    assert not (run_dir / run_folder.CONFIG_FILE).exists()  # the folder stays free for a retry


def test_an_interrupted_export_leaves_no_zip_and_keeps_the_old_one(run, tiny_config, tmp_path, data_dir,
                                                                  monkeypatch):
    _, model = run
    out = tmp_path / "images.zip"
    out.write_bytes(b"the previous submission")
    entry_name = artifacts._entry_name
    calls = []

    def interrupted(raw, used):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-export
        return entry_name(raw, used)

    monkeypatch.setattr(artifacts, "_entry_name", interrupted)
    with pytest.raises(KeyboardInterrupt):
        artifacts.write_images_zip(model.photo_to_monet, tiny_config, str(data_dir / "photo_tfrec"),
                                out, batch_size=4)
    assert out.read_bytes() == b"the previous submission"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.zip"]


def test_export_of_a_folder_of_images_of_any_size(run, tiny_config, tmp_path):
    _, model = run
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (height, width) in enumerate([(300, 200), (256, 256), (64, 512)]):
        image = np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
        (folder / f"p{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    out = tmp_path / "out" / "images.zip"
    assert artifacts.write_images_zip(model.photo_to_monet, tiny_config, str(folder), out) == 3
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["p0.jpg", "p1.jpg", "p2.jpg"]


@pytest.mark.parametrize("mode", ["full", "resize"])
def test_images_zip_paints_as_export_mode_says(run, tiny_config, tmp_path, monkeypatch, mode):
    """full: the 256 px photo in one pass of the 32 px generator's weights; resize: at 32 px
    and back. The zip gets its own mode's paintings, not the other's."""
    _, model = run
    photos = random_images(2, 256, seed=7)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, photo in enumerate(photos):
        (folder / f"p{i}.png").write_bytes(tf.io.encode_png(photo).numpy())
    written = {}
    monkeypatch.setattr(artifacts, "write_zip",
                        lambda images, count, out: written.update((name, image) for image, name in images) or count)
    config = tiny_config.replace(export_mode=mode)
    assert artifacts.write_images_zip(model.photo_to_monet, config, str(folder), tmp_path / "x.zip") == 2
    exported = np.stack([written[f"p{i}"] for i in range(2)]).astype(int)
    generator, size = export_generator(model.photo_to_monet, config)
    assert (size is None) == (mode == "full") and (generator is model.photo_to_monet) == (mode == "resize")
    painted = {"full": translate(any_size_copy(model.photo_to_monet, config), photos, None),
               "resize": translate(model.photo_to_monet, photos, config.image_size)}
    difference = {name: np.abs(exported - paintings.numpy()).max() for name, paintings in painted.items()}
    other = "resize" if mode == "full" else "full"
    assert difference[mode] <= 1 < difference[other], difference  # 1: float rounding of a compiled graph


def test_fid_during_training_scores_the_paintings_the_export_makes(run, tiny_config, monkeypatch, tmp_path):
    """The best checkpoint by FID is chosen on the paintings images.zip would hold."""
    _, model = run
    photos = random_images(2, 256, seed=9)
    scored = []
    monkeypatch.setattr(callbacks.scores, "inception_features",
                        lambda paintings, progress: scored.append(paintings) or np.zeros((2, 4)))
    monkeypatch.setattr(callbacks.scores, "score", lambda *features: {"fid": 1.0, "mifid": 1.0})
    for mode in ("full", "resize"):
        config = tiny_config.replace(export_mode=mode)
        callback = callbacks.FidCallback(1, photos, None, config, SimpleNamespace(save=lambda **_: None),
                                         tmp_path / f"{mode}.json")
        callback.set_model(model)
        callback.on_epoch_end(0, {})
        generator, size = export_generator(model.photo_to_monet, config)
        np.testing.assert_allclose(scored[-1], translate(generator, photos, size).numpy(), atol=1)
    assert np.abs(scored[0].astype(int) - scored[1].astype(int)).max() > 1  # the modes paint differently


def test_the_full_export_copy_paints_what_the_generator_paints_at_its_own_size(run, tiny_config):
    _, model = run
    copy = any_size_copy(model.photo_to_monet, tiny_config)
    photos = random_images(2, 32, seed=8)
    np.testing.assert_allclose(copy(photos / 127.5 - 1, training=False),
                               model.photo_to_monet(photos / 127.5 - 1, training=False), atol=1e-5)
    assert copy(np.zeros((1, 64, 96, 3)), training=False).shape == (1, 64, 96, 3)


def test_export_of_a_folder_without_photos_is_a_clear_error(run, tiny_config, tmp_path):
    _, model = run
    with pytest.raises(DataError, match=f"--photos {tmp_path}: found no zip, TFRecords or JPEG/PNG images"):
        artifacts.write_images_zip(model.photo_to_monet, tiny_config, str(tmp_path), tmp_path / "x.zip")


def test_zip_entries_never_leave_the_archive_folder():
    used = set()
    names = [artifacts._entry_name(raw, used) for raw in ("../../etc/passwd", "a", "a", "", "..")]
    assert names == ["passwd.jpg", "a.jpg", "a-1.jpg", "image.jpg", "image-1.jpg"]


# --- the command line, as users run it ---

def cli(*args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_cli_trains_resumes_and_exports(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("monet_gan.train", "--preset", "tiny", "--data", str(data_dir),
                 "--run-dir", str(run_dir), "--no-export", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert run_folder.load_run_config(run_dir).seed == 3
    assert not (run_dir / "images.zip").exists()

    result = cli("monet_gan.train", "--resume", str(run_dir), "--epochs", "2", "--no-export")
    assert result.returncode == 0, result.stderr
    assert f"Resumed {run_dir}/checkpoints/ckpt-2 at step 2 (1 epochs and 0 steps done)" in result.stdout
    assert run_folder.load_run_config(run_dir).epochs == 2
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2"]  # epoch 1 was not trained again
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-4")

    out = tmp_path / "submission" / "images.zip"
    result = cli("monet_gan.export", str(run_dir), "--out", str(out),
                 "--saved-model", str(tmp_path / "generator"))
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as archive:
        assert len(archive.namelist()) == 10
        full = {name: archive.read(name) for name in archive.namelist()}
    assert (tmp_path / "generator" / "saved_model.pb").exists()
    # --mode resize paints at the run's 32 px and back instead of at 256 (the run's export_mode: full)
    result = cli("monet_gan.export", str(run_dir), "--out", str(out), "--saved-model", str(tmp_path / "generator"),
                 "--mode", "resize")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(full)
        assert all(archive.read(name) != painting for name, painting in full.items())
    assert run_folder.load_run_config(run_dir).export_mode == "full"


def test_cli_dry_run_prints_the_resolved_config_and_exits(tmp_path):
    result = cli("monet_gan.train", "--preset", "kaggle", "--epochs", "30", "--image-size", "128",
                 "--no-fastest-cpu-kernels", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = config_lib.Config.from_json(result.stdout)
    assert config == config_lib.kaggle().replace(epochs=30, image_size=128, fastest_cpu_kernels=False)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cli_warns_when_the_laptop_preset_paints_without_its_average(tmp_path):
    turned_off = cli("monet_gan.train", "--preset", "laptop", "--generator-average", "0", "--dry-run",
                     cwd=tmp_path)
    assert turned_off.returncode == 0, turned_off.stderr
    assert config_lib.Config.from_json(turned_off.stdout).generator_average == 0
    assert "warning: --generator-average 0 paints with the last weights" in turned_off.stderr
    kept = cli("monet_gan.train", "--preset", "laptop", "--dry-run", cwd=tmp_path)
    assert kept.returncode == 0 and "--generator-average" not in kept.stderr


@pytest.mark.parametrize("args, message", [
    (["--data", "/no/such/folder"], "error: --data /no/such/folder: no such folder"),
    (["--image-size", "100"], "error: image_size must be a power of two .*--image-size.*100"),
    (["--resume", "/no/run"], "error: /no/run is not a monet_gan run folder"),
    (["--resume", "/no/run", "--batch-size", "4"], "error: --resume continues .* drop --batch-size"),
])
def test_cli_bad_input_is_one_clear_line(args, message, tmp_path):
    result = cli("monet_gan.train", "--preset", "tiny", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
