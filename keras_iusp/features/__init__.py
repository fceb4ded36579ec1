"""Features: the log-mel front end (:mod:`.logmel`), the per-data-set feature cache and its
standardisation statistics (:mod:`.cache`), and the tf.data pipeline over it (:mod:`.pipeline`)."""

from keras_iusp.features.cache import (
    FeatureCache,
    FeatureStats,
    build_feature_cache,
    load_feature_cache,
)
from keras_iusp.features.logmel import FeatureConfig, log_mel, log_mel_tf, mel_matrix
from keras_iusp.features.pipeline import make_dataset

__all__ = [
    "FeatureCache",
    "FeatureConfig",
    "FeatureStats",
    "build_feature_cache",
    "load_feature_cache",
    "log_mel",
    "log_mel_tf",
    "make_dataset",
    "mel_matrix",
]
