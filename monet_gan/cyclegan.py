"""The CycleGAN model: two generators and two critics trained together.

Names, mapped once to the CycleGAN paper (Zhu et al. 2017):
- `photo_to_monet` is G: X -> Y (photos X to Monet paintings Y);
- `monet_to_photo` is F: Y -> X;
- `monet_critic` is D_Y, telling real paintings from G's;
- `photo_critic` is D_X, telling real photos from F's.
Each network `name` has its optimizer in `name_optimizer`, and a checkpoint keeps both under
those names (`checkpoints.make_checkpoint`).
"""

import contextlib

import keras
from keras import ops

from monet_gan import diffaugment, networks, steps
from monet_gan.config import Config, diffaugment_parts
from monet_gan.errors import ConfigError

NETWORK_NAMES = ("photo_to_monet", "monet_to_photo", "monet_critic", "photo_critic")
# The first four are the objectives of the networks of NETWORK_NAMES, in that order.
LOSS_NAMES = (
    "monet_generator_loss", "photo_generator_loss", "monet_critic_loss", "photo_critic_loss",
    "cycle_loss", "identity_loss",
)


def _per_example_mean(values):
    return ops.mean(values, axis=list(range(1, len(values.shape))))


def adversarial_loss(logits, is_real: bool, kind: str = "bce"):
    """Per-example loss of patch logits against all-real or all-fake labels: BCE from
    logits (the tutorial) or least squares (LSGAN, as the CycleGAN paper trains)."""
    labels = ops.ones_like(logits) if is_real else ops.zeros_like(logits)
    if kind == "lsgan":
        return _per_example_mean(ops.square(logits - labels))
    return _per_example_mean(ops.binary_crossentropy(labels, logits, from_logits=True))


class ImageHistory:
    """The CycleGAN paper's image pool (Shrivastava et al. 2017): the critic sees, for each
    generated image, with probability 1/2 an older generated image from a pool of `size`
    instead (the new one takes its place). Until the pool is full, images go in and pass.

    Its variables are per replica (each replica keeps its own pool) and are checkpointed;
    a multi-replica checkpoint keeps the first replica's pool. Written without branches
    (every image writes one slot: itself, or what the slot held), so that it traces the same
    under any backend and inside a stateless (JAX) step.
    """

    def __init__(self, size: int, image_size: int, name: str):
        self.size = size
        per_replica = dict(trainable=False, synchronization="on_read", aggregation="only_first_replica")
        self.images = keras.Variable(ops.zeros([size, image_size, image_size, 3]), dtype="float32",
                                     name=f"{name}_images", **per_replica)
        self.count = keras.Variable(0, dtype="int32", name=f"{name}_count", **per_replica)

    def query(self, fakes, seed):
        fakes = ops.stop_gradient(ops.cast(fakes, "float32"))
        batch = fakes.shape[0]  # the per-replica batch: small and static
        choices = keras.random.uniform([batch], seed=seed)
        slots = diffaugment.random_ints([batch], self.size, seed)
        outputs = []
        for i in range(batch):
            full = self.count.value >= self.size
            swap = ops.logical_and(full, choices[i] < 0.5)  # give an older image back
            index = ops.where(full, slots[i], self.count.value)
            old = self.images.value[index]
            kept = ops.where(ops.logical_or(ops.logical_not(full), swap), fakes[i], old)
            self.images.assign(ops.slice_update(self.images.value, [index, 0, 0, 0], kept[None]))
            self.count.assign(self.count.value + ops.cast(ops.logical_not(full), "int32"))
            outputs.append(ops.where(swap, old, fakes[i]))
        return ops.stack(outputs)

    @property
    def variables(self):
        return [self.images, self.count]


def critic_logits(critic, images, diffaugment_policy: tuple, diffaugment_strength: float,
                  seed_generator, training: bool):
    """The critic's patch logits of `images`, after DiffAugment (in training, when it is on)."""
    if diffaugment_policy and training:
        images = diffaugment.diff_augment(images, diffaugment_policy, diffaugment_strength, seed_generator)
    return critic(images, training=training)


def l1_loss(a, b):
    """Per-example mean absolute difference."""
    return _per_example_mean(ops.abs(a - b))


class CycleGAN(keras.Model):
    """Coordinates the four networks; `train_step` updates all of them once per batch.

    Each batch is a pair (photos, monets). Losses are per-example means over pixels or
    patches, summed over the replica's examples and divided by the *global* batch
    (`tf.nn.compute_average_loss`): gradients are summed across replicas, so this gives
    the global-batch mean under any number of replicas.
    """

    NETWORK_NAMES = NETWORK_NAMES
    LOSS_NAMES = LOSS_NAMES
    OBJECTIVES = LOSS_NAMES[:4]  # what each network of NETWORK_NAMES minimises, in order

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
        # Under JAX, `steps.fit_jax` keeps the training state outside the variables between
        # steps, and sets this to write it back (`sync_variables`).
        self.state_writer = None
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

    def sync_variables(self) -> None:
        """Makes the variables hold the training state, before anything reads or saves them."""
        if self.state_writer is not None:
            self.state_writer()

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
        if self.identity_weight:
            identity_monet = self.identity_weight * l1_loss(monets, images["same_monets"])
            identity_photo = self.identity_weight * l1_loss(photos, images["same_photos"])
        else:
            identity_monet = identity_photo = ops.zeros_like(cycle)
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
        # Without an identity loss G(y) and F(x) are not computed: a quarter of the
        # generators' work per step.
        if self.identity_weight:
            fake_monets, same_monets = ops.split(
                self.photo_to_monet(ops.concatenate([photos, monets], 0), training=training), 2)
            fake_photos, same_photos = ops.split(
                self.monet_to_photo(ops.concatenate([monets, photos], 0), training=training), 2)
        else:
            fake_monets, same_monets = self.photo_to_monet(photos, training=training), None
            fake_photos, same_photos = self.monet_to_photo(monets, training=training), None
        return {"fake_monets": fake_monets, "same_monets": same_monets,
                "fake_photos": fake_photos, "same_photos": same_photos,
                "cycled_photos": self.monet_to_photo(fake_monets, training=training),
                "cycled_monets": self.photo_to_monet(fake_photos, training=training)}

    def _judge(self, photos, monets, fake_monets, fake_photos, training) -> dict:
        """The critics' patch logits of real and generated images. The critics' own losses
        judge older fakes instead when there is a history ("critics_fake_*": its images carry
        no gradient to the generators, whose losses use the current fakes)."""
        def critic(network, images):
            return critic_logits(network, images, self.diffaugment_policy, self.diffaugment_strength,
                                 self.seed_generator, training)

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
        """One step of Keras' TensorFlow trainer (`fit`); see `steps`."""
        photos, monets = data
        return steps.tensorflow_train_step(self, photos, monets)


class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`rate` until step `decay_start`, then linearly down to 0 at `total_steps` (the
    CycleGAN paper: constant for 100 epochs, then to zero over 100)."""

    def __init__(self, rate: float, total_steps: int, decay_start: int):
        self.rate, self.total_steps, self.decay_start = rate, total_steps, decay_start

    def __call__(self, step):
        step = ops.cast(step, "float32")
        remaining = (self.total_steps - step) / max(self.total_steps - self.decay_start, 1)
        return self.rate * ops.clip(remaining, 0.0, 1.0)

    def get_config(self):
        return {"rate": self.rate, "total_steps": self.total_steps, "decay_start": self.decay_start}


def decay_start_step(config: Config, total_steps: int) -> int:
    """The step where the rate starts to fall: --lr-decay-start of the run's `total_steps`."""
    return int(total_steps * config.lr_decay_start)


def build_cyclegan(config: Config, total_steps: int | None = None) -> CycleGAN:
    """The four networks and their Adam optimizers (`steps.Adam`), compiled (call inside the
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
    rate, critic_rate = learning_rates(config, total_steps)
    model.compile(
        photo_to_monet_optimizer=make_optimizer(config, rate, "photo_to_monet",
                                                average=config.generator_average),
        monet_to_photo_optimizer=make_optimizer(config, rate, "monet_to_photo"),
        monet_critic_optimizer=make_optimizer(config, critic_rate, "monet_critic"),
        photo_critic_optimizer=make_optimizer(config, critic_rate, "photo_critic"),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def learning_rates(config: Config, total_steps: int | None) -> tuple:
    """The generators' and the critics' learning rates: floats, or schedules when the rate
    decays (which needs the run's length, `total_steps`)."""
    if config.lr_decay_start < 1.0 and not total_steps:
        raise ConfigError("lr_decay_start below 1 (flag --lr-decay-start) needs the run's "
                          "length: pass total_steps when building the model.")

    def schedule(rate: float):
        if config.lr_decay_start < 1.0:
            return ConstantThenLinearDecay(rate, total_steps, decay_start_step(config, total_steps))
        return rate

    return schedule(config.learning_rate), schedule(config.critic_learning_rate or config.learning_rate)


def make_optimizer(config: Config, rate, network_name: str, average: float = 0.0):
    """The Adam optimizer (`steps.Adam`) of the network `network_name` at learning rate
    `rate` (a float or a schedule), under a loss scale for mixed_float16.

    With `average` above 0 it also keeps a moving average of the network's weights with that
    momentum (Keras' `use_ema`; Yazici et al. 2019, "The Unusual Effectiveness of Averaging in
    GAN Training": such an average often scores better than a GAN generator's last weights).
    The average is among the optimizer's variables, so it is checkpointed and carried through
    the JAX step with them; it never feeds training.
    """
    name = f"{network_name}_adam"
    optimizer = steps.Adam(rate, beta_1=config.beta_1, name=name,
                           use_ema=average > 0, ema_momentum=average or 0.99)
    if config.precision == "mixed_float16":  # float16 gradients underflow without it
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_scaled")
    return optimizer


@contextlib.contextmanager
def averaged_weights(network: keras.Model, optimizer):
    """Inside, `network` holds the moving average of its weights that `optimizer` keeps
    (`make_optimizer`'s `average`), if it keeps one; its trained weights are back after."""
    if not keeps_average(optimizer):
        yield network
        return
    variables = network.trainable_variables
    trained = [ops.convert_to_numpy(v) for v in variables]
    use_average(network, optimizer)
    try:
        yield network
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)


def keeps_average(optimizer) -> bool:
    """Whether `optimizer` (of `make_optimizer`) keeps a moving average of its weights."""
    return getattr(optimizer, "inner_optimizer", optimizer).use_ema  # under a LossScaleOptimizer


def use_average(network: keras.Model, optimizer) -> None:
    """Overwrites `network`'s weights with the moving average `optimizer` keeps of them, once
    it has taken a step (the average starts at the weights of its first update; before it, it
    holds zeros: a run saved before any step, or whose first float16 steps were all skipped)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if int(ops.convert_to_numpy(inner.iterations)) > 0:
        inner.finalize_variable_values(network.trainable_variables)
