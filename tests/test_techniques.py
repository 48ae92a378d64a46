"""The quality techniques of the config: each trains with finite losses at tiny size and
does what it says."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images

from monet_gan import artifacts, callbacks, checkpoints, cyclegan, diffaugment, networks, run_folder, train
from monet_gan import config as config_lib
from monet_gan.errors import ConfigError
from monet_gan.translation import translate


def images(count=2, size=32, seed=0):
    return tf.constant(random_images(count, size, seed) / 127.5 - 1.0, tf.float32)


@pytest.mark.parametrize("changes", [
    {"diffaugment": "color,translation,cutout", "history_size": 1, "lr_decay_start": 0.5,
     "adversarial_loss": "lsgan", "identity_weight": 0.0, "cycle_weight": 5.0},
    {"generator": "resnet", "diffaugment": "translation", "diffaugment_strength": 0.5},
], ids=["unet+diffaugment+history+decay+lsgan+identity0", "resnet+translation"])
def test_techniques_train_with_finite_losses_and_checkpoint_their_state(tiny_config, changes, tmp_path):
    config = tiny_config.replace(**changes)
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(config, total_steps=4)
    for i in range(2):  # eager: tracing costs more than two tiny steps
        losses = model.train_step((images(seed=i), images(seed=10 + i)))
    assert set(losses) == set(cyclegan.LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in losses.values())
    if changes.get("identity_weight") == 0.0:
        assert float(losses["identity_loss"]) == 0.0

    path = checkpoints.make_checkpoint(model, tf.Variable(2, dtype=tf.int64)).save(str(tmp_path / "c"))
    saved = {name for name, _ in tf.train.list_variables(path)}
    assert any("augment_random_state" in n for n in saved)
    assert any("image_history" in n for n in saved) == bool(config.history_size)
    restored = cyclegan.build_cyclegan(config, total_steps=4)
    checkpoints.make_checkpoint(restored, tf.Variable(0, dtype=tf.int64)).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.seed_generator.state.numpy(), model.seed_generator.state.numpy())
    if config.history_size:
        np.testing.assert_array_equal(restored.histories["monet"].images.numpy(),
                                      model.histories["monet"].images.numpy())


def test_least_squares_loss_values():
    logits = tf.constant([[[[2.0]], [[0.0]]]])  # one example, two patches
    np.testing.assert_allclose(cyclegan.adversarial_loss(logits, True, "lsgan"), [(1 + 1) / 2])
    np.testing.assert_allclose(cyclegan.adversarial_loss(logits, False, "lsgan"), [(4 + 0) / 2])


def test_diffaugment_keeps_shape_passes_gradients_and_is_off_at_strength_zero():
    seed = keras.random.SeedGenerator(0)
    x = images(4)
    policy = config_lib.diffaugment_parts("color,translation,cutout")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = diffaugment.diff_augment(x, policy, 1.0, seed)
        total = tf.reduce_sum(y)
    assert y.shape == x.shape
    assert not np.allclose(y, x)
    assert float(tf.reduce_max(tf.abs(tape.gradient(total, x)))) > 0  # the generators learn through it
    np.testing.assert_allclose(diffaugment.diff_augment(x, policy, 0.0, seed), x, atol=1e-6)


def test_translation_moves_pixels_and_fills_with_zeros():
    x = tf.ones([8, 16, 16, 3])
    y = diffaugment.translation(x, 1.0, keras.random.SeedGenerator(1)).numpy()
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert (y == 0).any() and (y == 1).sum() >= 8 * 14 * 14 * 3  # at most 2 of 16 pixels shift out


def test_cutout_zeroes_one_square_of_half_the_size():
    y = diffaugment.cutout(tf.ones([64, 16, 16, 3]), 1.0, keras.random.SeedGenerator(2)).numpy()
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert (y == y[..., :1]).all()  # all channels alike
    sides = []
    for zeroed in y[..., 0] == 0:
        rows, cols = np.flatnonzero(zeroed.any(axis=1)), np.flatnonzero(zeroed.any(axis=0))
        # One rectangle: exactly the pixels in its rows and columns, without gaps.
        assert (zeroed == np.outer(zeroed.any(axis=1), zeroed.any(axis=0))).all()
        for line in (rows, cols):
            assert len(line) == 0 or line[-1] - line[0] + 1 == len(line)
            # 8 pixels (half of 16), fewer only where the square leaves the image.
            assert len(line) == 8 or (len(line) < 8 and (len(line) == 0 or line[0] == 0 or line[-1] == 15))
        sides.append((len(rows), len(cols)))
    # Corners are drawn from [-8, 16): whole squares, clipped ones and some outside entirely.
    assert (8, 8) in sides and any(0 < min(side) < 8 for side in sides) and (0, 0) in sides


def test_image_history_fills_then_swaps_half_the_time():
    history = cyclegan.ImageHistory(size=4, image_size=8, name="test_history")
    seed = keras.random.SeedGenerator(3)
    for i in range(4):  # filling: every image passes and is kept
        out = history.query(tf.fill([1, 8, 8, 3], float(i)), seed)
        assert float(out[0, 0, 0, 0]) == i
    assert int(history.count.numpy()) == 4
    outputs = [float(history.query(tf.fill([1, 8, 8, 3], 100.0 + i), seed)[0, 0, 0, 0]) for i in range(200)]
    from_history = sum(o != 100 + i for i, o in enumerate(outputs))
    assert 60 < from_history < 140  # about half
    assert all(o <= 100 + i for i, o in enumerate(outputs))  # never a later image
    # Nothing is lost or doubled: after filling, each image is either given back at once or
    # kept in place of the one given back, so the pool and the outputs hold every input once.
    kept = list(history.images.numpy()[:, 0, 0, 0])
    assert sorted(outputs + kept) == [0.0, 1.0, 2.0, 3.0] + [100.0 + i for i in range(200)]


def test_learning_rate_is_constant_then_falls_linearly_to_zero():
    schedule = cyclegan.ConstantThenLinearDecay(2e-4, total_steps=100, decay_start=60)
    rates = [float(schedule(s)) for s in (0, 60, 80, 100, 120)]
    np.testing.assert_allclose(rates, [2e-4, 2e-4, 1e-4, 0.0, 0.0], atol=1e-10)


def test_a_time_budget_that_ends_the_run_before_the_decay_starts_is_warned_of(tiny_config, tmp_path, capfd):
    # 100000 epochs of 2 steps, the decay from step 100000: a 60 s budget ends the run long
    # before at any speed, and leaves a loaded machine time for the two epoch ends the warning
    # measures between. (1000 epochs and 20 s failed once in CI beside a training run: either
    # the budget ran out within the first epoch, or steps under 20 ms reached the decay.)
    config = tiny_config.replace(epochs=100_000, lr_decay_start=0.5, time_budget="60s", export=False)
    train.train(config, tmp_path / "run")
    err = capfd.readouterr().err
    warning = re.search(r"Warning: at [0-9.]+ s per step the time budget ends this run near step (\d+), "
                        r"before the learning rate starts to decay at step 100000 \(--lr-decay-start 0.5 "
                        r"of --epochs 100000\)\. For the decay to fall within the budget, set --epochs to "
                        r"about (\d+)\.", err)
    assert warning, err
    assert 0 < int(warning[1]) < 100_000 and int(warning[2]) == max(int(warning[1]) // 2, 1)
    assert err.count("Warning: at") == 1  # once


def test_the_decay_warning_compares_where_the_budget_ends_with_where_the_decay_starts():
    def warned(deadline):
        clock = iter([100.0, 101.0]).__next__  # two epoch ends 1 s apart: 2 steps a second
        warning = callbacks.DecayOutOfBudgetWarning(deadline, decay_start=90, steps_per_epoch=2,
                                                    settings="--lr-decay-start 0.5 of --epochs 90",
                                                    clock=clock)
        warning.on_epoch_end(0)
        warning.on_epoch_end(1)
        return warning.warned

    assert not warned(150.0)  # 4 steps done, 49 s left: about step 102, past 90
    assert warned(120.0)  # 19 s left: about step 42


def test_critics_learn_at_their_own_rate_when_given_one(tiny_config):
    def rates(model, step=0):
        optimizers = [optimizer for optimizer, _ in model.optimized_networks()]
        for optimizer in optimizers:
            optimizer.iterations.assign(step)
        return [float(keras.ops.convert_to_numpy(optimizer.learning_rate)) for optimizer in optimizers]

    assert rates(cyclegan.build_cyclegan(tiny_config.replace(learning_rate=2e-4))) == pytest.approx([2e-4] * 4)
    two_rates = tiny_config.replace(learning_rate=2e-4, critic_learning_rate=8e-4)
    assert rates(cyclegan.build_cyclegan(two_rates)) == pytest.approx([2e-4, 2e-4, 8e-4, 8e-4])
    decaying = cyclegan.build_cyclegan(two_rates.replace(lr_decay_start=0.5), total_steps=100)
    assert rates(decaying, step=75) == pytest.approx([1e-4, 1e-4, 4e-4, 4e-4])  # both fall halfway


def test_resnet_generator_is_the_papers_design():
    config = config_lib.kaggle().replace(generator="resnet")
    generator = networks.build_generator(config)
    assert generator.output_shape == (None, 256, 256, 3)
    assert sum(layer.name.startswith("res") and layer.name[3:].isdigit() for layer in generator.layers) == 9
    assert generator.count_params() == 11_383_427  # the paper's 11.4 M (norm scales, no conv biases)
    assert networks.resnet_blocks(128) == 6
    padded = networks.ReflectionPadding2D(1)(tf.reshape(tf.range(9.0), [1, 3, 3, 1]))
    np.testing.assert_array_equal(padded[0, :, :, 0][0], [4.0, 3.0, 4.0, 5.0, 4.0])


def test_test_time_augmentation_averages_the_mirror_image(tiny_config):
    generator = networks.build_generator(tiny_config)
    photos = tf.constant(random_images(2, 32, seed=4))
    x = tf.cast(photos, tf.float32) / 127.5 - 1.0  # 32 px in, so no resizing
    expected = 0.5 * (generator(x) + tf.reverse(generator(tf.reverse(x, [2])), [2]))
    got = translate(generator, photos, 32, tta=True).numpy().astype(int)
    assert np.abs(got - ((expected.numpy() + 1) * 127.5).round().clip(0, 255)).max() <= 1
    assert not np.array_equal(got, translate(generator, photos, 32).numpy())


def test_export_uses_the_best_checkpoint_when_there_is_one(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    run_folder.write_run_config(run_dir, tiny_config)
    generators = {}
    for folder in (run_folder.CHECKPOINT_DIR, run_folder.BEST_CHECKPOINT_DIR):
        generators[folder] = networks.build_generator(tiny_config, name="photo_to_monet")
        tf.train.CheckpointManager(tf.train.Checkpoint(photo_to_monet=generators[folder]),
                                   str(run_dir / folder), 1).save(checkpoint_number=2)
    for which, folder in (("best", run_folder.BEST_CHECKPOINT_DIR), ("newest", run_folder.CHECKPOINT_DIR)):
        loaded = artifacts.load_generator(run_dir, tiny_config, which)
        np.testing.assert_array_equal(loaded.weights[0].numpy(), generators[folder].weights[0].numpy())


def test_bad_technique_values_are_config_errors():
    for changes, message in [({"generator": "vit"}, "generator must be one of unet, resnet"),
                             ({"diffaugment": "color,blur"}, "diffaugment .* may name"),
                             ({"lr_decay_start": 1.5}, "lr_decay_start must be in"),
                             ({"adversarial_loss": "wgan"}, "adversarial_loss must be one of"),
                             ({"generator_average": 1.0}, r"generator_average must be in \[0.0, 1.0\)")]:
        with pytest.raises(ConfigError, match=message):
            config_lib.tiny().replace(**changes)


def test_the_generators_moving_average_is_what_samples_and_exports_paint(tiny_config, tmp_path):
    config = tiny_config.replace(generator_average=0.5)
    keras.utils.set_random_seed(0)
    model = cyclegan.build_cyclegan(config)
    generator, optimizer = model.photo_to_monet, model.photo_to_monet_optimizer
    initial = [w.numpy() for w in generator.trainable_weights]
    with cyclegan.averaged_weights(generator, optimizer) as averaged:  # no step yet: no average
        for weight, value in zip(averaged.trainable_weights, initial):
            np.testing.assert_array_equal(weight.numpy(), value)
    trained = []
    for i in range(3):  # eager: tracing costs more than three tiny steps
        model.train_step((images(seed=i), images(seed=10 + i)))
        trained.append([w.numpy() for w in generator.trainable_weights])
    # The first step starts the average at the weights; each later one moves it half way.
    expected = [0.25 * a + 0.25 * b + 0.5 * c for a, b, c in zip(*trained)]
    assert max(np.abs(e - w).max() for e, w in zip(expected, trained[-1])) > 1e-4
    with cyclegan.averaged_weights(generator, optimizer) as averaged:
        for weight, value in zip(averaged.trainable_weights, expected):
            np.testing.assert_allclose(weight.numpy(), value, rtol=1e-5, atol=1e-7)
    for weight, value in zip(generator.trainable_weights, trained[-1]):  # trained weights back
        np.testing.assert_array_equal(weight.numpy(), value)

    run_dir = tmp_path / "run"
    run_folder.write_run_config(run_dir, config)
    checkpoint = checkpoints.make_checkpoint(model, tf.Variable(3, dtype=tf.int64))
    checkpoints.make_manager(checkpoint, run_dir / run_folder.CHECKPOINT_DIR, 1).save(checkpoint_number=3)
    for painting_config, values in ((config, expected), (config.replace(generator_average=0.0), trained[-1])):
        loaded = artifacts.load_generator(run_dir, painting_config)
        for weight, value in zip(loaded.trainable_weights, values):
            np.testing.assert_allclose(weight.numpy(), value, rtol=1e-5, atol=1e-7)
    # Without the setting the optimizer keeps no average, and painting uses the weights.
    plain = cyclegan.build_cyclegan(tiny_config)
    assert not cyclegan.keeps_average(plain.photo_to_monet_optimizer)
    assert len(plain.photo_to_monet_optimizer.variables) < len(optimizer.variables)
