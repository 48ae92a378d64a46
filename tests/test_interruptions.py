"""Interruptions lose nothing: a killed, stopped or diverged run resumes to the weights an
uninterrupted run reaches, from the newest checkpoint that is whole."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from monet_gan import checkpoints, cyclegan, files, run_folder, train
from monet_gan.errors import OutputError, RunError, TrainingStopped

STEPS, EPOCHS = 6, 2  # per epoch; a run of 12 steps

# `python -m monet_gan.train ARGS` that sends itself SIGNAL right after it saved the
# checkpoint of step STEP: the interruption lands at the same step on every machine. With
# OUTPUT "lose-output", its stdout and stderr lose their reader first, as when the Ctrl-C
# that stops `train | tee log` ends the tee too.
SIGNALLED_TRAIN = textwrap.dedent("""
    import os, runpy, sys
    from monet_gan import checkpoints
    signum, at_step, output = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    save, sent = checkpoints.CheckpointCallback.save, []

    def save_then_signal(self, done):
        save(self, done)
        if done == at_step and not sent:  # once: a stop saves (that step again) too
            sent.append(done)
            if output == "lose-output":  # a pipe whose reading end is closed
                read_end, write_end = os.pipe()
                os.close(read_end)
                os.dup2(write_end, 1)
                os.dup2(write_end, 2)
            os.kill(os.getpid(), signum)

    checkpoints.CheckpointCallback.save = save_then_signal
    sys.argv = ["monet_gan.train", *sys.argv[4:]]
    runpy.run_module("monet_gan.train", run_name="__main__", alter_sys=True)
""")


def train_args(run_dir, data_dir, *extra):
    return ["--preset", "tiny", "--data", str(data_dir), "--run-dir", str(run_dir), "--no-export",
            "--seed", "7", "--epochs", str(EPOCHS), "--steps-per-epoch", str(STEPS), *extra]


def run(command, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def train_command(*args):
    return [sys.executable, "-m", "monet_gan.train", *args]


def signalled_train_command(signum, at_step, *args, lose_output=False):
    output = "lose-output" if lose_output else "keep-output"
    return [sys.executable, "-c", SIGNALLED_TRAIN, str(int(signum)), str(at_step), output, *args]


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
    result = run(train_command(*train_args(run_dir, data_dir)))
    assert result.returncode == 0, result.stderr
    weights = final_weights(run_dir)
    assert int(weights["step/.ATTRIBUTES/VARIABLE_VALUE"]) == STEPS * EPOCHS
    return weights


def test_sigkill_then_sigterm_then_resume_reaches_the_uninterrupted_weights(data_dir, tmp_path,
                                                                          uninterrupted):
    run_dir = tmp_path / "run"
    resume = ["--resume", str(run_dir)]

    # SIGKILL mid-epoch, after step 2: nothing can be saved; the newest checkpoint (every step) is used.
    killed = run(signalled_train_command(signal.SIGKILL, 2,
                                         *train_args(run_dir, data_dir, "--checkpoint-every-steps", "1")))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints.checkpoint_steps(run_dir / "checkpoints") == [1, 2]  # 3 kept, 2 written

    # Resumed with checkpoints at epoch ends only, then SIGTERM right after the first epoch's:
    # the step reached when it is seen (the next one) is saved, so no step is lost.
    stopped = run(signalled_train_command(signal.SIGTERM, STEPS, *resume, "--checkpoint-every-steps", "0"))
    assert "ckpt-2 at step 2 (0 epochs and 2 steps done)" in stopped.stdout
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "SIGTERM: saving a checkpoint after the current step" in stopped.stderr
    assert f"Stopped by SIGTERM after step {STEPS + 1}; saved" in stopped.stderr
    assert "Traceback" not in stopped.stderr and "error:" not in stopped.stderr
    assert checkpoints.checkpoint_steps(run_dir / "checkpoints") == [2, STEPS, STEPS + 1]

    result = run(train_command(*resume))
    assert result.returncode == 0, result.stderr
    assert_same_weights(final_weights(run_dir), uninterrupted)


def test_a_run_whose_output_lost_its_reader_still_saves_and_stops_on_sigterm(data_dir, tmp_path):
    # Its next progress line and the stop messages meet a broken pipe: dropped, not an error
    # that would end the run (exit code 1) before it saves.
    run_dir = tmp_path / "run"
    stopped = run(signalled_train_command(signal.SIGTERM, STEPS, *train_args(run_dir, data_dir),
                                          "--checkpoint-every-steps", "0", lose_output=True))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert checkpoints.checkpoint_steps(run_dir / "checkpoints") == [STEPS, STEPS + 1]


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
    with pytest.raises(RunError, match="No checkpoint in .* can be restored"):
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
    with pytest.raises(TrainingStopped, match=r"monet_critic_loss became nan by step 5 .*ckpt-4"):
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

    with monkeypatch.context() as patch:
        patch.setattr(files.shutil, "disk_usage", lambda path: Usage)
        with pytest.raises(OutputError, match=r"has 0.00 GiB free; this model's checkpoints \(two of them\) "
                                              r"need about .* choose another --run-dir"):
            train.train(tiny_config.replace(export=False), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    # The failed start wrote no config.json, so the same --run-dir takes the retry.
    assert not run_folder.holds_run(tmp_path / "run")
    train.train(tiny_config.replace(export=False), tmp_path / "run")
    assert run_folder.load_run_config(tmp_path / "run") == tiny_config.replace(export=False, backend="tensorflow")
