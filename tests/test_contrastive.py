"""Contrastive translation (CUT): PatchNCE against its formula, the model's losses, training,
resuming and exporting through the same run folder as the CycleGAN, and the JAX step."""

import os
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import smooth_images

from monet_gan import checkpoints, contrastive, networks, run_folder, train
from monet_gan import config as config_lib

CONFIG = config_lib.tiny().replace(translation_loss="patchnce", dropout=0.0)


def test_info_nce_is_the_cross_entropy_of_each_query_with_its_own_key():
    rng = np.random.default_rng(0)
    keys, queries = (rng.normal(size=(2, 5, 3)).astype("float32") for _ in range(2))
    keys /= np.linalg.norm(keys, axis=-1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=-1, keepdims=True)
    logits = queries @ keys.transpose(0, 2, 1) / contrastive.TEMPERATURE
    expected = [np.mean([np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(image)]) for image in logits]
    np.testing.assert_allclose(contrastive.info_nce(keys, queries), expected, rtol=1e-5)


def test_the_encoder_layers_are_the_generators_input_and_four_blocks_from_fine_to_coarse():
    for kind, sides in (("unet", [32, 16, 8, 4, 2]), ("resnet", [32, 32, 16, 8, 8])):
        generator = networks.build_generator(CONFIG.replace(generator=kind))
        names = networks.encoder_layers(generator)
        assert names[0] == "images" and len(names) == 5
        assert [generator.get_layer(n).output.shape[1] for n in names] == sides


def test_patch_nce_is_lower_for_a_painting_that_keeps_its_photos_patches():
    keras.utils.set_random_seed(0)
    model = contrastive.build_contrastive_gan(CONFIG)
    photos, others = smooth_images(2, seed=1), smooth_images(2, seed=2)
    features = model.encoder(photos)
    itself = model.patch_nce(features, features)
    another = model.patch_nce(features, model.encoder(others))
    assert itself.shape == (2,)
    assert float(np.max(itself)) < float(np.min(another))


def test_the_losses_are_the_critics_bce_plus_the_weighted_patch_nce():
    keras.utils.set_random_seed(0)
    model = contrastive.build_contrastive_gan(CONFIG.replace(nce_weight=2.0))
    photos, monets = smooth_images(2, seed=1), smooth_images(2, seed=2)
    losses = model.compute_losses(photos, monets, training=False)
    assert set(losses) == set(contrastive.LOSS_NAMES) and all(v.shape == (2,) for v in losses.values())
    logits = model.monet_critic(model.photo_to_monet(photos)).numpy()
    bce = np.mean(np.maximum(logits, 0) - logits + np.log1p(np.exp(-np.abs(logits))), axis=(1, 2, 3))
    np.testing.assert_allclose(losses["monet_generator_loss"], bce + losses["patch_nce_loss"], rtol=1e-5)
    # With PatchNCE at every place of every layer the draws do not matter: the loss is the mean
    # of NCE(x, G(x)) and NCE(y, G(y)), each nce_weight times the unweighted one.
    model.identity_nce = False
    contrastive_patches = contrastive.PATCHES
    try:
        contrastive.PATCHES = CONFIG.image_size**2
        photos_alone = model.compute_losses(photos, monets, training=False)["patch_nce_loss"]
        monets_alone = model.compute_losses(monets, photos, training=False)["patch_nce_loss"]
        model.identity_nce = True
        both = model.compute_losses(photos, monets, training=False)["patch_nce_loss"]
        unweighted = model.patch_nce(model.encoder(photos), model.encoder(model.photo_to_monet(photos)))
    finally:
        contrastive.PATCHES = contrastive_patches
    np.testing.assert_allclose(both, 0.5 * (photos_alone + monets_alone), rtol=1e-5)
    np.testing.assert_allclose(photos_alone, 2.0 * unweighted, rtol=1e-5)


def test_a_few_steps_lower_the_patch_nce_loss_and_train_all_three_networks():
    keras.utils.set_random_seed(0)
    model = contrastive.build_contrastive_gan(CONFIG)
    photos, monets = smooth_images(2, seed=1), smooth_images(2, seed=2)
    before = {name: [w.numpy() for w in getattr(model, name).trainable_weights] for name in contrastive.NETWORK_NAMES}
    first = float(np.mean(model.compute_losses(photos, monets, training=False)["patch_nce_loss"]))
    step = tf.function(model.train_step)
    for _ in range(30):
        step((photos, monets))
    last = float(np.mean(model.compute_losses(photos, monets, training=False)["patch_nce_loss"]))
    assert last < 0.8 * first, (first, last)
    for name, weights in before.items():
        moved = max(np.abs(w.numpy() - b).max() for w, b in zip(getattr(model, name).trainable_weights, weights))
        assert moved > 1e-4, name


def test_a_run_trains_resumes_to_the_uninterrupted_weights_and_exports(data_dir, tmp_path):
    config = CONFIG.replace(data_dir=str(data_dir), generator_average=0.9, epochs=2)
    whole = train.train(config.replace(export=False), tmp_path / "whole")
    train.train(config.replace(epochs=1, export=False), tmp_path / "halves")
    resumed = train.train(config, tmp_path / "halves", resume=True)
    for name in contrastive.NETWORK_NAMES:
        for a, b in zip(getattr(whole, name).weights, getattr(resumed, name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    header = (tmp_path / "halves" / run_folder.METRICS_FILE).read_text().splitlines()[0]
    assert header.split(",")[2:] == list(contrastive.LOSS_NAMES)  # after epoch and seconds
    # The newest checkpoint holds all three networks: a fresh model restores the resumed one.
    fresh = contrastive.build_contrastive_gan(config)
    newest = tf.train.latest_checkpoint(str(tmp_path / "halves" / run_folder.CHECKPOINT_DIR))
    checkpoints.make_checkpoint(fresh, tf.Variable(0, dtype=tf.int64)).restore(newest).assert_consumed()
    for name in contrastive.NETWORK_NAMES:
        for a, b in zip(getattr(fresh, name).weights, getattr(resumed, name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    with zipfile.ZipFile(tmp_path / "halves" / "images.zip") as archive:
        assert len(archive.namelist()) == 10
    assert checkpoints.checkpoint_steps(tmp_path / "halves" / run_folder.CHECKPOINT_DIR)[-1] == 4


JAX_SIDE = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    from monet_gan import config, contrastive, steps

    assert keras.backend.backend() == "jax", keras.backend.backend()
    contrastive.PATCHES = 32 * 32  # every place: the losses then do not depend on the draws
    data, results = np.load(sys.argv[1]), {}
    model = contrastive.build_contrastive_gan(config.tiny().replace(translation_loss="patchnce", dropout=0.0))
    model.compile(*(keras.optimizers.SGD(0.1, momentum=0.9) for _ in range(3)))
    for name in contrastive.NETWORK_NAMES:
        network = getattr(model, name)
        network.set_weights([data[f"{name}/{i}"] for i in range(len(network.weights))])
    step = steps.JaxStep(model)
    state = step.state()
    for i in range(2):
        state, losses = step(state, data[f"photos/{i}"], data[f"monets/{i}"])
        results.update({f"{name}/{i}": np.asarray(value) for name, value in losses.items()})
    step.write_back(state)
    for name in contrastive.NETWORK_NAMES:
        for i, weight in enumerate(getattr(model, name).weights):
            results[f"{name}/{i}"] = keras.ops.convert_to_numpy(weight.value)
    np.savez(sys.argv[2], **results)
""")


def test_the_jax_step_takes_the_tensorflow_step(tmp_path, monkeypatch):
    pytest.importorskip("jax", reason="jax[cpu] is in the test extra: pip install -e '.[test]'")
    monkeypatch.setattr(contrastive, "PATCHES", 32 * 32)
    keras.utils.set_random_seed(0)
    model = contrastive.build_contrastive_gan(CONFIG)
    model.compile(*(keras.optimizers.SGD(0.1, momentum=0.9) for _ in range(3)))
    inputs = {}
    for name in contrastive.NETWORK_NAMES:
        inputs.update({f"{name}/{i}": w for i, w in enumerate(getattr(model, name).get_weights())})
    for i in range(2):
        inputs[f"photos/{i}"], inputs[f"monets/{i}"] = smooth_images(1, 2 * i), smooth_images(1, 2 * i + 1)
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    jax_side = subprocess.Popen([sys.executable, "-c", JAX_SIDE, str(tmp_path / "inputs.npz"), str(tmp_path / "jax.npz")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    step = tf.function(model.train_step)
    expected = {}
    for i in range(2):
        for tracker in model.metrics:  # so the trackers hold this step's losses alone
            tracker.reset_state()
        losses = step((tf.constant(inputs[f"photos/{i}"]), tf.constant(inputs[f"monets/{i}"])))
        expected.update({f"{name}/{i}": float(value) for name, value in losses.items()})
    output, _ = jax_side.communicate(timeout=600)
    assert jax_side.returncode == 0, output
    got = np.load(tmp_path / "jax.npz")
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, err_msg=key)
    for name in contrastive.NETWORK_NAMES:
        for i, weight in enumerate(getattr(model, name).weights):
            np.testing.assert_allclose(got[f"{name}/{i}"], weight.numpy(), rtol=1e-5, atol=2e-5, err_msg=f"{name}/{i}")
