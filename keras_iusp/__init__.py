"""keras-iusp: intra-utterance similarity preserving knowledge distillation for tiny sound-event
detectors, from training to int8 TensorFlow Lite Micro firmware assets.

The top level imports TensorFlow lazily: ``import keras_iusp`` is cheap, and the first use of a
training name (``keras_iusp.Distiller``...) loads it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Distiller": "keras_iusp.distill.distiller",
    "StopDistillation": "keras_iusp.distill.distiller",
    "DistillationLoss": "keras_iusp.distill.distillation",
    "LogitsDistillation": "keras_iusp.distill.distillation",
    "IUSPDistillation": "keras_iusp.distill.distillation",
    "SPDistillation": "keras_iusp.distill.distillation",
    "FeatureConfig": "keras_iusp.features.logmel",
    "build_model": "keras_iusp.models",
    "model_summary": "keras_iusp.models",
    "KerasIuspError": "keras_iusp.utils.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_iusp' has no attribute {name!r}")
