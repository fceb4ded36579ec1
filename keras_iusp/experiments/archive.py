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
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from keras_iusp.experiments.claims import CLAIM_NAME, LOCK_NAME, claim_holder, claimed
from keras_iusp.train.run_folder import METRICS_FILE, is_finished
from keras_iusp.utils.atomic import atomic_path, atomic_write_text
from keras_iusp.utils.errors import ConfigError
from keras_iusp.utils.paths import same_path

#: Files of a run folder that its record keeps (weights are left out on purpose).
RECORD_FILES = (METRICS_FILE, "model_info.json", "history.json", "wall.json")
#: File-name patterns a record also keeps: clip scores and IUSP distances, one file per split.
RECORD_PATTERNS = ("scores_*.npy", "iusp_distance_*.json")
#: The archive's description of the teacher its runs were trained against.
TEACHER_FILE = "teacher.json"


def _finished_runs(runs_root: Path) -> list[Path]:
    """Every ``<student>/<method>/seed<k>`` folder under ``runs_root`` with a ``metrics.json``."""
    if not runs_root.is_dir():
        return []
    return sorted(p.parent for p in runs_root.glob(f"*/*/seed*/{METRICS_FILE}"))


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


def archive_runs(grid_out: str | Path, dest: str | Path, teacher_fingerprint: str, *,
                 teacher_path: str | Path, required: tuple[str, ...] = ("wall.json",)
                 ) -> int:
    """Copy the record of every finished run of the grid in ``grid_out`` into ``dest`` (same
    ``<student>/<method>/seed<k>`` layout); returns how many runs it holds afterwards.

    Only complete records are archived: a run must hold every file in ``required`` (e.g. its
    clip scores on the evaluated split, written when the grid collects it), and a distilled run
    must name ``teacher_path``, the grid's teacher, since the archive vouches for that teacher
    (``teacher_fingerprint``, see :func:`keras_iusp.distill.teacher_targets.weights_fingerprint`).
    Each record replaces its earlier copy as a whole, so no file of an earlier model survives in it.
    ``dest`` may hold records of earlier sessions: they are kept, but only for the same teacher.
    """

    dest = Path(dest)
    _check_teacher(dest, teacher_fingerprint, "archive into")
    runs_root = Path(grid_out) / "runs"
    for run_dir in _finished_runs(runs_root):
        missing = [name for name in ("model_info.json", *required)
                   if not (run_dir / name).is_file()]
        if missing:
            print(f"{run_dir}: not archived, it lacks {missing} (still being written, or not "
                  "collected by the grid)", flush=True)
            continue
        teacher = _read_json(run_dir / "model_info.json").get("teacher")
        if teacher is not None and not same_path(teacher, teacher_path):
            print(f"{run_dir}: not archived, it was trained with the teacher {teacher}, not "
                  f"{teacher_path}", flush=True)
            continue
        target = dest / run_dir.relative_to(runs_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for source in _record_files(run_dir):
                shutil.copyfile(source, tmp / source.name)
            old = None
            if target.exists():
                old = target.with_name(f"{tmp.name}.old")
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / TEACHER_FILE,
                      json.dumps({"weights_sha256": teacher_fingerprint}, indent=1))
    return len(_finished_runs(dest))


def restore_runs(source: str | Path, grid_out: str | Path, teacher_fingerprint: str,
                 teacher_path: str | Path,
                 refuse: Callable[[Path, dict], str | None] | None = None) -> int:
    """Copy the archived records in ``source`` into ``grid_out/runs``; returns how many runs
    were restored (none when ``source`` does not exist yet, so one command serves every session
    of a grid). A run folder the grid already finished is left as it is (it is at least as
    complete as its record); an unfinished one is replaced by the record.

    ``refuse(relative_path, model_info)`` may name a reason not to restore a record (e.g. it is
    not a cell of this grid, or its settings differ from the config's); such records are left in
    the archive and the grid's folder is not touched. A distilled run's record names the teacher
    folder it was trained with; the restored copy names ``teacher_path``, the grid's teacher,
    whose weights the fingerprint check has just found identical (the grid otherwise compares
    teachers by path).
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
        if is_finished(target):
            continue
        reason = refuse(relative, _read_json(record / "model_info.json")) if refuse else None
        if reason:
            print(f"{record}: not restored, {reason}", flush=True)
            continue
        with claimed(target) as mine:
            if not mine:  # another process of this grid is training it right now
                print(f"{target}: being trained by {claim_holder(target) or 'another process'}; "
                      "its archived record is not restored", flush=True)
                continue
            if is_finished(target):  # finished meanwhile by another process
                continue
            for stale in target.iterdir():
                if stale.name not in (CLAIM_NAME, LOCK_NAME):
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            files = _record_files(record)
            # the metrics file marks a run finished, so it is copied last
            for path in sorted(files, key=lambda p: p.name == METRICS_FILE):
                if path.name == "model_info.json":
                    _restore_info(path, target / path.name, teacher_path, Path(grid_out))
                else:
                    _copy(path, target / path.name)
        restored += 1
    return restored


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing (every run record holds model_info.json)") from None
    except ValueError as err:
        raise ConfigError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a JSON object (a run's model_info.json)")
    return value


def _restore_info(source: Path, target: Path, teacher_path: str | Path, grid_out: Path) -> None:
    info = _read_json(source)
    if info.get("teacher") is not None:
        info["teacher"] = str(teacher_path)
    if info.get("fold_teachers"):
        # vouched for by their weights (the grid's restore checks them), like the teacher;
        # imported here because cross_fit loads TensorFlow and reading an archive must not
        from keras_iusp.experiments.cross_fit import fold_dir

        info["fold_teachers"] = [str(fold_dir(grid_out / "teacher_folds", k))
                                 for k in range(len(info["fold_teachers"]))]
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
