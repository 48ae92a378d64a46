import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_gan import config as config_lib
from monet_gan import contrastive, cyclegan, data, train
from monet_gan.fused_adam import FusedAdam

CONFIG = config_lib.tiny().replace(dropout=0.0)  # dropout would differ between replicas


def batch(size=32, count=2, seed=0):
    """Smooth random images in [-1, 1]: bilinear blow-ups of 4x4 noise."""
    rng = np.random.default_rng(seed)

    def smooth():
        coarse = rng.uniform(-1, 1, (count, 4, 4, 3)).astype("float32")
        return tf.image.resize(coarse, [size, size]).numpy()

    return smooth(), smooth()


def test_losses_match_the_formulas_on_known_inputs():
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(CONFIG)
    photos, monets = batch()
    losses = model.compute_losses(photos, monets, training=False)
    assert set(losses) == set(cyclegan.LOSS_NAMES)
    assert all(v.shape == (2,) for v in losses.values())
    # Recompute the monet generator's objective by hand: BCE(1, D_Y(G(x))) + cycle + identity.
    fake = model.photo_to_monet(photos)
    logits = model.monet_critic(fake).numpy()
    bce = np.mean(np.maximum(logits, 0) - logits + np.log1p(np.exp(-np.abs(logits))), axis=(1, 2, 3))
    cycle = 10 * (np.abs(photos - model.monet_to_photo(fake)).mean(axis=(1, 2, 3))
                  + np.abs(monets - model.photo_to_monet(model.monet_to_photo(monets))).mean(axis=(1, 2, 3)))
    identity = 5 * np.abs(monets - model.photo_to_monet(monets)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(losses["cycle_loss"], cycle, rtol=1e-5)
    np.testing.assert_allclose(losses["monet_generator_loss"], bce + cycle + identity, rtol=1e-5)


def test_without_an_identity_loss_the_losses_are_the_others_alone():
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(CONFIG)
    photos, monets = batch()
    with_identity = model.compute_losses(photos, monets, training=False)
    model.identity_weight = 0.0  # the same networks; G(y) and F(x) are then not computed
    without = model.compute_losses(photos, monets, training=False)
    np.testing.assert_array_equal(without["identity_loss"], np.zeros(2))
    np.testing.assert_allclose(without["cycle_loss"], with_identity["cycle_loss"], rtol=1e-5)
    dropped = sum(with_identity[f"{name}_generator_loss"] - without[f"{name}_generator_loss"]
                  for name in ("monet", "photo"))
    np.testing.assert_allclose(dropped, with_identity["identity_loss"], rtol=1e-5)
    assert float(np.min(with_identity["identity_loss"])) > 0.0


def sample_images(domain, count=4):
    """Real images from the shipped sample, at the tiny size."""
    files = data.domain_files(str(config_lib.SAMPLE_DATA_DIR), domain)
    images = data.read_images(files, CONFIG.image_size).map(data.to_float).take(count)
    return np.stack(list(images.as_numpy_iterator()))


def test_a_few_steps_lower_the_cycle_loss():
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(config_lib.tiny())
    photos, monets = sample_images("photo"), sample_images("monet")
    def cycle_loss():
        return float(tf.reduce_mean(model.compute_losses(photos, monets, training=False)["cycle_loss"]))

    before = cycle_loss()
    history = model.fit(tf.data.Dataset.from_tensors((photos, monets)).repeat(30), verbose=0, shuffle=False)
    after = cycle_loss()
    # Adam at 2e-4 moves tiny networks slowly: 30 steps take about 3% off (7.85 -> 7.63).
    assert after < 0.985 * before
    assert set(history.history) == set(cyclegan.LOSS_NAMES)
    assert all(np.isfinite(v[0]) for v in history.history.values())


def _one_step(strategy, initial_weights, optimizer, config=CONFIG):
    photos, monets = batch()
    with strategy.scope():
        model = train.build_model(config)  # Adam, compiled to a graph as in training
        if optimizer == "sgd":  # eager: six times quicker to run than to trace under 2 replicas
            model.compile(*(keras.optimizers.SGD(0.1) for _ in model.NETWORK_NAMES), run_eagerly=True)
    for variable, value in zip(model.weights, initial_weights):
        variable.assign(value)
    history = model.fit(tf.data.Dataset.from_tensors((photos, monets)), verbose=0, shuffle=False)
    return [w.numpy() for w in model.weights], history.history


@pytest.fixture(scope="module")
def two_replicas():
    # One instance for the module: separate MirroredStrategy objects in one process can
    # reuse collective keys and then mismatch.
    return tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_replicas_take_the_same_step_as_one(optimizer, two_replicas):
    """Losses are averaged over the global batch: 2 replicas x 1 image == 1 replica x 2.

    SGD makes a wrong gradient scale visible (Adam alone would normalise it away).
    """
    keras.utils.set_random_seed(0)
    initial = [w.numpy() for w in cyclegan.build_cyclegan(CONFIG).weights]
    one_weights, one_losses = _one_step(tf.distribute.get_strategy(), initial, optimizer)
    assert two_replicas.num_replicas_in_sync == 2
    two_weights, two_losses = _one_step(two_replicas, initial, optimizer)

    moved = max(np.abs(a - b).max() for a, b in zip(one_weights, initial))
    assert moved > 1e-4  # the step did change the weights
    for a, b in zip(one_weights, two_weights):
        np.testing.assert_allclose(a, b, atol=1e-5 if optimizer == "sgd" else 1e-6)
    for name in cyclegan.LOSS_NAMES:
        np.testing.assert_allclose(one_losses[name], two_losses[name], rtol=1e-5)


def test_two_replicas_take_the_same_contrastive_step_as_one(two_replicas, monkeypatch):
    """The same for contrastive translation (CUT), with PatchNCE at every place of every layer,
    so that the replicas' own patch draws do not matter."""
    monkeypatch.setattr(contrastive, "PATCHES", CONFIG.image_size**2)
    config = CONFIG.replace(translation_loss="patchnce")
    keras.utils.set_random_seed(0)
    initial = [w.numpy() for w in train.build_model(config).weights]
    one_weights, one_losses = _one_step(tf.distribute.get_strategy(), initial, "sgd", config)
    two_weights, two_losses = _one_step(two_replicas, initial, "sgd", config)
    assert max(np.abs(a - b).max() for a, b in zip(one_weights, initial)) > 1e-4
    for a, b in zip(one_weights, two_weights):  # some weights reach tens: rounding is relative
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for name in contrastive.LOSS_NAMES:
        np.testing.assert_allclose(one_losses[name], two_losses[name], rtol=1e-5)


@pytest.fixture
def restore_float32():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_outputs_and_losses(precision, restore_float32):
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(CONFIG.replace(precision=precision))
    photos, monets = batch()
    assert model.photo_to_monet.layers[1].compute_dtype == precision.split("_")[1]
    assert model.photo_to_monet(photos).dtype == tf.float32  # the tanh
    assert model.monet_critic(monets).dtype == tf.float32  # the logits
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    scaled = isinstance(model.photo_to_monet_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")
    before = [w.numpy() for w in model.photo_to_monet.trainable_weights]
    # float16 skips the first steps while the loss scale (from 2^15) finds gradients that fit.
    history = model.fit(tf.data.Dataset.from_tensors((photos, monets)).repeat(8), verbose=0, shuffle=False)
    assert all(np.isfinite(v[0]) for v in history.history.values())
    after = model.photo_to_monet.trainable_weights
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, after))


def test_xla_and_steps_per_execution_take_the_same_steps():
    photos, monets = batch()
    batches = tf.data.Dataset.from_tensors((photos, monets)).repeat(4)
    results = []
    for options in ({}, {"jit_compile": True, "steps_per_execution": 2}):
        keras.utils.set_random_seed(0)
        model = cyclegan.build_cyclegan(CONFIG.replace(**options))
        history = model.fit(batches, verbose=0, shuffle=False)
        assert int(model.photo_to_monet_optimizer.iterations.numpy()) == 4
        results.append((history.history, [w.numpy() for w in model.weights]))
    (plain, plain_weights), (xla, xla_weights) = results
    for name in cyclegan.LOSS_NAMES:
        np.testing.assert_allclose(plain[name], xla[name], rtol=1e-4)
    for a, b in zip(plain_weights, xla_weights):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fused_adam_takes_keras_adams_steps_and_restores_its_checkpoints(tmp_path):
    """Same updates as `keras.optimizers.Adam` over several steps (with a decaying rate), and a
    checkpoint of Keras' Adam restores into it: runs trained before it existed resume."""
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=shape).astype("float32") for shape in [(4, 4, 3, 8), (8,)]]
    gradients = [[rng.normal(size=x.shape).astype("float32") for x in initial] for _ in range(5)]
    schedule = cyclegan.ConstantThenLinearDecay(2e-2, total_steps=5, decay_start=2)

    def optimizer_and_weights(make):
        variables = [keras.Variable(x, name=f"weight{i}") for i, x in enumerate(initial)]
        optimizer = make(schedule, beta_1=0.5, name="adam")
        optimizer.build(variables)
        return optimizer, variables

    results = []
    for make in (keras.optimizers.Adam, FusedAdam):
        optimizer, variables = optimizer_and_weights(make)
        step = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)))
        for grads in gradients:
            step([tf.constant(g) for g in grads])
        results.append(([v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]))
        if make is keras.optimizers.Adam:
            saved = tf.train.Checkpoint(optimizer=optimizer).write(str(tmp_path / "keras_adam"))
    (keras_weights, keras_slots), (fused_weights, fused_slots) = results
    moved = max(np.abs(w - x).max() for w, x in zip(fused_weights, initial))
    assert moved > 1e-2
    for a, b in zip(keras_weights, fused_weights):  # round-off of the updates' order only
        np.testing.assert_allclose(a, b, atol=1e-5 * moved)
    # The kernel takes 1 - beta_2 in float32 (0.00099998713, Keras 0.001): velocities
    # differ by that 1.3e-5 relatively, momentums (1 - beta_1 = 0.5) by round-off.
    assert len(keras_slots) == len(fused_slots)
    for a, b in zip(keras_slots, fused_slots):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-9)

    restored, _ = optimizer_and_weights(FusedAdam)
    tf.train.Checkpoint(optimizer=restored).read(saved).assert_consumed()
    assert int(restored.iterations.numpy()) == 5
    for a, b in zip(keras_slots, restored.variables):
        np.testing.assert_array_equal(a, b.numpy())
