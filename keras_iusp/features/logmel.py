"""Log-mel features computed with ``tf.signal``.

One :class:`FeatureConfig` describes the whole front end. It is saved next to every model and
written into the firmware headers, so the features a model was trained on are the ones the device
computes: there is exactly one implementation (:func:`log_mel`) and everything calls it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_iusp.utils.errors import ConfigError


@dataclass(frozen=True)
class FeatureConfig:
    """Front-end parameters.

    Defaults follow the project brief: any input rate is resampled to 16 kHz, 64 mel bands,
    25 ms windows every 10 ms. ``clip_seconds`` fixes the model's input length (SONYC-UST clips
    are 10 s); shorter clips are zero-padded and longer ones trimmed.
    """

    sample_rate: int = 16000
    window_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    log_offset: float = 1e-6
    clip_seconds: float = 10.0

    def __post_init__(self) -> None:
        checks = [
            ("sample_rate", isinstance(self.sample_rate, int) and self.sample_rate > 0,
             "a positive integer (Hz)"),
            ("window_ms", _is_pos_number(self.window_ms), "a positive number of milliseconds"),
            ("hop_ms", _is_pos_number(self.hop_ms), "a positive number of milliseconds"),
            ("n_mels", isinstance(self.n_mels, int) and self.n_mels > 0, "a positive integer"),
            ("fmin", _is_number(self.fmin) and self.fmin >= 0, "a number >= 0 (Hz)"),
            ("log_offset", _is_pos_number(self.log_offset), "a positive number"),
            ("clip_seconds", _is_pos_number(self.clip_seconds), "a positive number of seconds"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"FeatureConfig.{name}={getattr(self, name)!r}: expected {expected}"
                )
        nyquist = self.sample_rate / 2
        if not (_is_number(self.fmax) and self.fmin < self.fmax <= nyquist):
            raise ConfigError(
                f"FeatureConfig.fmax={self.fmax!r}: expected fmin ({self.fmin}) < fmax <= "
                f"sample_rate/2 ({nyquist})"
            )
        if self.hop_length > self.window_length:
            raise ConfigError(
                f"FeatureConfig.hop_ms={self.hop_ms}: expected hop <= window ({self.window_ms} ms)"
            )
        if self.clip_samples < self.window_length:
            raise ConfigError(
                f"FeatureConfig.clip_seconds={self.clip_seconds}: shorter than one window"
            )

    @property
    def window_length(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.window_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop length in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000.0))

    @property
    def fft_length(self) -> int:
        """Smallest power of two holding one window (what ``tf.signal.stft`` would pick)."""
        return 1 << math.ceil(math.log2(self.window_length))

    @property
    def clip_samples(self) -> int:
        """Samples in one clip at :attr:`sample_rate`."""
        return int(round(self.clip_seconds * self.sample_rate))

    def num_frames(self, num_samples: int | None = None) -> int:
        """Frames for ``num_samples`` (default: one clip); frames never run past the end."""
        n = self.clip_samples if num_samples is None else int(num_samples)
        if n < self.window_length:
            return 0
        return 1 + (n - self.window_length) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "feature config") -> FeatureConfig:
        """Build from a dict, rejecting unknown keys and wrong types with a message naming them."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping of FeatureConfig fields")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {unknown}; valid keys are {sorted(fields)}"
            )
        clean: dict[str, Any] = {}
        for key, value in values.items():
            default = getattr(cls, key)
            if isinstance(default, int) and not isinstance(default, bool):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ConfigError(f"{source}: {key}={value!r}: expected an integer")
            elif isinstance(default, float):
                if not _is_number(value):
                    raise ConfigError(f"{source}: {key}={value!r}: expected a number")
                value = float(value)
            clean[key] = value
        return cls(**clean)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_pos_number(value: Any) -> bool:
    return _is_number(value) and value > 0


@functools.lru_cache(maxsize=8)
def mel_matrix(config: FeatureConfig) -> np.ndarray:
    """The ``[fft_length // 2 + 1, n_mels]`` mel filterbank used by :func:`log_mel` (HTK mel scale).

    Exposed so the export step can write the same filterbank into firmware headers. Cached per
    config (the dataclass is frozen, so hashable); callers must not modify the returned array.
    """
    import tensorflow as tf

    with tf.init_scope():  # eager even when first called inside a tf.function
        matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=config.n_mels,
            num_spectrogram_bins=config.fft_length // 2 + 1,
            sample_rate=config.sample_rate,
            lower_edge_hertz=config.fmin,
            upper_edge_hertz=config.fmax,
        )
        return matrix.numpy()


def log_mel_tf(waveforms: Any, config: FeatureConfig) -> Any:
    """``[..., samples]`` float32 tensor -> ``[..., frames, n_mels]`` log-mel tensor.

    ``log(mel_power + log_offset)`` of the magnitude-squared STFT with a periodic Hann window.
    Frames are only taken where a whole window fits (no end padding), so the frame count is
    :meth:`FeatureConfig.num_frames`.
    """
    import tensorflow as tf

    waveforms = tf.convert_to_tensor(waveforms, dtype=tf.float32)
    stft = tf.signal.stft(
        waveforms,
        frame_length=config.window_length,
        frame_step=config.hop_length,
        fft_length=config.fft_length,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    )
    power = tf.math.real(stft) ** 2 + tf.math.imag(stft) ** 2
    mel = tf.tensordot(power, tf.constant(mel_matrix(config)), axes=1)
    return tf.math.log(mel + config.log_offset)


def log_mel(waveform: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Numpy convenience wrapper of :func:`log_mel_tf`: ``[samples]`` -> ``[frames, n_mels]``."""
    return log_mel_tf(np.asarray(waveform, dtype=np.float32), config).numpy()
