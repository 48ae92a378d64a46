"""Interruptions lose nothing: a killed, stopped or diverged run resumes to the weights an
uninterrupted run reaches, from the newest checkpoint that is whole."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from monet_gan import checkpoints, cyclegan, train
from monet_gan.files import OutputError

STEPS, EPOCHS = 6, 2  # per epoch; a run of 12 steps


def train_command(run_dir, data_dir, *extra):
    return [sys.executable, "-m", "monet_gan.train", "--preset", "tiny", "--data", str(data_dir),
            "--run-dir", str(run_dir), "--no-export", "--seed", "7", "--epochs", str(EPOCHS),
            "--steps-per-epoch", str(STEPS), *extra]


def run(command, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def start(command):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_checkpoint(run_dir, process, condition):
    """Polls until a checkpoint whose step satisfies `condition` exists; returns the steps."""
    deadline = time.time() + 240
    while time.time() < deadline:
        steps = checkpoints.checkpoint_steps(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() else []
        if any(condition(s) for s in steps):
            return steps
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


def final_weights(run_dir):
    """Every tensor of the run's newest checkpoint (networks, optimizers, dropout state, step)."""
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    return {name: reader.get_tensor(name) for name, dtype in reader.get_variable_to_dtype_map().items()
            if dtype.is_numeric and "save_counter" not in name}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = run(train_command(run_dir, data_dir))
    assert result.returncode == 0, result.stderr
    weights = final_weights(run_dir)
    assert int(weights["step/.ATTRIBUTES/VARIABLE_VALUE"]) == STEPS * EPOCHS
    return weights


def test_sigkill_then_sigterm_then_resume_reaches_the_uninterrupted_weights(data_dir, tmp_path,
                                                                          uninterrupted):
    run_dir = tmp_path / "run"
    resume = train_command(run_dir, data_dir)[:3] + ["--resume", str(run_dir)]

    # SIGKILL mid-epoch: nothing can be saved; the newest checkpoint (every step) is used.
    process = start(train_command(run_dir, data_dir, "--checkpoint-every-steps", "1"))
    wait_for_checkpoint(run_dir, process, lambda step: step >= 1)
    process.kill()
    process.communicate()
    killed_at = checkpoints.checkpoint_steps(run_dir / "checkpoints")[-1]
    assert killed_at < STEPS, "killed too late to test a mid-epoch resume"

    # Resumed with checkpoints at epoch ends only, then SIGTERM after the first epoch's:
    # the step reached is saved, so no step is lost.
    process = start(resume + ["--checkpoint-every-steps", "0"])
    wait_for_checkpoint(run_dir, process, lambda step: step == STEPS)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert f"ckpt-{killed_at} at step {killed_at}" in stdout
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM: saving a checkpoint after the current step" in stderr and "Traceback" not in stderr
    stopped_at = int(stderr.split("Stopped by SIGTERM after step ")[1].split(";")[0])
    assert checkpoints.checkpoint_steps(run_dir / "checkpoints")[-1] == stopped_at
    assert stopped_at > STEPS or stopped_at == STEPS * EPOCHS

    result = run(resume)
    assert result.returncode == 0, result.stderr
    assert_same_weights(final_weights(run_dir), uninterrupted)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tiny_config, tmp_path, capfd):
    folder = tmp_path / "checkpoints"
    model = cyclegan.build_cyclegan(tiny_config)
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(checkpoints.make_checkpoint(model, step), str(folder), 3,
                                         checkpoint_name=checkpoints.CHECKPOINT_PREFIX)
    for number in (2, 4):
        step.assign(number)
        manager.save(checkpoint_number=number)
    data_file = next(folder.glob("ckpt-4.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:1000])  # truncated, as by a full disk

    step.assign(0)
    restored = checkpoints.restore_newest(checkpoints.make_checkpoint(model, step), folder)
    assert restored == str(folder / "ckpt-2") and int(step.numpy()) == 2
    assert "checkpoint " + str(folder / "ckpt-4") + " is damaged" in capfd.readouterr().err
    assert (folder / "damaged" / data_file.name).exists()  # kept aside, not deleted
    assert checkpoints.checkpoint_steps(folder) == [2]

    next(folder.glob("ckpt-2.data-*")).write_bytes(b"")
    with pytest.raises(checkpoints.TrainingStopped, match="No checkpoint in .* can be restored"):
        checkpoints.restore_newest(checkpoints.make_checkpoint(model, step), folder)


def test_a_nan_loss_stops_training_and_saves_nothing_after_it(tiny_config, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    # History and DiffAugment on: their graph-mode code runs inside fit here.
    config = tiny_config.replace(export=False, epochs=2, checkpoint_every_steps=1, steps_per_epoch=3,
                                 history_size=2, diffaugment="translation")
    compute_losses = cyclegan.CycleGAN.compute_losses
    calls = tf.Variable(0)

    def poisoned(self, photos, monets, training=False):
        losses = compute_losses(self, photos, monets, training)
        calls.assign_add(1)
        # From the fifth step on, the Monet critic's loss is NaN.
        poison = tf.where(calls >= 5, np.nan, 0.0)
        return {**losses, "monet_critic_loss": losses["monet_critic_loss"] + poison}

    monkeypatch.setattr(cyclegan.CycleGAN, "compute_losses", poisoned)
    with pytest.raises(checkpoints.TrainingStopped, match=r"monet_critic_loss became nan by step 5 .*ckpt-4"):
        train.train(config, run_dir)
    folder = run_dir / "checkpoints"
    assert checkpoints.checkpoint_steps(folder) == [2, 3, 4]
    reader = tf.train.load_checkpoint(str(folder))
    assert all(np.isfinite(reader.get_tensor(n)).all() for n in reader.get_variable_to_shape_map()
               if reader.get_variable_to_dtype_map()[n].is_floating)


def test_an_unwritable_or_full_run_folder_is_an_error_before_training(tiny_config, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=f"--run-dir {blocker}/run cannot be written"):
        train.train(tiny_config, blocker / "run")

    class Usage:
        free = 1000

    monkeypatch.setattr(train.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(OutputError, match=r"has 0.00 GiB free; this model's checkpoints need about"):
        train.train(tiny_config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
