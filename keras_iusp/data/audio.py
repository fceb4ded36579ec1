"""Audio decoding with soundfile and resampling with soxr.

Real SONYC-UST audio is 44.1 or 48 kHz, user data can be anything soundfile reads (WAV, FLAC,
OGG, ...). Every clip is turned into float32 mono at the feature rate, then padded or trimmed to
the configured duration. Anything that would poison training silently (no samples, NaN/inf,
undecodable bytes) is an :class:`~keras_iusp.errors.AudioError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_iusp.errors import AudioError


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``sample_rate`` Hz, keeping its natural length.

    Channels are averaged (a downmix, not a pick of the first channel) because urban sensors and
    user recordings may be stereo with the event louder on one side.
    """
    import soundfile
    import soxr

    path = Path(path)
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(
            f"{path}: target sample rate must be a positive integer, got {sample_rate!r}"
        )
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ...
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    if file_rate is None or file_rate <= 0:
        raise AudioError(f"{path}: header gives sample rate {file_rate!r}, expected > 0")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{path}: audio file holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    mono = data.mean(axis=1, dtype=np.float32)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, int(sample_rate), quality="HQ").astype(
            np.float32, copy=False
        )
    return mono


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or trim the end so that ``samples`` has exactly ``length`` samples."""
    if samples.shape[0] >= length:
        return samples[:length]
    out = np.zeros(length, dtype=np.float32)
    out[: samples.shape[0]] = samples
    return out


def load_audio(path: str | os.PathLike, sample_rate: int, duration: float) -> np.ndarray:
    """Decode, downmix, resample to ``sample_rate`` and pad/trim to ``duration`` seconds.

    Returns a float32 array of ``round(duration * sample_rate)`` samples.
    """
    if not duration or duration <= 0:
        raise AudioError(f"{path}: duration must be > 0 seconds, got {duration!r}")
    return fit_length(read_audio(path, sample_rate), int(round(duration * sample_rate)))
