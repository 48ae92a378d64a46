"""Convolution layers that train on a CPU with the fastest of three kernels, chosen per op.

On a CPU, TensorFlow runs every convolution with one library (oneDNN, which monet_gan turns
on, or Eigen), and neither is fast at every shape; TensorFlow offers no choice per op. Training
a convolution runs three ops: the forward pass, the input gradient and the filter gradient (a
transposed convolution is the same three with the first two swapped). For each of them, the
first time a training step is traced, this module times three kernels on random tensors of its
shape and uses the fastest from then on:
- "tensorflow": TensorFlow's own op;
- "xla": the same op compiled by XLA (`tf.function(jit_compile=True)`), whose CPU kernels
  are fast on some shapes where oneDNN is slow (the filter gradient of the critic's
  one-channel logits: 3.5 ms, not 31);
- "matmul": im2col and one matrix product, which suits the U-Net's inner layers: 1x1 to 16x16
  pixels with 512-1024 channels, where the work is reading the 4x4x512x1024 kernel once
  (the 2x2 -> 4x4 transposed convolution: 7 ms, not 37).
(Times from bench/RESULTS.md, on this project's 2-core AVX2 CPU.) Ops smaller than
`TUNE_MIN_FLOPS`, and ops that TensorFlow's kernel runs in less than `TUNE_MIN_SECONDS`, keep
TensorFlow's kernel: timing and compiling the others would cost more than they could gain.

The layers hold the same weights as Keras' `Conv2D` and `Conv2DTranspose` and compute the same
convolution (to float rounding), so checkpoints of either load into the other. They choose
kernels only when a traced training step runs on a CPU-only machine with fully known shapes;
otherwise (inference, export, eager runs, GPUs, TPUs) they are Keras' layers.
"""

import functools
import gc
import statistics
import threading
import time

import keras
import numpy as np
import tensorflow as tf

# Ops below this many floating-point operations keep TensorFlow's kernel, untimed (a 256 px
# U-Net's 1x1-4x4 layers are 8-34 MFLOP; its large layers 1-4 GFLOP).
TUNE_MIN_FLOPS = 5e6
# So do ops that TensorFlow's kernel runs faster than this: the others could gain little
# there, and compiling one for XLA takes 0.1-0.5 s.
TUNE_MIN_SECONDS = 0.002

# The kernels timed for each op: TensorFlow's (oneDNN or Eigen), XLA's, and an im2col matmul.
CANDIDATES = ("tensorflow", "xla", "matmul")

# (op name, shapes, dtype, static arguments) -> one of CANDIDATES, filled as steps are traced.
kernel_choices: dict = {}
_tuning = threading.Lock()  # MirroredStrategy traces its replicas in threads of their own


def _conv(x, kernel, *, strides, padding):
    return tf.raw_ops.Conv2D(input=x, filter=kernel, strides=strides, padding=padding)


def _conv_input_grad(kernel, dy, *, input_shape, strides, padding):
    return tf.raw_ops.Conv2DBackpropInput(input_sizes=input_shape, filter=kernel, out_backprop=dy,
                                          strides=strides, padding=padding)


def _conv_filter_grad(x, dy, *, kernel_shape, strides, padding):
    return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=kernel_shape, out_backprop=dy,
                                           strides=strides, padding=padding)


def _patches(x, kernel_shape, strides, padding):
    """im2col: each output position's receptive field, flattened in the kernel's (h, w, in)
    order, as rows of a matrix."""
    k = kernel_shape[0]
    patches = tf.image.extract_patches(x, [1, k, k, 1], strides, [1, 1, 1, 1], padding)
    return tf.reshape(patches, [-1, patches.shape[-1]])


def _conv_as_matmul(x, kernel, *, strides, padding):
    rows = _patches(x, kernel.shape, strides, padding)
    y = tf.matmul(rows, tf.reshape(kernel, [-1, kernel.shape[-1]]))
    return tf.reshape(y, _conv_output_shape(x.shape, kernel.shape, strides[1], padding))


def _conv_input_grad_as_matmul(kernel, dy, *, input_shape, strides, padding):
    # kernel @ dy^T, then transposed: with few rows, dy @ kernel^T ran 5-10x slower here.
    rows = tf.transpose(tf.matmul(tf.reshape(kernel, [-1, kernel.shape[-1]]),
                                  tf.reshape(dy, [-1, dy.shape[-1]]), transpose_b=True))
    zeros = tf.zeros(input_shape, dy.dtype)
    # col2im is the adjoint of im2col. (tf.gradients, not a tape: this also runs inside a
    # tape's backward pass, where new tapes do not record; it is only ever traced.)
    patches = _patches(zeros, kernel.shape, strides, padding)
    return tf.gradients(patches, zeros, grad_ys=rows)[0]


def _conv_filter_grad_as_matmul(x, dy, *, kernel_shape, strides, padding):
    rows = _patches(x, kernel_shape, strides, padding)
    return tf.reshape(tf.matmul(rows, tf.reshape(dy, [-1, dy.shape[-1]]), transpose_a=True), kernel_shape)


_AS_MATMUL = {"_conv": _conv_as_matmul, "_conv_input_grad": _conv_input_grad_as_matmul,
              "_conv_filter_grad": _conv_filter_grad_as_matmul}


def _function(op, static: tuple, kind: str):
    if kind == "matmul":
        op = _AS_MATMUL[op.__name__]
    return tf.function(functools.partial(op, **dict(static)), jit_compile=kind == "xla")


_compiled = functools.cache(_function)  # the XLA functions that steps use


def _median_seconds(function, inputs, repeats: int = 3) -> float:
    function(*inputs).numpy()  # traces (and for XLA compiles)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*inputs).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _choose(op, inputs, flops: float, static: tuple) -> str:
    """The candidate that runs `op` on inputs of these shapes fastest (see the thresholds)."""
    if flops < TUNE_MIN_FLOPS:
        return "tensorflow"
    with tf.init_scope():  # time eagerly, outside the step being traced
        rng = np.random.default_rng(0)
        samples = [tf.constant(rng.standard_normal(t.shape), dtype=t.dtype) for t in inputs]
        seconds = {"tensorflow": _median_seconds(_function(op, static, "tensorflow"), samples)}
        if seconds["tensorflow"] >= TUNE_MIN_SECONDS:
            seconds.update({kind: _median_seconds(_function(op, static, kind), samples)
                            for kind in CANDIDATES if kind != "tensorflow"})
    gc.collect()  # release the timed functions now, not at a later collection
    return min(seconds, key=seconds.get)


def _fastest(op, inputs, flops: float, **static):
    """`op(*inputs, **static)` on the kernel that ran it fastest when first timed."""
    static = tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                          for k, v in static.items()))
    key = (op.__name__, tuple(tuple(t.shape) for t in inputs), inputs[0].dtype.name, static)
    with _tuning:
        if key not in kernel_choices:
            kernel_choices[key] = _choose(op, inputs, flops, static)
    if kernel_choices[key] == "xla":
        return _compiled(op, static, "xla")(*inputs)
    if kernel_choices[key] == "matmul":
        return _AS_MATMUL[op.__name__](*inputs, **dict(static))
    return op(*inputs, **dict(static))


def _flops(conv_output_shape, kernel_shape) -> float:
    """Multiply-adds x 2 of a convolution (and of each of its gradients)."""
    return 2.0 * np.prod(conv_output_shape[:-1]) * np.prod(kernel_shape)


def _conv_output_shape(x_shape, kernel_shape, stride: int, padding: str) -> list:
    """Shape of `tf.nn.conv2d(x, kernel, stride, padding)` (square kernel)."""
    cut = 0 if padding == "SAME" else kernel_shape[0] - 1
    return [x_shape[0], *(-(-(n - cut) // stride) for n in x_shape[1:3]), kernel_shape[3]]


def conv2d(x, kernel, stride: int, padding: str):
    """`tf.nn.conv2d` (NHWC, square kernel HWIO, padding "SAME"/"VALID", static shapes), each of
    its three ops on the fastest kernel."""
    strides = [1, stride, stride, 1]
    flops = _flops(_conv_output_shape(x.shape, kernel.shape, stride, padding), kernel.shape)

    @tf.custom_gradient
    def run(x, kernel):
        def grad(dy):
            return (_fastest(_conv_input_grad, [kernel, dy], flops, input_shape=x.shape,
                             strides=strides, padding=padding),
                    _fastest(_conv_filter_grad, [x, dy], flops, kernel_shape=kernel.shape,
                             strides=strides, padding=padding))

        return _fastest(_conv, [x, kernel], flops, strides=strides, padding=padding), grad

    return run(x, tf.convert_to_tensor(kernel))


def conv2d_transpose(x, kernel, stride: int):
    """`tf.nn.conv2d_transpose` with padding "SAME" (output `stride` times the input; kernel
    HWOI as Keras keeps it), each of its three ops on the fastest kernel: it is the input
    gradient of a convolution from its output back to `x`."""
    strides = [1, stride, stride, 1]
    output_shape = [x.shape[0], x.shape[1] * stride, x.shape[2] * stride, kernel.shape[2]]
    flops = _flops(x.shape, kernel.shape)
    same = dict(strides=strides, padding="SAME")

    @tf.custom_gradient
    def run(x, kernel):
        def grad(dy):
            return (_fastest(_conv, [dy, kernel], flops, **same),
                    _fastest(_conv_filter_grad, [dy, x], flops, kernel_shape=kernel.shape, **same))

        return _fastest(_conv_input_grad, [kernel, x], flops, input_shape=output_shape, **same), grad

    return run(x, tf.convert_to_tensor(kernel))


def on_cpu_only() -> bool:
    """Whether this process computes on CPUs alone: TensorFlow lists neither a GPU nor a TPU."""
    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _bias_and_activation(layer, outputs):
    if layer.use_bias:
        outputs = outputs + tf.cast(layer.bias, outputs.dtype)
    return layer.activation(outputs)


def _chooses_kernels(layer, inputs, training) -> bool:
    return bool(training and not tf.executing_eagerly() and inputs.shape.is_fully_defined()
                and layer.data_format == "channels_last" and layer.dilation_rate == (1, 1)
                and layer.strides[0] == layer.strides[1]
                and layer.kernel_size[0] == layer.kernel_size[1] and on_cpu_only())


@keras.saving.register_keras_serializable(package="monet_gan")
class FastestConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that trains on a CPU with the fastest kernel per op (module docstring)."""

    def call(self, inputs, training=None):
        if not (_chooses_kernels(self, inputs, training) and self.groups == 1):
            return super().call(inputs)
        outputs = conv2d(inputs, self.kernel, self.strides[0], self.padding.upper())
        return _bias_and_activation(self, outputs)


@keras.saving.register_keras_serializable(package="monet_gan")
class FastestConv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` that trains on a CPU with the fastest kernel per op
    (module docstring); "same" padding without output padding, as the U-Net's."""

    def call(self, inputs, training=None):
        if not (_chooses_kernels(self, inputs, training) and self.padding == "same"
                and self.output_padding is None):
            return super().call(inputs)
        return _bias_and_activation(self, conv2d_transpose(inputs, self.kernel, self.strides[0]))
