"""The KD target probe's statistics against entry-by-entry hand computation."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "kd_target_probe.py"
_spec = importlib.util.spec_from_file_location("kd_target_probe", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_target_statistics_by_hand(temperature):
    labels = [[1, 0], [0, 1]]
    logits = [[2.0, -1.0], [0.5, -3.0]]
    entries = []
    for y_row, z_row in zip(labels, logits):
        for y, z in zip(y_row, z_row):
            p = 1 / (1 + math.exp(-z / temperature))
            entries.append((y, p))
    gap = sum(abs(p - y) for y, p in entries) / 4
    disagree = sum((p >= 0.5) != (y == 1) for y, p in entries) / 4
    soft = sum(0.1 < p < 0.9 for _, p in entries) / 4
    entropy = sum(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)) for _, p in entries) / 4
    bce = sum(-math.log(p) if y else -math.log(1 - p) for y, p in entries) / 4
    got = probe.target_statistics(labels, logits, temperature)
    assert got == pytest.approx({"mean_abs_gap": gap, "disagree_fraction": disagree,
                                 "soft_fraction": soft, "mean_entropy_bits": entropy,
                                 "label_bce": bce})
    # the second clip's class 0 (p > 0.5, y = 0) and class 1 (p < 0.5, y = 1) disagree
    assert got["disagree_fraction"] == 0.5


def test_hard_targets_carry_nothing_beyond_the_labels():
    got = probe.target_statistics([[1, 0]], [[40.0, -40.0]])
    assert got["mean_abs_gap"] < 1e-12 and got["soft_fraction"] == 0.0
    assert got["mean_entropy_bits"] < 1e-9
