import json

import pytest

from monet_gan import config as config_lib


def test_kaggle_preset_is_the_tutorial_recipe():
    config = config_lib.kaggle()
    assert (config.image_size, config.batch_size, config.epochs) == (256, 1, 25)
    assert (config.learning_rate, config.beta_1) == (2e-4, 0.5)
    assert config.cycle_weight == 10.0 and config.identity_weight == 0.5 * config.cycle_weight


def test_presets_differ_only_in_a_few_fields():
    default = config_lib.Config()
    for name in config_lib.PRESETS:
        preset = config_lib.preset(name)
        changed = [k for k, v in vars(preset).items() if v != getattr(default, k)]
        assert len(changed) <= 8, (name, changed)


def test_json_round_trip():
    config = config_lib.sample().replace(seed=7, augment=False)
    assert config_lib.Config.from_json(config.to_json()) == config


@pytest.mark.parametrize("size", [16, 48, 100, 512])
def test_image_size_must_be_a_power_of_two_from_32_to_256(size):
    with pytest.raises(config_lib.ConfigError, match=f"--image-size.*image_size={size}"):
        config_lib.Config(image_size=size)


def test_unknown_preset_and_fields_are_named():
    with pytest.raises(config_lib.ConfigError, match="--preset.*'huge'"):
        config_lib.preset("huge")
    with pytest.raises(config_lib.ConfigError, match="colour"):
        config_lib.Config().replace(colour=1)
    bad = json.dumps({"image_size": 64, "colour": 1})
    with pytest.raises(config_lib.ConfigError, match="run/config.json.*colour"):
        config_lib.Config.from_json(bad, source="run/config.json")


def test_fid_needs_two_images_when_it_is_scored():
    with pytest.raises(config_lib.ConfigError, match="fid_images.*Received: fid_images=1"):
        config_lib.tiny().replace(fid_every=1, fid_images=1)
    assert config_lib.tiny().replace(fid_every=0, fid_images=1).fid_images == 1
