"""The baselines from noise, `python -m monet_gan.dcgan`: DCGAN and the original GAN."""

import zipfile

import numpy as np
import pytest
import tensorflow as tf

from monet_gan import artifacts, dcgan, noise_gan


@pytest.mark.parametrize(("architecture", "size"), [("dcgan", 64), ("mlp", 32)])
def test_the_networks_paint_from_noise_at_their_size(architecture, size):
    generator, critic = noise_gan.build_networks(architecture, width=8)
    images = generator(np.random.default_rng(0).standard_normal((3, noise_gan.NOISE_DIM)).astype("float32"))
    assert images.shape == (3, size, size, 3)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    assert critic(images).shape == (3, 1)


def test_a_training_step_moves_both_networks_and_reports_both_losses():
    generator, critic = noise_gan.build_networks("dcgan", width=4)
    model = noise_gan.NoiseGAN(generator, critic)
    model.compile()
    before = [w.numpy().copy() for w in (generator.trainable_variables[0], critic.trainable_variables[0])]
    real = tf.random.uniform((4, 64, 64, 3), -1, 1, seed=1)
    logs = model.train_step(real)
    assert set(logs) == {"generator_loss", "critic_loss"} and all(np.isfinite(float(v)) for v in logs.values())
    after = [w.numpy() for w in (generator.trainable_variables[0], critic.trainable_variables[0])]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("architecture", ["dcgan", "mlp"])
def test_the_command_trains_resumes_and_writes_a_zip_of_samples(architecture, data_dir, tmp_path):
    run_dir = tmp_path / architecture
    flags = ["--architecture", architecture, "--data", str(data_dir), "--run-dir", str(run_dir),
             "--epochs", "2", "--batch-size", "3", "--width", "4", "--images", "5"]
    assert dcgan.main(flags) == 0
    artifacts.check_zip(run_dir / "images.zip", 5)  # five 256x256 RGB JPEGs
    with zipfile.ZipFile(run_dir / "images.zip") as archive:
        assert sorted(archive.namelist()) == [f"sample{i:05d}.jpg" for i in range(5)]
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3  # header and 2 epochs
    for picture in ("samples.png", "curves.png"):
        assert tf.io.decode_png((run_dir / picture).read_bytes()).shape[0] > 0
    assert (run_dir / "checkpoints" / "ckpt-4.index").exists()  # 2 epochs of 6 // 3 steps

    assert dcgan.main(["--resume", str(run_dir), "--epochs", "3"]) == 0
    assert (run_dir / "checkpoints" / "ckpt-6.index").exists()
    assert [row.split(",")[0] for row in (run_dir / "metrics.csv").read_text().splitlines()[1:]] == ["1", "2", "3"]


def test_bad_flags_and_an_occupied_run_folder_are_one_clear_line(data_dir, tmp_path, capsys):
    assert dcgan.main(["--epochs", "0", "--data", str(data_dir)]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert dcgan.main(["--time-budget", "soon", "--data", str(data_dir)]) == 2
    assert "--time-budget" in capsys.readouterr().err
    assert dcgan.main(["--data", str(data_dir), "--run-dir", str(tmp_path), "--batch-size", "50",
                       "--epochs", "1"]) == 2
    assert "--batch-size 50 is more than the 6 paintings" in capsys.readouterr().err
    small = ["--data", str(data_dir), "--run-dir", str(tmp_path), "--epochs", "1", "--width", "2", "--images", "1",
             "--batch-size", "3"]
    assert dcgan.main(small) == 0  # the refused start left nothing that stops a corrected one
    assert dcgan.main(small) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert dcgan.main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "it is not a monet_gan.dcgan run" in capsys.readouterr().err
