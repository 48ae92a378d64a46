"""Keras' Adam, with each variable updated by TensorFlow's fused `ApplyAdam` kernel.

Keras 3's Adam updates a variable with about a dozen element-wise ops, each a full pass over
memory. The U-Net generators hold 109M parameters, and at 256 px and batch 1 those passes take
about 0.5 s of a 4-5 s training step on a 2-core CPU. The fused kernel makes one pass: 0.09 s
(bench/RESULTS.md). The formula and the optimizer's variables are Keras', so checkpoints are
interchangeable with `keras.optimizers.Adam`:

    m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2)
    w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

The one difference is round-off: the kernel computes 1 - beta_2 from float32 beta_2
(0.00099998713 for 0.999, Keras 0.001), which moves the velocities by 1.3e-5 of themselves.
"""

import keras
import tensorflow as tf


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (the local copy inside a
    `tf.distribute` update)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


@keras.saving.register_keras_serializable(package="monet_gan")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (same arguments, same variables); AMSGrad and sparse gradients
    take Keras' own update."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
