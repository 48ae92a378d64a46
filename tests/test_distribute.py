import json

import pytest
import tensorflow as tf

from monet_gan import distribute
from monet_gan.errors import StrategyError


def test_default_and_auto_on_one_cpu(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.get_strategy("default") is tf.distribute.get_strategy()
    auto = distribute.get_strategy("auto")
    assert auto.num_replicas_in_sync == 1 and distribute.is_chief(auto)


def test_mirrored_can_be_forced():
    strategy = distribute.get_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert distribute.is_chief(strategy)


def test_tpu_asked_for_without_one_is_a_clear_error():
    with pytest.raises(StrategyError, match="--strategy tpu: no TPU could be reached"):
        distribute.get_strategy("tpu")


def test_unknown_strategy_and_bad_tf_config(monkeypatch):
    with pytest.raises(StrategyError, match="--strategy must be one of.*'gpu'"):
        distribute.get_strategy("gpu")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(StrategyError, match="TF_CONFIG is not a JSON cluster spec"):
        distribute.get_strategy("auto")


def test_worker_count_reads_tf_config(monkeypatch):
    cluster = {"cluster": {"worker": ["localhost:1", "localhost:2"]},
               "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert distribute._worker_count() == 2
    monkeypatch.delenv("TF_CONFIG")
    assert distribute._worker_count() == 0
