"""Window scores of the block streaming model's frame logits (keras_iusp.export.stream_detector):
the rounded means the C++ block runner computes, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from keras_iusp.export.stream_detector import StreamWindows, stream_windows, window_scores
from keras_iusp.utils.errors import ConfigError


def test_windows_match_the_window_export():
    w = stream_windows(48, 2)
    assert (w.frames, w.hop) == (24, 12)
    timing = w.timing(0.01, 0.025)
    assert (timing.frames, timing.hop) == (48, 24)  # input frames, as the window runner
    assert stream_windows(3, 2).hop == 1
    with pytest.raises(ConfigError, match="no output frame"):
        stream_windows(1, 2)


def test_window_scores_are_means_rounded_half_up():
    zp = -5
    # steps (q - zp) per class: class 0 = 1, 0 -> mean 0.5 -> 1; class 1 = -1, 0 -> -0.5 -> 0;
    # class 2 = 2, 3 -> 2.5 -> 3; class 3 = -2, -3 -> -2.5 -> -2; class 4 = 1, 1 -> 1
    steps = np.array([[1, -1, 2, -2, 1], [0, 0, 3, -3, 1],
                      [4, 4, 4, 4, 4], [-4, -4, -4, -4, -4]])
    q = (steps + zp).astype(np.int8)
    scores = window_scores(q, StreamWindows(2, 1, 2), zp)
    assert scores.dtype == np.int8
    assert scores.tolist() == [
        [1 + zp, 0 + zp, 3 + zp, -2 + zp, 1 + zp],      # frames 0-1
        [2 + zp, 2 + zp, 4 + zp, 1 + zp, 3 + zp],       # frames 1-2: 2, 2, 3.5, 0.5, 2.5
        [0 + zp, 0 + zp, 0 + zp, 0 + zp, 0 + zp],       # frames 2-3: 0 each
    ]
    # hop 2: windows at frames 0 and 2 only; a stream shorter than a window has none
    assert window_scores(q, StreamWindows(2, 2, 2), zp).tolist() == [scores[0].tolist(),
                                                                     scores[2].tolist()]
    assert window_scores(q[:1], StreamWindows(2, 1, 2), zp).shape == (0, 5)


def test_window_scores_stay_int8_at_the_extremes():
    q = np.array([[127, -128], [127, -128], [126, -127]], np.int8)
    assert window_scores(q, StreamWindows(3, 1, 1), 0).tolist() == [[127, -128]]
    assert window_scores(q, StreamWindows(3, 1, 1), -128).tolist() == [[127, -128]]


def test_window_scores_reject_float_logits():
    with pytest.raises(ConfigError, match="int8"):
        window_scores(np.zeros((4, 2), np.float32), StreamWindows(2, 1, 1), 0)
