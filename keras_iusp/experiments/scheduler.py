"""Training the grid's cells: one cell at a time in this process, or beside ``jobs - 1`` worker
processes, each cell claimed by one process (:mod:`keras_iusp.experiments.claims`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from keras_iusp.distill.teacher_targets import weights_fingerprint
from keras_iusp.experiments.archive import RECORD_PATTERNS
from keras_iusp.experiments.claims import claim_holder, claimed
from keras_iusp.experiments.config import ExperimentConfig
from keras_iusp.experiments.layout import cell_dir, grid_cells
from keras_iusp.experiments.preparation import (
    prepare_data,
    prepare_fold_teachers,
    prepare_teacher,
    write_wall,
)
from keras_iusp.experiments.stale_runs import record_pending_settings
from keras_iusp.train.run_folder import is_finished
from keras_iusp.train.training import distill


def _train_cell(config: ExperimentConfig, out: Path, cache, teacher, cell: tuple[str, str, int],
                number: int, total: int, verbose: int | str,
                fold_teachers: list | None = None) -> bool:
    """Train one grid cell unless it is finished or another live process holds it (see
    :mod:`keras_iusp.experiments.claims`); True when this process trained it."""

    student, method, seed = cell
    run_dir = cell_dir(out, student, method, seed)
    if is_finished(run_dir):
        return False
    with claimed(run_dir) as mine:
        if not mine:
            holder = claim_holder(run_dir) or "another process"
            print(f"== [{number}/{total}] {student} {method} seed {seed}: being trained by "
                  f"{holder}", flush=True)
            return False
        if is_finished(run_dir):  # finished by another process meanwhile
            return False
        print(f"\n== [{number}/{total}] {student} {method} seed {seed}", flush=True)
        cell_config = config.distill_config(method, seed, out)
        cell_teacher = teacher if config.base_method(method) != "baseline" else None
        start = time.perf_counter()
        # what an earlier training of this folder left (clip scores, IUSP distances) would
        # otherwise be reported for the new model

        for pattern in RECORD_PATTERNS:
            for stale in run_dir.glob(pattern):
                stale.unlink()
        fold_weights = None
        if cell_config.cross_fitted and fold_teachers:
            fold_weights = [weights_fingerprint(t.model) for t in fold_teachers]
        record_pending_settings(run_dir, cell_config,
                                 cell_teacher.path if cell_teacher is not None else None,
                                 fold_weights)
        distill(cache, cell_teacher, student, run_dir, cell_config, verbose=verbose,
                fold_teachers=fold_teachers if cell_config.cross_fitted else None)
        write_wall(run_dir, time.perf_counter() - start)
    return True


def train_cells(config: ExperimentConfig, out: Path, cache, teacher, verbose: int | str,
                 after_each=None, fold_teachers: list | None = None) -> None:
    """Work through the grid in order, training every free unfinished cell."""
    cells = grid_cells(config)
    for number, cell in enumerate(cells, 1):
        if _train_cell(config, out, cache, teacher, cell, number, len(cells), verbose,
                       fold_teachers) and after_each is not None:
            after_each()


def exit_with_parent(poll_seconds: float = 2.0) -> None:
    """In a ``multiprocessing`` child: end this process soon after its parent is gone.

    A killed ``experiment`` must not leave workers training on alone (with code that may have
    changed since); the worker's claim then counts as dead and its run resumes from its last
    epoch next time. A no-op in a process that multiprocessing did not start.
    """
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        while parent.is_alive():
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_main(config: ExperimentConfig, out: str, log_path: str,
                 verbose: int | str) -> None:
    """Body of a ``jobs > 1`` worker process: train free cells, writing its output to a log."""
    exit_with_parent()
    log = open(log_path, "a", buffering=1)
    log.write(f"\n=== worker process {os.getpid()} of experiment process {os.getppid()}, "
              f"started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    cache = prepare_data(config, Path(out))
    teacher = prepare_teacher(config, Path(out), cache, verbose)
    folds = prepare_fold_teachers(config, Path(out), cache, teacher, verbose)
    train_cells(config, Path(out), cache, teacher, verbose, fold_teachers=folds)


def start_workers(config: ExperimentConfig, out: Path, count: int, verbose: int | str) -> list:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh TensorFlow in each worker
    logs = out / "workers"
    logs.mkdir(exist_ok=True)
    workers = []
    for number in range(1, count + 1):
        log_path = logs / f"worker{number}.log"
        worker = context.Process(target=_worker_main, name=f"keras-iusp worker {number}",
                                 args=(config, str(out), str(log_path), verbose))
        worker.start()
        print(f"worker {number} (process {worker.pid}) logs to {log_path}", flush=True)
        workers.append((worker, log_path))
    return workers
