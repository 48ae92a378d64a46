import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_gan import config as config_lib
from monet_gan import conv_kernels, cyclegan, networks
from test_cyclegan import batch

# (stock layer, fastest layer, arguments, input shape): the three kinds the networks use.
LAYERS = [
    (keras.layers.Conv2D, conv_kernels.FastestConv2D,
     dict(filters=8, kernel_size=4, strides=2, padding="same", use_bias=False), (2, 16, 16, 5)),
    (keras.layers.Conv2D, conv_kernels.FastestConv2D,  # the critic's logits
     dict(filters=1, kernel_size=4, strides=1, padding="valid"), (2, 11, 11, 6)),
    (keras.layers.Conv2DTranspose, conv_kernels.FastestConv2DTranspose,
     dict(filters=3, kernel_size=4, strides=2, padding="same"), (2, 8, 7, 6)),
]


@pytest.fixture
def kernels(monkeypatch):
    """Times every op, however small, among the candidates a test names (one named is used
    untimed); forgets the choices."""
    monkeypatch.setattr(conv_kernels, "TUNE_MIN_FLOPS", 0)
    monkeypatch.setattr(conv_kernels, "TUNE_MIN_SECONDS", 0)
    monkeypatch.setattr(conv_kernels, "kernel_choices", {})

    def use(*candidates):
        monkeypatch.setattr(conv_kernels, "CANDIDATES", candidates)
        if len(candidates) == 1:
            monkeypatch.setattr(conv_kernels, "_choose", lambda *unused: candidates[0])
        conv_kernels.kernel_choices.clear()
        return conv_kernels.kernel_choices

    return use


def _output_and_gradients(layer, x):
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            weights = tf.random.stateless_normal(y.shape, seed=[1, 2])  # an uneven output gradient
            loss = tf.reduce_sum(y * weights)
        return [y] + tape.gradient(loss, [x] + layer.trainable_variables)

    return run()


@pytest.mark.parametrize("kind", conv_kernels.CANDIDATES)
@pytest.mark.parametrize("stock, fastest, arguments, shape", LAYERS)
def test_each_kernel_gives_keras_outputs_and_gradients(kind, stock, fastest, arguments, shape, kernels):
    choices = kernels(kind)
    keras.utils.set_random_seed(0)
    theirs, ours = stock(**arguments), fastest(**arguments)
    theirs.build(shape)
    ours.build(shape)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    rng = np.random.default_rng(0)
    weights = [0.1 * rng.standard_normal(w.shape).astype("float32") for w in theirs.weights]
    for layer in (theirs, ours):  # non-zero bias too
        layer.set_weights(weights)
    x = tf.constant(rng.standard_normal(shape), tf.float32)
    expected = _output_and_gradients(theirs, x)
    assert not choices  # Keras' layer chooses nothing
    got = _output_and_gradients(ours, x)
    assert sorted(k[0] for k in choices) == ["_conv", "_conv_filter_grad", "_conv_input_grad"]
    assert set(choices.values()) == {kind}
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-4)


def test_outside_training_they_are_keras_layers(kernels):
    choices = kernels("matmul")
    layer = conv_kernels.FastestConv2D(4, 4, strides=2, padding="same")
    x = tf.ones([1, 8, 8, 3])
    tf.function(lambda: layer(x, training=False))()  # inference and export
    layer(x, training=True)  # an eager step
    tf.function(lambda images: layer(images, training=True)).get_concrete_function(
        tf.TensorSpec([None, 8, 8, 3]))  # an unknown batch size
    assert choices == {}


def test_small_and_quick_ops_keep_tensorflows_kernel(monkeypatch):
    timed = []
    real_median_seconds = conv_kernels._median_seconds
    monkeypatch.setattr(conv_kernels, "_median_seconds",
                        lambda function, inputs: timed.append(function) or real_median_seconds(function, inputs))
    x = tf.ones([1, 8, 8, 3])
    for min_flops, min_seconds, times in ((5e6, 0.0, 0), (0, 60.0, 1), (0, 0.0, 3)):
        monkeypatch.setattr(conv_kernels, "TUNE_MIN_FLOPS", min_flops)  # this op: 6 kFLOP
        monkeypatch.setattr(conv_kernels, "TUNE_MIN_SECONDS", min_seconds)
        monkeypatch.setattr(conv_kernels, "kernel_choices", {})
        timed.clear()
        layer = conv_kernels.FastestConv2D(4, 4, strides=2, padding="same")
        tf.function(lambda: layer(x, training=True))()  # the forward op alone
        assert len(timed) == times  # none, TensorFlow's alone, all three
        if times < 3:
            assert list(conv_kernels.kernel_choices.values()) == ["tensorflow"]


def test_the_networks_keep_their_weights_with_either_layer():
    keras.utils.set_random_seed(0)
    stock = networks.build_generator(config_lib.tiny().replace(fastest_cpu_kernels=False))
    keras.utils.set_random_seed(0)
    fastest = networks.build_generator(config_lib.tiny())
    assert [w.path for w in fastest.weights] == [w.path for w in stock.weights]
    for a, b in zip(fastest.weights, stock.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(isinstance(layer, conv_kernels.FastestConv2DTranspose) for layer in fastest.layers)
    assert not any(isinstance(layer, conv_kernels.FastestConv2D) for layer in stock.layers)
    xla_step = networks.build_generator(config_lib.tiny().replace(jit_compile=True))
    assert not any(isinstance(layer, conv_kernels.FastestConv2D) for layer in xla_step.layers)


def test_a_tuned_step_takes_keras_step(kernels):
    """All three kernels timed for every op of the tiny CycleGAN; the step is Keras' step."""
    choices = kernels(*conv_kernels.CANDIDATES)
    config = config_lib.tiny().replace(dropout=0.0)
    photos, monets = batch(count=1)
    results = []
    for fastest in (False, True):
        keras.utils.set_random_seed(0)
        model = cyclegan.build_cyclegan(config.replace(fastest_cpu_kernels=fastest))
        # SGD: Adam would turn float rounding in near-zero gradients into whole steps.
        model.compile(*(keras.optimizers.SGD(0.1) for _ in range(4)), jit_compile=False)
        history = model.fit(tf.data.Dataset.from_tensors((photos, monets)), verbose=0, shuffle=False)
        results.append((history.history, [w.numpy() for w in model.weights]))
    (stock, stock_weights), (tuned, tuned_weights) = results
    # Each op of both generators and critics (forward, input and filter gradients) was timed.
    assert len(choices) >= 30 and set(choices.values()) <= set(conv_kernels.CANDIDATES)
    for name in cyclegan.LOSS_NAMES:
        np.testing.assert_allclose(tuned[name], stock[name], rtol=1e-5)
    for a, b in zip(tuned_weights, stock_weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
