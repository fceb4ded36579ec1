"""The frame collapse probe's statistics against a direct computation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "frame_collapse_probe.py"
_spec = importlib.util.spec_from_file_location("frame_collapse_probe", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def _direct(frames: np.ndarray) -> tuple[float, float]:
    """The full cosine map's off-diagonal mean, and the participation ratio of the
    eigenvalues of the centred frames' Gram matrix, clip by clip."""
    cos, ranks = [], []
    for q in frames:
        keep = np.linalg.norm(q, axis=1) > 1e-6
        u = q[keep] / np.linalg.norm(q[keep], axis=1, keepdims=True)
        g = u @ u.T
        n = len(u)
        cos.append(g[~np.eye(n, dtype=bool)].mean())
        c = q - q.mean(axis=0)
        ev = np.clip(np.linalg.eigvalsh(c @ c.T), 0, None)
        ranks.append(ev.sum() ** 2 / np.square(ev).sum())
    return float(np.mean(cos)), float(np.mean(ranks))


def test_statistics_match_a_direct_computation():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(3, 20, 4, 2)) + 0.5  # [N, T, F, C]: flattened to D = 8
    frames[1, 5] = 0.0  # a silent frame is left out of that clip's cosine mean
    got = probe.frame_statistics(frames)
    cos, rank = _direct(frames.reshape(3, 20, 8))
    assert got["mean_offdiag_cosine"] == pytest.approx(cos, rel=1e-10)
    assert got["effective_rank"] == pytest.approx(rank, rel=1e-10)


def test_statistics_of_extreme_clips():
    same = np.tile(np.array([1.0, 2.0, 0.5]), (1, 6, 1))  # every frame the same direction
    stats = probe.frame_statistics(same)
    assert stats["mean_offdiag_cosine"] == pytest.approx(1.0)
    assert stats["effective_rank"] == 0.0  # nothing varies once the mean frame is removed
    basis = np.eye(4)[None]  # four orthogonal frames
    stats = probe.frame_statistics(basis)
    assert stats["mean_offdiag_cosine"] == pytest.approx(0.0)
    assert stats["effective_rank"] == pytest.approx(3.0)  # centred: rank 3, equal spectrum


def test_clips_without_two_live_frames_are_left_out_of_the_cosine_mean():
    """A silent clip has no frame pair to compare: it must not pull the mean towards 0."""
    rng = np.random.default_rng(1)
    clips = rng.normal(size=(2, 10, 3)) + 2.0
    silent = clips.copy()
    silent[1] = 0.0
    silent[1, 4] = 1.0  # one live frame only
    assert probe.frame_statistics(silent)["mean_offdiag_cosine"] == pytest.approx(
        probe.frame_statistics(clips[:1])["mean_offdiag_cosine"])
    # constant frames that do not centre to exact zeros still have rank 0, not ~1 from noise
    same = np.tile(np.array([0.1, 0.7, 0.3]), (1, 9, 1)) * (1 + 1e-16 * np.arange(9))[None, :, None]
    assert probe.frame_statistics(same)["effective_rank"] == 0.0
