"""bench/paint_speed.py runs end to end (on the tiny preset and a small photo) and prints its table."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "paint_speed.py"


def test_the_script_times_both_modes_and_counts_the_tiles():
    run = subprocess.run([sys.executable, str(SCRIPT), "--preset", "tiny", "--width", "100", "--height", "70",
                          "--repeats", "1"], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert rows[2].startswith("| resize (the SavedModel's way, baseline) |")
    # 32 px tiles overlapping by 8: starts 0, 24, 38 down 70 px and 0, 24, 48, 68 across 100 px
    assert rows[3].startswith("| full (32 px tiles, 8 px overlap, 8 at a time) |") and "| 12 |" in rows[3]
