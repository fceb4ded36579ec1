"""``keras-iusp experiment``: the paper's comparison grid, resumable, with a report.

Methods (baseline / KD / SP / IUSP, plus named *variants* of them for ablations) x student sizes
x seeds, all distilled from one teacher trained once. Every finished run is kept and reused, so
an interrupted grid continues where it stopped (an unfinished run resumes from its last epoch);
a kept run whose recorded settings differ from what the config now gives its cell is refused
(:func:`check_run_settings`), so a changed config never reports stale runs as its own. Results
are written to ``results.json`` and ``results.csv`` after every run this process trains (with
every finished run of the grid, whichever process trained it); ``report.md`` and figures are
written at the end. ``jobs`` > 1 trains several runs at once in worker processes; each run is
claimed by one process (:mod:`keras_iusp.experiments.claims`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from keras_iusp.distill.teacher_targets import weights_fingerprint
from keras_iusp.evaluate import clip_probabilities
from keras_iusp.experiments.archive import archive_runs, has_weights, restore_runs
from keras_iusp.experiments.claims import results_lock
from keras_iusp.experiments.config import ExperimentConfig
from keras_iusp.experiments.layout import cell_dir, grid_cells
from keras_iusp.experiments.preparation import (
    fold_fingerprints,
    prepare_data,
    prepare_fold_teachers,
    prepare_teacher,
    read_wall,
)
from keras_iusp.experiments.report import write_report
from keras_iusp.experiments.scheduler import start_workers, train_cells
from keras_iusp.experiments.stale_runs import check_run_settings, settings_differences
from keras_iusp.metrics import evaluate_scores
from keras_iusp.train.run_folder import is_finished
from keras_iusp.utils.atomic import atomic_path, atomic_write_text
from keras_iusp.utils.errors import ConfigError
from keras_iusp.utils.provenance import machine_description


def _write_results(out: Path, rows: list[dict]) -> None:
    atomic_write_text(out / "results.json", json.dumps(rows, indent=1))
    keys = ["student", "params", "method", "seed", "micro_auprc", "macro_auprc", "micro_f1"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())


def _collect_rows(config: ExperimentConfig, out: Path, features, labels, class_names
                  ) -> list[dict]:
    """One result row per finished cell (whichever process trained it), in grid order; the
    eval split's clip scores are cached in each run folder. Writes results.json/.csv, under the
    folder's results lock, so that processes sharing ``out`` do not overwrite a newer view."""

    with results_lock(out):  # scan and write as one step (see keras_iusp.experiments.claims)
        return _collect_rows_locked(config, out, features, labels, class_names)


def _collect_rows_locked(config: ExperimentConfig, out: Path, features, labels, class_names
                         ) -> list[dict]:
    split = config.grid.eval_split
    rows = []
    for student, method, seed in grid_cells(config):
        run_dir = cell_dir(out, student, method, seed)
        if not is_finished(run_dir):
            continue
        scores_path = run_dir / f"scores_{split}.npy"
        if not scores_path.is_file():
            if not has_weights(run_dir):
                raise ConfigError(
                    f"{run_dir}: a restored run record without weights holds no scores on the "
                    f"{split!r} split (eval_split); archive it from a grid that evaluated "
                    f"{split!r}, or retrain it")
            scores = clip_probabilities(run_dir, features)
            with atomic_path(scores_path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, scores)
        scores = np.load(scores_path)
        info = json.loads((run_dir / "model_info.json").read_text())
        rows.append({"student": student, "params": info["summary"]["params"], "method": method,
                     "base_method": config.base_method(method), "seed": seed,
                     "run": str(run_dir), **evaluate_scores(labels, scores, class_names)})
    if rows:
        _write_results(out, rows)
    return rows


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, *,
                   verbose: int | str = 2, until: str | None = None, train: bool = True,
                   command: str | None = None, jobs: int = 1,
                   students: list[str] | None = None, methods: list[str] | None = None,
                   restore: str | os.PathLike | None = None,
                   archive: str | os.PathLike | None = None) -> list[dict]:
    """Run (or continue) the grid into ``out``; returns one result row per finished run.

    ``until="teacher"`` stops after the data and the teacher (e.g. to tune before the grid).
    ``train=False`` trains nothing: it reports the runs finished so far (a partial grid says so
    in its report). ``jobs`` > 1 trains that many cells at once: ``jobs - 1`` worker processes
    (logs in ``out/workers/``) work through the grid beside this one, each cell claimed by one
    process (:mod:`keras_iusp.experiments.claims`); results and the report are written here.
    Workers are started with ``multiprocessing``'s *spawn* method, so a script that calls this with
    ``jobs > 1`` needs the usual ``if __name__ == "__main__":`` guard. A second ``experiment``
    on the same folder, started once the data and the teacher (and, for cross-fitted methods,
    the fold teachers in ``out/teacher_folds``) exist, skips the cells this one
    holds; whichever finishes last writes ``config.json``, the results and the report from its
    own config.

    ``students`` / ``methods`` restrict what this call *trains* to those grid students and
    methods (e.g. the larger students in a session of their own); the results and the report
    still cover every finished run of the grid. ``restore`` copies the run records of an archive
    (:mod:`keras_iusp.experiments.archive`) into the folder first, so their runs count as finished;
    ``archive`` copies every finished run's record there at the end (after the report, which
    records each run's IUSP distance), e.g. a folder that is committed.
    """

    if until not in (None, "teacher"):
        raise ConfigError(f"until={until!r}: expected None or 'teacher'")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"jobs={jobs!r}: expected a positive integer")
    train_config = config.restricted(students, methods)  # a typo fails now, not after hours
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = prepare_data(config, out)
    print(cache.describe(), flush=True)
    teacher = prepare_teacher(config, out, cache, verbose)
    teacher_dir = teacher.path
    cells = [] if until == "teacher" else grid_cells(config)

    def check_cells(fold_weights: list[str] | None) -> None:
        for student, method, seed in cells:
            run_dir = cell_dir(out, student, method, seed)
            if is_finished(run_dir) or train:
                check_run_settings(
                    run_dir, config.distill_config(method, seed, out), student,
                    teacher_dir if config.base_method(method) != "baseline" else None,
                    fold_weights)

    # Every kept run is checked before anything is trained or written: a stale cell stops the
    # grid now, not hours later, and leaves config.json describing what the folder holds.
    # (Once more below, with the fold teachers' weights, after those are trained.)
    check_cells(None)
    # only for what this call trains (a report-only call or another method trains none)
    fold_teachers = prepare_fold_teachers(train_config, out, cache, teacher, verbose) \
        if train else None
    fold_weights = fold_fingerprints(out, config.teacher.cross_fit_folds)
    if restore is not None:
        cells_here = set(grid_cells(config))

        def refuse(relative: Path, info: dict) -> str | None:
            """Why a record must not join this grid: not one of its cells, or trained with
            other settings than the config gives that cell (it would only stop the grid)."""
            student, method, seed_dir = relative.parts
            seed = int(seed_dir[4:]) if seed_dir[4:].isdigit() else None
            if (student, method, seed) not in cells_here:
                return "it is not a cell of this grid"
            if info.get("fold_teacher_weights") is not None \
                    and info["fold_teacher_weights"] != fold_weights:
                return ("its cross-fitting fold teachers are not this grid's (train them first: "
                        "--until teacher)")
            diffs = settings_differences(
                {**info, "teacher": str(teacher_dir) if info.get("teacher") else None},
                config.distill_config(method, seed, out), student,
                teacher_dir if config.base_method(method) != "baseline" else None)
            if diffs:
                return "it was trained with other settings: " + ", ".join(
                    f"{key} {a!r} (configured {b!r})" for key, a, b in diffs)
            return None

        count = restore_runs(restore, out, weights_fingerprint(teacher.model), teacher_dir,
                             refuse=refuse)
        print(f"restored {count} finished run(s) from {restore}", flush=True)
    check_cells(fold_weights)
    atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=1))
    if until == "teacher":
        return []

    g = config.grid
    features, labels = cache.split(g.eval_split)
    teacher_scores = clip_probabilities(teacher_dir, features)
    teacher_eval = evaluate_scores(labels, teacher_scores, cache.class_names)
    for number, (student, method, seed) in enumerate(cells, 1):
        if is_finished(cell_dir(out, student, method, seed)):
            print(f"== [{number}/{len(cells)}] {student} {method} seed {seed}: done, reused")
    if train:
        def collect() -> None:
            _collect_rows(config, out, features, labels, cache.class_names)

        workers = start_workers(train_config, out, jobs - 1, verbose) if jobs > 1 else []
        try:
            train_cells(train_config, out, cache, teacher, verbose, after_each=collect,
                         fold_teachers=fold_teachers)
            for worker, log_path in workers:
                worker.join()
                if worker.exitcode != 0:
                    print(f"worker process {worker.pid} stopped with exit code "
                          f"{worker.exitcode}; its log: {log_path}. Its unfinished cell is "
                          "trained here.", flush=True)
            if workers:  # a cell whose worker died is free again: train it here
                train_cells(train_config, out, cache, teacher, verbose,
                             fold_teachers=fold_teachers)
        finally:
            for worker, _ in workers:
                if worker.is_alive():
                    worker.terminate()
                    worker.join()

    # the report is written from the rows of the same scan, under the results lock
    with results_lock(out):
        rows = _collect_rows(config, out, features, labels, cache.class_names)
        if not rows:
            print("no finished runs to report yet")
            return rows
        val_features, val_labels = cache.split("validate")
        extra = {
            "teacher_validate": evaluate_scores(
                val_labels, clip_probabilities(teacher_dir, val_features), cache.class_names)
            if len(val_labels) else None,
            "machine": machine_description(),
            "wall_seconds": read_wall(teacher_dir) + sum(read_wall(Path(r["run"])) for r in rows)
            + sum(read_wall(d) for d in (out / "teacher_folds").glob("fold*")),
            "cells_total": len(cells),
            "command": command,
        }
        report = write_report(out, config, rows, cache, teacher, teacher_eval, extra)
    print(f"\nresults: {out / 'results.json'}, {out / 'results.csv'}\nreport: {report}")
    if archive is not None:
        count = archive_runs(out, archive, weights_fingerprint(teacher.model),
                             teacher_path=teacher_dir,
                             required=(f"scores_{g.eval_split}.npy", "wall.json"))
        print(f"archive: {archive} ({count} run records)")
    return rows
