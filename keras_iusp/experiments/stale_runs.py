"""Stale-run checks: a kept run (or a synthetic data folder) whose recorded settings differ from
what the config now gives it is refused, never reported under the new settings.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from keras_iusp.data import synthesize
from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.methods import REGISTRY
from keras_iusp.models import MODEL_SPECS
from keras_iusp.train.recipe import DEFAULT_STUDENT_LAYER, DEFAULT_TEACHER_LAYER
from keras_iusp.train.resume import WORK_DIRNAME
from keras_iusp.train.run_folder import is_finished
from keras_iusp.utils.atomic import atomic_write_text
from keras_iusp.utils.errors import ConfigError
from keras_iusp.utils.paths import same_path

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


def record_pending_settings(run_dir: Path, config, teacher_path,
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




def check_synthetic_data(data_dir: Path, wanted: dict[str, Any]) -> None:
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
