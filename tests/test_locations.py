"""The C++ sources and TFLite-Micro builds are found in one place, and can be moved."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from keras_iusp.export import locations

PROBE = """
import json
from keras_iusp.export import locations, cortex_m4, targets
print(json.dumps({"tflm": str(locations.TFLM_DIR), "m4": str(cortex_m4.TFLM_M4_LIBRARY),
                  "targets": str(targets.DEFAULT_TARGETS_DIR),
                  "missing": locations.missing(m4=True)}))
"""


def _probe(tmp_path, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, env={**os.environ, **env}, cwd=tmp_path).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_checkout_layout_is_complete_here():
    # the repository's deploy/ tree is always there; the TFLM build is the shared fixture
    assert (locations.RUNNER_DIR / "stream_runner.cc").is_file()
    assert (locations.TARGET_DIR / "mps2_an386.ld").is_file()


def test_environment_moves_both_and_missing_names_the_variable(tmp_path):
    got = _probe(tmp_path, KERAS_IUSP_TFLM=str(tmp_path / "tflm"),
                 KERAS_IUSP_DEPLOY=str(tmp_path / "deploy"))
    assert got["tflm"] == str(tmp_path / "tflm")
    assert got["m4"].startswith(str(tmp_path / "tflm"))  # the builder reads the same place
    assert got["targets"] == str(tmp_path / "deploy" / "targets")
    assert len(got["missing"]) == 2
    deploy, tflm = got["missing"]
    assert "KERAS_IUSP_DEPLOY" in deploy and str(tmp_path / "deploy") in deploy
    assert "KERAS_IUSP_TFLM" in tflm and str(tmp_path / "tflm") in tflm
