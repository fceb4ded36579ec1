"""The clip-statistics linear probe: which statistic carries a transient, and no validation label
in the choice of its regularisation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "real_audio" / "linear_probe.py"
_spec = importlib.util.spec_from_file_location("linear_probe", _PATH)
linear_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(linear_probe)


def _transient_clips(n: int, seed: int):
    """Clips of noise; a positive clip of class k has one loud frame in band k, so its band-k
    mean barely moves while its band-k maximum jumps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 200, 2)).astype(np.float32)
    y = rng.random((n, 2)) < 0.4
    for i, k in zip(*np.nonzero(y)):
        x[i, rng.integers(200), k] += 8.0
    return x, y.astype(np.uint8)


def test_the_maximum_finds_a_transient_that_the_mean_misses():
    x_train, y_train = _transient_clips(80, 0)
    x_val, y_val = _transient_clips(60, 1)
    peak = linear_probe.probe(x_train, y_train, x_val, y_val, ("max",), seed=0)
    mean = linear_probe.probe(x_train, y_train, x_val, y_val, ("mean",), seed=0)
    assert peak["validate_micro_auprc"] > 0.9
    assert mean["validate_micro_auprc"] < 0.7
    assert peak["parameters"] == (2 + 1) * 2


def test_regularisation_is_chosen_without_validation_labels():
    x_train, y_train = _transient_clips(80, 0)
    x_val, y_val = _transient_clips(60, 1)
    kept = linear_probe.probe(x_train, y_train, x_val, y_val, ("mean", "max"), seed=0)
    flipped = linear_probe.probe(x_train, y_train, x_val, 1 - y_val, ("mean", "max"), seed=0)
    assert kept["C"] == flipped["C"]
    assert kept["cv_train_micro_auprc"] == flipped["cv_train_micro_auprc"]
    assert kept["validate_micro_auprc"] != flipped["validate_micro_auprc"]
