"""Baselines that paint from noise, not from photos: DCGAN and the original GAN.

- DCGAN (Radford et al. 2015): a noise vector to a 64x64 image through strided transposed
  convolutions with batch normalization and ReLU; the critic, strided convolutions with batch
  normalization and LeakyReLU (0.2), no pooling, one logit.
- The original GAN (Goodfellow et al. 2014), `architecture="mlp"`: the same task with fully
  connected networks, at 32x32.

Both train with binary cross-entropy from logits and Adam (2e-4, beta1 0.5), as the DCGAN
paper does. `NoiseGAN` is a `keras.Model` with its own `train_step` under TensorFlow (the
command, `monet_gan.dcgan`, refuses the JAX backend with a clear error).
"""

import keras
from keras import layers, ops

if keras.backend.backend() == "tensorflow":  # the training step is TensorFlow's (GradientTape)
    import tensorflow as tf

ARCHITECTURES = ("dcgan", "mlp")
IMAGE_SIZES = {"dcgan": 64, "mlp": 32}
NOISE_DIM = 100


def build_dcgan_generator(width: int = 64, noise_dim: int = NOISE_DIM) -> keras.Model:
    """noise [N, noise_dim] -> images [N, 64, 64, 3] in [-1, 1]."""
    init = keras.initializers.RandomNormal(0.0, 0.02)  # the paper's
    noise = keras.Input((noise_dim,), name="noise")
    x = layers.Dense(4 * 4 * width * 8, use_bias=False, kernel_initializer=init)(noise)
    x = layers.ReLU()(layers.BatchNormalization()(layers.Reshape((4, 4, width * 8))(x)))
    for filters in (width * 4, width * 2, width):  # 4 -> 8 -> 16 -> 32
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, kernel_initializer=init)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    images = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh", kernel_initializer=init)(x)
    return keras.Model(noise, images, name="generator")


def build_dcgan_critic(width: int = 64) -> keras.Model:
    """images [N, 64, 64, 3] -> logits [N, 1]."""
    init = keras.initializers.RandomNormal(0.0, 0.02)
    images = keras.Input((64, 64, 3), name="images")
    x = images
    for i, filters in enumerate((width, width * 2, width * 4, width * 8)):  # 64 -> 32 -> 16 -> 8 -> 4
        x = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=i == 0, kernel_initializer=init)(x)
        if i:  # the paper leaves the first layer unnormalized
            x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
    logits = layers.Dense(1, kernel_initializer=init)(layers.Flatten()(x))
    return keras.Model(images, logits, name="critic")


def build_mlp_generator(width: int = 256, noise_dim: int = NOISE_DIM, size: int = 32) -> keras.Model:
    """noise -> images [N, size, size, 3]: three hidden fully connected layers."""
    noise = keras.Input((noise_dim,), name="noise")
    x = noise
    for units in (width, width * 2, width * 4):
        x = layers.LeakyReLU(0.2)(layers.Dense(units)(x))
    images = layers.Reshape((size, size, 3))(layers.Dense(size * size * 3, activation="tanh")(x))
    return keras.Model(noise, images, name="generator")


def build_mlp_critic(width: int = 256, size: int = 32) -> keras.Model:
    """images [N, size, size, 3] -> logits [N, 1], with dropout as the original GAN's maxout
    discriminator had."""
    images = keras.Input((size, size, 3), name="images")
    x = layers.Flatten()(images)
    for units in (width * 4, width * 2, width):
        x = layers.Dropout(0.3)(layers.LeakyReLU(0.2)(layers.Dense(units)(x)))
    return keras.Model(images, layers.Dense(1)(x), name="critic")


def build_networks(architecture: str, width: int | None = None) -> tuple[keras.Model, keras.Model]:
    """(generator, critic) of `architecture`; `width`: filters (dcgan, default 64) or
    units (mlp, default 256) of the narrowest layer."""
    if architecture == "dcgan":
        return build_dcgan_generator(width or 64), build_dcgan_critic(width or 64)
    return build_mlp_generator(width or 256), build_mlp_critic(width or 256)


class NoiseGAN(keras.Model):
    """A generator from noise and its critic, trained against each other on real images in
    [-1, 1]: the non-saturating generator loss and the critic's BCE, both from logits."""

    def __init__(self, generator: keras.Model, critic: keras.Model, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.critic = generator, critic
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.noise_dim = generator.input_shape[-1]
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("generator_loss", "critic_loss")}

    def compile(self, learning_rate: float = 2e-4, **kwargs):
        super().compile(**kwargs)
        self.generator_optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.5)
        self.critic_optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.5)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    def train_step(self, real):
        noise = keras.random.normal((ops.shape(real)[0], self.noise_dim), seed=self.noise_seed)
        with tf.GradientTape(persistent=True) as tape:
            fake = self.generator(noise, training=True)
            real_logits = self.critic(real, training=True)
            fake_logits = self.critic(fake, training=True)
            critic_loss = (self.bce(ops.ones_like(real_logits), real_logits)
                           + self.bce(ops.zeros_like(fake_logits), fake_logits))
            generator_loss = self.bce(ops.ones_like(fake_logits), fake_logits)
        for loss, network, optimizer in ((critic_loss, self.critic, self.critic_optimizer),
                                         (generator_loss, self.generator, self.generator_optimizer)):
            gradients = tape.gradient(loss, network.trainable_variables)
            optimizer.apply_gradients(zip(gradients, network.trainable_variables))
        del tape
        self.trackers["generator_loss"].update_state(generator_loss)
        self.trackers["critic_loss"].update_state(critic_loss)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
