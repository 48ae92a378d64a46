"""Contrastive unpaired translation (CUT; Park et al. 2020, "Contrastive Learning for Unpaired
Image-to-Image Translation"): one generator and one critic, with PatchNCE holding each painting
to its photo where the CycleGAN has a second generator, a second critic and the cycle loss.

Names, mapped once to the paper: `photo_to_monet` is G, `monet_critic` is D (the CycleGAN's D_Y),
`patch_heads` is H, a two-layer MLP per encoder layer (`networks.build_patch_heads`). Each
network `name` has its optimizer in `name_optimizer`, and a checkpoint keeps both under those
names, as for the CycleGAN (`checkpoints.make_checkpoint`), so the export, painting and scoring
read either model's runs alike.

PatchNCE (paper eq. 5): G's encoder (`networks.encoder_layers`) gives features of a photo x and
of its painting G(x). At `PATCHES` locations per layer, drawn alike for both, each painting
patch's projected, unit-length feature (the query) must pick the photo's patch at the same
location (the positive) among the photo's other drawn patches (the negatives): a softmax
cross-entropy over their dot products at temperature `TEMPERATURE`. The photo's side carries no
gradient, as in the authors' code. With `identity_nce` (the paper's CUT; without, its FastCUT)
the same is asked of a Monet painting y and G(y). G minimises the critic's BCE (or LSGAN) loss
on G(x) plus `nce_weight` times the mean of the two PatchNCE terms; H minimises the latter.
Per step that is two generator passes (x and y in one call), one encoder pass and two critic
passes, against the CycleGAN's four generator passes and four critic passes.
"""

import keras
from keras import ops

from monet_gan import cyclegan, networks, steps
from monet_gan.config import Config, diffaugment_parts

NETWORK_NAMES = ("photo_to_monet", "patch_heads", "monet_critic")
LOSS_NAMES = ("monet_generator_loss", "monet_critic_loss", "patch_nce_loss")
PATCHES = 256  # locations drawn per layer (all of them where a layer has fewer), as the paper
TEMPERATURE = 0.07


def info_nce(keys, queries):
    """Per-example mean over patches of -log softmax(q . k / tau) at each query's own key:
    `keys` and `queries` are [batch, patches, features], unit length."""
    logits = ops.matmul(queries, ops.transpose(keys, [0, 2, 1])) / TEMPERATURE
    positives = ops.diagonal(ops.log_softmax(ops.cast(logits, "float32"), axis=-1), axis1=1, axis2=2)
    return -ops.mean(positives, axis=1)


class ContrastiveGAN(keras.Model):
    """Coordinates G, H and D; `train_step` (or `steps.JaxStep`) updates each once per batch
    for its own objective. Batches are (photos, monets) pairs; losses are per-example, as the
    CycleGAN's (see `cyclegan.CycleGAN` for how replicas share them)."""

    NETWORK_NAMES = NETWORK_NAMES
    LOSS_NAMES = LOSS_NAMES
    OBJECTIVES = ("monet_generator_loss", "patch_nce_loss", "monet_critic_loss")  # of NETWORK_NAMES, in order

    def __init__(self, photo_to_monet, patch_heads, monet_critic, nce_weight: float = 1.0,
                 identity_nce: bool = True, adversarial: str = "bce",
                 diffaugment_policy: tuple[str, ...] = (), diffaugment_strength: float = 1.0,
                 history_size: int = 0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.photo_to_monet = photo_to_monet
        self.patch_heads = patch_heads
        self.monet_critic = monet_critic
        self.nce_weight = nce_weight
        self.identity_nce = identity_nce
        self.adversarial = adversarial
        self.diffaugment_policy = tuple(diffaugment_policy)
        self.diffaugment_strength = diffaugment_strength
        # Patch draws, DiffAugment and the image history; its state is checkpointed.
        self.seed_generator = keras.random.SeedGenerator(seed, name="contrastive_seed")
        features = [photo_to_monet.get_layer(name).output for name in networks.encoder_layers(photo_to_monet)]
        # The same layers and weights as G: G with its encoder's features, and the encoder alone.
        self.generator_with_features = keras.Model(photo_to_monet.input, [photo_to_monet.output, *features])
        self.encoder = keras.Model(photo_to_monet.input, features)
        size = photo_to_monet.input_shape[1]
        self.histories = ({"monet": cyclegan.ImageHistory(history_size, size, "monet_history")}
                          if history_size else None)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        self.state_writer = None  # as CycleGAN's: set by `steps.fit_jax`
        self.built = True

    def compile(self, photo_to_monet_optimizer, patch_heads_optimizer, monet_critic_optimizer, **kwargs):
        super().compile(**kwargs)
        self.photo_to_monet_optimizer = photo_to_monet_optimizer
        self.patch_heads_optimizer = patch_heads_optimizer
        self.monet_critic_optimizer = monet_critic_optimizer
        for optimizer, network in self.optimized_networks():  # slots now: a checkpoint restores them
            optimizer.build(network.trainable_variables)

    def optimized_networks(self) -> list:
        """(optimizer, network) pairs, in the order of NETWORK_NAMES."""
        return [(getattr(self, f"{name}_optimizer"), getattr(self, name)) for name in NETWORK_NAMES]

    def sync_variables(self) -> None:
        if self.state_writer is not None:
            self.state_writer()

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_losses(self, photos, monets, training=True) -> dict:
        """The per-example losses of one batch, keyed like `LOSS_NAMES`."""
        batch = photos.shape[0]  # the per-replica batch: static
        sources = ops.concatenate([photos, monets], 0) if self.identity_nce else photos
        translated, *source_features = self.generator_with_features(sources, training=training)
        fake_monets = translated[:batch]
        nce = self.nce_weight * self.patch_nce(source_features, self.encoder(translated, training=training))
        if self.identity_nce:  # the mean of NCE(x, G(x)) and NCE(y, G(y))
            nce = 0.5 * (nce[:batch] + nce[batch:])

        def critic(images):
            return cyclegan.critic_logits(self.monet_critic, images, self.diffaugment_policy,
                                          self.diffaugment_strength, self.seed_generator, training)

        fake_logits = critic(fake_monets)
        critics_fake_logits = fake_logits
        if self.histories and training:  # the critic judges older fakes too (cyclegan.ImageHistory)
            critics_fake_logits = critic(self.histories["monet"].query(fake_monets, self.seed_generator))

        def adversarial(logits, is_real):
            return cyclegan.adversarial_loss(logits, is_real, self.adversarial)

        return {
            "monet_generator_loss": adversarial(fake_logits, True) + nce,
            "monet_critic_loss": 0.5 * (adversarial(critic(monets), True) + adversarial(critics_fake_logits, False)),
            "patch_nce_loss": nce,
        }

    def patch_nce(self, keys, queries):
        """Per-example PatchNCE, averaged over the layers: `keys` and `queries` are lists of
        [batch, h, w, c] features per layer, of the source images and of their translations."""
        losses = []
        for key, query in zip(keys, queries):
            _, height, width, channels = key.shape
            count = min(PATCHES, height * width)
            places = keras.random.shuffle(ops.arange(height * width), seed=self.seed_generator)[:count]
            losses.append([ops.take(ops.reshape(x, [-1, height * width, channels]), places, axis=1)
                           for x in (key, query)])
        # Keys and queries through the heads in one call per layer (twice the batch).
        projected = self.patch_heads([ops.concatenate(pair, 0) for pair in losses])
        total = 0.0
        for both in projected:
            key, query = ops.split(ops.normalize(ops.cast(both, "float32"), axis=-1), 2)
            total = total + info_nce(ops.stop_gradient(key), query)
        return total / len(projected)

    def train_step(self, data):
        """One step of Keras' TensorFlow trainer (`fit`); see `steps`."""
        photos, monets = data
        return steps.tensorflow_train_step(self, photos, monets)


def build_contrastive_gan(config: Config, total_steps: int | None = None) -> ContrastiveGAN:
    """G, H and D and their Adam optimizers (`cyclegan.make_optimizer`), compiled (call inside
    the strategy's scope), under the dtype policy `config.precision`, as `build_cyclegan`."""
    keras.mixed_precision.set_global_policy(config.precision)
    generator = networks.build_generator(config, name="photo_to_monet")
    channels = [generator.get_layer(name).output.shape[-1] for name in networks.encoder_layers(generator)]
    model = ContrastiveGAN(
        photo_to_monet=generator,
        patch_heads=networks.build_patch_heads(channels),
        monet_critic=networks.build_discriminator(config, name="monet_critic"),
        nce_weight=config.nce_weight,
        identity_nce=config.identity_nce,
        adversarial=config.adversarial_loss,
        diffaugment_policy=diffaugment_parts(config.diffaugment),
        diffaugment_strength=config.diffaugment_strength,
        history_size=config.history_size,
        seed=config.seed,
    )
    rate, critic_rate = cyclegan.learning_rates(config, total_steps)
    model.compile(
        photo_to_monet_optimizer=cyclegan.make_optimizer(config, rate, "photo_to_monet",
                                                         average=config.generator_average),
        patch_heads_optimizer=cyclegan.make_optimizer(config, rate, "patch_heads"),
        monet_critic_optimizer=cyclegan.make_optimizer(config, critic_rate, "monet_critic"),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model
