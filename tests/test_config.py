import dataclasses
import json

import pytest

from monet_gan import config as config_lib
from monet_gan import run_folder, train
from monet_gan.errors import ConfigError, RunError


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


@pytest.mark.parametrize("flags, listed", [
    ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", True),
    ("fpu sse avx2 amx_bf16 amx_tile", True),
    ("fpu sse avx2 avx512f avx512_vnni", False),  # AVX512 without its bfloat16 part
])
def test_bfloat16_instructions_are_read_from_the_cpus_flags(tmp_path, flags, listed):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: a CPU named avx512_bf16\nflags\t\t: {flags}\n")
    assert config_lib.cpu_has_bfloat16(cpuinfo) is listed
    assert config_lib.cpu_has_bfloat16(tmp_path / "absent") is False  # no /proc/cpuinfo: other systems


@pytest.mark.parametrize("has_bfloat16, precision", [(True, "mixed_bfloat16"), (False, "float32")])
def test_laptop_preset_computes_in_bfloat16_only_on_cpus_that_have_it(monkeypatch, has_bfloat16, precision):
    monkeypatch.setattr(config_lib, "cpu_has_bfloat16", lambda: has_bfloat16)
    assert config_lib.laptop().precision == precision  # the tests run under TensorFlow


def test_json_round_trip():
    config = config_lib.sample().replace(seed=7, augment=False)
    assert config_lib.Config.from_json(config.to_json()) == config


@pytest.mark.parametrize("size", [16, 48, 100, 512])
def test_image_size_must_be_a_power_of_two_from_32_to_256(size):
    with pytest.raises(ConfigError, match=f"--image-size.*image_size={size}"):
        config_lib.Config(image_size=size)


def test_unknown_preset_and_fields_are_named():
    with pytest.raises(ConfigError, match="--preset.*'huge'"):
        config_lib.preset("huge")
    with pytest.raises(ConfigError, match="colour"):
        config_lib.Config().replace(colour=1)
    bad = json.dumps({"image_size": 64, "colour": 1})
    with pytest.raises(ConfigError, match="run/config.json.*colour"):
        config_lib.Config.from_json(bad, source="run/config.json")


def test_fid_needs_two_images_when_it_is_scored():
    with pytest.raises(ConfigError, match="fid_images.*Received: fid_images=1"):
        config_lib.tiny().replace(fid_every=1, fid_images=1)
    assert config_lib.tiny().replace(fid_every=0, fid_images=1).fid_images == 1


# --- every field has its flag, made from the field ---

def test_every_field_has_a_flag_with_its_help():
    parser = train.build_parser()
    options = {option for action in parser._actions for option in action.option_strings}
    for field in dataclasses.fields(config_lib.Config):
        assert config_lib.flag(field) in options, field.name
        assert field.metadata["help"], field.name
    assert "--data" in options and "--no-augment" in options and "--augment" in options


@pytest.mark.parametrize("argv, changes", [
    (["--dropout", "0.25", "--shuffle-buffer", "7", "--beta-1", "0.9"],
     {"dropout": 0.25, "shuffle_buffer": 7, "beta_1": 0.9}),  # fields that had no flag before
    (["--no-augment", "--jit-compile", "--no-export"], {"augment": False, "jit_compile": True, "export": False}),
    (["--data", "somewhere", "--generator", "resnet", "--steps-per-epoch", "3"],
     {"data_dir": "somewhere", "generator": "resnet", "steps_per_epoch": 3}),
])
def test_flags_set_exactly_their_fields(argv, changes):
    config = train.config_from_args(train.build_parser().parse_args(["--preset", "tiny", *argv]))
    assert config == config_lib.tiny().replace(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"learning_rate": float("nan")}, r"learning_rate must be a finite number \(flag --learning-rate\)"),
    ({"learning_rate": 0.0}, r"learning_rate must be more than 0.0 \(flag --learning-rate\)"),
    ({"beta_1": 1.0}, r"beta_1 must be in \[0.0, 1.0\) \(flag --beta-1\). Received: beta_1=1.0"),
    ({"epochs": 0}, r"epochs must be at least 1 \(flag --epochs\)"),
    ({"epochs": 2.5}, r"epochs must be of type int \(flag --epochs\)"),
    ({"augment": 1}, r"augment must be of type bool \(flag --augment\)"),
    ({"data_dir": 3}, r"data_dir must be of type str \(flag --data\)"),
    ({"on_bad_record": "ignore"}, r"on_bad_record must be one of fail, skip \(flag --on-bad-record\)"),
    ({"strategy": "gpu"}, r"strategy must be one of auto, tpu, mirrored, multiworker, default"),
])
def test_bad_values_name_the_field_its_flag_and_the_value(changes, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.tiny().replace(**changes)


def test_a_bad_value_in_a_runs_config_names_the_file():
    text = config_lib.tiny().to_json().replace('"epochs": 1', '"epochs": -1')
    with pytest.raises(ConfigError, match=r"run/config.json: epochs must be at least 1"):
        config_lib.Config.from_json(text, source="run/config.json")


def test_resume_refuses_flags_that_would_make_another_run(tmp_path):
    run_folder.write_run_config(tmp_path, config_lib.tiny())
    args = train.build_parser().parse_args(["--resume", str(tmp_path), "--epochs", "3", "--no-export",
                                            "--learning-rate", "1e-3", "--no-augment"])
    with pytest.raises(RunError, match="drop --augment, --learning-rate"):
        train.config_from_args(args)
    args = train.build_parser().parse_args(["--resume", str(tmp_path), "--epochs", "3", "--no-export"])
    assert train.config_from_args(args) == config_lib.tiny().replace(epochs=3, export=False)


@pytest.mark.parametrize("text, seconds", [("40m", 2400), ("1h30m", 5400), ("90s", 90), ("90", 90),
                                           ("1.5h", 5400), ("", None)])
def test_a_time_budget_reads_hours_minutes_and_seconds(text, seconds):
    assert config_lib.duration_seconds(text) == seconds
    assert config_lib.Config(time_budget=text).time_budget == text


@pytest.mark.parametrize("text", ["40x", "m", "0", "0m", "-5m", "1m1h"])
def test_a_time_budget_that_is_no_duration_is_refused_naming_its_flag(text):
    with pytest.raises(ConfigError, match=r"time_budget must be a duration such as 40m.*--time-budget"):
        config_lib.Config(time_budget=text)
