"""Evaluate a Keras run directory or a ``.tflite`` file on one split of a dataset.

A TFLite model whose input is shorter than the clips is run on half-overlapping windows and the
clip score is the maximum over windows (what a device does); one whose input covers the clip is
run on the whole clip, so a Keras model and its whole-clip float export give the same numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from keras_iusp.export.verify import io_details, windowed_clip_scores
from keras_iusp.features.cache import FeatureCache
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.metrics import evaluate_scores
from keras_iusp.train.saved_runs import load_run
from keras_iusp.utils.errors import KerasIuspError


def model_feature_config(model_path: str | os.PathLike) -> FeatureConfig:
    """Feature config of a run directory, or of a ``.tflite`` inside an export folder."""
    path = Path(model_path)
    if path.suffix == ".tflite":
        report = path.parent / "export_report.json"
        if not report.is_file():
            raise KerasIuspError(f"{path}: no export_report.json beside it to read the feature "
                                 "config from (evaluate .tflite files inside an export folder)")
        return FeatureConfig.from_dict(json.loads(report.read_text())["feature_config"],
                                       source=str(report))

    return load_run(path).feature_config


def clip_probabilities(model_path: str | os.PathLike, features: np.ndarray) -> np.ndarray:
    """``[N, C]`` probabilities of a run directory's model or of a ``.tflite`` file."""
    path = Path(model_path)
    if path.suffix == ".tflite":

        data = path.read_bytes()
        frames = io_details(data)[0].shape[1]
        return windowed_clip_scores(data, features, hop=max(1, frames // 2))

    model = load_run(path).model
    logits = model.predict(np.asarray(features, np.float32), batch_size=16, verbose=0)
    return 1.0 / (1.0 + np.exp(-logits))


def evaluate_model(model_path: str | os.PathLike, cache: FeatureCache,
                   split: str = "validate") -> dict:
    """Metrics of a model on one split (micro/macro AUPRC, per-class AP, micro-F1)."""
    features, labels = cache.split(split)
    if len(features) == 0:
        raise KerasIuspError(f"{cache.path}: split {split!r} has no clips")
    scores = clip_probabilities(model_path, features)
    result = evaluate_scores(labels, scores, cache.class_names)
    result.update({"model": str(model_path), "split": split})
    return result


def format_evaluation(result: dict) -> str:
    lines = [f"{result['model']} on {result['split']} ({result['clips']} clips)",
             f"  {'class':22s} {'AP':>6s} {'positives':>9s}"]
    for name, value in result["per_class_ap"].items():
        shown = "   n/a" if value is None else f"{value:6.3f}"
        lines.append(f"  {name:22s} {shown} {result['positives'][name]:9d}")
    lines.append(f"  micro-AUPRC {result['micro_auprc']:.3f}   macro-AUPRC "
                 f"{result['macro_auprc']:.3f}   micro-F1@0.5 {result['micro_f1']:.3f}")
    return "\n".join(lines)
