"""Training under Keras' JAX backend, end to end on the CPU: `KERAS_BACKEND=jax python -m
monet_gan.train` trains, stops on SIGTERM after saving, resumes mid-epoch to the weights of an
uninterrupted run, and exports images.zip; TensorFlow refuses to resume it and writes its
SavedModel."""

import os
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from test_interruptions import signalled_train_command

from monet_gan import artifacts, checkpoints, run_folder, train

pytest.importorskip("jax", reason="jax[cpu] is in the test extra: pip install -e '.[test]'")

STEPS, EPOCHS = 3, 3


def jax_env():
    return dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")


def args(run_dir, data_dir, *extra):
    return ["--preset", "tiny", "--data", str(data_dir), "--run-dir", str(run_dir), "--seed", "5",
            "--epochs", str(EPOCHS), "--steps-per-epoch", str(STEPS), "--generator-average", "0.5", *extra]


def arrays(path):
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """An uninterrupted JAX run, and one stopped by SIGTERM mid-epoch then resumed (the two
    first parts side by side)."""
    root = tmp_path_factory.mktemp("jax")
    whole = subprocess.Popen([sys.executable, "-m", "monet_gan.train",
                              *args(root / "whole", data_dir, "--no-export")],
                             env=jax_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped_args = args(root / "resumed", data_dir, "--checkpoint-every-steps", "2")
    stopped = subprocess.run(signalled_train_command(signal.SIGTERM, 4, *stopped_args),
                             env=jax_env(), capture_output=True, text=True, timeout=600)
    resumed = subprocess.run([sys.executable, "-m", "monet_gan.train", "--resume", str(root / "resumed")],
                             env=jax_env(), capture_output=True, text=True, timeout=600)
    whole_out, whole_err = whole.communicate(timeout=600)
    assert whole.returncode == 0, whole_err
    return root, stopped, resumed


def test_a_jax_run_records_its_backend_and_saves_array_checkpoints(runs):
    root, _, _ = runs
    assert run_folder.load_run_config(root / "whole").backend == "jax"
    assert checkpoints.checkpoint_steps(root / "whole" / "checkpoints") == [3, 6, 9]
    assert [p.suffix for p in (root / "whole" / "checkpoints").iterdir()] == [".npz"] * 3
    rows = (root / "whole" / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2", "3"]
    assert all(np.isfinite(float(v)) for r in rows for v in r.split(",")[1:])
    assert (root / "whole" / "samples" / "epoch-003.png").exists()


def test_sigterm_saves_and_a_resume_reaches_the_uninterrupted_run_bit_for_bit(runs):
    root, stopped, resumed = runs
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "Stopped by SIGTERM after step 4; saved" in stopped.stderr  # sent in step 4's save
    assert resumed.returncode == 0, resumed.stderr
    assert "ckpt-4 at step 4 (1 epochs and 1 steps done)" in resumed.stdout
    whole = arrays(root / "whole" / "checkpoints" / "ckpt-9.npz")
    again = arrays(root / "resumed" / "checkpoints" / "ckpt-9.npz")
    assert whole.keys() == again.keys() and len(whole) > 100
    for name in whole:  # networks, optimizers, random states, step: all of it
        np.testing.assert_array_equal(again[name], whole[name], err_msg=name)


def test_the_resumed_run_exported_images_zip_but_no_saved_model(runs):
    root, _, resumed = runs
    with zipfile.ZipFile(root / "resumed" / "images.zip") as archive:
        names = archive.namelist()
        assert len(names) == 10
        assert tf.io.decode_jpeg(archive.read(names[0])).shape == (256, 256, 3)
    assert "No SavedModel under Keras' jax backend" in resumed.stdout
    assert not (root / "resumed" / "saved_model").exists()


def test_tensorflow_refuses_to_resume_a_jax_run_and_exports_its_saved_model(runs, capsys, tmp_path):
    root, _, _ = runs
    assert train.main(["--resume", str(root / "whole")]) == 2
    assert "trained under Keras' jax backend; resume it under the same: KERAS_BACKEND=jax" in \
        capsys.readouterr().err
    result = artifacts.export_run(root / "whole", out=tmp_path / "images.zip",
                                  saved_model=tmp_path / "saved_model")
    assert result["count"] == 10
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))  # kept: it holds the variables
    assert loaded.serve(tf.zeros([1, 64, 64, 3], tf.uint8)).shape == (1, 64, 64, 3)


def test_a_jax_run_keeps_its_generators_moving_average_and_tensorflow_paints_with_it(runs):
    root, _, _ = runs
    saved = arrays(root / "whole" / "checkpoints" / "ckpt-9.npz")
    optimizer_arrays = [v for k, v in saved.items() if k.startswith("photo_to_monet_optimizer/")]
    config = run_folder.load_run_config(root / "whole")
    averaged = artifacts.load_generator(root / "whole", config)
    trained = artifacts.load_generator(root / "whole", config.replace(generator_average=0.0))
    # 9 steps of averaging (some weights differ by nothing: the bottleneck's never trains)
    assert max(np.abs(a.numpy() - t.numpy()).max()
               for a, t in zip(averaged.trainable_weights, trained.trainable_weights)) > 1e-4
    for weight in averaged.trainable_weights:  # the average the JAX step kept, as it saved it
        assert any(v.shape == weight.shape and np.array_equal(v, weight.numpy()) for v in optimizer_arrays)
