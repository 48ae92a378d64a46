"""Choosing the `tf.distribute` strategy (TPU, several GPUs, several machines, or one device),
and training where Keras' `fit` does not run (several machines); under Keras' JAX backend,
Keras' own distribution API (`data_parallel`), and no TensorFlow."""

import contextlib
import json
import os

import keras
import numpy as np

from monet_gan import steps
from monet_gan.config import STRATEGIES
from monet_gan.errors import StrategyError

if keras.backend.backend() == "jax":
    import jax
else:
    import tensorflow as tf

    from monet_gan import conv_kernels


class NoStrategy:
    """What training builds in under JAX, where Keras' distribution replaces strategies:
    its scope does nothing."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def _tpu_strategy(required: bool):
    """A TPUStrategy on the TPU this process can reach, or None if none (and not required)."""
    try:
        # Colab and Kaggle TPU nodes name the TPU in the environment; TPU VMs use "local".
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        except ValueError:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as error:
        if required:
            raise StrategyError(f"--strategy tpu: no TPU could be reached ({error}).") from None
        return None
    return tf.distribute.TPUStrategy(resolver)


def _worker_count() -> int:
    """Workers listed in TF_CONFIG (0 when unset); a bad TF_CONFIG is an error."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        return len(json.loads(raw).get("cluster", {}).get("worker", []))
    except (json.JSONDecodeError, AttributeError):
        raise StrategyError(f"TF_CONFIG is not a JSON cluster spec. Received: {raw!r}") from None


def _tpu_present() -> bool:
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
                or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0"))


def get_strategy(kind: str = "auto") -> "tf.distribute.Strategy":
    """The strategy `kind` names (flag --strategy).

    auto: a TPU when one is there, else MultiWorkerMirroredStrategy when TF_CONFIG lists
    several workers, else MirroredStrategy over several GPUs, else the default strategy.
    """
    if kind not in STRATEGIES:
        raise StrategyError(f"--strategy must be one of {', '.join(STRATEGIES)}. Received: {kind!r}")
    if kind == "tpu" or (kind == "auto" and _tpu_present()):
        strategy = _tpu_strategy(required=kind == "tpu")
        if strategy is not None:
            return strategy
    if kind == "multiworker" or (kind == "auto" and _worker_count() > 1):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "mirrored" or (kind == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def choose(kind: str, strategy: "tf.distribute.Strategy | None" = None) -> tuple:
    """(the tf.distribute strategy to build in, the number of replicas) for `kind` (flag
    --strategy). Under JAX the strategy is a `NoStrategy` and the replicas are `data_parallel`'s
    devices, set as Keras' distribution before any model is built."""
    if keras.backend.backend() != "jax":
        strategy = strategy or get_strategy(kind)
        return strategy, strategy.num_replicas_in_sync
    distribution = data_parallel(kind)
    keras.distribution.set_distribution(distribution)
    replicas = int(np.prod(distribution.device_mesh.shape)) if distribution else 1
    return NoStrategy(), replicas


def tensorflow_on_cpu() -> bool:
    """Whether this process trains under TensorFlow on CPUs alone (`conv_kernels.on_cpu_only`)."""
    return keras.backend.backend() == "tensorflow" and conv_kernels.on_cpu_only()


def data_parallel(kind: str = "auto"):
    """Under Keras' JAX backend: `keras.distribution.DataParallel` over every device for
    `kind` "mirrored", and for "auto" when there are several; None for one device ("default",
    or "auto" with one). TPU pods and several machines are tf.distribute's, under TensorFlow."""
    if kind in ("tpu", "multiworker"):
        raise StrategyError(f"--strategy {kind} runs under Keras' TensorFlow backend only: start "
                            "without KERAS_BACKEND=jax, or use --strategy auto|mirrored|default.")
    devices = jax.devices()
    if kind == "mirrored" or (kind == "auto" and len(devices) > 1):
        return keras.distribution.DataParallel(devices=devices)
    return None


def is_multiworker(strategy) -> bool:
    """Whether `strategy` trains on several machines (MultiWorkerMirroredStrategy)."""
    return keras.backend.backend() == "tensorflow" and isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: always, except on non-chief workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not is_multiworker(strategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if "chief" in resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type is None or (task_type == "worker" and task_id == 0)


def fit_multiworker(model: keras.Model, pairs: "tf.data.Dataset", *, epochs: int, initial_epoch: int,
                    steps_per_epoch: int, callbacks: list, verbose: int = 2, **unused):
    """`model.fit` for MultiWorkerMirroredStrategy, which Keras 3's fit does not support
    (keras-team/keras#20585): the same train_step, metrics and callbacks, without a bar.
    The trackers, read outside the replicas, hold the mean over all workers."""
    strategy = model.distribute_strategy
    batches = iter(strategy.experimental_distribute_dataset(pairs))

    @tf.function
    def take_step():
        strategy.run(model.train_step, args=(next(batches),))

    steps.run_epochs(model, take_step, epochs=epochs, initial_epoch=initial_epoch,
                     steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
