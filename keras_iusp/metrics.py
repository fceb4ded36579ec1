"""Evaluation metrics; scikit-learn does the precision-recall work.

micro-AUPRC, the paper's headline number, is the average precision of all (clip, class) pairs
pooled into one binary problem (what DCASE 2019 Task 5 reports at the coarse level). Average
precision is scikit-learn's step-wise sum, not the trapezoidal PR-AUC Keras' ``AUC(curve="PR")``
estimates during training, so the two differ slightly.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, f1_score


def micro_auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision over all (clip, class) pairs; ``nan`` when there is no positive."""
    labels = np.asarray(labels).ravel()
    if labels.sum() == 0:
        return float("nan")
    return float(average_precision_score(labels, np.asarray(scores, np.float64).ravel()))


def per_class_ap(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision per class (``nan`` for a class with no positive clip)."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    out = np.full(labels.shape[1], np.nan)
    for c in range(labels.shape[1]):
        if labels[:, c].sum() > 0:
            out[c] = average_precision_score(labels[:, c], scores[:, c])
    return out


def macro_auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean of the per-class average precisions over classes that have a positive clip."""
    values = per_class_ap(labels, scores)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def micro_f1(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of all (clip, class) decisions at ``threshold`` on the probabilities."""
    predictions = (np.asarray(scores) >= threshold).astype(int)
    return float(f1_score(np.asarray(labels).astype(int).ravel(), predictions.ravel(),
                          zero_division=0.0))


def evaluate_scores(labels: np.ndarray, scores: np.ndarray,
                    class_names: tuple[str, ...] | list[str]) -> dict:
    """All metrics of a set of clip probabilities, as plain data (JSON-ready)."""
    per_class = per_class_ap(labels, scores)
    return {
        "micro_auprc": micro_auprc(labels, scores),
        "macro_auprc": macro_auprc(labels, scores),
        "micro_f1": micro_f1(labels, scores),
        "per_class_ap": {n: (None if np.isnan(v) else float(v))
                         for n, v in zip(class_names, per_class)},
        "positives": {n: int(v) for n, v in zip(class_names, np.asarray(labels).sum(0))},
        "clips": int(len(labels)),
    }
