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


# --- MultiWorkerMirroredStrategy: two worker processes on localhost ----------------------------

def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on localhost (held open together, so they differ)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _start(kind: str, out: Path, tf_config: dict | None = None) -> subprocess.Popen:
    import os

    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    script = Path(__file__).with_name("multiworker_check.py")
    return subprocess.Popen([sys.executable, str(script), kind, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def multiworker_results(tmp_path_factory):
    """Two workers and the one-process reference, run at the same time; every process is
    killed if any fails or runs past the time limit, so none outlives the test."""
    tmp = tmp_path_factory.mktemp("multiworker")
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    procs = {"reference": _start("reference", tmp / "reference.json")}
    for index in range(2):
        procs[f"worker{index}"] = _start(
            "worker", tmp / f"worker{index}.json",
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
    try:
        for name, proc in procs.items():
            output, _ = proc.communicate(timeout=240)
            assert proc.returncode == 0, f"{name} failed:\n{output[-3000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {name: json.loads((tmp / f"{name}.json").read_text()) for name in procs}


def _max_diff(a: list, b: list) -> float:
    import numpy as np

    return max(float(np.abs(np.asarray(u) - np.asarray(v)).max()) for u, v in zip(a, b))


def test_multiworker_two_workers_two_replicas(multiworker_results):
    for name in ("worker0", "worker1", "reference"):
        assert multiworker_results[name]["replicas"] == 2, name


def test_multiworker_distils_the_same_student(multiworker_results):
    """Synchronous training: both workers end with the same student, and it is the student of
    one process that splits the same global batches over two replicas (float32 tolerance: the
    collectives may sum in another order)."""
    ref = multiworker_results["reference"]
    change = _max_diff(ref["after"], ref["before"])
    assert change > 1e-3  # the epoch really moved the weights
    for name in ("worker0", "worker1"):
        diff = _max_diff(multiworker_results[name]["after"], ref["after"])
        assert diff < 1e-5 * max(1.0, change) + 1e-6, (name, diff)


def test_multiworker_history_equals_one_process(multiworker_results):
    ref = multiworker_results["reference"]["history"]
    assert {"loss", "student_loss", "kd", "iusp", "sp", "val_auprc"} <= set(ref)
    for name in ("worker0", "worker1"):
        history = multiworker_results[name]["history"]
        assert set(history) == set(ref), name
        for key, values in ref.items():
            assert history[key] == pytest.approx(values, rel=1e-4, abs=1e-6), (name, key)
