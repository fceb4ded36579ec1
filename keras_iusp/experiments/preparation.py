"""What every grid cell needs first: the feature cache, the teacher (trained once, resumable) and
the cross-fitting fold teachers; and the wall-time record of a run folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from keras_iusp.data import read_dataset, synthesize
from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.teacher_targets import weights_fingerprint
from keras_iusp.experiments.config import ExperimentConfig
from keras_iusp.experiments.cross_fit import fold_dir, train_fold_teachers
from keras_iusp.experiments.stale_runs import check_synthetic_data
from keras_iusp.features import build_feature_cache
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.train.run_folder import is_finished
from keras_iusp.train.saved_runs import load_run
from keras_iusp.train.training import train_teacher
from keras_iusp.utils.atomic import atomic_write_text
from keras_iusp.utils.errors import ConfigError


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
            check_synthetic_data(data_dir, wanted)
        else:
            synthesize(data_dir, overwrite=True, **wanted)
    return build_feature_cache(read_dataset(data_dir, data.train_rule),
                               FeatureConfig(clip_seconds=data.clip_seconds))




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
    write_wall(teacher_dir, time.perf_counter() - start)
    return run


def prepare_fold_teachers(config: ExperimentConfig, out: Path, cache, teacher,
                          verbose: int | str = 2) -> list | None:
    """The cross-fitting fold teachers (``out/teacher_folds``) when a grid method uses them:
    trained once with the teacher's recorded recipe (resumable), then reused; else None."""
    if not any(config.distill_config(m, 0, out).cross_fitted for m in config.grid.methods):
        return None

    return train_fold_teachers(cache, out / "teacher_folds", config.teacher.cross_fit_folds,
                               teacher, fold_seed=config.teacher.seed, verbose=verbose)


def fold_fingerprints(out: Path, folds: int) -> list[str] | None:
    """Weights of the grid's fold teachers (``out/teacher_folds``), or None unless all of them
    are trained: what a cross-fitted run must have been distilled from."""
    if folds < 2:
        return None

    dirs = [fold_dir(out / "teacher_folds", k) for k in range(folds)]
    if not all(is_finished(d) for d in dirs):
        return None
    return [weights_fingerprint(load_run(d).model) for d in dirs]


def write_wall(run_dir: Path, seconds: float) -> None:
    """Wall time of a run (of its last session when it was resumed), for the report."""
    atomic_write_text(run_dir / "wall.json", json.dumps({"seconds": seconds}))


def read_wall(run_dir: Path) -> float:
    path = run_dir / "wall.json"
    return float(json.loads(path.read_text())["seconds"]) if path.is_file() else 0.0
