"""``keras-iusp tune --storage``: several processes share one Optuna study per method.

The test starts its own PostgreSQL server (Debian's ``postgresql``: ``initdb`` in a temporary
folder, a unix socket there, no TCP), runs two ``tune`` processes on one database at the same
time and the same search in one process alone on another, and compares them.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TRIALS = 2
METHODS = ("baseline", "kd")
TIMEOUT = 400


def _pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian's newest, else the PATH's."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True):
        if Path(folder, "initdb").is_file() and Path(folder, "pg_ctl").is_file():
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def _as_server_user(cmd: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as ``nobody`` then."""
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    """``url(database)``: a fresh PostgreSQL server on a unix socket, stopped afterwards."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        message = "PostgreSQL server (initdb, pg_ctl) not found: apt-get install postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="kiusp-pg-"))  # short: a socket path has a limit
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
    data = folder / "data"
    run = lambda cmd: subprocess.run(_as_server_user(cmd), check=True, capture_output=True,  # noqa: E731
                                     text=True, timeout=120)
    try:
        run([str(bin_dir / "initdb"), "-D", str(data), "-U", "kiusp", "--auth=trust",
             "-E", "UTF8", "--no-sync"])
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
             "-o", f"-k {folder} -c listen_addresses='' -c fsync=off", "start"])
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise AssertionError(f"could not start PostgreSQL: {exc.stderr}") from None

    def url(database: str) -> str:
        import sqlalchemy

        admin = sqlalchemy.create_engine(f"postgresql+psycopg2://kiusp@/postgres?host={folder}",
                                         isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        return f"postgresql+psycopg2://kiusp@/{database}?host={folder}"

    try:
        yield url
    finally:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                                        "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _config(tmp_path: Path, header: str) -> Path:
    path = tmp_path / "tune.toml"
    path.write_text(header + '[grid]\nstudents = ["cnn_lstm_xs"]\n'
                    'methods = ["baseline", "kd"]\nseeds = [0]\nepochs = 1\nbatch_size = 8\n')
    return path


def _tune(config: Path, out: Path, storage: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "keras_iusp.cli.main", "tune", "--config", str(config),
           "--out", str(out), "--trials", str(TRIALS), "--epochs", "1",
           "--methods", *METHODS,
           "--storage", storage]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _trials_run(output: str) -> dict[str, list[int]]:
    """The trial numbers a process started, by method (from its ``== tune`` lines)."""
    runs: dict[str, list[int]] = {m: [] for m in METHODS}
    for method, number in re.findall(r"^== tune (\w+) trial (\d+)/", output, re.MULTILINE):
        runs[method].append(int(number))
    return runs


@pytest.fixture(scope="module")
def shared_and_alone(postgres, tmp_path_factory, tiny_data, tiny_teacher):
    """Two ``keras-iusp tune`` processes on one database and, meanwhile, the same search in this
    process alone on another database; the two processes are killed if anything fails or runs
    past the limit, so none outlives the test."""
    from keras_iusp.experiments.config import load_config
    from keras_iusp.experiments.tune import run_tuning

    tmp = tmp_path_factory.mktemp("tune_storage")
    _, data_dir, _ = tiny_data
    config = _config(tmp, f'name = "shared_tune"\n[data]\npath = "{data_dir}"\n'
                     f'clip_seconds = 1.0\n[teacher]\nrun = "{tiny_teacher.path}"\n')
    shared, alone = postgres("shared"), postgres("alone")
    procs = {"a": _tune(config, tmp / "a", shared), "b": _tune(config, tmp / "b", shared)}
    outputs = {}
    try:
        run_tuning(load_config(config), tmp / "alone", trials=TRIALS, epochs=1,
                   methods=list(METHODS),
                   verbose=0, storage=alone)
        for name, proc in procs.items():
            outputs[name], _ = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, f"tune {name} failed:\n{outputs[name][-3000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    summaries = {name: json.loads((tmp / name / "tuning" / "trials.json").read_text())
                 for name in ("a", "b", "alone")}
    return {"outputs": outputs, "summaries": summaries, "shared": shared, "alone": alone}


def test_shared_study_runs_each_trial_once(shared_and_alone):
    import optuna

    runs = {name: _trials_run(shared_and_alone["outputs"][name]) for name in ("a", "b")}
    for method in METHODS:
        study = optuna.load_study(study_name=f"shared_tune/{method}",
                                  storage=shared_and_alone["shared"])
        states = [t.state.name for t in study.trials]
        assert states == ["COMPLETE"] * TRIALS, (method, states)  # none lost, none over budget
        started = runs["a"][method] + runs["b"][method]
        # each trial started by exactly one of the two processes
        assert sorted(started) == list(range(1, TRIALS + 1)), (method, runs)
        params = [json.dumps(t.params, sort_keys=True) for t in study.trials]
        assert len(set(params)) == TRIALS, params
    print("trials started per process:", runs)


def test_shared_study_has_the_winners_of_one_process(shared_and_alone):
    """The same trials (parameters by trial number) and the same winner per method; scores
    equal within float tolerance (the same training, in other processes)."""
    summaries = shared_and_alone["summaries"]
    alone = summaries["alone"]["methods"]
    for name in ("a", "b"):
        for method in METHODS:
            shared = summaries[name]["methods"][method]
            assert [t["params"] for t in shared["trials"]] == \
                [t["params"] for t in alone[method]["trials"]], (name, method)
            assert shared["best_params"] == alone[method]["best_params"], (name, method)
            assert shared["best_value"] == pytest.approx(alone[method]["best_value"],
                                                         rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("url", [
    "not a url",
    "oracle://user@host/db",
    "postgresql+psycopg2://nobody@/none?host=/nonexistent-socket-dir",
])
def test_bad_storage_url_is_one_error_line(tmp_path, capsys, url, tiny_grid_header):
    from keras_iusp.cli.main import main

    config = _config(tmp_path, tiny_grid_header("shared_tune"))
    out = tmp_path / "out"
    code = main(["tune", "--config", str(config), "--out", str(out), "--storage", url])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("keras-iusp: error: --storage"), err
    assert not out.exists()  # nothing written


def test_startup_draws_follow_the_trial_number():
    """Two processes' samplers (same seed) taking turns on one study draw, trial by trial, what
    one sampler draws alone; TPE's own start-up would give both processes the same draws."""
    import optuna

    from keras_iusp.experiments.tune import SEARCH_SPACE, _suggest
    from keras_iusp.experiments.tune_storage import TrialSeededSampler

    space = SEARCH_SPACE["iusp"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def draw(study) -> dict:
        trial = study.ask()
        params = {n: _suggest(trial, n, spec) for n, spec in space.items()}
        study.tell(trial, 0.5)
        return params

    alone = optuna.create_study(sampler=TrialSeededSampler(3, 3), direction="maximize")
    expected = [draw(alone) for _ in range(3)]
    storage = optuna.storages.InMemoryStorage()
    one, other = (optuna.create_study(study_name="s", storage=storage, direction="maximize",
                                      load_if_exists=True, sampler=TrialSeededSampler(3, 3))
                  for _ in range(2))
    assert [draw(one), draw(other), draw(other)] == expected
    assert len({json.dumps(p, sort_keys=True) for p in expected}) == 3


def test_dead_process_trial_is_run_again_with_its_parameters(tmp_path):
    """A running trial whose process stopped beating is failed, queued again with its
    parameters and run by the next process; the budget still ends at its count."""
    import threading

    import optuna

    from keras_iusp.experiments.tune import _run_budget
    from keras_iusp.experiments.tune_storage import StudyLock, TrialSeededSampler

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    storage = optuna.storages.RDBStorage(
        url, heartbeat_interval=1, grace_period=2,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback())
    study = optuna.create_study(study_name="t/baseline", storage=storage, direction="maximize",
                                sampler=TrialSeededSampler(0, 3))
    dead = study.ask()  # a process that started a trial, beat once, and was killed
    lost = dead.suggest_float("learning_rate", 1e-3, 1e-2, log=True)
    storage.record_heartbeat(dead._trial_id)
    ran = []

    def objective(trial):
        ran.append(trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True))
        return 0.5

    # in a thread, so that a process waiting forever for the dead trial fails the test
    worker = threading.Thread(target=_run_budget, daemon=True, args=(
        optuna, study, objective, 2, lambda: None, StudyLock(url, study.study_name)))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "still waiting for the dead process's trial"
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 2 and states.count("FAIL") == 1, states
    assert lost in ran and len(ran) == 2  # the dead trial's parameters, run once more
