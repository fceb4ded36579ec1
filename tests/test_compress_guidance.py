"""Compression is guided by the teacher: the distillation terms change what pruning and QAT
train, not only what the logs show (the Distiller logs KD and IUSP even at weight zero)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

CHEAP = {"target_sparsity": 0.5, "prune_epochs": 1, "qat_epochs": 1, "batch_size": 8}


def _compress(student, teacher, cache, out, **hyper):
    """Compress a fresh copy of ``student`` whose recorded recipe is changed by ``hyper``."""
    from keras_iusp.compress import CompressConfig, compress, load_compressed
    from keras_iusp.train.saved_runs import load_run

    fresh = load_run(student.path)  # its own weights: compression trains the model it is given
    info = {**fresh.info, "hyperparameters": {**fresh.info["hyperparameters"], **hyper}}
    path = compress(replace(fresh, info=info), cache, out, CompressConfig(**CHEAP),
                    teacher_run=teacher, verbose=0)
    quantized, pruned, _ = load_compressed(path)
    report = json.loads((path / "compress_report.json").read_text())
    return [w.numpy() for w in pruned.weights], [w.numpy() for w in quantized.weights], report


def _max_diff(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def test_zero_weighted_distillation_compresses_differently(tiny_data, tiny_teacher,
                                                           lstm_student, tmp_path):
    _, _, cache = tiny_data
    guided = _compress(lstm_student, tiny_teacher, cache, tmp_path / "guided")
    zero = _compress(lstm_student, tiny_teacher, cache, tmp_path / "zero",
                     kd_weight=0.0, iusp_weight=0.0)
    # both logged the terms (so the logs alone cannot tell the two runs apart) ...
    for report in (guided[2], zero[2]):
        for term in ("kd", "iusp"):
            assert np.all(np.asarray(report["pruning"]["history"][term]) > 0), term
    # ... but only the weighted terms moved the weights: pruning and QAT both differ
    assert _max_diff(guided[0], zero[0]) > 1e-5
    assert _max_diff(guided[1], zero[1]) > 1e-5
