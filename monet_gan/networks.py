"""The generators (U-Net, ResNet) and critic (PatchGAN) of the CycleGAN, and the patch heads of
contrastive translation (CUT), as functional Keras models.

At the `kaggle()` defaults they are exactly the networks of the public tutorial notebook
(54,414,979 and 2,765,569 parameters), with its InstanceNormalization (from the retired TF Addons)
replaced by `keras.layers.GroupNormalization(groups=-1)`, which computes the same thing
(epsilon 1e-3 as there). One deliberate difference: the norm scales start near 1
(N(1, 0.02)) as in pix2pix, not near 0 as the tutorial's `gamma_init` does.
"""

import contextlib
import math

import keras

if keras.backend.backend() == "tensorflow":  # the kernels it chooses from are TensorFlow's
    from monet_gan import conv_kernels
from monet_gan.config import Config


@contextlib.contextmanager
def float32_policy():
    """Builds networks in float32 whatever the global (training) dtype policy is."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _conv_init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _norm_init():
    return keras.initializers.RandomNormal(mean=1.0, stddev=0.02)


def _instance_norm(name: str) -> keras.layers.Layer:
    # One group per channel: per-image, per-channel statistics = instance normalization.
    return keras.layers.GroupNormalization(
        groups=-1, epsilon=1e-3, gamma_initializer=_norm_init(), name=name
    )


def conv_layers(config: Config):
    """The convolution layer classes: Keras' own, or the same layers choosing the fastest CPU
    kernel per op when training (`config.fastest_cpu_kernels`, see conv_kernels.py). Under
    `jit_compile` XLA compiles the whole step, so there is nothing to choose; nor under JAX,
    where XLA compiles every step (the kernels chosen among are TensorFlow's)."""
    if config.fastest_cpu_kernels and not config.jit_compile and keras.backend.backend() == "tensorflow":
        return conv_kernels.FastestConv2D, conv_kernels.FastestConv2DTranspose
    return keras.layers.Conv2D, keras.layers.Conv2DTranspose


def _down_block(x, filters: int, normalize: bool, name: str, conv=keras.layers.Conv2D):
    """Halves the resolution: strided 4x4 conv -> instance norm -> LeakyReLU(0.3)."""
    x = conv(
        filters, 4, strides=2, padding="same", kernel_initializer=_conv_init(),
        use_bias=False, name=f"{name}_conv",
    )(x)
    if normalize:
        x = _instance_norm(f"{name}_norm")(x)
    return keras.layers.LeakyReLU(negative_slope=0.3, name=f"{name}_act")(x)


def _upsample(x, filters: int, name: str, conv_transpose, conv=None, use_bias: bool = False):
    """Doubles the resolution: a 4x4 transposed conv, or (given `conv`) nearest-neighbour
    upsampling and a 3x3 conv, which cannot make checkerboard patterns (Odena et al. 2016)."""
    if conv is None:
        return conv_transpose(filters, 4, strides=2, padding="same", kernel_initializer=_conv_init(),
                              use_bias=use_bias, name=f"{name}_conv")(x)
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_upsample")(x)
    return conv(filters, 3, padding="same", kernel_initializer=_conv_init(), use_bias=use_bias,
                name=f"{name}_conv")(x)


def _up_block(x, filters: int, dropout: float, name: str, conv_transpose=keras.layers.Conv2DTranspose,
              conv=None):
    """Doubles the resolution (`_upsample`) -> instance norm -> [dropout] -> ReLU."""
    x = _upsample(x, filters, name, conv_transpose, conv)
    x = _instance_norm(f"{name}_norm")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.ReLU(name=f"{name}_act")(x)


def generator_depth(image_size: int) -> int:
    """Number of down blocks: enough to bring the image to 1x1 (8 at 256 px)."""
    return int(math.log2(image_size))


def build_generator(config: Config, name: str = "generator", any_size: bool = False) -> keras.Model:
    """The generator `config.generator` names: the tutorial's U-Net or the paper's ResNet.
    With `any_size`, it takes images of any side that is a multiple of `config.image_size`
    (the same weights: both are fully convolutional), as `monet_gan.paint` paints tiles."""
    if config.generator == "resnet":
        return build_resnet_generator(config, name, any_size)
    return build_unet_generator(config, name, any_size)


def any_size_copy(generator: keras.Model, config: Config) -> keras.Model:
    """A float32 copy of `generator` (trained with `config`; its weights as they are now) that
    takes images of any side that is a multiple of `config.image_size`: how a photo is painted
    at its own resolution."""
    with float32_policy():
        copy = build_generator(config, name=generator.name, any_size=True)
    copy.set_weights(generator.get_weights())
    return copy


def build_unet_generator(config: Config, name: str = "generator", any_size: bool = False) -> keras.Model:
    """U-Net generator mapping [-1, 1] images of `config.image_size` to the same shape.

    Down blocks halve the resolution to 1x1 with filters F, 2F, 4F, 8F, 8F, ... (doubling up
    to `config.generator_filter_cap` times F, the tutorial's 8); up
    blocks mirror them and concatenate the matching down block's output (the skip);
    the first three up blocks apply dropout; a last transposed conv and tanh give RGB.
    """
    size = config.image_size
    width = config.generator_filters
    down_filters = [width * min(2**i, config.generator_filter_cap) for i in range(generator_depth(size))]
    conv, conv_transpose = conv_layers(config)

    photos = keras.Input((None, None, 3) if any_size else (size, size, 3), name="images")
    x = photos
    skips = []
    for i, filters in enumerate(down_filters):
        x = _down_block(x, filters, normalize=i > 0, name=f"down{i}", conv=conv)
        skips.append(x)

    # Up blocks mirror the down blocks, skipping the 1x1 bottleneck itself.
    resize_conv = conv if config.upsample == "resize" else None
    for i, (filters, skip) in enumerate(zip(reversed(down_filters[:-1]), reversed(skips[:-1]))):
        x = _up_block(x, filters, config.dropout if i < 3 else 0.0, name=f"up{i}",
                      conv_transpose=conv_transpose, conv=resize_conv)
        x = keras.layers.Concatenate(name=f"skip{i}")([x, skip])

    x = _upsample(x, 3, "to_rgb", conv_transpose, resize_conv, use_bias=True)
    # The final tanh runs in float32 so outputs stay in [-1, 1] under mixed precision.
    paintings = keras.layers.Activation("tanh", dtype="float32", name="to_rgb")(x)
    return keras.Model(photos, paintings, name=name)


@keras.saving.register_keras_serializable(package="monet_gan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by mirroring the border (the CycleGAN paper's padding)."""

    def __init__(self, padding: int, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, x):
        p = self.padding
        return keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.padding  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def _conv_norm_relu(x, filters: int, kernel: int, name: str, strides: int = 1, transpose=False,
                    relu: bool = True):
    if kernel > 1 and strides == 1 and not transpose:
        x = ReflectionPadding2D(kernel // 2, name=f"{name}_pad")(x)
    layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    x = layer(filters, kernel, strides=strides, padding="valid" if strides == 1 and not transpose else "same",
              kernel_initializer=_conv_init(), use_bias=False, name=f"{name}_conv")(x)
    x = _instance_norm(f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_act")(x) if relu else x


def resnet_blocks(image_size: int) -> int:
    """The paper's count: 9 residual blocks at 256 px, 6 below."""
    return 9 if image_size >= 256 else 6


def build_resnet_generator(config: Config, name: str = "generator", any_size: bool = False) -> keras.Model:
    """The CycleGAN paper's generator (Johnson et al.): c7s1-F, d2F, d4F, R4F x 9 (6 below
    256 px), u2F, uF, c7s1-3 with reflection padding, instance norm and a tanh."""
    size, width = config.image_size, config.generator_filters
    photos = keras.Input((None, None, 3) if any_size else (size, size, 3), name="images")
    x = _conv_norm_relu(photos, width, 7, "in")
    x = _conv_norm_relu(x, width * 2, 3, "down0", strides=2)
    x = _conv_norm_relu(x, width * 4, 3, "down1", strides=2)
    for i in range(resnet_blocks(size)):
        y = _conv_norm_relu(x, width * 4, 3, f"res{i}a")
        y = _conv_norm_relu(y, width * 4, 3, f"res{i}b", relu=False)
        x = keras.layers.Add(name=f"res{i}")([x, y])
    x = _conv_norm_relu(x, width * 2, 3, "up0", strides=2, transpose=True)
    x = _conv_norm_relu(x, width, 3, "up1", strides=2, transpose=True)
    x = ReflectionPadding2D(3, name="to_rgb_pad")(x)
    x = keras.layers.Conv2D(3, 7, kernel_initializer=_conv_init(), name="to_rgb_conv")(x)
    paintings = keras.layers.Activation("tanh", dtype="float32", name="to_rgb")(x)
    return keras.Model(photos, paintings, name=name)


def build_discriminator(config: Config, name: str = "critic") -> keras.Model:
    """PatchGAN critic: one real/fake logit per overlapping 70x70 patch at 256 px (30x30)."""
    size = config.image_size
    width = config.critic_filters

    conv, _ = conv_layers(config)

    images = keras.Input((size, size, 3), name="images")
    x = _down_block(images, width, normalize=False, name="down0", conv=conv)
    x = _down_block(x, width * 2, normalize=True, name="down1", conv=conv)
    x = _down_block(x, width * 4, normalize=True, name="down2", conv=conv)
    x = keras.layers.ZeroPadding2D(name="pad0")(x)
    x = conv(
        width * 8, 4, strides=1, kernel_initializer=_conv_init(), use_bias=False, name="conv"
    )(x)
    x = _instance_norm("conv_norm")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.3, name="conv_act")(x)
    x = keras.layers.ZeroPadding2D(name="pad1")(x)
    logits = conv(
        1, 4, strides=1, kernel_initializer=_conv_init(), dtype="float32", name="logits"
    )(x)
    return keras.Model(images, logits, name=name)


def encoder_layers(generator: keras.Model) -> list[str]:
    """The layers of `generator` whose outputs PatchNCE compares (`contrastive`): its RGB input
    and four blocks of its encoder, from fine to coarse, as the CUT paper takes the input, the
    downsamplings and residual blocks of its ResNet generator (the U-Net's first four down
    blocks: 64 to 8 px at 128)."""
    names = [layer.name for layer in generator.layers]
    if "in_act" in names:  # the ResNet generator
        return ["images", "in_act", "down0_act", "down1_act", "res0"]
    return ["images"] + [f"down{i}_act" for i in range(4) if f"down{i}_act" in names]


def build_patch_heads(channels: list[int], units: int = 256, name: str = "patch_heads") -> keras.Model:
    """CUT's projection heads (H_l in the paper): for each encoder layer, a two-layer MLP
    (`units` wide, ReLU between) from that layer's `channels` features of sampled patches,
    [batch, patches, channels], to `units`."""
    inputs, outputs = [], []
    for i, width in enumerate(channels):
        patches = keras.Input((None, width), name=f"layer{i}")
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=_conv_init(), name=f"head{i}_hidden")(patches)
        outputs.append(keras.layers.Dense(units, kernel_initializer=_conv_init(), dtype="float32",
                                          name=f"head{i}_out")(x))
        inputs.append(patches)
    return keras.Model(inputs, outputs, name=name)
