"""Data layer: SONYC-UST / CSV readers, audio decoding, synthetic and real-recordings data sets.

Features computed from the audio (log-mel, the feature cache, tf.data) are in
:mod:`keras_iusp.features`.
"""

from keras_iusp.data.audio import fit_length, load_audio, read_audio
from keras_iusp.data.index import DatasetIndex
from keras_iusp.data.schema import COARSE_CLASSES, COARSE_COLUMNS
from keras_iusp.data.sonyc import aggregate, read_dataset, read_label_csv, read_sonyc
from keras_iusp.data.synth import synthesize

__all__ = [
    "COARSE_CLASSES",
    "COARSE_COLUMNS",
    "DatasetIndex",
    "aggregate",
    "fit_length",
    "load_audio",
    "read_audio",
    "read_dataset",
    "read_label_csv",
    "read_sonyc",
    "synthesize",
]
