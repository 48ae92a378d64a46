"""The neural style transfer baseline, `python -m monet_gan.nst`, on VGG19 with untrained weights
(its ImageNet weights cannot be downloaded here; the architecture and the optimisation are the same)."""

import numpy as np
import pytest

from monet_gan import artifacts, nst, style_transfer


@pytest.fixture(scope="module")
def network():
    return style_transfer.feature_network(None)


def test_a_gram_matrix_is_the_channel_correlation_per_pixel():
    feature_map = np.arange(2 * 3 * 2, dtype="float32").reshape(1, 2, 3, 2)
    flat = feature_map.reshape(6, 2)
    assert np.allclose(style_transfer.gram(feature_map)[0], flat.T @ flat / 6)


def test_the_style_target_is_the_mean_gram_over_the_paintings(network):
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 1, 32, 32, 3), dtype=np.uint8)
    [first, *_] = style_transfer.style_target(network, np.concatenate([a, b]), batch_size=1)
    grams = [np.asarray(style_transfer.gram(style_transfer.features(network, x)[0]))[0] for x in (a, b)]
    assert first.shape == (64, 64) and np.allclose(first, (grams[0] + grams[1]) / 2, rtol=1e-4, atol=1e-3)


def test_stylizing_lowers_the_loss_and_keeps_the_photos_shape(network):
    rng = np.random.default_rng(1)
    photos = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    target = style_transfer.style_target(network, rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    # An untrained VGG19's features are small: large weights make its gradients move the pixels.
    paintings, (first, last) = style_transfer.stylize(network, photos, target, steps=5,
                                                      content_weight=1e6, style_weight=1e6)
    assert paintings.shape == photos.shape and paintings.dtype == np.uint8
    assert last < first and not np.array_equal(paintings, photos)


def test_the_command_writes_a_zip_of_256_px_paintings(data_dir, tmp_path):
    out = tmp_path / "nst.zip"
    assert nst.main(["--vgg-weights", "random", "--data", str(data_dir), "--count", "3", "--size", "32",
                     "--steps", "2", "--batch-size", "2", "--out", str(out)]) == 0
    artifacts.check_zip(out, 3)


def test_missing_weights_say_where_to_get_them(data_dir, tmp_path, capsys):
    assert nst.main(["--vgg-weights", str(tmp_path / "vgg.h5"), "--data", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert f"--vgg-weights {tmp_path / 'vgg.h5'}: no such file" in err and style_transfer.VGG19_WEIGHTS_URL in err
    not_weights = tmp_path / "not.h5"
    not_weights.write_bytes(b"not an HDF5 file")
    assert nst.main(["--vgg-weights", str(not_weights), "--data", str(data_dir), "--count", "1",
                     "--out", str(tmp_path / "o.zip")]) == 2
    assert "not Keras' VGG19 weights file" in capsys.readouterr().err
