"""The CycleGAN model: two generators and two critics trained together.

Names, mapped once to the CycleGAN paper (Zhu et al. 2017):
- `photo_to_monet` is G: X -> Y (photos X to Monet paintings Y);
- `monet_to_photo` is F: Y -> X;
- `monet_critic` is D_Y, telling real paintings from G's;
- `photo_critic` is D_X, telling real photos from F's.
Each network `name` has its optimizer in `name_optimizer`, and a checkpoint keeps both under
those names (`checkpoints.make_checkpoint`).
"""

import keras
import tensorflow as tf

from monet_gan import diffaugment, networks
from monet_gan.config import Config, diffaugment_parts
from monet_gan.errors import ConfigError
from monet_gan.fused_adam import FusedAdam

NETWORK_NAMES = ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic")
# The first four are the objectives of the networks of NETWORK_NAMES, in that order.
LOSS_NAMES = (
    "monet_generator_loss", "photo_generator_loss", "monet_critic_loss", "photo_critic_loss",
    "cycle_loss", "identity_loss",
)


def _per_example_mean(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))


def adversarial_loss(logits: tf.Tensor, is_real: bool, kind: str = "bce") -> tf.Tensor:
    """Per-example loss of patch logits against all-real or all-fake labels: BCE from
    logits (the tutorial) or least squares (LSGAN, as the CycleGAN paper trains)."""
    labels = tf.ones_like(logits) if is_real else tf.zeros_like(logits)
    if kind == "lsgan":
        return _per_example_mean(tf.square(logits - labels))
    return _per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))


class ImageHistory:
    """The CycleGAN paper's image pool (Shrivastava et al. 2017): the critic sees, for each
    generated image, with probability 1/2 an older generated image from a pool of `size`
    instead (the new one takes its place). Until the pool is full, images go in and pass.

    Its variables are per replica (each replica keeps its own pool) and are checkpointed;
    a multi-replica checkpoint keeps the first replica's pool.
    """

    def __init__(self, size: int, image_size: int, name: str):
        self.size = size
        per_replica = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.images = tf.Variable(tf.zeros([size, image_size, image_size, 3]), name=f"{name}_images",
                                  **per_replica)
        self.count = tf.Variable(0, dtype=tf.int32, name=f"{name}_count", **per_replica)

    def query(self, fakes: tf.Tensor, seed) -> tf.Tensor:
        fakes = tf.stop_gradient(tf.cast(fakes, tf.float32))
        choices = keras.random.uniform([fakes.shape[0]], seed=seed)
        slots = diffaugment.random_ints([fakes.shape[0]], self.size, seed)
        outputs = []
        for i in range(fakes.shape[0]):  # the per-replica batch: small and static
            fake = fakes[i]

            def fill(fake=fake):
                self.images.scatter_nd_update([[self.count]], fake[None])
                self.count.assign_add(1)
                return fake

            def swap(fake=fake, slot=slots[i]):
                old = tf.identity(self.images[slot])
                with tf.control_dependencies([old]):
                    self.images.scatter_nd_update([[slot]], fake[None])
                return old

            full = self.count >= self.size
            outputs.append(tf.cond(full, lambda: tf.cond(choices[i] < 0.5, swap, lambda: fake), fill))
        return tf.stack(outputs)

    @property
    def variables(self):
        return [self.images, self.count]


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
                 cycle_weight: float = 10.0, identity_weight: float = 5.0,
                 adversarial: str = "bce", diffaugment_policy: tuple[str, ...] = (),
                 diffaugment_strength: float = 1.0, history_size: int = 0, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.photo_to_monet = photo_to_monet
        self.monet_to_photo = monet_to_photo
        self.monet_critic = monet_critic
        self.photo_critic = photo_critic
        self.cycle_weight = cycle_weight
        self.identity_weight = identity_weight
        self.adversarial = adversarial
        self.diffaugment_policy = tuple(diffaugment_policy)  # parts, in order (config.diffaugment_parts)
        self.diffaugment_strength = diffaugment_strength
        # DiffAugment's and the image history's random draws; its state is checkpointed.
        self.seed_generator = keras.random.SeedGenerator(seed, name="cyclegan_seed")
        size = photo_to_monet.input_shape[1]
        self.histories = ({"monet": ImageHistory(history_size, size, "monet_history"),
                           "photo": ImageHistory(history_size, size, "photo_history")}
                          if history_size else None)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        # Built with its networks (functional models, built), so that `fit` under a strategy
        # does not try to build it by calling it: a CycleGAN has no single call.
        self.built = True

    def compile(self, photo_to_monet_optimizer, monet_to_photo_optimizer,
                monet_critic_optimizer, photo_critic_optimizer, **kwargs):
        super().compile(**kwargs)
        self.photo_to_monet_optimizer = photo_to_monet_optimizer
        self.monet_to_photo_optimizer = monet_to_photo_optimizer
        self.monet_critic_optimizer = monet_critic_optimizer
        self.photo_critic_optimizer = photo_critic_optimizer
        # Create the optimizer slots now, so a checkpoint restores them before step one.
        for optimizer, network in self.optimized_networks():
            optimizer.build(network.trainable_variables)

    def optimized_networks(self) -> list:
        """(optimizer, network) pairs, in the order of NETWORK_NAMES."""
        return [(getattr(self, f"{name}_optimizer"), getattr(self, name)) for name in NETWORK_NAMES]

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_losses(self, photos, monets, training=True) -> dict:
        """The per-example losses of one batch, keyed like `LOSS_NAMES`."""
        images = self._translate(photos, monets, training)
        logits = self._judge(photos, monets, images["fake_monets"], images["fake_photos"], training)

        def adversarial(name, is_real):
            return adversarial_loss(logits[name], is_real, self.adversarial)

        # Cycle consistency, both directions (paper eq. 2), shared by both generators.
        cycle = self.cycle_weight * (l1_loss(photos, images["cycled_photos"])
                                     + l1_loss(monets, images["cycled_monets"]))
        identity_monet = self.identity_weight * l1_loss(monets, images["same_monets"])
        identity_photo = self.identity_weight * l1_loss(photos, images["same_photos"])
        return {
            "monet_generator_loss": adversarial("fake_monets", True) + cycle + identity_monet,
            "photo_generator_loss": adversarial("fake_photos", True) + cycle + identity_photo,
            "monet_critic_loss": 0.5 * (adversarial("real_monets", True)
                                        + adversarial("critics_fake_monets", False)),
            "photo_critic_loss": 0.5 * (adversarial("real_photos", True)
                                        + adversarial("critics_fake_photos", False)),
            "cycle_loss": cycle,
            "identity_loss": identity_monet + identity_photo,
        }

    def _translate(self, photos, monets, training) -> dict:
        """G(x), F(y), their cycles F(G(x)) and G(F(y)), and the identities G(y), F(x)."""
        # G(x) with G(y), and F(y) with F(x), each pair in one call of twice the batch: the
        # same values, but one filter gradient per pair instead of two held at once, which
        # lowers peak memory at 256 px by about 250 MiB (bench/RESULTS.md).
        fake_monets, same_monets = tf.split(
            self.photo_to_monet(tf.concat([photos, monets], 0), training=training), 2)
        fake_photos, same_photos = tf.split(
            self.monet_to_photo(tf.concat([monets, photos], 0), training=training), 2)
        return {"fake_monets": fake_monets, "same_monets": same_monets,
                "fake_photos": fake_photos, "same_photos": same_photos,
                "cycled_photos": self.monet_to_photo(fake_monets, training=training),
                "cycled_monets": self.photo_to_monet(fake_photos, training=training)}

    def _judge(self, photos, monets, fake_monets, fake_photos, training) -> dict:
        """The critics' patch logits of real and generated images. The critics' own losses
        judge older fakes instead when there is a history ("critics_fake_*": its images carry
        no gradient to the generators, whose losses use the current fakes)."""
        def critic(network, images):  # DiffAugment, when on, before every critic call
            if self.diffaugment_policy and training:
                images = diffaugment.diff_augment(images, self.diffaugment_policy,
                                                  self.diffaugment_strength, self.seed_generator)
            return network(images, training=training)

        logits = {"real_monets": critic(self.monet_critic, monets),
                  "fake_monets": critic(self.monet_critic, fake_monets),
                  "real_photos": critic(self.photo_critic, photos),
                  "fake_photos": critic(self.photo_critic, fake_photos)}
        logits["critics_fake_monets"] = logits["fake_monets"]
        logits["critics_fake_photos"] = logits["fake_photos"]
        if self.histories and training:
            logits["critics_fake_monets"] = critic(
                self.monet_critic, self.histories["monet"].query(fake_monets, self.seed_generator))
            logits["critics_fake_photos"] = critic(
                self.photo_critic, self.histories["photo"].query(fake_photos, self.seed_generator))
        return logits

    def train_step(self, data):
        photos, monets = data
        with tf.GradientTape(persistent=True) as tape:
            per_example = self.compute_losses(photos, monets, training=True)
            # Sum over this replica's examples / global batch (see the class docstring).
            losses = {k: tf.nn.compute_average_loss(v) for k, v in per_example.items()}
            # scale_loss is the identity but for float16 loss scaling (LossScaleOptimizer).
            objectives = [optimizer.scale_loss(losses[name])
                          for name, (optimizer, _) in zip(LOSS_NAMES, self.optimized_networks())]

        for objective, (optimizer, network) in zip(objectives, self.optimized_networks()):
            variables = network.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
        del tape

        # Trackers average the per-replica means; replicas hold equal batches.
        for name, values in per_example.items():
            self.trackers[name].update_state(tf.reduce_mean(values))
        return {name: tracker.result() for name, tracker in self.trackers.items()}


class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`rate` until step `decay_start`, then linearly down to 0 at `total_steps` (the
    CycleGAN paper: constant for 100 epochs, then to zero over 100)."""

    def __init__(self, rate: float, total_steps: int, decay_start: int):
        self.rate, self.total_steps, self.decay_start = rate, total_steps, decay_start

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        remaining = (self.total_steps - step) / max(self.total_steps - self.decay_start, 1)
        return self.rate * tf.clip_by_value(remaining, 0.0, 1.0)

    def get_config(self):
        return {"rate": self.rate, "total_steps": self.total_steps, "decay_start": self.decay_start}


def build_cyclegan(config: Config, total_steps: int | None = None) -> CycleGAN:
    """The four networks and their Adam optimizers (`FusedAdam`), compiled (call inside the
    strategy's scope).

    Sets Keras' global dtype policy to `config.precision` first: the networks compute in
    it, while their variables, final tanh, critic logits and all losses stay float32.
    `total_steps` (the run's length) is needed when the learning rate decays.
    """
    keras.mixed_precision.set_global_policy(config.precision)
    model = CycleGAN(
        photo_to_monet=networks.build_generator(config, name="photo_to_monet"),
        monet_to_photo=networks.build_generator(config, name="monet_to_photo"),
        monet_critic=networks.build_discriminator(config, name="monet_critic"),
        photo_critic=networks.build_discriminator(config, name="photo_critic"),
        cycle_weight=config.cycle_weight,
        identity_weight=config.identity_weight,
        adversarial=config.adversarial_loss,
        diffaugment_policy=diffaugment_parts(config.diffaugment),
        diffaugment_strength=config.diffaugment_strength,
        history_size=config.history_size,
        seed=config.seed,
    )
    rate = config.learning_rate
    if config.lr_decay_start < 1.0:
        if not total_steps:
            raise ConfigError("lr_decay_start below 1 (flag --lr-decay-start) needs the run's "
                              "length: pass total_steps to build_cyclegan.")
        rate = ConstantThenLinearDecay(rate, total_steps, int(total_steps * config.lr_decay_start))

    def adam(name):
        optimizer = FusedAdam(rate, beta_1=config.beta_1, name=name)
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
