"""Cell claims: one process per grid cell, dead claims taken over, ``experiment --jobs``."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from keras_iusp.experiments.claims import (
    CLAIM_NAME,
    LOCK_NAME,
    claim_holder,
    claimed,
    release,
    try_claim,
)

HOLDER = """
import sys, time
from keras_iusp.experiments.claims import try_claim
print(try_claim(sys.argv[1]), flush=True)
time.sleep(120)
"""


def _holder(run: Path) -> subprocess.Popen:
    """A separate process that claims ``run`` and then sleeps."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "True"
    return proc


def test_a_free_cell_is_claimed_and_released(tmp_path):
    run = tmp_path / "cell"
    assert claim_holder(run) is None
    assert try_claim(run)
    assert (run / CLAIM_NAME).read_text() == f"{socket.gethostname()} {os.getpid()}"
    assert try_claim(run)  # this process's own claim does not block it
    assert claim_holder(run) is None
    release(run)
    assert not (run / CLAIM_NAME).exists()
    with claimed(run) as mine:
        assert mine and (run / CLAIM_NAME).exists()
    assert not (run / CLAIM_NAME).exists()


def test_a_live_claim_blocks_and_a_dead_one_is_free(tmp_path):
    run = tmp_path / "cell"
    holder = _holder(run)
    try:
        assert claim_holder(run) == f"{socket.gethostname()} {holder.pid}"
        assert not try_claim(run)
        with claimed(run) as mine:
            assert not mine
        release(run)  # not ours: left alone
        assert (run / CLAIM_NAME).exists()
        holder.kill()
        # not reaped yet: a zombie, whose lock the kernel has already dropped
        deadline = time.monotonic() + 20
        while claim_holder(run) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert claim_holder(run) is None
        assert try_claim(run)
        assert (run / CLAIM_NAME).read_text().endswith(f" {os.getpid()}")
    finally:
        holder.kill()
        holder.wait()
        release(run)


def test_a_claim_file_without_a_live_holder_does_not_block(tmp_path):
    # e.g. left by a process in another container (other host name) or before a reboot
    # (a process id now reused): only the lock counts
    run = tmp_path / "cell"
    run.mkdir()
    (run / CLAIM_NAME).write_text("some-other-host 1")
    (run / LOCK_NAME).touch()
    assert claim_holder(run) is None
    assert try_claim(run)
    release(run)


def _claim_all(folders: list[str], barrier, results) -> None:
    barrier.wait()  # start together
    mine = [f for f in folders if try_claim(f)]
    results.put((os.getpid(), mine))
    barrier.wait()  # stay alive (holding the claims) until every process has tried them all


def test_racing_processes_never_share_a_cell(tmp_path):
    folders = [str(tmp_path / f"cell{i}") for i in range(200)]
    context = multiprocessing.get_context("fork")  # the children use no TensorFlow
    barrier = context.Barrier(3)
    results = context.Queue()
    procs = [context.Process(target=_claim_all, args=(folders, barrier, results))
             for _ in range(3)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    claimed_by = [f for _, mine in got for f in mine]
    assert sorted(claimed_by) == sorted(folders)  # every cell exactly once


def test_experiment_jobs_trains_each_cell_once_across_processes(tmp_path, tiny_grid_header,
                                                                capsys, monkeypatch):
    import keras_iusp.train.training
    from keras_iusp.experiments.config import load_config
    from keras_iusp.experiments.grid import run_experiment

    out = tmp_path / "out"
    distill = keras_iusp.train.training.distill

    def distill_once_the_worker_works(*args, **kwargs):
        # The parent's runs take a second each; without this the parent could finish them all
        # while the worker is still importing TensorFlow (the worker does not see the patch).
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(
                claim_holder(p.parent) for p in out.glob("runs/*/*/*/" + LOCK_NAME)):
            time.sleep(0.2)
        return distill(*args, **kwargs)

    monkeypatch.setattr(keras_iusp.train.training, "distill", distill_once_the_worker_works)

    path = tmp_path / "grid.toml"
    path.write_text(tiny_grid_header("jobs") + """
[grid]
students = ["cnn_lstm_xs"]
methods = ["baseline", "kd"]
seeds = [0, 1]
epochs = 1
batch_size = 8
eval_split = "validate"
""")
    rows = run_experiment(load_config(path), out, verbose=0, jobs=2)
    parent = capsys.readouterr().out
    worker = (out / "workers" / "worker1.log").read_text()
    started = re.compile(r"^== \[\d/4\] (\S+ \S+ seed \d)$", re.M)
    here, there = started.findall(parent), started.findall(worker)
    # every cell trained exactly once, and both processes trained some
    assert sorted(here + there) == sorted(f"cnn_lstm_xs {m} seed {s}"
                                          for m in ("baseline", "kd") for s in (0, 1))
    assert here and there
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("baseline", 0), ("kd", 0), ("baseline", 1), ("kd", 1)]
    assert len(json.loads((out / "results.json").read_text())) == 4
    assert not list(out.glob("runs/*/*/*/" + CLAIM_NAME))  # every claim released
    assert (out / "report.md").is_file()


def test_experiment_refuses_a_bad_jobs_count(tmp_path, capsys):
    from keras_iusp.cli.main import main

    config = Path(__file__).resolve().parents[1] / "configs" / "experiment_small.toml"
    assert main(["experiment", "--config", str(config), "--out", str(tmp_path),
                 "--jobs", "0"]) == 2
    assert "argument --jobs: expected an integer >= 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything was written


PARENT = """
import multiprocessing, pathlib, sys, time
from keras_iusp.experiments.scheduler import exit_with_parent

def child():
    exit_with_parent(poll_seconds=0.2)
    pathlib.Path(sys.argv[1]).write_text("armed")
    time.sleep(120)

if __name__ == "__main__":
    p = multiprocessing.get_context("spawn").Process(target=child)
    p.start()
    print(p.pid, flush=True)
    time.sleep(120)
"""


def test_a_worker_stops_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    armed = tmp_path / "armed"
    parent = subprocess.Popen([sys.executable, str(script), str(armed)], stdout=subprocess.PIPE,
                              text=True)
    try:
        child = int(parent.stdout.readline())
        # the child imports TensorFlow first: kill the parent only once the watch is armed
        deadline = time.monotonic() + 120
        while not armed.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert armed.is_file(), "the worker never armed its watch"
        os.kill(child, 0)  # the worker runs while its parent does
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(child, 9)
            raise AssertionError("the worker outlived its killed parent by 20 s")
    finally:
        if parent.poll() is None:
            parent.kill()
