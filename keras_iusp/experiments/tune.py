"""``keras-iusp tune``: the same hyper-parameter search budget for every method, on validation.

A comparison of distillation methods is only fair when each method, the baseline included, gets
the same tuning effort; otherwise the untuned methods lose by default (the project's first grid
ran every method with one set of defaults, and the baseline won). This module runs one Optuna
study per method (TPE sampler, seeded) with the same number of trials, scores each trial by the
student's *validation* micro-AUPRC (best epoch), and writes the winners as ``[method.NAME]``
tables that ``keras-iusp experiment`` reads. The test split is never looked at.

Studies live in an SQLite file (Optuna's RDB storage), so an interrupted search continues where it
stopped: finished trials are kept, an interrupted one is resumed from its last epoch (its run
directory is resumable like any distillation). ``--storage URL`` (PostgreSQL, MySQL) keeps them
in a database instead, shared by several ``tune`` processes on several machines
(:mod:`keras_iusp.experiments.tune_storage`; ``docs/distributed.md``).

The first trial of every method is the grid's default settings (``enqueue_trial``), so tuning can
only improve on them on validation. The second trial of a distillation method starts from its
*parent's* winner (:data:`PARENT`: KD from the baseline's, SP and IUSP from KD's) with the
method's own settings for the rest: SP and IUSP are KD plus one loss term, so the learning rate,
temperature and label weight that suit KD are the natural place to add it (the parent's study
in the same folder, tuned in the same call or an earlier one). On the paper-scale
benchmark, IUSP tuned without this kept a learning rate of 3e-3 from its first trial, which cost
even the baseline 0.03 validation micro-AUPRC at 60 epochs (``configs/ablations/
paper_xs_retune.toml``). The enqueued trials count towards the budget, which stays the same for
every method.

A trial can train several paired seeds (``seeds``) and is scored by their mean: on that benchmark
one setting's validation score moved by up to 0.05 between two seeds, more than most differences
between settings, so a one-seed search mostly ranks noise.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from keras_iusp.distill.augment import default_augmentation
from keras_iusp.distill.methods import search_spaces
from keras_iusp.experiments.config import ExperimentConfig
from keras_iusp.experiments.preparation import prepare_data, prepare_teacher
from keras_iusp.experiments.stale_runs import check_run_settings
from keras_iusp.experiments.tune_storage import (
    StudyLock,
    TrialSeededSampler,
    fail_dead_trials,
    open_storage,
)
from keras_iusp.train.recipe import DistillConfig
from keras_iusp.train.run_folder import METRICS_FILE, is_finished
from keras_iusp.train.training import distill
from keras_iusp.utils.atomic import atomic_write_text
from keras_iusp.utils.errors import ConfigError

#: What each method may tune (the registry's search spaces, :mod:`keras_iusp.distill.methods`).
SEARCH_SPACE: dict[str, dict[str, tuple]] = search_spaces()


#: Added to the space of every distillation method when the config has an unlabelled pool
#: (``[data] unlabeled`` or ``synthetic_unlabeled``): unlabelled clips per labelled clip in a
#: batch, 0 = the pool unused.
UNLABELED_RATIO_SPACE: tuple = ("cat", [0.0, 1.0, 4.0])


def search_space(config: ExperimentConfig, method: str, *,
                 tune_epochs: bool = True) -> dict[str, tuple]:
    """What ``method`` may tune under ``config``: :data:`SEARCH_SPACE`, plus the unlabelled
    ratio (:data:`UNLABELED_RATIO_SPACE`) for KD/SP/IUSP when the config has a pool; without
    ``epochs`` when ``tune_epochs`` is false (``tune --epochs N`` fixes the length)."""
    space = dict(SEARCH_SPACE[method])
    if not tune_epochs:
        space.pop("epochs", None)
    has_pool = bool(config.data.unlabeled
                    or config.data.synthetic_unlabeled and not config.data.path)
    if method != "baseline" and has_pool:
        space["unlabeled_ratio"] = UNLABELED_RATIO_SPACE
    return space


#: Whose winner a method's second trial starts from (see the module docstring).
PARENT = {"kd": "baseline", "sp": "kd", "iusp": "kd"}


def _suggest(trial, name: str, spec: tuple) -> Any:
    kind = spec[0]
    if kind == "log":
        return trial.suggest_float(name, spec[1], spec[2], log=True)
    if kind == "float":
        return trial.suggest_float(name, spec[1], spec[2])
    if kind == "cat":
        return trial.suggest_categorical(name, list(spec[1]))
    raise ValueError(f"unknown search-space kind {kind!r}")


def _augmentation(frames: int, seed: int) -> dict:
    return default_augmentation(frames, seed).to_dict()


def trial_settings(params: dict[str, Any], frames: int) -> dict[str, Any]:
    """The ``[method.NAME]`` overrides that a trial's parameters stand for."""
    out = {k: v for k, v in params.items() if k != "augment"}
    if "augment" in params:
        out["augmentation"] = _augmentation(frames, 0) if params["augment"] else {}
    return out


def default_params(config: ExperimentConfig, method: str, *,
                   tune_epochs: bool = True) -> dict[str, Any]:
    """The grid's own settings expressed in the search space (the first, enqueued trial)."""
    s = config.settings(method)
    params = {}
    for name, spec in search_space(config, method, tune_epochs=tune_epochs).items():
        if name == "augment":
            value = bool(s["augmentation"])
        elif name == "student_layer":
            value = s["student_layer"] or "lstm"
        elif name == "iusp_form":
            value = s["iusp_form"] or DistillConfig.iusp_form  # "" = the loss's default form
        else:
            value = s[name]
        if spec[0] == "cat" and value not in spec[1]:
            continue  # outside the space: let the sampler choose
        if spec[0] in ("log", "float") and not spec[1] <= value <= spec[2]:
            continue
        params[name] = value
    return params


def warm_start_params(config: ExperimentConfig, method: str, parent_best: dict[str, Any], *,
                      tune_epochs: bool = True) -> dict[str, Any]:
    """A method's second trial: its parent's winning parameters where the method shares them
    (learning rate, augmentation, KD temperature and label weight), its own first-trial
    parameters for the rest (e.g. the SP/IUSP weight and layer)."""
    params = default_params(config, method, tune_epochs=tune_epochs)
    space = search_space(config, method, tune_epochs=tune_epochs)
    params.update({k: v for k, v in parent_best.items() if k in space})
    return params


def _open_study(optuna, tune_dir: Path, method: str, seed: int, trials: int,
                seeds: list[int], shared=None, study_name: str | None = None):
    """``method``'s Optuna study in ``tune_dir``, created if new; refused when its trials were
    scored on other seeds (their means would not compare with new ones). A study written before
    seeds were recorded was scored on ``[seed]``, the only seed a trial then trained.

    ``shared`` (an RDB storage from :func:`keras_iusp.experiments.tune_storage.open_storage`) holds
    the study ``study_name`` instead, with a sampler whose startup draws follow the trial number."""
    if shared is None:
        storage = f"sqlite:///{(tune_dir / f'{method}.db').resolve()}"
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(trials, 3))
        where = tune_dir / f"{method}.db"
    else:
        storage, sampler = shared, TrialSeededSampler(seed, min(trials, 3))
        where = f"--storage study {study_name!r}"
    study = optuna.create_study(
        study_name=study_name or method, storage=storage, direction="maximize",
        load_if_exists=True, sampler=sampler)
    stored = study.user_attrs.get("seeds", [seed] if study.trials else None)
    if stored is not None and stored != seeds:
        other = "another --out" if shared is None else "another --storage database"
        raise ConfigError(f"tune: {where} scored its trials on seeds "
                          f"{stored}, not {seeds}; use the same seeds or {other}")
    study.set_user_attr("seeds", seeds)
    return study


def _best_params(study) -> dict[str, Any] | None:
    """The parameters of a study's best finished trial, or None without one."""
    if study is None:
        return None
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    return max(done, key=lambda t: t.value).params if done else None


def _check_seeds(seeds: Any) -> list[int]:
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"tune: seeds={seeds!r}: expected one or more integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"tune: seeds={seeds!r}: each seed once")
    return seeds


def run_tuning(config: ExperimentConfig, out: str | os.PathLike, *, trials: int = 4,
               student: str = "cnn_lstm_xs", methods: list[str] | None = None,
               seed: int = 0, epochs: int | None = None, verbose: int | str = 2,
               seeds: list[int] | None = None, storage: str | None = None) -> dict:
    """Tune every method with ``trials`` trials on the validation split; returns the winners.

    ``seed`` seeds the sampler; ``seeds`` (default ``[seed]``) are the student seeds every trial
    trains, paired across trials and methods, and a trial's score is their mean validation
    micro-AUPRC. Methods are tuned parents first (:data:`PARENT`).

    Writes ``OUT/tuning/<method>.db`` (the Optuna studies), ``OUT/tuning/trials.json`` (every
    trial: parameters, validation micro-AUPRC and its value per seed) and
    ``OUT/tuning/best.toml`` (the ``[method.NAME]`` tables to paste into the experiment config).

    ``storage`` (an Optuna RDB URL, e.g. ``postgresql://USER@HOST/DATABASE``) holds the studies
    instead of the ``.db`` files, named ``CONFIG_NAME/METHOD``: every process given the same URL
    and config works on the same studies, and together they run ``trials`` trials per method
    (:mod:`keras_iusp.experiments.tune_storage`). The first ``min(trials, 3)`` trials of a method,
    and so its
    winner when ``trials <= 3``, are then the same whatever the number of processes; later trials
    depend on which trials had finished when they started.
    """
    import optuna

    if not methods:
        # Variants (ablation arms) inherit their base method's tuned settings: not tuned.
        skipped = [m for m in config.grid.methods if m not in SEARCH_SPACE]
        methods = [m for m in config.grid.methods if m in SEARCH_SPACE]
        if skipped:
            print(f"tune: skipping variant(s) {skipped}; they use their base method's settings")
    methods = list(methods)
    for m in methods:
        if m not in SEARCH_SPACE:
            hint = (f" ({m!r} is a variant of {config.variants()[m]!r}; tune that instead)"
                    if m in config.variants() else "")
            raise ConfigError(f"tune: unknown method {m!r}; expected one of "
                              f"{list(SEARCH_SPACE)}{hint}")
    if not methods:
        raise ConfigError("tune: no method to tune")
    order = list(SEARCH_SPACE)
    methods = sorted(dict.fromkeys(methods), key=order.index)  # parents before children
    seeds = _check_seeds([seed] if seeds is None else seeds)
    tune_epochs = epochs is None  # --epochs N: every trial trains N epochs, not searched
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"tune: trials={trials!r}: expected a positive integer")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shared = None
    if storage is not None:
        shared = open_storage(storage)  # before anything is written: a bad URL leaves nothing
        in_storage = set(optuna.get_all_study_names(shared))
    out = Path(out)
    tune_dir = out / "tuning"
    tune_dir.mkdir(parents=True, exist_ok=True)

    def study_name(m: str) -> str | None:
        return None if shared is None else f"{config.name}/{m}"

    def exists(m: str) -> bool:
        return (tune_dir / f"{m}.db").is_file() if shared is None else study_name(m) in in_storage

    # Every study is opened (and its seeds checked) before any data or teacher work, so a
    # mismatch on the last method does not surface after hours of tuning the first ones.
    studies = {m: _open_study(optuna, tune_dir, m, seed, trials, seeds, shared, study_name(m))
               for m in dict.fromkeys(methods + [PARENT[m] for m in methods if m in PARENT])
               if m in methods or exists(m)}
    cache = prepare_data(config, out)
    # The baseline needs no teacher: it can be tuned while the teacher still trains.
    teacher = prepare_teacher(config, out, cache, verbose) if set(methods) - {"baseline"} \
        else None
    frames = int(cache.features.shape[1])
    summary: dict[str, Any] = {"student": student, "seed": seed, "seeds": seeds,
                               "trials": trials, "split": "validate", "methods": {}}
    for method in methods:
        study = studies[method]

        def queue_first(study=study, method=method) -> None:
            first = default_params(config, method, tune_epochs=tune_epochs)
            study.enqueue_trial(first)
            parent = PARENT.get(method)
            parent_best = _best_params(studies.get(parent)) if parent else None
            if parent and trials >= 2:
                second = warm_start_params(config, method, parent_best or {},
                                           tune_epochs=tune_epochs)
                if parent_best is None:
                    print(f"tune {method}: no finished {parent} study in {tune_dir}, so no "
                          f"trial starts from {parent}'s winner")
                elif second == first:
                    print(f"tune {method}: {parent}'s winner gives {method} its first trial's "
                          "settings; no second trial is queued from it")
                else:
                    print(f"tune {method}: trial 2 starts from {parent}'s winner: {second}")
                    study.enqueue_trial(second)

        def objective(trial, method=method):
            params = {n: _suggest(trial, n, spec) for n, spec
                      in search_space(config, method, tune_epochs=tune_epochs).items()}
            overrides = trial_settings(params, frames)
            trial_config = ExperimentConfig(
                name=config.name, data=config.data, teacher=config.teacher, grid=config.grid,
                method={**config.method, method: {**config.method.get(method, {}),
                                                  **overrides}})
            # Named by the parameters, so a trial retried after a kill resumes its own runs
            # (one folder per seed when there are several).
            key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
            trial_dir = tune_dir / method / f"trial-{key}"
            print(f"\n== tune {method} trial {trial.number + 1}/{trials}: {params}", flush=True)
            values = []
            for s in seeds:
                distill_config = trial_config.distill_config(method, s, out)
                if epochs is not None:
                    distill_config.epochs = epochs
                run_dir = trial_dir if len(seeds) == 1 else trial_dir / f"seed{s}"
                if is_finished(run_dir):
                    # finished before a kill (e.g. seed 0 of a trial killed during seed 1):
                    # reused, once its recorded settings are checked against this trial's
                    check_run_settings(run_dir, distill_config, student,
                                       teacher.path if method != "baseline" else None)
                else:
                    distill(cache, teacher if method != "baseline" else None, student,
                            run_dir, distill_config, verbose=verbose)
                metrics = json.loads((run_dir / METRICS_FILE).read_text())
                values.append(float(metrics["val_auprc"]))
            trial.set_user_attr("overrides", overrides)
            trial.set_user_attr("per_seed", values)
            return float(sum(values) / len(values))

        if shared is None:
            # A trial still "running" in the study was killed with the last search: close it as
            # failed and queue its parameters again; its run folder resumes from its last epoch.
            # (In a shared study, heartbeats tell a dead process's trial from a live one.)
            for t in study.trials:
                if t.state == optuna.trial.TrialState.RUNNING:
                    study.tell(t.number, state=optuna.trial.TrialState.FAIL)
                    study.enqueue_trial(t.params)
            lock = None
        else:
            lock = StudyLock(storage, study.study_name)
        def record(study=study, method=method) -> None:
            """trials.json after every finished trial, so a killed search leaves its record."""
            progress = method_summary(optuna, study, trials)
            if progress is not None:
                summary["methods"][method] = progress
                atomic_write_text(tune_dir / "trials.json", json.dumps(summary, indent=1))

        _run_budget(optuna, study, objective, trials, queue_first, lock, after_trial=record)
        record()
    atomic_write_text(tune_dir / "best.toml", format_method_tables(summary))
    return summary


def method_summary(optuna, study, budget: int) -> dict[str, Any] | None:
    """One method's entry of ``trials.json``: its best trial, every finished trial and how many
    of the ``budget`` have finished (fewer while the search runs or after it was killed); None
    before its first trial finishes."""
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return None
    best = max(done, key=lambda t: t.value)
    return {
        "best_value": best.value, "best_params": best.params,
        "best_overrides": best.user_attrs.get("overrides", {}),
        "trials_finished": len(done), "budget": budget,
        "trials": [{"number": t.number, "params": t.params, "val_micro_auprc": t.value,
                    "per_seed": t.user_attrs.get("per_seed", [t.value])}
                   for t in done],
    }


def _run_budget(optuna, study, objective, budget: int, queue_first, lock, poll: float = 2.0,
                after_trial=None) -> None:
    """Run trials of ``study`` until ``budget`` trials (queued, running or finished) exist and
    all have finished. ``queue_first`` queues the first trials of an empty study;
    ``after_trial()`` is called after each trial this process ran. Under a
    shared study's ``lock`` the count and the new trial's creation are one step; the trial runs
    without the lock; a process with nothing left to start waits for the others' trials (a dead
    process's trial comes back queued, and is then run here)."""
    states = optuna.trial.TrialState

    def unlocked(trial):
        if lock is not None:
            lock.release()  # the trial exists: others may count it and create theirs
        return objective(trial)

    while True:
        if lock is not None:
            lock.acquire()
        try:
            if lock is not None:
                fail_dead_trials(study)
            if not study.get_trials(deepcopy=False):
                queue_first()
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == states.WAITING for t in trials)
            complete = sum(t.state == states.COMPLETE for t in trials)
            counted = sum(t.state in (states.COMPLETE, states.RUNNING, states.WAITING)
                          for t in trials)
            running = any(t.state == states.RUNNING for t in trials)
            # a queued trial (a first trial, or a killed one again) is run while the budget
            # is not finished; beyond that, new trials while fewer than the budget exist
            if counted < budget or (waiting and complete < budget):
                study.optimize(unlocked, n_trials=1)
                if after_trial is not None:
                    after_trial()
                continue
        finally:
            if lock is not None:
                lock.release()
        if not running:
            return
        time.sleep(poll)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def format_method_tables(summary: dict) -> str:
    """The ``[method.NAME]`` TOML tables of the winners, with their validation scores."""
    seeds = summary.get("seeds", [summary["seed"]])
    lines = [f"# keras-iusp tune: {summary['trials']} trials per method, student "
             f"{summary['student']}, seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(map(str, seeds))}, scored on the validation split"
             + (" (mean over seeds)" if len(seeds) > 1 else "")]
    for method, result in summary["methods"].items():
        lines.append(f"\n# validation micro-AUPRC {result['best_value']:.4f}")
        lines.append(f"[method.{method}]")
        for key, value in result["best_overrides"].items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
