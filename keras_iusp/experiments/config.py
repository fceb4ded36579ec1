"""The experiment TOML's schema: ``[data]``, ``[teacher]``, ``[grid]`` and per-method sections,
read and checked by :func:`load_config` into an :class:`ExperimentConfig`.

The grid's recipe defaults are :class:`~keras_iusp.train.recipe.DistillConfig`'s (one recipe);
the keys, their meaning and the variants are documented in ``docs/experiments.md``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.methods import METHODS
from keras_iusp.models import MODEL_SPECS
from keras_iusp.train.defaults import DEFAULT_TEACHER
from keras_iusp.train.optimizer import check_schedule
from keras_iusp.train.recipe import DistillConfig
from keras_iusp.utils.errors import ConfigError

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
    #: it carries ``"method"``, one of :data:`~keras_iusp.distill.methods.METHODS`, and its
    #: overrides apply on top of that base method's own table, e.g.
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
        """The :class:`~keras_iusp.train.recipe.DistillConfig` of one grid cell (of its base
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
