"""Choosing the `tf.distribute` strategy: TPU, several GPUs, several machines, or one device."""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "tpu", "mirrored", "multiworker", "default")


class StrategyError(ValueError):
    """A strategy that was asked for but cannot be had."""


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


def get_strategy(kind: str = "auto") -> tf.distribute.Strategy:
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


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except on non-chief workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if "chief" in resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type is None or (task_type == "worker" and task_id == 0)
