"""Evaluation metrics (scikit-learn does the precision-recall work).

micro-AUPRC, the paper's headline number, is the average precision of all (clip, class) pairs
pooled into one binary problem; it is what DCASE 2019 Task 5 reports for the coarse level.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score


def micro_auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision over all (clip, class) pairs; ``nan`` when there is no positive."""
    labels = np.asarray(labels).ravel()
    if labels.sum() == 0:
        return float("nan")
    return float(average_precision_score(labels, np.asarray(scores, np.float64).ravel()))
