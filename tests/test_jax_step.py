"""The JAX step (`steps.JaxStep`) takes the TensorFlow step: from the same weights and batches,
the same losses and the same weights after two steps (SGD with momentum, so the optimizers'
state travels too). Keras chooses its backend when it is imported, so the JAX side runs in a
process of its own (`KERAS_BACKEND=jax`), on the CPU, like CI."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import smooth_images

from monet_gan import config as config_lib
from monet_gan import cyclegan

pytest.importorskip("jax", reason="jax[cpu] is in the test extra: pip install -e '.[test]'")

STEPS = 2
CONFIG = config_lib.tiny().replace(dropout=0.0)  # dropout's random draws differ by backend
TECHNIQUES = dict(history_size=2, diffaugment="color,translation,cutout", adversarial_loss="lsgan",
                  lr_decay_start=0.5, critic_learning_rate=1e-3)

JAX_SIDE = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    from monet_gan import config, cyclegan, steps

    assert keras.backend.backend() == "jax", keras.backend.backend()
    data, results = np.load(sys.argv[1]), {}
    model = cyclegan.build_cyclegan(config.tiny().replace(dropout=0.0))
    model.compile(*(keras.optimizers.SGD(0.1, momentum=0.9) for _ in range(4)))
    for name in cyclegan.NETWORK_NAMES:
        network = getattr(model, name)
        network.set_weights([data[f"{name}/{i}"] for i in range(len(network.weights))])
    step = steps.JaxStep(model)
    state = step.state()
    for i in range(int(data["steps"])):
        state, losses = step(state, data[f"photos/{i}"], data[f"monets/{i}"])
        results.update({f"{name}/{i}": np.asarray(value) for name, value in losses.items()})
    step.write_back(state)
    for name in cyclegan.NETWORK_NAMES:
        for i, weight in enumerate(getattr(model, name).weights):
            results[f"{name}/{i}"] = keras.ops.convert_to_numpy(weight.value)

    # The techniques, which draw random numbers (so no match with TensorFlow's draws).
    model = cyclegan.build_cyclegan(config.tiny().replace(**eval(sys.argv[3])), total_steps=4)
    step = steps.JaxStep(model)
    state = step.state()
    for i in range(3):
        state, losses = step(state, data[f"photos/{i % 2}"], data[f"monets/{i % 2}"])
        results.update({f"techniques/{name}/{i}": np.asarray(value) for name, value in losses.items()})
    step.write_back(state)
    results["techniques/history_count"] = int(model.histories["monet"].count.value)
    results["techniques/iterations"] = int(model.photo_to_monet_optimizer.iterations.value)
    results.update({f"means/{name}": np.asarray(value) for name, value in step.results.items()})
    np.savez(sys.argv[2], **results)
""")


def test_the_jax_step_takes_the_tensorflow_step(tmp_path):
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(CONFIG)
    model.compile(*(keras.optimizers.SGD(0.1, momentum=0.9) for _ in range(4)))
    inputs = {"steps": STEPS}
    for name in cyclegan.NETWORK_NAMES:
        inputs.update({f"{name}/{i}": w for i, w in enumerate(getattr(model, name).get_weights())})
    for i in range(STEPS):
        inputs[f"photos/{i}"], inputs[f"monets/{i}"] = smooth_images(1, 2 * i), smooth_images(1, 2 * i + 1)
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    jax_side = subprocess.Popen(  # runs while TensorFlow takes its steps here
        [sys.executable, "-c", JAX_SIDE, str(tmp_path / "inputs.npz"), str(tmp_path / "jax.npz"),
         repr(TECHNIQUES)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    initial = [w.numpy() for w in model.weights]
    step = tf.function(model.train_step)
    expected = {}
    for i in range(STEPS):
        for tracker in model.metrics:  # so the trackers hold this step's losses alone
            tracker.reset_state()
        losses = step((tf.constant(inputs[f"photos/{i}"]), tf.constant(inputs[f"monets/{i}"])))
        expected.update({f"{name}/{i}": float(value) for name, value in losses.items()})
    output, _ = jax_side.communicate(timeout=600)
    assert jax_side.returncode == 0, output
    got = np.load(tmp_path / "jax.npz")

    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=2e-6, err_msg=key)  # 3.4e-7 measured
    moved = max(np.abs(w.numpy() - x).max() for w, x in zip(model.weights, initial))
    assert moved > 1e-3
    for name in cyclegan.NETWORK_NAMES:
        for i, weight in enumerate(getattr(model, name).weights):
            np.testing.assert_allclose(got[f"{name}/{i}"], weight.numpy(), rtol=0, atol=5e-6,
                                       err_msg=f"{name}/{i}")  # 5.6e-7 measured

    # With DiffAugment, the image history, LSGAN, the decaying rate and the critics' own rate:
    # finite losses, and the history and the optimizers' step count carried from step to step.
    techniques = {k: got[k] for k in got.files if k.startswith("techniques/")}
    assert all(np.isfinite(v).all() for v in techniques.values())
    assert len([k for k in techniques if k.endswith("/2")]) == len(cyclegan.LOSS_NAMES)
    assert int(got["techniques/history_count"]) == 2 and int(got["techniques/iterations"]) == 3
    for name in cyclegan.LOSS_NAMES:  # the trackers, updated inside the step: running means
        np.testing.assert_allclose(got[f"means/{name}"],
                                   np.mean([got[f"techniques/{name}/{i}"] for i in range(3)]), rtol=1e-6)


TWO_DEVICES = textwrap.dedent("""
    import keras
    import numpy as np
    from monet_gan import config, cyclegan, distribute, steps

    def one_step(model, initial, photos, monets):
        model.compile(*(keras.optimizers.SGD(0.1) for _ in range(4)))
        for network, weights in zip(cyclegan.NETWORK_NAMES, initial):
            getattr(model, network).set_weights(weights)
        step = steps.JaxStep(model)
        state, losses = step(step.state(), photos, monets)
        step.write_back(state)
        return ({k: float(v) for k, v in losses.items()},
                [w.numpy() for n in cyclegan.NETWORK_NAMES for w in getattr(model, n).weights])

    cfg = config.tiny().replace(dropout=0.0)
    rng = np.random.default_rng(0)
    photos, monets = (rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32") for _ in range(2))
    one = cyclegan.build_cyclegan(cfg)
    initial = [getattr(one, n).get_weights() for n in cyclegan.NETWORK_NAMES]
    one_losses, one_weights = one_step(one, initial, photos, monets)
    _, replicas = distribute.choose("auto")
    assert replicas == 2, replicas
    two_losses, two_weights = one_step(cyclegan.build_cyclegan(cfg), initial, photos, monets)
    assert max(abs(one_losses[k] / two_losses[k] - 1) for k in one_losses) < 1e-5, (one_losses, two_losses)
    moved = max(np.abs(a - b).max() for a, b in zip(one_weights, (w for ws in initial for w in ws)))
    assert moved > 1e-3, moved
    print("max weight difference", max(np.abs(a - b).max() for a, b in zip(one_weights, two_weights)))
    assert all(np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(one_weights, two_weights))  # 1.2e-7 seen
""")


def test_a_step_on_two_devices_is_the_step_on_one():
    """keras.distribution.DataParallel over 2 virtual CPU devices (batch 2: one image each)
    takes the same SGD step as one device with both images."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", TWO_DEVICES], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max weight difference" in result.stdout
