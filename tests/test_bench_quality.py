"""bench/quality.py's promise about its runs: stopping the benchmark stops them, each saved at
its step, and leaves no training process behind; a later command with --runs continues it. A
run that scores FID while training is painted from its best checkpoint too, as a row of its own."""

import argparse
import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from monet_gan import checkpoints, run_folder

from conftest import random_images, write_records

BENCHMARK = Path(__file__).resolve().parent.parent / "bench" / "quality.py"


def run_processes(runs: Path) -> list[int]:
    """Pids of the benchmark's training processes (`--run`) writing into `runs`."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or it ended
            continue
        if b"--run" in command and str(runs).encode() in b" ".join(command):
            pids.append(int(entry.name))
    return pids


def start_benchmark(tmp_path, *flags) -> tuple[subprocess.Popen, list, Path, Path]:
    """The benchmark training the tutorial on 10 random paintings and photos (8 trained on, a
    checkpoint at each epoch's end), in a session of its own as a terminal's foreground job
    (Ctrl-C goes to its whole group), once its first run has saved a checkpoint."""
    data = tmp_path / "data"
    write_records(data / "monet_tfrec" / "monet00-10.tfrec", random_images(10, seed=1))
    write_records(data / "photo_tfrec" / "photo00-10.tfrec", random_images(10, seed=2))
    runs, results = tmp_path / "runs", tmp_path / "results"
    command = [sys.executable, str(BENCHMARK), "--data", str(data), "--validation", "none",
               "--size", "32", "--width", "4", "--photos", "4", "--epochs", "100000",
               "--variants", "tutorial", "--jobs", "1",
               "--runs", str(runs), "--results", str(results), "--no-score", *flags]
    benchmark = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), start_new_session=True)
    checkpoint_dir = runs / "tutorial-seed0" / run_folder.CHECKPOINT_DIR
    deadline = time.monotonic() + 240
    try:
        while not checkpoints.checkpoint_steps(checkpoint_dir):
            assert benchmark.poll() is None, benchmark.communicate()
            assert time.monotonic() < deadline, "the first run saved no checkpoint in 4 minutes"
            time.sleep(0.2)
        assert len(run_processes(runs)) == 1
    except BaseException:
        stop_everything(benchmark, runs)
        raise
    return benchmark, command, runs, results


def stop_everything(benchmark: subprocess.Popen, runs: Path) -> None:
    """Whatever a test left, nothing of it trains on."""
    if benchmark.poll() is None:
        os.killpg(benchmark.pid, signal.SIGKILL)
    for pid in run_processes(runs):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_reaches_the_runs_which_save_at_their_step_and_the_same_command_continues_them(tmp_path):
    benchmark, command, runs, results = start_benchmark(tmp_path, "--seeds", "0,1")
    checkpoint_dir = runs / "tutorial-seed0" / run_folder.CHECKPOINT_DIR
    try:
        os.killpg(benchmark.pid, signal.SIGINT)  # Ctrl-C
        stdout, stderr = benchmark.communicate(timeout=120)

        assert benchmark.returncode == 128 + signal.SIGINT, stderr
        # The run had its own session: one SIGTERM, from the benchmark, and it saved at its step.
        stopped = re.search(r"tutorial-seed0: saved and stopped \(Stopped by SIGTERM after step (\d+); saved", stdout)
        assert stopped, stdout
        assert max(checkpoints.checkpoint_steps(checkpoint_dir)) == int(stopped[1])
        assert "tutorial-seed1: not started" in stdout
        assert not (runs / "tutorial-seed1").exists()
        assert run_processes(runs) == [], "a training process outlived the benchmark"
        assert not list(results.glob("tutorial-seed0*")), "a stopped run was painted as if finished"

        # The same command with --runs continues the stopped run from its checkpoint: the epochs
        # it logged before the stop keep their lines (a new run would log them anew).
        metrics = runs / "tutorial-seed0" / "metrics.csv"
        logged = metrics.read_text().splitlines()
        epochs = int(stopped[1]) // 8 + 2  # 8 steps an epoch; one more after the interrupted one
        again = [epochs if flag == "100000" else flag for flag in command]
        again[again.index("0,1")] = "0"
        finished = subprocess.run([str(flag) for flag in again], capture_output=True, text=True, timeout=300,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert json.loads((results / "tutorial-seed0.json").read_text())["steps_done"] == 8 * epochs
        lines = metrics.read_text().splitlines()
        assert lines[:len(logged)] == logged and len(lines) == epochs + 1  # and the header
    finally:
        stop_everything(benchmark, runs)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_benchmark_killed_outright_stops_its_run_through_the_kernel(tmp_path):
    benchmark, _, runs, _ = start_benchmark(tmp_path, "--seeds", "0")
    try:
        os.kill(benchmark.pid, signal.SIGKILL)  # the benchmark alone: nothing it could forward
        benchmark.wait(timeout=60)
        deadline = time.monotonic() + 120
        while run_processes(runs):
            assert time.monotonic() < deadline, "the run trained on after its benchmark was killed"
            time.sleep(0.2)
        # Without the kernel's SIGTERM it would have trained its 100000 epochs; with it, it saved
        # after its step as a stop signal has it do, and left whole checkpoints.
        checkpoint_dir = runs / "tutorial-seed0" / run_folder.CHECKPOINT_DIR
        newest = max(checkpoints.checkpoint_steps(checkpoint_dir))
        assert (checkpoint_dir / f"{checkpoints.CHECKPOINT_PREFIX}-{newest}.index").is_file()
    finally:
        stop_everything(benchmark, runs)


def test_a_run_that_scores_fid_also_paints_its_best_checkpoint_as_a_row_of_its_own(weights, tmp_path):
    spec = importlib.util.spec_from_file_location("quality_bench", BENCHMARK)
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    data, results, runs = tmp_path / "data", tmp_path / "results", tmp_path / "runs"
    write_records(data / "monet_tfrec" / "monet00-4.tfrec", random_images(4, seed=1))
    write_records(data / "photo_tfrec" / "photo00-6.tfrec", random_images(6, seed=2))
    results.mkdir()
    args = argparse.Namespace(time_budget=None, epochs=3, size=32, width=4, export_mode="full", data=data,
                              photos=3, export_size=32, variant_names=["scored"])
    quality.run_variant("scored", {"augment": False, "fid_every": 1, "fid_images": 3}, 0, args, data,
                        results, runs)

    row = json.loads((results / "scored_best-seed0.json").read_text())
    kept = json.loads((runs / "scored-seed0" / run_folder.BEST_CHECKPOINT_DIR / run_folder.BEST_SCORE_FILE).read_text())
    assert row["variant"] == "scored_best" and row["changes"]["checkpoint"] == "best" and row["best"] == kept
    last, best = (zipfile.ZipFile(results / f"{name}-seed0-step0.zip") for name in ("scored", "scored_best"))
    assert last.namelist() == best.namelist() == ["0000.jpg", "0001.jpg", "0002.jpg"]
    same = all(last.read(n) == best.read(n) for n in last.namelist())
    assert same == (kept["epoch"] == 3)  # the same paintings exactly when the best is the last epoch
