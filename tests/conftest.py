"""Shared test set-up: quiet TensorFlow, small helpers that write audio and CSV files."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_tone(path: Path, sample_rate: int, seconds: float, freq: float = 440.0,
               channels: int = 1, fmt: str | None = None, subtype: str | None = None) -> Path:
    """Write a sine tone (the same on every channel, scaled per channel) and return the path."""
    import soundfile

    t = np.arange(int(round(sample_rate * seconds))) / sample_rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([tone * (1.0 - 0.25 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, sample_rate, format=fmt, subtype=subtype)
    return path


@pytest.fixture
def tone_writer():
    return write_tone
