"""One log-mel spectrogram per synthetic class, to eyeball that the classes look like what they are.

Kept apart from :mod:`keras_iusp.data.synth` because it needs matplotlib and the TensorFlow
front end, which dataset generation does not. The spectrograms go through
:func:`keras_iusp.features.logmel.log_mel`, the same front end the models see, so the figure shows
the classes as the detector sees them rather than through some other STFT.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from keras_iusp.data.schema import COARSE_CLASSES
from keras_iusp.data.synth_sounds import render_background, render_labelled_event
from keras_iusp.utils.errors import ConfigError

__all__ = ["plot_class_examples"]

_BACKGROUND_RMS = 0.01  # about -40 dB under the event peak: visible, never hiding the event


def plot_class_examples(
    out_png: str | os.PathLike,
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    seconds: float = 4.0,
) -> Path:
    """Save a 2 x 4 grid of log-mel spectrograms, one random example of each coarse class.

    Each panel is one event (random sub-type, drawn from ``seed`` and the class position, so a
    panel does not change when another class's recipe changes) over a faint city background,
    ``seconds`` long. Colours share one scale across panels. The PNG is written to a temporary
    file next to ``out_png`` and renamed over it, so a reader never sees a half-written image.

    Returns:
        ``out_png`` as a :class:`~pathlib.Path`.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r}: expected a non-negative integer")
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) \
            or sample_rate < 8000:
        raise ConfigError(f"sample_rate={sample_rate!r}: expected an integer >= 8000 (Hz)")
    if not isinstance(seconds, (int, float, np.floating)) or isinstance(seconds, bool) \
            or not np.isfinite(seconds) or seconds < 0.1:
        raise ConfigError(f"seconds={seconds!r}: expected a number of seconds >= 0.1")

    # The object-oriented Figure renders with the Agg canvas without touching pyplot's global
    # backend, so calling this from a notebook or a headless CI job behaves the same. The log-mel
    # front end loads TensorFlow: imported here so that importing this module does not.
    from matplotlib.figure import Figure

    from keras_iusp.features.logmel import FeatureConfig, log_mel

    sr = int(sample_rate)
    config = FeatureConfig(sample_rate=sr, fmax=min(FeatureConfig.fmax, sr / 2.0),
                           clip_seconds=float(seconds))
    n = int(seconds * sr)
    panels = []
    for index, class_name in enumerate(COARSE_CLASSES):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(index,)))
        event = render_labelled_event(class_name, rng, sr, seconds)
        wave = render_background(rng, sr, n) * _BACKGROUND_RMS
        onset = min(int(0.1 * sr), n - event.audio.size)
        wave[onset: onset + event.audio.size] += event.audio
        panels.append((class_name, log_mel(wave, config)))

    values = np.concatenate([features.ravel() for _, features in panels])
    vmin, vmax = np.percentile(values, [2.0, 99.8])
    fig = Figure(figsize=(16, 6.5), layout="constrained")
    axes = fig.subplots(2, 4, sharey=True)
    image = None
    for ax, (class_name, features) in zip(axes.ravel(), panels, strict=True):
        frames = features.shape[0]
        image = ax.imshow(features.T, origin="lower", aspect="auto", cmap="magma",
                          vmin=vmin, vmax=vmax,
                          extent=(0.0, frames * config.hop_length / sr, 0, features.shape[1]))
        ax.set_title(class_name)
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("mel bin")
    if image is not None:
        fig.colorbar(image, ax=axes, label="log mel power", shrink=0.8)

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    try:
        fig.savefig(tmp_name, format="png", dpi=100)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out
