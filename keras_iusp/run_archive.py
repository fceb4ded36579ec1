"""Finished grid runs kept as small records, so a grid can outlive the machine it ran on.

A grid at the paper's scale takes longer on two CPU cores than one working session lasts, and
the machine's run folders do not survive it. Committing whole run folders would put megabytes of
weights per run into the repository, yet everything the report needs from a finished run is
small: its metrics and settings, its training history, its wall time, its clip scores on the
evaluated split and its IUSP distance to the teacher (kept once the report has computed it).
:func:`archive_runs` copies exactly those files of every finished run; :func:`restore_runs`
copies them back into a grid folder, where the grid counts them as finished and checks their
settings against the config like any other kept run.

Distillation runs depend on the teacher, so the archive records the fingerprint of the
teacher's weights and a restore refuses a grid folder whose teacher differs: a retrained
teacher that is not bit-identical would pair old students with a new teacher.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from keras_iusp.atomic import atomic_path, atomic_write_text
from keras_iusp.claims import CLAIM_NAME, LOCK_NAME, claim_holder, claimed
from keras_iusp.errors import ConfigError

#: Files of a run folder that its record keeps (weights are left out on purpose).
RECORD_FILES = ("metrics.json", "model_info.json", "history.json", "wall.json")
#: File-name patterns a record also keeps: clip scores and IUSP distances, one file per split.
RECORD_PATTERNS = ("scores_*.npy", "iusp_distance_*.json")
#: The archive's description of the teacher its runs were trained against.
TEACHER_FILE = "teacher.json"


def _finished_runs(runs_root: Path) -> list[Path]:
    """Every ``<student>/<method>/seed<k>`` folder under ``runs_root`` with a ``metrics.json``."""
    if not runs_root.is_dir():
        return []
    return sorted(p.parent for p in runs_root.glob("*/*/seed*/metrics.json"))


def _record_files(run_dir: Path) -> list[Path]:
    files = [run_dir / name for name in RECORD_FILES if (run_dir / name).is_file()]
    for pattern in RECORD_PATTERNS:
        files.extend(sorted(run_dir.glob(pattern)))
    return files


def _copy(source: Path, target: Path) -> None:
    """Copy one file through a temporary name, so an interrupted copy leaves nothing partial."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def archive_runs(grid_out: str | Path, dest: str | Path, teacher_fingerprint: str) -> int:
    """Copy the record of every finished run of the grid in ``grid_out`` into ``dest`` (same
    ``<student>/<method>/seed<k>`` layout); returns how many runs it holds afterwards.

    ``dest`` may already hold records of earlier sessions: they are kept and refreshed, but only
    when they were trained against the same teacher (``teacher_fingerprint``, see
    :func:`keras_iusp.teacher_cache.weights_fingerprint`).
    """
    dest = Path(dest)
    _check_teacher(dest, teacher_fingerprint, "archive into")
    runs = _finished_runs(Path(grid_out) / "runs")
    for run_dir in runs:
        if not (run_dir / "model_info.json").is_file():
            raise ConfigError(f"{run_dir}: has metrics.json but no model_info.json; not a "
                              "finished grid run")
        relative = run_dir.relative_to(Path(grid_out) / "runs")
        for source in _record_files(run_dir):
            _copy(source, dest / relative / source.name)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / TEACHER_FILE,
                      json.dumps({"weights_sha256": teacher_fingerprint}, indent=1))
    return len(_finished_runs(dest))


def restore_runs(source: str | Path, grid_out: str | Path, teacher_fingerprint: str,
                 teacher_path: str | Path) -> int:
    """Copy the archived records in ``source`` into ``grid_out/runs``; returns how many runs
    were restored (none when ``source`` does not exist yet, so one command serves every session
    of a grid). A run folder the grid already finished is left as it is (it is at least as
    complete as its record); an unfinished one is replaced by the record.

    A distilled run's record names the teacher folder it was trained with; the restored copy
    names ``teacher_path``, the grid's teacher, whose weights the fingerprint check has just
    found identical (the grid otherwise compares teachers by path).
    """
    source = Path(source)
    if not source.exists():  # the first session of a grid: nothing archived yet
        print(f"{source}: no run archive yet, nothing to restore", flush=True)
        return 0
    if not (source / TEACHER_FILE).is_file():
        raise ConfigError(f"{source}: not a run archive (expected {TEACHER_FILE}, written by "
                          "`keras-iusp experiment --archive`)")
    _check_teacher(source, teacher_fingerprint, "restore from")
    restored = 0
    for record in _finished_runs(source):
        relative = record.relative_to(source)
        target = Path(grid_out) / "runs" / relative
        if (target / "metrics.json").is_file():
            continue
        with claimed(target) as mine:
            if not mine:  # another process of this grid is training it right now
                print(f"{target}: being trained by {claim_holder(target) or 'another process'}; "
                      "its archived record is not restored", flush=True)
                continue
            for stale in target.iterdir() if target.is_dir() else []:
                if stale.name not in (CLAIM_NAME, LOCK_NAME):
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            files = _record_files(record)
            # metrics.json marks a run finished, so it is copied last
            for path in sorted(files, key=lambda p: p.name == "metrics.json"):
                if path.name == "model_info.json":
                    _restore_info(path, target / path.name, teacher_path)
                else:
                    _copy(path, target / path.name)
        restored += 1
    return restored


def _restore_info(source: Path, target: Path, teacher_path: str | Path) -> None:
    try:
        info = json.loads(source.read_text())
    except ValueError as err:
        raise ConfigError(f"{source}: invalid JSON ({err})") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{source}: expected a JSON object (a run's model_info.json)")
    if info.get("teacher") is not None:
        info["teacher"] = str(teacher_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(info, indent=1))


def _check_teacher(archive: Path, fingerprint: str, verb: str) -> None:
    path = archive / TEACHER_FILE
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text())["weights_sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: expected JSON with 'weights_sha256' ({err})") from None
    if stored != fingerprint:
        raise ConfigError(
            f"cannot {verb} {archive}: its runs were trained against a teacher with weights "
            f"{stored[:12]}..., the grid's teacher has {fingerprint[:12]}... (a retrained teacher "
            "that is not bit-identical); distilled students of the old teacher cannot be paired "
            "with the new one")


def has_weights(run_dir: str | Path) -> bool:
    """Whether a run folder still holds its model (a restored record does not)."""
    return (Path(run_dir) / "model.keras").is_file()
