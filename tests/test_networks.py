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
