"""Export to int8 TFLite, verification in TFLite-Micro and LiteRT, and C/C++ firmware assets."""

from keras_iusp.export.pipeline import export_model, format_report

__all__ = ["export_model", "format_report"]
