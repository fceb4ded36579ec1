"""The probe-student trainer takes its recipes from the experiment config and refuses a method
the config does not have, in one line with exit 2, before any data is read or written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "real_audio" / "train_probe_students.py"


def test_a_method_outside_the_config_is_one_clear_error(tmp_path):
    out = tmp_path / "probe"
    done = subprocess.run([sys.executable, str(SCRIPT), "--student", "cnn_lstm_xs",
                           "--methods", "baseline", "kd_typo", "--seeds", "0", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("train_probe_students: error: --methods ['kd_typo']: not in")
    assert "iusp_pool" in last  # names the config's methods
    assert not out.exists()
