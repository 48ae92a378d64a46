"""The CycleGAN model: two generators and two critics trained together.

Names, mapped once to the CycleGAN paper (Zhu et al. 2017):
- `photo_to_monet` is G: X -> Y (photos X to Monet paintings Y);
- `monet_to_photo` is F: Y -> X;
- `monet_critic` is D_Y, telling real paintings from G's;
- `photo_critic` is D_X, telling real photos from F's.
"""

import keras
import tensorflow as tf

from monet_gan import networks
from monet_gan.config import Config

LOSS_NAMES = (
    "monet_generator_loss", "photo_generator_loss", "monet_critic_loss", "photo_critic_loss",
    "cycle_loss", "identity_loss",
)


def _per_example_mean(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))


def adversarial_loss(logits: tf.Tensor, is_real: bool) -> tf.Tensor:
    """Per-example BCE from logits against all-real or all-fake patch labels."""
    labels = tf.ones_like(logits) if is_real else tf.zeros_like(logits)
    return _per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))


def l1_loss(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-example mean absolute difference."""
    return _per_example_mean(tf.abs(a - b))


class CycleGAN(keras.Model):
    """Coordinates the four networks; `train_step` updates all of them once per batch.

    Each batch is a pair (photos, monets). Losses are per-example means over pixels or
    patches, summed over the replica's examples and divided by the *global* batch
    (`tf.nn.compute_average_loss`): gradients are summed across replicas, so this gives
    the global-batch mean under any number of replicas.
    """

    def __init__(self, photo_to_monet, monet_to_photo, monet_critic, photo_critic,
                 cycle_weight: float = 10.0, identity_weight: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.photo_to_monet = photo_to_monet
        self.monet_to_photo = monet_to_photo
        self.monet_critic = monet_critic
        self.photo_critic = photo_critic
        self.cycle_weight = cycle_weight
        self.identity_weight = identity_weight
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    def compile(self, photo_to_monet_optimizer, monet_to_photo_optimizer,
                monet_critic_optimizer, photo_critic_optimizer, **kwargs):
        super().compile(**kwargs)
        self.photo_to_monet_optimizer = photo_to_monet_optimizer
        self.monet_to_photo_optimizer = monet_to_photo_optimizer
        self.monet_critic_optimizer = monet_critic_optimizer
        self.photo_critic_optimizer = photo_critic_optimizer
        # Create the optimizer slots now, so a checkpoint restores them before step one.
        for optimizer, network in self._optimized_networks():
            optimizer.build(network.trainable_variables)

    def _optimized_networks(self):
        return [
            (self.photo_to_monet_optimizer, self.photo_to_monet),
            (self.monet_to_photo_optimizer, self.monet_to_photo),
            (self.monet_critic_optimizer, self.monet_critic),
            (self.photo_critic_optimizer, self.photo_critic),
        ]

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, photos, training=False):
        return self.photo_to_monet(photos, training=training)

    def compute_losses(self, photos, monets, training=True) -> dict:
        """The per-example losses of one batch, keyed like `LOSS_NAMES`."""
        fake_monets = self.photo_to_monet(photos, training=training)  # G(x)
        cycled_photos = self.monet_to_photo(fake_monets, training=training)  # F(G(x))
        fake_photos = self.monet_to_photo(monets, training=training)  # F(y)
        cycled_monets = self.photo_to_monet(fake_photos, training=training)  # G(F(y))
        same_monets = self.photo_to_monet(monets, training=training)  # G(y)
        same_photos = self.monet_to_photo(photos, training=training)  # F(x)

        real_monet_logits = self.monet_critic(monets, training=training)
        fake_monet_logits = self.monet_critic(fake_monets, training=training)
        real_photo_logits = self.photo_critic(photos, training=training)
        fake_photo_logits = self.photo_critic(fake_photos, training=training)

        # Cycle consistency, both directions (paper eq. 2), shared by both generators.
        cycle = self.cycle_weight * (l1_loss(photos, cycled_photos) + l1_loss(monets, cycled_monets))
        identity_monet = self.identity_weight * l1_loss(monets, same_monets)
        identity_photo = self.identity_weight * l1_loss(photos, same_photos)
        return {
            "monet_generator_loss": adversarial_loss(fake_monet_logits, True) + cycle + identity_monet,
            "photo_generator_loss": adversarial_loss(fake_photo_logits, True) + cycle + identity_photo,
            "monet_critic_loss": 0.5 * (adversarial_loss(real_monet_logits, True)
                                        + adversarial_loss(fake_monet_logits, False)),
            "photo_critic_loss": 0.5 * (adversarial_loss(real_photo_logits, True)
                                        + adversarial_loss(fake_photo_logits, False)),
            "cycle_loss": cycle,
            "identity_loss": identity_monet + identity_photo,
        }

    def train_step(self, data):
        photos, monets = data
        with tf.GradientTape(persistent=True) as tape:
            per_example = self.compute_losses(photos, monets, training=True)
            # Sum over this replica's examples / global batch (see the class docstring).
            losses = {k: tf.nn.compute_average_loss(v) for k, v in per_example.items()}
            # The first four losses are the objectives of the networks in `_optimized_networks`.
            # scale_loss is the identity but for float16 loss scaling (LossScaleOptimizer).
            objectives = [optimizer.scale_loss(losses[name])
                          for name, (optimizer, _) in zip(LOSS_NAMES, self._optimized_networks())]

        for objective, (optimizer, network) in zip(objectives, self._optimized_networks()):
            variables = network.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
        del tape

        # Trackers average the per-replica means; replicas hold equal batches.
        for name, values in per_example.items():
            self.trackers[name].update_state(tf.reduce_mean(values))
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def build_cyclegan(config: Config) -> CycleGAN:
    """The four networks and their Adam optimizers, compiled (call inside the strategy's scope).

    Sets Keras' global dtype policy to `config.precision` first: the networks compute in
    it, while their variables, final tanh, critic logits and all losses stay float32.
    """
    keras.mixed_precision.set_global_policy(config.precision)
    model = CycleGAN(
        photo_to_monet=networks.build_generator(config, name="photo_to_monet"),
        monet_to_photo=networks.build_generator(config, name="monet_to_photo"),
        monet_critic=networks.build_discriminator(config, name="monet_critic"),
        photo_critic=networks.build_discriminator(config, name="photo_critic"),
        cycle_weight=config.cycle_weight,
        identity_weight=config.identity_weight,
    )

    def adam(name):
        optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1, name=name)
        if config.precision == "mixed_float16":  # float16 gradients underflow without it
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_scaled")
        return optimizer

    model.compile(
        photo_to_monet_optimizer=adam("photo_to_monet_adam"),
        monet_to_photo_optimizer=adam("monet_to_photo_adam"),
        monet_critic_optimizer=adam("monet_critic_adam"),
        photo_critic_optimizer=adam("photo_critic_adam"),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model
