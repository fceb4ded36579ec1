"""Data layer: SONYC-UST / CSV readers, audio decoding, synthetic data, feature cache, tf.data."""

from keras_iusp.data.audio import fit_length, load_audio, read_audio
from keras_iusp.data.cache import (
    FeatureCache,
    FeatureStats,
    build_feature_cache,
    load_feature_cache,
)
from keras_iusp.data.index import DatasetIndex
from keras_iusp.data.pipeline import make_dataset
from keras_iusp.data.schema import COARSE_CLASSES, COARSE_COLUMNS
from keras_iusp.data.sonyc import aggregate, read_dataset, read_label_csv, read_sonyc
from keras_iusp.data.synth import synthesize

__all__ = [
    "COARSE_CLASSES",
    "COARSE_COLUMNS",
    "DatasetIndex",
    "FeatureCache",
    "FeatureStats",
    "aggregate",
    "build_feature_cache",
    "fit_length",
    "load_audio",
    "load_feature_cache",
    "make_dataset",
    "read_audio",
    "read_dataset",
    "read_label_csv",
    "read_sonyc",
    "synthesize",
]
