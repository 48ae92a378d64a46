"""Neural style transfer (Gatys, Ecker and Bethge 2015): each photo's pixels are optimised so that
VGG19's features keep the photo's content (one deep layer) and take on the Gram-matrix
statistics of Monet paintings (five layers, the target averaged over all the paintings).

VGG19's ImageNet weights are not part of TensorFlow's wheel: `feature_network` reads Keras' own
weights file (`VGG19_WEIGHTS_URL`) from a path the user gives. The competition's Inception
network is never used here: it is the scoring network.
"""

import keras
import numpy as np
from keras import ops

if keras.backend.backend() == "tensorflow":  # the pixel optimisation uses GradientTape
    import tensorflow as tf

VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/{VGG19_WEIGHTS_FILE}"
CONTENT_LAYER = "block5_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def feature_network(weights: str | None) -> keras.Model:
    """VGG19 without its classifier, returning the style layers' and the content layer's
    features of [0, 255] RGB images. `weights`: Keras' weights file, or None (untrained)."""
    vgg = keras.applications.VGG19(include_top=False, weights=weights)
    vgg.trainable = False
    outputs = [vgg.get_layer(name).output for name in (*STYLE_LAYERS, CONTENT_LAYER)]
    return keras.Model(vgg.input, outputs, name="vgg19_features")


def features(network: keras.Model, images) -> list:
    """[style features..., content features] of float [0, 255] RGB images."""
    return network(keras.applications.vgg19.preprocess_input(ops.cast(images, "float32")), training=False)


def gram(feature_map):
    """[N, H, W, C] -> [N, C, C] channel correlations, divided by H * W."""
    shape = ops.shape(feature_map)
    return ops.einsum("nhwc,nhwd->ncd", feature_map, feature_map) / ops.cast(shape[1] * shape[2], "float32")


def style_target(network: keras.Model, paintings, batch_size: int = 16) -> list[np.ndarray]:
    """The mean Gram matrix of each style layer over uint8 paintings [N, H, W, 3], computed
    `batch_size` paintings at a time."""
    sums, count = None, 0
    for batch in (paintings[i:i + batch_size] for i in range(0, len(paintings), batch_size)):
        grams = [ops.convert_to_numpy(ops.sum(gram(f), axis=0)) for f in features(network, batch)[:-1]]
        sums = grams if sums is None else [s + g for s, g in zip(sums, grams)]
        count += len(batch)
    return [s / count for s in sums]


def stylize(network: keras.Model, photos: np.ndarray, style_grams: list, steps: int = 200,
            content_weight: float = 1e4, style_weight: float = 1e-2, learning_rate: float = 0.02) -> tuple:
    """uint8 photos [N, H, W, 3] -> (uint8 paintings, the first and last total loss).

    TensorFlow's style transfer tutorial's settings: the pixels, in [0, 1], start as the photos
    and Adam (beta1 0.99, epsilon 0.1) moves them for `steps` steps on
    content_weight * mean squared content difference
    + style_weight * mean over the style layers of the mean squared Gram difference.
    """
    pixels = tf.Variable(tf.cast(photos, tf.float32) / 255.0)
    content = features(network, photos)[-1]
    targets = [tf.constant(g[np.newaxis]) for g in style_grams]
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.99, epsilon=1e-1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            *style, now = features(network, pixels * 255.0)
            content_loss = tf.reduce_mean(tf.square(now - content))
            style_loss = tf.add_n([tf.reduce_mean(tf.square(gram(f) - t)) for f, t in zip(style, targets)])
            loss = content_weight * content_loss + style_weight * style_loss / len(targets)
        optimizer.apply_gradients([(tape.gradient(loss, pixels), pixels)])
        pixels.assign(tf.clip_by_value(pixels, 0.0, 1.0))
        return loss

    losses = [float(step()) for _ in range(steps)]
    paintings = tf.cast(tf.round(pixels * 255.0), tf.uint8).numpy()
    return paintings, (losses[0], losses[-1]) if losses else (float("nan"), float("nan"))
