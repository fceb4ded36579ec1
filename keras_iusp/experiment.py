"""``keras-iusp experiment``: the paper's comparison grid, resumable, with a report.

Methods (baseline / KD / SP / IUSP) x student sizes x seeds, all distilled from one teacher
trained once. Every finished run is kept and reused, so an interrupted grid continues where it
stopped (an unfinished run resumes from its last epoch). Results are written after every run to
``results.json`` and ``results.csv``; ``report.md`` and figures are written at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.atomic import atomic_write_text
from keras_iusp.errors import ConfigError
from keras_iusp.training import METHODS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class DataSection:
    """Where the clips come from: an existing dataset (``path``) or the synthetic generator."""

    path: str = ""
    synthetic_clips: int = 240
    clip_seconds: float = 4.0
    sample_rate: int = 16000
    data_seed: int = 0
    train_rule: str = "majority"


@dataclass
class TeacherSection:
    model: str = "teacher_cnn"
    epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0


@dataclass
class GridSection:
    students: list = field(default_factory=lambda: ["cnn_lstm_xs", "cnn_lstm_s", "cnn_lstm_m",
                                                    "cnn_lstm_l"])
    methods: list = field(default_factory=lambda: list(METHODS))
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    temperature: float = 4.0
    student_loss_weight: float = 0.5
    kd_weight: float = 1.0
    sp_weight: float = 100.0
    iusp_weight: float = 100.0
    eval_split: str = "test"


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    grid: GridSection = field(default_factory=GridSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_type(where: str, key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list) and len(value) > 0
    else:
        ok = isinstance(value, type(default))
    if not ok:
        expected = "a non-empty list" if isinstance(default, list) else type(default).__name__
        raise ConfigError(f"{where}: {key} = {value!r}: expected {expected}")
    return value


def _section(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of settings")
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    clean = {k: _check_type(where, k, v, getattr(defaults, k)) for k, v in values.items()}
    return cls(**clean)


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read a TOML experiment config; unknown keys and wrong types are errors naming them."""
    from keras_iusp.models import MODEL_SPECS

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    top = {"name", "data", "teacher", "grid"}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(top)}")
    config = ExperimentConfig(
        name=_check_type(str(path), "name", raw.get("name", "experiment"), "experiment"),
        data=_section(DataSection, raw.get("data", {}), f"{path} [data]"),
        teacher=_section(TeacherSection, raw.get("teacher", {}), f"{path} [teacher]"),
        grid=_section(GridSection, raw.get("grid", {}), f"{path} [grid]"),
    )
    for student in config.grid.students:
        if student not in MODEL_SPECS or MODEL_SPECS[student].role != "student":
            raise ConfigError(f"{path} [grid]: students: unknown student {student!r}; choose "
                              f"from {[n for n, s in MODEL_SPECS.items() if s.role == 'student']}")
    for method in config.grid.methods:
        if method not in METHODS:
            raise ConfigError(f"{path} [grid]: methods: {method!r} is not one of {list(METHODS)}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in config.grid.seeds):
        raise ConfigError(f"{path} [grid]: seeds must be integers, got {config.grid.seeds!r}")
    if config.grid.eval_split not in ("validate", "test"):
        raise ConfigError(f"{path} [grid]: eval_split must be 'validate' or 'test'")
    if config.teacher.model not in MODEL_SPECS:
        raise ConfigError(f"{path} [teacher]: model {config.teacher.model!r} is not in the zoo")
    return config


def _write_results(out: Path, rows: list[dict]) -> None:
    atomic_write_text(out / "results.json", json.dumps(rows, indent=1))
    keys = ["student", "params", "method", "seed", "micro_auprc", "macro_auprc", "micro_f1"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, *,
                   verbose: int | str = 2) -> list[dict]:
    """Run (or continue) the grid into ``out``; returns one result row per finished run."""
    from keras_iusp.data import build_feature_cache, read_dataset, synthesize
    from keras_iusp.evaluate import clip_probabilities
    from keras_iusp.features import FeatureConfig
    from keras_iusp.metrics import evaluate_scores
    from keras_iusp.report import write_report
    from keras_iusp.training import DistillConfig, distill, load_run, train_teacher

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=1))
    data = config.data
    if data.path:
        data_dir = Path(data.path)
    else:
        data_dir = out / "data"
        if not (data_dir / "annotations.csv").is_file():
            synthesize(data_dir, clips=data.synthetic_clips, seed=data.data_seed,
                       clip_seconds=data.clip_seconds, sample_rate=data.sample_rate,
                       overwrite=True)
    cache = build_feature_cache(read_dataset(data_dir, data.train_rule),
                                FeatureConfig(clip_seconds=data.clip_seconds))
    print(cache.describe(), flush=True)

    teacher_dir = out / "teacher"
    if (teacher_dir / "metrics.json").is_file():
        teacher = load_run(teacher_dir)
    else:
        print("\n== teacher", flush=True)
        t = config.teacher
        teacher = train_teacher(cache, teacher_dir, model_name=t.model, epochs=t.epochs,
                                batch_size=t.batch_size, learning_rate=t.learning_rate,
                                seed=t.seed, verbose=verbose)

    g = config.grid
    features, labels = cache.split(g.eval_split)
    teacher_scores = clip_probabilities(teacher_dir, features)
    teacher_eval = evaluate_scores(labels, teacher_scores, cache.class_names)
    cells = [(s, m, seed) for seed in g.seeds for s in g.students for m in g.methods]
    rows = []
    for number, (student, method, seed) in enumerate(cells, 1):
        run_dir = out / "runs" / student / method / f"seed{seed}"
        if not (run_dir / "metrics.json").is_file():
            print(f"\n== [{number}/{len(cells)}] {student} {method} seed {seed}", flush=True)
            distill(cache, teacher if method != "baseline" else None, student, run_dir,
                    DistillConfig(method=method, temperature=g.temperature,
                                  student_loss_weight=g.student_loss_weight,
                                  kd_weight=g.kd_weight, sp_weight=g.sp_weight,
                                  iusp_weight=g.iusp_weight, epochs=g.epochs,
                                  batch_size=g.batch_size, learning_rate=g.learning_rate,
                                  seed=seed),
                    verbose=verbose)
        else:
            print(f"== [{number}/{len(cells)}] {student} {method} seed {seed}: done, reused")
        scores_path = run_dir / f"scores_{g.eval_split}.npy"
        if not scores_path.is_file():
            scores = clip_probabilities(run_dir, features)
            np.save(scores_path, scores)
        scores = np.load(scores_path)
        info = json.loads((run_dir / "model_info.json").read_text())
        row = {"student": student, "params": info["summary"]["params"], "method": method,
               "seed": seed, "run": str(run_dir),
               **evaluate_scores(labels, scores, cache.class_names)}
        rows.append(row)
        _write_results(out, rows)
    report = write_report(out, config, rows, cache, teacher, teacher_eval)
    print(f"\nresults: {out / 'results.json'}, {out / 'results.csv'}\nreport: {report}")
    return rows
