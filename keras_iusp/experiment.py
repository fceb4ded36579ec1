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
import platform
import sys
import time
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
    #: An existing teacher run directory to distil from instead of training one (e.g. an
    #: ablation that reuses the main grid's teacher). Relative paths are relative to the
    #: current directory. The teacher's feature config must match the data's.
    run: str = ""
    model: str = "teacher_cnn"
    epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_epochs: int = 1
    seed: int = 0
    #: Augmentation while training the teacher (keras_iusp.augment.AugmentConfig keys); ``{}``
    #: = none. ``mixup_alpha``, ``time_masks``/``time_mask_frames``, ``freq_masks``/
    #: ``freq_mask_bins``, ``crop_fraction``.
    augmentation: dict = field(default_factory=dict)


@dataclass
class GridSection:
    students: list = field(default_factory=lambda: ["cnn_lstm_xs", "cnn_lstm_s", "cnn_lstm_m",
                                                    "cnn_lstm_l"])
    methods: list = field(default_factory=lambda: list(METHODS))
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    #: Per-student seed lists overriding ``seeds`` (e.g. more seeds for the smallest students).
    student_seeds: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    temperature: float = 4.0
    student_loss_weight: float = 0.5
    kd_weight: float = 1.0
    sp_weight: float = 100.0
    iusp_weight: float = 100.0
    iusp_form: str = ""
    teacher_layer: str = ""
    student_layer: str = ""
    lr_schedule: str = "cosine"
    warmup_epochs: int = 1
    teacher_cache: bool = True
    #: Augmentation of every student's training batches (teacher and student see the same batch).
    augmentation: dict = field(default_factory=dict)
    eval_split: str = "test"


#: Grid keys a ``[method.NAME]`` table may override for one method (the tuned hyper-parameters).
METHOD_KEYS = ("epochs", "batch_size", "learning_rate", "temperature", "student_loss_weight",
               "kd_weight", "sp_weight", "iusp_weight", "iusp_form", "teacher_layer",
               "student_layer", "lr_schedule", "warmup_epochs", "augmentation")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    grid: GridSection = field(default_factory=GridSection)
    #: Per-method overrides of grid settings, e.g. ``{"kd": {"temperature": 2.0}}``: what each
    #: method's tuning chose (``keras-iusp tune``), so every method runs with its own best values.
    method: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def settings(self, method: str) -> dict[str, Any]:
        """The grid settings of one method: grid defaults, then its ``[method.NAME]`` overrides."""
        g = dataclasses.asdict(self.grid)
        base = {k: g[k] for k in METHOD_KEYS}
        base["teacher_cache"] = g["teacher_cache"]
        base.update(self.method.get(method, {}))
        return base

    def distill_config(self, method: str, seed: int):
        """The :class:`~keras_iusp.training.DistillConfig` of one grid cell."""
        from keras_iusp.augment import AugmentConfig
        from keras_iusp.training import DistillConfig

        s = self.settings(method)
        extra = {"iusp_form": s["iusp_form"]} if s["iusp_form"] else {}
        # The run's seed also seeds its augmentation draws: each seed sees its own draws, and
        # all methods with that seed see the same ones (paired).
        aug = AugmentConfig.from_dict({**s["augmentation"], "seed": seed}) \
            if s["augmentation"] else None
        return DistillConfig(
            method=method, temperature=s["temperature"],
            student_loss_weight=s["student_loss_weight"], kd_weight=s["kd_weight"],
            sp_weight=s["sp_weight"], iusp_weight=s["iusp_weight"],
            teacher_layer=s["teacher_layer"] or None, student_layer=s["student_layer"] or None,
            epochs=s["epochs"], batch_size=s["batch_size"], learning_rate=s["learning_rate"],
            lr_schedule=s["lr_schedule"], warmup_epochs=s["warmup_epochs"],
            augmentation=aug, teacher_cache=s["teacher_cache"], seed=seed, **extra)


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


def _methods(values: Any, where: str) -> dict[str, dict]:
    """Validate ``[method.NAME]`` tables: known methods, overridable keys, right types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected tables [method.NAME]")
    defaults = GridSection()
    out = {}
    for method, table in values.items():
        if method not in METHODS:
            raise ConfigError(f"{where}: {method!r} is not one of {list(METHODS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}.{method}: expected a table of settings")
        unknown = sorted(set(table) - set(METHOD_KEYS))
        if unknown:
            raise ConfigError(f"{where}.{method}: unknown key(s) {unknown}; valid keys: "
                              f"{sorted(METHOD_KEYS)}")
        out[method] = {k: _check_type(f"{where}.{method}", k, v, getattr(defaults, k))
                       for k, v in table.items()}
    return out


def _check_augmentation(where: str, values: dict) -> None:
    from keras_iusp.augment import AugmentConfig

    try:
        AugmentConfig.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


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
    top = {"name", "data", "teacher", "grid", "method"}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(top)}")
    config = ExperimentConfig(
        name=_check_type(str(path), "name", raw.get("name", "experiment"), "experiment"),
        data=_section(DataSection, raw.get("data", {}), f"{path} [data]"),
        teacher=_section(TeacherSection, raw.get("teacher", {}), f"{path} [teacher]"),
        grid=_section(GridSection, raw.get("grid", {}), f"{path} [grid]"),
        method=_methods(raw.get("method", {}), f"{path} [method]"),
    )
    for student in config.grid.students:
        if student not in MODEL_SPECS or MODEL_SPECS[student].role != "student":
            raise ConfigError(f"{path} [grid]: students: unknown student {student!r}; choose "
                              f"from {[n for n, s in MODEL_SPECS.items() if s.role == 'student']}")
    for method in config.grid.methods:
        if method not in METHODS:
            raise ConfigError(f"{path} [grid]: methods: {method!r} is not one of {list(METHODS)}")
    for where, seeds in [("seeds", config.grid.seeds)] + [
            (f"student_seeds.{k}", v) for k, v in config.grid.student_seeds.items()]:
        if not (isinstance(seeds, list) and seeds
                and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise ConfigError(f"{path} [grid]: {where} must be a non-empty list of integers, "
                              f"got {seeds!r}")
    for student in config.grid.student_seeds:
        if student not in config.grid.students:
            raise ConfigError(f"{path} [grid]: student_seeds names {student!r}, which is not in "
                              f"students {config.grid.students}")
    if config.grid.eval_split not in ("validate", "test"):
        raise ConfigError(f"{path} [grid]: eval_split must be 'validate' or 'test'")
    if config.teacher.model not in MODEL_SPECS:
        raise ConfigError(f"{path} [teacher]: model {config.teacher.model!r} is not in the zoo")
    from keras_iusp.training import check_schedule

    _check_augmentation(f"{path} [teacher] augmentation", config.teacher.augmentation)
    for where, schedule, warmup in [("teacher", config.teacher.lr_schedule,
                                     config.teacher.warmup_epochs)] + [
            (f"method.{m}", config.settings(m)["lr_schedule"],
             config.settings(m)["warmup_epochs"]) for m in METHODS]:
        try:
            check_schedule(schedule, warmup)
        except ConfigError as exc:
            raise ConfigError(f"{path} [{where}]: {exc}") from exc
    for m in METHODS:
        _check_augmentation(f"{path} [method.{m}] augmentation",
                            config.settings(m)["augmentation"])
    return config


def _write_results(out: Path, rows: list[dict]) -> None:
    atomic_write_text(out / "results.json", json.dumps(rows, indent=1))
    keys = ["student", "params", "method", "seed", "micro_auprc", "macro_auprc", "micro_f1"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())


def grid_cells(config: ExperimentConfig) -> list[tuple[str, str, int]]:
    """``(student, method, seed)`` in run order: seed by seed, so an interrupted grid always
    holds complete, paired method comparisons for the seeds it finished."""
    g = config.grid
    seeds_of = {s: list(g.student_seeds.get(s, g.seeds)) for s in g.students}
    all_seeds = sorted({x for seeds in seeds_of.values() for x in seeds})
    return [(s, m, seed) for seed in all_seeds for s in g.students if seed in seeds_of[s]
            for m in g.methods]


def prepare_data(config: ExperimentConfig, out: Path):
    """The experiment's feature cache: from ``data.path``, or synthesised into ``out/data``."""
    from keras_iusp.data import build_feature_cache, read_dataset, synthesize
    from keras_iusp.features import FeatureConfig

    data = config.data
    if data.path:
        data_dir = Path(data.path)
    else:
        data_dir = out / "data"
        if not (data_dir / "annotations.csv").is_file():
            synthesize(data_dir, clips=data.synthetic_clips, seed=data.data_seed,
                       clip_seconds=data.clip_seconds, sample_rate=data.sample_rate,
                       overwrite=True)
    return build_feature_cache(read_dataset(data_dir, data.train_rule),
                               FeatureConfig(clip_seconds=data.clip_seconds))


def prepare_teacher(config: ExperimentConfig, out: Path, cache, verbose: int | str = 2):
    """Train the experiment's teacher once (resumable), or load the finished one."""
    from keras_iusp.augment import AugmentConfig
    from keras_iusp.training import load_run, train_teacher

    if config.teacher.run:
        teacher = load_run(config.teacher.run)
        if teacher.feature_config != cache.config:
            raise ConfigError(f"[teacher] run {config.teacher.run}: trained on features "
                              f"{teacher.feature_config}, but the data uses {cache.config}")
        return teacher
    teacher_dir = out / "teacher"
    if (teacher_dir / "metrics.json").is_file():
        return load_run(teacher_dir)
    print("\n== teacher", flush=True)
    t = config.teacher
    aug = AugmentConfig.from_dict(t.augmentation) if t.augmentation else None
    start = time.perf_counter()
    run = train_teacher(cache, teacher_dir, model_name=t.model, epochs=t.epochs,
                        batch_size=t.batch_size, learning_rate=t.learning_rate,
                        lr_schedule=t.lr_schedule, warmup_epochs=t.warmup_epochs,
                        augmentation=aug, seed=t.seed, verbose=verbose)
    _write_wall(teacher_dir, time.perf_counter() - start)
    return run


def _write_wall(run_dir: Path, seconds: float) -> None:
    """Wall time of a run (of its last session when it was resumed), for the report."""
    atomic_write_text(run_dir / "wall.json", json.dumps({"seconds": seconds}))


def _read_wall(run_dir: Path) -> float:
    path = run_dir / "wall.json"
    return float(json.loads(path.read_text())["seconds"]) if path.is_file() else 0.0


def machine_description() -> str:
    """CPU model and core count of this machine, for reports."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, *,
                   verbose: int | str = 2, until: str | None = None, train: bool = True,
                   command: str | None = None) -> list[dict]:
    """Run (or continue) the grid into ``out``; returns one result row per finished run.

    ``until="teacher"`` stops after the data and the teacher (e.g. to tune before the grid).
    ``train=False`` trains nothing: it reports the runs finished so far (a partial grid says so
    in its report).
    """
    from keras_iusp.evaluate import clip_probabilities
    from keras_iusp.metrics import evaluate_scores
    from keras_iusp.report import write_report
    from keras_iusp.training import distill

    if until not in (None, "teacher"):
        raise ConfigError(f"until={until!r}: expected None or 'teacher'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=1))
    cache = prepare_data(config, out)
    print(cache.describe(), flush=True)
    teacher = prepare_teacher(config, out, cache, verbose)
    teacher_dir = teacher.path
    if until == "teacher":
        return []

    g = config.grid
    features, labels = cache.split(g.eval_split)
    teacher_scores = clip_probabilities(teacher_dir, features)
    teacher_eval = evaluate_scores(labels, teacher_scores, cache.class_names)
    cells = grid_cells(config)
    rows = []
    for number, (student, method, seed) in enumerate(cells, 1):
        run_dir = out / "runs" / student / method / f"seed{seed}"
        if not (run_dir / "metrics.json").is_file():
            if not train:
                continue
            print(f"\n== [{number}/{len(cells)}] {student} {method} seed {seed}", flush=True)
            start = time.perf_counter()
            distill(cache, teacher if method != "baseline" else None, student, run_dir,
                    config.distill_config(method, seed), verbose=verbose)
            _write_wall(run_dir, time.perf_counter() - start)
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
    if not rows:
        print("no finished runs to report yet")
        return rows
    val_features, val_labels = cache.split("validate")
    extra = {
        "teacher_validate": evaluate_scores(
            val_labels, clip_probabilities(teacher_dir, val_features), cache.class_names)
        if len(val_labels) else None,
        "machine": machine_description(),
        "wall_seconds": _read_wall(teacher_dir) + sum(_read_wall(Path(r["run"])) for r in rows),
        "cells_total": len(cells),
        "command": command,
    }
    report = write_report(out, config, rows, cache, teacher, teacher_eval, extra)
    print(f"\nresults: {out / 'results.json'}, {out / 'results.csv'}\nreport: {report}")
    return rows
