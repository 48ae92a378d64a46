"""The yardstick of bench/speed.py is fair: the tutorial's step (bench/tutorial_baseline.py)
and monet_gan's compute the same losses and take the same step, so their speed ratio
compares two ways of doing the same work."""

import monet_gan  # noqa: F401  (first: it sets TensorFlow's environment, as for a user)
import keras
import numpy as np
import tensorflow as tf
from tutorial_baseline import TutorialStep

from monet_gan import config as config_lib
from monet_gan import cyclegan
from monet_gan.fused_adam import FusedAdam

CONFIG = config_lib.tiny().replace(dropout=0.0)


def smooth_images(seed: int) -> np.ndarray:
    """One 32 px image in [-1, 1]: a bilinear blow-up of 4x4 noise."""
    coarse = np.random.default_rng(seed).uniform(-1, 1, (1, 4, 4, 3)).astype("float32")
    return tf.image.resize(coarse, [32, 32]).numpy()


def test_the_step_matches_the_tutorial_step():
    """Batched calls and shared backward passes change nothing but the speed."""
    keras.utils.set_random_seed(0)
    ours, theirs = cyclegan.build_cyclegan(CONFIG), cyclegan.build_cyclegan(CONFIG)
    for a, b in zip(theirs.weights, ours.weights):
        a.assign(b)
    # The tutorial's gradients are those of the loss summed over the critic's patches, ours
    # of its mean: Adam without its epsilon is blind to that scale, so the steps must agree.
    # The tutorial updates with Keras' Adam, ours with the fused kernel: the same formula.
    ours.compile(*(FusedAdam(2e-4, beta_1=0.5, epsilon=1e-12) for _ in range(4)))
    theirs.compile(*(keras.optimizers.Adam(2e-4, beta_1=0.5, epsilon=1e-12) for _ in range(4)))
    photos, monets = smooth_images(0), smooth_images(1)
    initial = [w.numpy() for w in ours.weights]
    expected = TutorialStep(theirs)(photos, monets)
    history = ours.fit(tf.data.Dataset.from_tensors((photos, monets)), verbose=0, shuffle=False)
    for name, value in expected.items():
        np.testing.assert_allclose(history.history[name][0], value.numpy(), rtol=1e-5)
    moved = max(np.abs(a.numpy() - b).max() for a, b in zip(ours.weights, initial))
    assert moved > 1e-4
    for a, b in zip(theirs.weights, ours.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-7)
