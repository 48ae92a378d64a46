"""Every command answers every kind of bad input a user can give it (a bad flag, bad data, a
bad run folder, an unwritable output) the same way: exit code 2, one line on stderr that names
what to fix, no traceback. Commands are called in-process through their `main`; one test runs
a real `python -m monet_gan.train` whose export fails at the end of training."""

import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import random_images, write_records

from monet_gan import evaluate, export, make_tfrecords, networks, run_folder, train


@pytest.fixture(scope="module")
def places(tmp_path_factory, data_dir):
    """Paths for the bad inputs: a file where a folder should be, an empty folder, a folder
    with a broken image, a run with a checkpoint, and a folder that is no run."""
    root = tmp_path_factory.mktemp("places")
    (root / "a_file").write_text("")
    (root / "empty").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "b.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "good").mkdir()
    (root / "good" / "g.png").write_bytes(tf.io.encode_png(random_images(1, 32)[0]).numpy())
    write_records(root / "no_layout" / "m.tfrec", random_images(1))
    config = train.config_lib.tiny().replace(data_dir=str(data_dir))
    run_folder.write_run_config(root / "run", config)
    generator = networks.build_generator(config, name="photo_to_monet")
    tf.train.CheckpointManager(tf.train.Checkpoint(photo_to_monet=generator),
                               str(root / "run" / run_folder.CHECKPOINT_DIR), 1).save(checkpoint_number=1)
    return root


# (command, kind, arguments with {root} for the places, what the one line must say)
BAD_INPUTS = [
    (train, "flag", ["--learning-rate", "nan"], r"learning_rate must be a finite number \(flag --learning-rate\)"),
    (train, "flag", ["--epochs", "many"], r"argument --epochs: invalid int value: 'many'"),
    (train, "flag", ["--preset", "huge"], r"argument --preset: invalid choice: 'huge'"),
    (train, "data", ["--preset", "tiny", "--data", "{root}/no_layout"], r"--data {root}/no_layout holds neither monet_tfrec/ nor monet_jpg/"),
    (train, "run folder", ["--resume", "{root}/empty"], r"{root}/empty is not a monet_gan run folder"),
    (train, "run folder", ["--preset", "tiny", "--data", "{data}", "--run-dir", "{root}/run"],
     r"--run-dir {root}/run already holds a run"),
    (train, "output", ["--preset", "tiny", "--data", "{data}", "--run-dir", "{root}/a_file/run"],
     r"--run-dir {root}/a_file/run cannot be written"),
    (export, "flag", ["{root}/run", "--checkpoint", "worst"], r"argument --checkpoint: invalid choice: 'worst'"),
    (export, "data", ["{root}/run", "--photos", "{root}/broken"], r"{root}/broken/b.jpg: not a readable JPEG"),
    (export, "run folder", ["{root}/empty"], r"{root}/empty is not a monet_gan run folder"),
    (export, "output", ["{root}/run", "--out", "{root}/a_file/images.zip"],
     r"--out {root}/a_file cannot be written"),
    (export, "output", ["{root}/run", "--out", "{root}/empty"], r"--out {root}/empty is a folder"),
    (evaluate, "flag", ["{root}/good", "{root}/good", "--on-bad-record", "maybe"],
     r"argument --on-bad-record: invalid choice: 'maybe'"),
    (evaluate, "data", ["{root}/empty", "{root}/good"], r"GENERATED {root}/empty: found no zip, TFRecords"),
    (evaluate, "output", ["{root}/good", "{root}/good", "--results", "{root}/a_file/r.jsonl"],
     r"--results {root}/a_file cannot be written"),
    (make_tfrecords, "flag", ["{root}/good", "{root}/out", "--target", "paintings"],
     r"argument --target: invalid choice: 'paintings'"),
    (make_tfrecords, "data", ["{root}/broken", "{root}/out", "--target", "photo"], r"b.jpg: not a readable JPEG"),
    (make_tfrecords, "output", ["{root}/good", "{root}/a_file/out", "--target", "photo"],
     r"OUT_DIR {root}/a_file/out cannot be written"),
]


@pytest.mark.parametrize("command, kind, args, message", BAD_INPUTS,
                         ids=[f"{c.__name__.split('.')[-1]}-{k}-{i}" for i, (c, k, _, _) in enumerate(BAD_INPUTS)])
def test_bad_input_is_exit_code_2_and_one_line(command, kind, args, message, places, data_dir, capsys):
    fill = {"root": str(places), "data": str(data_dir)}
    code = command.main([a.format(**fill) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message.format(**fill), lines[0]), lines[0]
    assert "Traceback" not in out + err


def test_help_is_generated_from_the_config(capsys):
    with pytest.raises(SystemExit) as exited:
        train.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--dropout X" in text and "--generator unet|resnet" in text and "--no-augment" in text


def tf_startup_line(line: str) -> bool:
    """TensorFlow's own lines, printed at import before logging is set up."""
    return bool(re.match(r"(WARNING: All log messages before absl|[IWE]\d{4} )", line))


def test_an_export_error_at_the_end_of_training_is_one_line(data_dir, tmp_path):
    """Under `python -m monet_gan.train`, train.py runs as __main__: an export error raised at
    the end of training must still be caught (once, an import circle made it a traceback)."""
    run_dir = tmp_path / "run"
    (run_dir / "images.zip").mkdir(parents=True)  # where the submission is to go: a folder
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", "monet_gan.train", "--preset", "tiny", "--data",
                             str(data_dir), "--run-dir", str(run_dir), "--steps-per-epoch", "1"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not tf_startup_line(line)]
    assert lines == [f"error: {run_dir}/images.zip is a folder; the output is a file there. "
                     "Move the folder away."]
    assert (run_dir / "checkpoints" / "ckpt-1.index").exists()  # training's work is kept
