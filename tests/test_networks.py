import keras
import numpy as np
import pytest

from monet_gan import config as config_lib
from monet_gan import networks


def test_full_size_parameter_counts_match_the_tutorial():
    config = config_lib.kaggle()
    generator = networks.build_generator(config)
    critic = networks.build_discriminator(config)
    assert generator.count_params() == 54_414_979
    assert critic.count_params() == 2_765_569
    assert generator.output_shape == (None, 256, 256, 3)
    assert critic.output_shape == (None, 30, 30, 1)  # one logit per 70x70 patch


def test_instance_norm_is_keras_group_norm_per_channel():
    generator = networks.build_generator(config_lib.tiny())
    norms = [layer for layer in generator.layers if "norm" in layer.name]
    assert norms and all(isinstance(n, keras.layers.GroupNormalization) for n in norms)
    assert all(n.groups == n.input.shape[-1] for n in norms)  # groups=-1 -> one per channel


@pytest.mark.parametrize("size, depth, logits", [(32, 5, 2), (64, 6, 6), (128, 7, 14)])
def test_depth_follows_the_image_size(size, depth, logits):
    config = config_lib.tiny().replace(image_size=size)
    generator = networks.build_generator(config)
    critic = networks.build_discriminator(config)
    assert networks.generator_depth(size) == depth
    assert sum(layer.name.endswith("_conv") and layer.name.startswith("down")
               for layer in generator.layers) == depth
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    paintings = generator(images, training=True).numpy()
    assert paintings.shape == images.shape
    assert np.abs(paintings).max() <= 1.0 and paintings.std() > 0
    assert critic(images).shape == (2, logits, logits, 1)


def test_width_is_configurable():
    narrow = networks.build_generator(config_lib.tiny().replace(generator_filters=4))
    wide = networks.build_generator(config_lib.tiny().replace(generator_filters=8))
    assert 3.5 < wide.count_params() / narrow.count_params() < 4.1  # params grow ~ width^2


def test_filter_cap_stops_the_doubling_of_the_u_nets_filters():
    config = config_lib.tiny().replace(image_size=64, generator_filters=4)
    capped = networks.build_generator(config.replace(generator_filter_cap=4))
    down_filters = [capped.get_layer(f"down{i}_conv").filters for i in range(networks.generator_depth(64))]
    assert down_filters == [4, 8, 16, 16, 16, 16]
    assert capped.output_shape == networks.build_generator(config).output_shape


def test_resize_upsampling_replaces_each_transposed_conv_with_an_upsampling_and_a_3x3_conv():
    config = config_lib.tiny().replace(image_size=64, generator_filters=4)
    transposed = networks.build_generator(config)
    resized = networks.build_generator(config.replace(upsample="resize"))
    ups = [layer for layer in resized.layers if isinstance(layer, keras.layers.UpSampling2D)]
    assert len(ups) == networks.generator_depth(64)  # every up block and the RGB layer
    assert not [layer for layer in resized.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    # Each 4x4 kernel became a 3x3 one: 9/16 of the up blocks' weights (the RGB layer's 3 biases aside).
    transposed_weights, resized_weights = (
        sum(layer.count_params() for layer in model.layers
            if layer.name.startswith(("up", "to_rgb")) and layer.name.endswith("_conv"))
        for model in (transposed, resized))
    assert (resized_weights - 3) * 16 == (transposed_weights - 3) * 9
    assert resized.output_shape == transposed.output_shape
    images = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    assert resized(images).shape == images.shape


def test_a_generator_for_any_size_takes_the_trained_weights_and_larger_images():
    config = config_lib.tiny()
    generator = networks.build_generator(config)
    any_size = networks.build_generator(config, any_size=True)
    any_size.set_weights(generator.get_weights())
    images = np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(any_size(images), generator(images), atol=1e-6)
    assert any_size(np.zeros((1, 64, 96, 3), "float32")).shape == (1, 64, 96, 3)
