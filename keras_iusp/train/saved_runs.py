"""Reading and writing run directories.

A *run directory* holds everything needed to reuse a model: ``model.keras`` (the ``tf_keras``
model, normalisation included), ``model_info.json`` (model name, feature config, class names,
feature statistics, method and hyper-parameters), ``history.json`` and the metrics file whose
presence marks the run finished (:mod:`keras_iusp.train.run_folder`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_iusp.features.cache import FeatureStats
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.models.layers import FeatureStandardization
from keras_iusp.train.run_folder import METRICS_FILE
from keras_iusp.utils.atomic import atomic_path, atomic_write_text
from keras_iusp.utils.errors import KerasIuspError


def save_run(out: Path, model, info: dict[str, Any], history: dict | None = None,
             metrics: dict | None = None) -> Path:
    """Write a run directory; each file is written under a temporary name then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp, overwrite=True)
    atomic_write_text(out / "model_info.json", json.dumps(info, indent=1))
    if history is not None:
        clean = {k: [float(v) for v in vals] for k, vals in history.items()}
        atomic_write_text(out / "history.json", json.dumps(clean, indent=1))
    if metrics is not None:
        atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=1))
    return out


@dataclass
class TrainedModel:
    """A model loaded from a run directory with the metadata it was trained with."""

    path: Path
    model: Any
    info: dict[str, Any]

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.info["feature_config"],
                                       source=str(self.path / "model_info.json"))

    @property
    def stats(self) -> FeatureStats:
        return FeatureStats.from_dict(self.info["stats"])


def load_run(path: str | os.PathLike) -> TrainedModel:
    """Load ``model.keras`` + ``model_info.json`` from a run directory (or the model file)."""
    import tf_keras as keras

    path = Path(path)
    run_dir = path.parent if path.is_file() else path
    model_path = run_dir / "model.keras"
    info_path = run_dir / "model_info.json"
    if not model_path.is_file() or not info_path.is_file():
        raise KerasIuspError(
            f"{run_dir}: not a keras-iusp run directory (expected model.keras and model_info.json)"
        )
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise KerasIuspError(f"{info_path}: invalid JSON ({exc})") from exc

    # passed explicitly: the registration only exists once the module is imported
    model = keras.models.load_model(
        model_path, compile=False,
        custom_objects={"keras_iusp>FeatureStandardization": FeatureStandardization})
    return TrainedModel(run_dir, model, info)
