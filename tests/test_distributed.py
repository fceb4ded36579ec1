"""The Distiller under tf.distribute.MirroredStrategy equals one device on the same batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _run(kind: str) -> dict:
    script = Path(__file__).with_name("mirrored_check.py")
    proc = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def mirrored_results():
    return {kind: _run(kind) for kind in ("zoo", "bn_free")}


def test_two_replicas_really_used(mirrored_results):
    assert mirrored_results["zoo"]["replicas"] == 2


@pytest.mark.parametrize("kind", ["zoo", "bn_free"])
def test_eval_losses_equal(mirrored_results, kind):
    one, two = mirrored_results[kind]["eval_one"], mirrored_results[kind]["eval_two"]
    for key in ("loss", "student_loss", "kd", "iusp", "sp", "auprc"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key


def test_one_train_step_gives_same_student(mirrored_results):
    r = mirrored_results["bn_free"]
    assert r["max_weight_change"] > 1e-3  # the step really moved the weights
    assert r["max_weight_diff"] < 1e-5 * max(1.0, r["max_weight_change"]) + 1e-6
