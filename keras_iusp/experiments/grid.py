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
import dataclasses
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.data import read_dataset, synthesize
from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.methods import REGISTRY
from keras_iusp.distill.teacher_targets import weights_fingerprint
from keras_iusp.evaluate import clip_probabilities
from keras_iusp.experiments.archive import RECORD_PATTERNS, archive_runs, has_weights, restore_runs
from keras_iusp.experiments.claims import claim_holder, claimed, results_lock
from keras_iusp.experiments.cross_fit import fold_dir, train_fold_teachers
from keras_iusp.experiments.report import write_report
from keras_iusp.features import build_feature_cache
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.metrics import evaluate_scores
from keras_iusp.models import MODEL_SPECS
from keras_iusp.train.defaults import DEFAULT_TEACHER
from keras_iusp.train.resume import WORK_DIRNAME
from keras_iusp.train.run_folder import is_finished
from keras_iusp.train.training import (
    DEFAULT_STUDENT_LAYER,
    DEFAULT_TEACHER_LAYER,
    METHODS,
    DistillConfig,
    check_schedule,
    distill,
    load_run,
    train_teacher,
)
from keras_iusp.utils.atomic import atomic_path, atomic_write_text
from keras_iusp.utils.errors import ConfigError
from keras_iusp.utils.paths import same_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class DataSection:
    """Where the clips come from: an existing dataset (``path``) or the synthetic generator.

    With ``path`` set, the generator's keys (``synthetic_clips``, ``sample_rate``,
    ``data_seed``, ``label_noise``) are not used, so a synthetic config runs on real data by
    adding the path alone; ``clip_seconds`` and ``train_rule`` apply to both."""

    path: str = ""
    synthetic_clips: int = 240
    clip_seconds: float = 4.0
    sample_rate: int = 16000
    data_seed: int = 0
    train_rule: str = "majority"
    #: Synthetic data: probability that one crowd annotator misses a present class (false
    #: alarms at a quarter of it); three annotators per clip, majority rule. 0.1 leaves 0.8 %
    #: of the training entries wrong (benchmarks/results/kd_target_probe.json).
    label_noise: float = 0.1
    #: An unlabelled pool (a folder of audio files or a CSV without label columns) for the
    #: methods whose ``unlabeled_ratio`` is > 0; relative to the current directory.
    unlabeled: str = ""
    #: Synthetic data: that many more clips from the generator, without labels
    #: (``synthesize(unlabeled=N)``), used as the pool when ``unlabeled`` is empty.
    synthetic_unlabeled: int = 0


@dataclass
class TeacherSection:
    #: An existing teacher run directory to distil from instead of training one (e.g. an
    #: ablation that reuses the main grid's teacher). Relative paths are relative to the
    #: current directory. The teacher's feature config must match the data's.
    run: str = ""
    model: str = DEFAULT_TEACHER
    epochs: int = 15
    batch_size: int = 16
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_epochs: int = 1
    seed: int = 0
    #: Augmentation while training the teacher (keras_iusp.distill.augment.AugmentConfig keys);
    #: ``{}`` = none. ``mixup_alpha``, ``time_masks``/``time_mask_frames``, ``freq_masks``/
    #: ``freq_mask_bins``, ``crop_fraction``.
    augmentation: dict = field(default_factory=dict)
    #: Cross-fitting folds (keras_iusp.experiments.cross_fit): K >= 2 trains K more teachers with
    #: this recipe, each on the training clips outside its fold, for methods with ``cross_fitted``;
    #: 0 trains none.
    cross_fit_folds: int = 0


#: The one default recipe: ``[grid]`` keys a config leaves out take ``DistillConfig``'s values,
#: so an experiment's default run is the run ``keras-iusp distill`` makes.
_RECIPE = DistillConfig()


@dataclass
class GridSection:
    students: list = field(default_factory=lambda: ["cnn_lstm_xs", "cnn_lstm_s", "cnn_lstm_m",
                                                    "cnn_lstm_l"])
    methods: list = field(default_factory=lambda: list(METHODS))
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    #: Per-student seed lists overriding ``seeds`` (e.g. more seeds for the smallest students).
    student_seeds: dict = field(default_factory=dict)
    epochs: int = _RECIPE.epochs
    batch_size: int = _RECIPE.batch_size
    learning_rate: float = _RECIPE.learning_rate
    temperature: float = _RECIPE.temperature
    student_loss_weight: float = _RECIPE.student_loss_weight
    kd_weight: float = _RECIPE.kd_weight
    sp_weight: float = _RECIPE.sp_weight
    iusp_weight: float = _RECIPE.iusp_weight
    #: "" = the loss's default form / the family's default layers
    iusp_form: str = ""
    teacher_layer: str = ""
    student_layer: str = ""
    lr_schedule: str = _RECIPE.lr_schedule
    warmup_epochs: int = _RECIPE.warmup_epochs
    teacher_cache: bool = _RECIPE.teacher_cache
    #: Distil only in the first N epochs, then labels alone (0: every epoch); see
    #: :class:`~keras_iusp.distill.distiller.StopDistillation`.
    distill_epochs: int = _RECIPE.distill_epochs
    #: Augmentation of every student's training batches (teacher and student see the same batch).
    augmentation: dict = field(default_factory=dict)
    #: Training clips taught by the cross-fitted fold teachers ([teacher] cross_fit_folds).
    cross_fitted: bool = False
    #: Unlabelled clips per labelled clip in each batch, from the [data] pool; 0 = no pool.
    #: The baseline ignores it (it has no teacher terms).
    unlabeled_ratio: float = 0.0
    eval_split: str = "test"


#: Grid keys a ``[method.NAME]`` table may override for one method (the tuned hyper-parameters).
METHOD_KEYS = ("epochs", "batch_size", "learning_rate", "temperature", "student_loss_weight",
               "kd_weight", "sp_weight", "iusp_weight", "iusp_form", "teacher_layer",
               "student_layer", "lr_schedule", "warmup_epochs", "augmentation", "distill_epochs",
               "cross_fitted", "unlabeled_ratio")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    grid: GridSection = field(default_factory=GridSection)
    #: Per-method overrides of grid settings, e.g. ``{"kd": {"temperature": 2.0}}``: what each
    #: method's tuning chose (``keras-iusp tune``), so every method runs with its own best values.
    #: A table under any other name is a *variant* (an ablation arm in the same paired grid):
    #: it carries ``"method"``, one of :data:`~keras_iusp.train.training.METHODS`, and its overrides
    #: apply on top of that base method's own table, e.g.
    #: ``{"iusp_paper": {"method": "iusp", "iusp_form": "paper"}}``.
    method: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def restricted(self, students: list[str] | None = None,
                   methods: list[str] | None = None) -> ExperimentConfig:
        """A copy whose grid holds only ``students`` and ``methods`` (None: all), in the
        config's order; each must be one of the grid's own."""
        grid = self.grid
        for kind, wanted, known in (("student", students, grid.students),
                                    ("method", methods, grid.methods)):
            unknown = [x for x in wanted or [] if x not in known]
            if unknown:
                raise ConfigError(f"{kind}(s) {unknown} are not in the grid's {kind}s {known}")
        return dataclasses.replace(self, grid=dataclasses.replace(
            grid, students=[s for s in grid.students if students is None or s in students],
            methods=[m for m in grid.methods if methods is None or m in methods]))

    def variants(self) -> dict[str, str]:
        """Variant name -> its base method, in the order the config defines them."""
        return {name: table["method"] for name, table in self.method.items()
                if name not in METHODS}

    def base_method(self, method: str) -> str:
        """The training method (one of ``METHODS``) that the grid method ``method`` runs."""
        if method in METHODS:
            return method
        variants = self.variants()
        if method not in variants:
            raise ConfigError(f"method {method!r} is neither one of {list(METHODS)} nor a "
                              f"variant defined by a [method.{method}] table")
        return variants[method]

    def settings(self, method: str) -> dict[str, Any]:
        """The grid settings of one method: grid defaults, then its ``[method.NAME]`` overrides.

        A variant inherits its base method's overrides first, so an ablation arm differs from
        the (tuned) base method only in the keys its own table names.
        """
        g = dataclasses.asdict(self.grid)
        base = {k: g[k] for k in METHOD_KEYS}
        base["teacher_cache"] = g["teacher_cache"]
        base_method = self.base_method(method)
        for name in dict.fromkeys((base_method, method)):
            base.update({k: v for k, v in self.method.get(name, {}).items() if k != "method"})
        return base

    def unlabeled_pool(self, out: str | os.PathLike | None) -> str:
        """The unlabelled pool's path: ``[data] unlabeled``, else the synthetic pool written
        into ``out/data`` (``synthetic_unlabeled`` > 0), else ""."""
        if self.data.unlabeled:
            return self.data.unlabeled
        if self.data.synthetic_unlabeled and not self.data.path:
            if out is None:
                raise ConfigError("the synthetic unlabelled pool lives in the experiment's "
                                  "--out folder; pass out")
            return str(Path(out) / "data" / "unlabeled")
        return ""

    def distill_config(self, method: str, seed: int, out: str | os.PathLike | None = None):
        """The :class:`~keras_iusp.train.training.DistillConfig` of one grid cell (of its base
        method
        for a variant); ``out`` (the experiment folder) locates a synthetic unlabelled pool."""

        s = self.settings(method)
        extra = {"iusp_form": s["iusp_form"]} if s["iusp_form"] else {}
        pool = {}
        if s["unlabeled_ratio"] > 0 and self.base_method(method) != "baseline":
            path = self.unlabeled_pool(out)
            if not path:
                raise ConfigError(f"[method.{method}] unlabeled_ratio = {s['unlabeled_ratio']} "
                                  "needs a pool: [data] unlabeled or synthetic_unlabeled")
            pool = {"unlabeled": path, "unlabeled_ratio": float(s["unlabeled_ratio"])}
        # The run's seed also seeds its augmentation draws: each seed sees its own draws, and
        # all methods with that seed see the same ones (paired).
        aug = AugmentConfig.from_dict({**s["augmentation"], "seed": seed}) \
            if s["augmentation"] else None
        return DistillConfig(
            method=self.base_method(method), temperature=s["temperature"],
            student_loss_weight=s["student_loss_weight"], kd_weight=s["kd_weight"],
            sp_weight=s["sp_weight"], iusp_weight=s["iusp_weight"],
            teacher_layer=s["teacher_layer"] or None, student_layer=s["student_layer"] or None,
            epochs=s["epochs"], batch_size=s["batch_size"], learning_rate=s["learning_rate"],
            lr_schedule=s["lr_schedule"], warmup_epochs=s["warmup_epochs"],
            augmentation=aug, teacher_cache=s["teacher_cache"], seed=seed,
            distill_epochs=s["distill_epochs"],
            # a grid-wide cross_fitted = true is for the methods that have a teacher
            cross_fitted=s["cross_fitted"] and self.base_method(method) != "baseline",
            **extra, **pool)


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


def _methods(values: Any, path: Path) -> dict[str, dict]:
    """Validate ``[method.NAME]`` tables: overridable keys with the right types, and for a
    variant (a NAME outside ``METHODS``) an identifier name and a ``method`` naming its base."""
    if not isinstance(values, dict):
        raise ConfigError(f"{path} [method]: expected tables [method.NAME]")
    defaults = GridSection()
    out = {}
    for name, table in values.items():
        where = f"{path} [method.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table of settings")
        base = table.get("method")
        if name in METHODS:
            if base is not None and base != name:
                raise ConfigError(f"{where}: method = {base!r}: the built-in method {name!r} "
                                  f"always runs as itself; to run {base!r} with other settings, "
                                  "define a variant under another name")
        else:
            if not name.isidentifier():
                raise ConfigError(f"{where}: variant name {name!r} must be an identifier "
                                  "(letters, digits, underscores; it names run folders)")
            if name.lower() in METHODS:
                raise ConfigError(f"{where}: variant name {name!r} clashes with the built-in "
                                  f"method {name.lower()!r}; choose another name")
            if base is None:
                raise ConfigError(f"{where}: {name!r} is not one of {list(METHODS)}, so it is "
                                  f"a variant and needs method = one of {list(METHODS)} "
                                  "(the method it runs)")
            if base not in METHODS:
                raise ConfigError(f"{where}: method = {base!r}: a variant's method must be one "
                                  f"of {list(METHODS)}")
        unknown = sorted(set(table) - set(METHOD_KEYS) - {"method"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: "
                              f"{sorted(METHOD_KEYS + ('method',))}")
        out[name] = {k: v if k == "method" else _check_type(where, k, v, getattr(defaults, k))
                     for k, v in table.items()}
    return out


def _check_augmentation(where: str, values: dict) -> None:
    try:
        AugmentConfig.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read a TOML experiment config; unknown keys and wrong types are errors naming them."""

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
        method=_methods(raw.get("method", {}), path),
    )
    for student in config.grid.students:
        if student not in MODEL_SPECS or MODEL_SPECS[student].role != "student":
            raise ConfigError(f"{path} [grid]: students: unknown student {student!r}; choose "
                              f"from {[n for n, s in MODEL_SPECS.items() if s.role == 'student']}")
    variants = config.variants()
    for method in config.grid.methods:
        if method not in METHODS and method not in variants:
            raise ConfigError(f"{path} [grid]: methods: {method!r} is not one of "
                              f"{list(METHODS)} nor a variant (a [method.{method}] table with "
                              f"method = one of them)")
    repeated = sorted({m for m in config.grid.methods if config.grid.methods.count(m) > 1})
    if repeated:
        raise ConfigError(f"{path} [grid]: methods: {repeated} listed more than once")
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
    if config.data.synthetic_unlabeled < 0:
        raise ConfigError(f"{path} [data]: synthetic_unlabeled = "
                          f"{config.data.synthetic_unlabeled}: expected an integer >= 0")
    if config.grid.eval_split not in ("validate", "test"):
        raise ConfigError(f"{path} [grid]: eval_split must be 'validate' or 'test'")
    folds = config.teacher.cross_fit_folds
    if folds != 0 and folds < 2:
        raise ConfigError(f"{path} [teacher]: cross_fit_folds = {folds}: expected 0 (none) or "
                          "an integer >= 2")
    if config.teacher.model not in MODEL_SPECS:
        raise ConfigError(f"{path} [teacher]: model {config.teacher.model!r} is not in the zoo")

    _check_augmentation(f"{path} [teacher] augmentation", config.teacher.augmentation)
    for where, schedule, warmup in [("teacher", config.teacher.lr_schedule,
                                     config.teacher.warmup_epochs)] + [
            (f"method.{m}", config.settings(m)["lr_schedule"],
             config.settings(m)["warmup_epochs"]) for m in (*METHODS, *variants)]:
        try:
            check_schedule(schedule, warmup)
        except ConfigError as exc:
            raise ConfigError(f"{path} [{where}]: {exc}") from exc
    for m in (*METHODS, *variants):
        _check_augmentation(f"{path} [method.{m}] augmentation",
                            config.settings(m)["augmentation"])
        if config.base_method(m) == "baseline":
            if any(config.method.get(n, {}).get("cross_fitted") for n in ("baseline", m)):
                raise ConfigError(f"{path} [method.{m}]: cross_fitted = true, but the baseline "
                                  "has no teacher")
        elif config.settings(m)["cross_fitted"] and m in config.grid.methods:
            folds = config.teacher.cross_fit_folds
            if folds < 2:
                raise ConfigError(f"{path} [method.{m}]: cross_fitted = true needs [teacher] "
                                  f"cross_fit_folds >= 2 (it is {folds})")
            if AugmentConfig.from_dict(config.settings(m)["augmentation"]).active \
                    or not config.settings(m)["teacher_cache"]:
                raise ConfigError(f"{path} [method.{m}]: cross_fitted = true needs no "
                                  "augmentation and teacher_cache = true (each clip's outputs "
                                  "are computed once, by the teacher that held it out)")
        ratio = config.settings(m)["unlabeled_ratio"]
        if ratio < 0 or not math.isfinite(ratio):
            raise ConfigError(f"{path} [method.{m}]: unlabeled_ratio = {ratio}: expected a "
                              "number >= 0 (0: no unlabelled pool)")
        if ratio > 0 and config.base_method(m) != "baseline" and m in config.grid.methods \
                and not (config.data.unlabeled
                         or config.data.synthetic_unlabeled and not config.data.path):
            raise ConfigError(f"{path} [method.{m}]: unlabeled_ratio = {ratio} needs a pool: "
                              "[data] unlabeled (a folder or CSV) or synthetic_unlabeled")
        if config.settings(m)["distill_epochs"] < 0:
            raise ConfigError(f"{path} [method.{m}]: distill_epochs = "
                              f"{config.settings(m)['distill_epochs']}: expected an integer >= 0 "
                              "(0 distils in every epoch)")
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
    holds complete, paired method comparisons for the seeds it finished. ``method`` is the grid's
    name for it (a variant's own name), see :meth:`ExperimentConfig.base_method`."""
    g = config.grid
    seeds_of = {s: list(g.student_seeds.get(s, g.seeds)) for s in g.students}
    all_seeds = sorted({x for seeds in seeds_of.values() for x in seeds})
    return [(s, m, seed) for seed in all_seeds for s in g.students if seed in seeds_of[s]
            for m in g.methods]


def cell_dir(out: str | os.PathLike, student: str, method: str, seed: int) -> Path:
    """Run directory of one grid cell: ``OUT/runs/<student>/<method or variant name>/seed<k>``."""
    return Path(out) / "runs" / student / method / f"seed{seed}"


#: Settings that change what a run trains, per base method (``DistillConfig`` field names). The
#: rest cannot change the result (``teacher_cache`` only avoids recomputing the teacher; a
#: baseline ignores every distillation knob), so runs that differ only there are shared, e.g. one
#: baseline run serves configs that differ only in ``iusp_form``.
RELEVANT_SETTINGS: dict[str, tuple[str, ...]] = {
    name: m.settings for name, m in REGISTRY.items()}

#: Relative tolerance of float settings: JSON round-trips floats exactly, so anything looser
#: than rounding noise would only hide a real change.
SETTINGS_RTOL = 1e-9

#: Settings of a grid run that has not finished yet (no ``model_info.json``), written into its
#: scratch folder before training starts and removed with it when the run is saved.
PENDING_SETTINGS = "grid_settings.json"

_NOT_RECORDED = "(not recorded)"


def _normalized(hyper: dict[str, Any], student_family: str | None) -> dict[str, Any]:
    """Settings in the form in which equal values mean equal training: default layers filled
    in, an augmentation with every field spelled out (a field added later reads as its
    default), and one that draws nothing counted as none (the Distiller treats it so)."""

    out = dict(hyper)
    # recorded before the setting existed: those runs distilled in every epoch
    out.setdefault("distill_epochs", 0)
    out.setdefault("cross_fitted", False)
    out.setdefault("unlabeled", "")
    # without a pool the ratio is not read; a pool is compared by its resolved path
    if out["unlabeled"]:
        out["unlabeled"] = str(Path(out["unlabeled"]).resolve())
        out.setdefault("unlabeled_ratio", 1.0)
    else:
        out["unlabeled_ratio"] = None
    if "teacher_layer" in out:
        out["teacher_layer"] = out["teacher_layer"] or DEFAULT_TEACHER_LAYER
    if "student_layer" in out:
        out["student_layer"] = out["student_layer"] or DEFAULT_STUDENT_LAYER.get(student_family)
    aug = out.get("augmentation")
    if isinstance(aug, dict):
        try:
            parsed = AugmentConfig.from_dict(aug)
            out["augmentation"] = parsed.to_dict() if parsed.active else None
        except ConfigError:
            pass  # unreadable: compared as written, so it shows up as a difference
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    numbers = (int, float)
    if (isinstance(a, numbers) and isinstance(b, numbers)
            and not isinstance(a, bool) and not isinstance(b, bool)):
        return math.isclose(float(a), float(b), rel_tol=SETTINGS_RTOL, abs_tol=0.0)
    return type(a) is type(b) and a == b


def settings_differences(stored: dict[str, Any], config, student: str,
                         teacher_path: str | os.PathLike | None
                         ) -> list[tuple[str, Any, Any]]:
    """``(key, stored, configured)`` for every setting that matters to the run and differs.

    ``stored`` is a run's record: ``{"hyperparameters": {...}, "teacher": path or None}`` (what
    ``model_info.json`` holds). Only :data:`RELEVANT_SETTINGS` of the configured base method are
    compared (a changed method is itself a difference), floats to :data:`SETTINGS_RTOL`; the
    teacher, for every method but the baseline, by resolved path.
    """

    family = MODEL_SPECS[student].family if student in MODEL_SPECS else None
    wanted = _normalized(config.hyperparameters(), family)
    hyper = stored.get("hyperparameters")
    have = _normalized(hyper, family) if isinstance(hyper, dict) else {}
    diffs = []
    for key in RELEVANT_SETTINGS[config.method]:
        value = have.get(key, _NOT_RECORDED)
        if not _same(value, wanted[key]):
            diffs.append((key, value, wanted[key]))
    if config.method != "baseline":
        configured = str(teacher_path) if teacher_path is not None else None
        if not same_path(stored.get("teacher"), configured):
            diffs.append(("teacher", stored.get("teacher", _NOT_RECORDED), configured))
    return diffs


def stored_settings(run_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """A run's recorded settings and the file they came from: ``model_info.json`` of a saved
    run, else the pending record of an unfinished grid run; None when neither exists (an
    unfinished run started before the grid recorded settings: nothing to compare)."""

    info = run_dir / "model_info.json"
    pending = run_dir / WORK_DIRNAME / PENDING_SETTINGS
    candidates = [info, pending] if is_finished(run_dir) else [pending, info]
    for path in candidates:
        if path.is_file():
            try:
                return json.loads(path.read_text()), path
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: invalid JSON ({exc}); delete {run_dir} to train "
                                  "that run again") from exc
    return None


def _short(fingerprints: Any) -> Any:
    return [f[:12] for f in fingerprints] if isinstance(fingerprints, list) else fingerprints


def check_run_settings(run_dir: Path, config, student: str,
                       teacher_path: str | os.PathLike | None,
                       fold_weights: list[str] | None = None) -> None:
    """Refuse to reuse (or resume) ``run_dir`` when it was trained with other settings.

    A finished run is otherwise reused as it stands, so a config edited after the grid started
    (another learning rate, more epochs, a different teacher) would silently report the old
    runs under the new settings. For a cross-fitted run, ``fold_weights`` (the fingerprints of
    the grid's fold teachers; None: not all trained yet, nothing to compare) must also match
    the fold teachers it was distilled from.
    """
    found = stored_settings(run_dir)
    if found is None:
        return
    stored, source = found
    diffs = settings_differences(stored, config, student, teacher_path)
    if config.cross_fitted and fold_weights is not None \
            and stored.get("fold_teacher_weights") != fold_weights:
        diffs.append(("fold teachers (weights)",
                      _short(stored.get("fold_teacher_weights", _NOT_RECORDED)),
                      _short(fold_weights)))
    if not diffs:
        return
    state = "finished" if is_finished(run_dir) else "unfinished"
    lines = "\n".join(f"  {key}: stored {a!r}, configured {b!r}" for key, a, b in diffs)
    raise ConfigError(
        f"{run_dir} holds a {state} {config.method} run trained with other settings than the "
        f"config gives this cell (recorded in {source}):\n{lines}\n"
        f"It is not reused. Delete {run_dir} to train it with the configured settings, or run "
        "this config with another --out.")


def _record_pending_settings(run_dir: Path, config, teacher_path,
                             fold_weights: list[str] | None = None) -> None:
    """Write the settings of a run about to start, unless it already holds training state that
    predates them (then its settings are unknown, and recording ours would vouch for it)."""

    work = run_dir / WORK_DIRNAME
    if (work / PENDING_SETTINGS).is_file() or (work.is_dir() and any(work.iterdir())):
        return
    work.mkdir(parents=True, exist_ok=True)
    record = {"hyperparameters": config.hyperparameters(),
              "teacher": str(teacher_path) if teacher_path is not None else None}
    if fold_weights is not None:
        record["fold_teacher_weights"] = fold_weights
    atomic_write_text(work / PENDING_SETTINGS, json.dumps(record, indent=1))


def prepare_data(config: ExperimentConfig, out: Path):
    """The experiment's feature cache: from ``data.path``, or synthesised into ``out/data``."""

    data = config.data
    if data.path:
        data_dir = Path(data.path)
    else:
        data_dir = out / "data"
        wanted = {"clips": data.synthetic_clips, "seed": data.data_seed,
                  "clip_seconds": data.clip_seconds, "sample_rate": data.sample_rate,
                  "label_noise": data.label_noise, "unlabeled": data.synthetic_unlabeled}
        if (data_dir / "annotations.csv").is_file():
            _check_synthetic(data_dir, wanted)
        else:
            synthesize(data_dir, overwrite=True, **wanted)
    return build_feature_cache(read_dataset(data_dir, data.train_rule),
                               FeatureConfig(clip_seconds=data.clip_seconds))


def _check_synthetic(data_dir: Path, wanted: dict[str, Any]) -> None:
    """Refuse synthetic data written with other ``[data]`` settings than the config's: every
    run of the folder was trained on it, so neither silent reuse nor silent regeneration is
    right."""
    import inspect

    path = data_dir / "synth_config.json"
    try:
        saved = json.loads(path.read_text()).get("parameters", {})
    except (OSError, ValueError, AttributeError):
        raise ConfigError(f"{path}: missing or unreadable, so the synthetic data in {data_dir} "
                          "cannot be checked against [data]; delete the folder to rebuild "
                          "it") from None
    defaults = {k: v.default for k, v in inspect.signature(synthesize).parameters.items()
                if v.default is not inspect.Parameter.empty}
    keys = {"clips": "synthetic_clips", "seed": "data_seed"}  # generator -> [data] names
    differ = [f"{keys.get(k, k)} {saved.get(k, defaults.get(k, _NOT_RECORDED))!r} "
              f"(configured {v!r})"
              for k, v in wanted.items()
              if not _same(saved.get(k, defaults.get(k, _NOT_RECORDED)), v)]
    if differ:
        raise ConfigError(f"{data_dir} holds synthetic data made with other [data] settings: "
                          f"{', '.join(differ)}; use another --out, or delete {data_dir} and "
                          "the runs trained on it")


def prepare_teacher(config: ExperimentConfig, out: Path, cache, verbose: int | str = 2):
    """Train the experiment's teacher once (resumable), or load the finished one."""

    if config.teacher.run:
        teacher = load_run(config.teacher.run)
        if teacher.feature_config != cache.config:
            raise ConfigError(f"[teacher] run {config.teacher.run}: trained on features "
                              f"{teacher.feature_config}, but the data uses {cache.config}")
        return teacher
    teacher_dir = out / "teacher"
    if is_finished(teacher_dir):
        run = load_run(teacher_dir)
        trained = run.info.get("model_name")
        if trained != config.teacher.model:
            # reusing it would distil every student from a teacher the config does not describe
            raise ConfigError(
                f"{teacher_dir} holds a {trained!r} teacher, but [teacher] model is "
                f"{config.teacher.model!r}; run this config with another --out, or delete "
                f"{teacher_dir} (and the distilled runs under {out / 'runs'}) to retrain it")
        return run
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


def prepare_fold_teachers(config: ExperimentConfig, out: Path, cache, teacher,
                          verbose: int | str = 2) -> list | None:
    """The cross-fitting fold teachers (``out/teacher_folds``) when a grid method uses them:
    trained once with the teacher's recorded recipe (resumable), then reused; else None."""
    if not any(config.distill_config(m, 0, out).cross_fitted for m in config.grid.methods):
        return None

    return train_fold_teachers(cache, out / "teacher_folds", config.teacher.cross_fit_folds,
                               teacher, fold_seed=config.teacher.seed, verbose=verbose)


def _fold_fingerprints(out: Path, folds: int) -> list[str] | None:
    """Weights of the grid's fold teachers (``out/teacher_folds``), or None unless all of them
    are trained: what a cross-fitted run must have been distilled from."""
    if folds < 2:
        return None

    dirs = [fold_dir(out / "teacher_folds", k) for k in range(folds)]
    if not all(is_finished(d) for d in dirs):
        return None
    return [weights_fingerprint(load_run(d).model) for d in dirs]


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
        _record_pending_settings(run_dir, cell_config,
                                 cell_teacher.path if cell_teacher is not None else None,
                                 fold_weights)
        distill(cache, cell_teacher, student, run_dir, cell_config, verbose=verbose,
                fold_teachers=fold_teachers if cell_config.cross_fitted else None)
        _write_wall(run_dir, time.perf_counter() - start)
    return True


def _train_cells(config: ExperimentConfig, out: Path, cache, teacher, verbose: int | str,
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
    _train_cells(config, Path(out), cache, teacher, verbose, fold_teachers=folds)


def _start_workers(config: ExperimentConfig, out: Path, count: int, verbose: int | str) -> list:
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
    fold_weights = _fold_fingerprints(out, config.teacher.cross_fit_folds)
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

        workers = _start_workers(train_config, out, jobs - 1, verbose) if jobs > 1 else []
        try:
            _train_cells(train_config, out, cache, teacher, verbose, after_each=collect,
                         fold_teachers=fold_teachers)
            for worker, log_path in workers:
                worker.join()
                if worker.exitcode != 0:
                    print(f"worker process {worker.pid} stopped with exit code "
                          f"{worker.exitcode}; its log: {log_path}. Its unfinished cell is "
                          "trained here.", flush=True)
            if workers:  # a cell whose worker died is free again: train it here
                _train_cells(train_config, out, cache, teacher, verbose,
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
            "wall_seconds": _read_wall(teacher_dir) + sum(_read_wall(Path(r["run"])) for r in rows)
            + sum(_read_wall(d) for d in (out / "teacher_folds").glob("fold*")),
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
