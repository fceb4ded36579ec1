"""Model zoo (teacher, CNN-LSTM and DS-CNN students) and size reports."""

from keras_iusp.models.summary import format_summary, layer_table, model_summary, time_axis_layers
from keras_iusp.models.zoo import MODEL_SPECS, ModelSpec, build_model

__all__ = [
    "MODEL_SPECS",
    "ModelSpec",
    "build_model",
    "format_summary",
    "layer_table",
    "model_summary",
    "time_axis_layers",
]
