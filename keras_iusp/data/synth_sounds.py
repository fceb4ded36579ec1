"""Procedural renderers for the eight SONYC-UST coarse classes and for city background noise.

The synthetic dataset exists so that the whole pipeline (loader, features, teacher, IUSP
distillation, export) can be exercised without downloading SONYC-UST. For that to be a useful
stand-in, the sounds have to carry the *structure* a detector learns from, not just different
colours of noise:

* every class has its own spectral signature (a 40 Hz engine and a 3 kHz smoke alarm must not
  look alike on a log-mel), and
* several classes are *repetitive inside one clip* (jackhammer blows, siren sweeps, dog barks,
  music bars), which is exactly the intra-utterance self-similarity that IUSP distils. The
  non-machinery impact class is deliberately the opposite (one or two isolated transients).

Everything is plain numpy plus a few IIR filters from :mod:`scipy.signal`. Tones come from a
wavetable oscillator that follows an instantaneous-frequency curve (so pitch glides, Doppler and
load drops cost one ``cumsum`` and one gather), and decaying hits come from one-pole / two-pole
recursive filters driven by impulse trains, so a ten-second clip renders in a few milliseconds.
All randomness comes from the caller's :class:`numpy.random.Generator`, which keeps rendering
reproducible and independent of the order clips are made in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy import signal

from keras_iusp.data.schema import COARSE_CLASSES, FINE_CLASSES
from keras_iusp.utils.errors import ConfigError

__all__ = [
    "REPETITIVE_SUBTYPES",
    "SUBTYPES",
    "RenderedEvent",
    "render_background",
    "render_event",
    "render_labelled_event",
]

#: For each coarse class: the sub-types a renderer can produce and the SONYC fine label each maps
#: to. The generator writes the fine label into the ``*_presence`` columns, so the CSV is as
#: informative as the real one.
SUBTYPES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "engine": MappingProxyType({
        "small-engine": "1-1_small-sounding-engine",
        "medium-engine": "1-2_medium-sounding-engine",
        "large-engine": "1-3_large-sounding-engine",
    }),
    "machinery-impact": MappingProxyType({
        "rock-drill": "2-1_rock-drill",
        "jackhammer": "2-2_jackhammer",
        "hoe-ram": "2-3_hoe-ram",
        "pile-driver": "2-4_pile-driver",
    }),
    "non-machinery-impact": MappingProxyType({
        "door-slam": "3-1_non-machinery-impact",
        "object-drop": "3-1_non-machinery-impact",
    }),
    "powered-saw": MappingProxyType({
        "chainsaw": "4-1_chainsaw",
        "circular-saw": "4-2_small-medium-rotating-saw",
        "large-saw": "4-3_large-rotating-saw",
    }),
    "alert-signal": MappingProxyType({
        "car-horn": "5-1_car-horn",
        "car-alarm": "5-2_car-alarm",
        "siren-wail": "5-3_siren",
        "siren-yelp": "5-3_siren",
        "reverse-beeper": "5-4_reverse-beeper",
        "smoke-alarm": "5-X_other-unknown-alert-signal",
    }),
    "music": MappingProxyType({
        "band": "6-1_stationary-music",
        "car-stereo": "6-2_mobile-music",
        "ice-cream-truck": "6-3_ice-cream-truck",
    }),
    "human-voice": MappingProxyType({
        "talking": "7-1_person-or-small-group-talking",
        "shouting": "7-2_person-or-small-group-shouting",
        "crowd": "7-3_large-crowd",
    }),
    "dog": MappingProxyType({
        "bark": "8-1_dog-barking-whining",
    }),
})

#: Sub-types whose rendering repeats one pattern several times within an event (impulse trains,
#: sweeps, beep cycles, bars of music, bark bouts): the clips that show intra-utterance
#: self-similarity most clearly. Engines and saws are sustained rather than repeated, voices
#: vary syllable by syllable, slams are isolated, and a horn may honk only once.
REPETITIVE_SUBTYPES: frozenset[str] = frozenset({
    "rock-drill", "jackhammer", "hoe-ram", "pile-driver",
    "car-alarm", "siren-wail", "siren-yelp", "reverse-beeper", "smoke-alarm",
    "band", "car-stereo", "ice-cream-truck",
    "bark",
})

_TABLE_SIZE = 4096
_MAX_HARMONICS = 64
_SINE_BASIS: np.ndarray | None = None
_PEAK = 0.89  # about -1 dBFS: leaves headroom for mixing without looking "quiet"


@dataclass(frozen=True)
class RenderedEvent:
    """One rendered event with the labels the generator needs to annotate it.

    Attributes:
        audio: float32 mono samples, peak about 0.89.
        class_name: the coarse class (an entry of ``COARSE_CLASSES``).
        subtype: which recipe made it (a key of ``SUBTYPES[class_name]``), e.g. ``"siren-wail"``.
        fine: the SONYC-UST fine label, e.g. ``"5-3_siren"``.
    """

    audio: np.ndarray
    class_name: str
    subtype: str
    fine: str


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _sine_basis() -> np.ndarray:
    """``[harmonic, phase]`` table of one period of ``sin(2 pi k x)``, built once on first use."""
    global _SINE_BASIS
    if _SINE_BASIS is None:
        x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
        k = np.arange(1, _MAX_HARMONICS + 1)[:, None]
        _SINE_BASIS = np.sin(2.0 * np.pi * k * x)
    return _SINE_BASIS


def _osc(freq: np.ndarray, sr: int, amps: Sequence[float], phase: float = 0.0) -> np.ndarray:
    """Periodic tone following the instantaneous frequency ``freq`` (Hz, one value per sample).

    A wavetable holding ``sum_k amps[k-1] sin(2 pi k x)`` is read at the running phase, so a
    note with dozens of harmonics costs the same as a sine. Harmonics that would exceed 0.45 of
    the sample rate at the highest frequency of the curve are dropped to avoid aliasing.
    """
    amps = np.asarray(amps, dtype=np.float64)[:_MAX_HARMONICS]
    if freq.size == 0:
        return np.zeros(0)
    k = np.arange(1, amps.size + 1)
    amps = amps * (k * float(np.max(freq)) < 0.45 * sr)
    table = amps @ _sine_basis()[: amps.size]
    # Phase in table steps; the table length is a power of two, so "& (size - 1)" is the wrap.
    steps = np.cumsum(freq, dtype=np.float64)
    steps *= _TABLE_SIZE / sr
    steps += phase * _TABLE_SIZE
    return table[steps.astype(np.int64) & (_TABLE_SIZE - 1)]


def _sos(kind: str, freq: float | tuple[float, float], sr: int, order: int = 2) -> np.ndarray:
    """Butterworth design with cut-offs clamped inside (10 Hz, 0.45 sr).

    Clamping keeps every recipe valid at any sample rate >= 8 kHz: a 6 kHz band edge simply
    becomes the top of the band at low rates instead of raising.
    """
    hi = 0.45 * sr
    if isinstance(freq, tuple):
        lo_f = min(max(freq[0], 10.0), hi * 0.9)
        hi_f = min(max(freq[1], lo_f * 1.1), hi)
        wn: float | tuple[float, float] = (lo_f, hi_f)
    else:
        wn = min(max(float(freq), 10.0), hi)
    return signal.butter(order, wn, btype=kind, fs=sr, output="sos")


def _filter(x: np.ndarray, kind: str, freq: float | tuple[float, float], sr: int,
            order: int = 2) -> np.ndarray:
    """Filter ``x`` with :func:`_sos` (design it once and reuse it inside loops instead)."""
    return signal.sosfilt(_sos(kind, freq, sr, order), x)


def _one_pole(x: np.ndarray, tau: float, sr: int) -> np.ndarray:
    """Unity-gain exponential smoother with time constant ``tau`` seconds."""
    a = float(np.exp(-1.0 / max(tau * sr, 1e-3)))
    return signal.lfilter([1.0 - a], [1.0, -a], x)


def _decay_train(impulses: np.ndarray, tau: float, sr: int) -> np.ndarray:
    """Each impulse becomes ``amp * exp(-t / tau)``: the envelope of a struck object."""
    a = float(np.exp(-1.0 / max(tau * sr, 1e-3)))
    return signal.lfilter([1.0], [1.0, -a], impulses)


def _ring(impulses: np.ndarray, freq: float, tau: float, sr: int) -> np.ndarray:
    """Each impulse becomes ``amp * exp(-t/tau) sin(2 pi f t)``: a struck resonant mode."""
    theta = 2.0 * np.pi * min(freq, 0.45 * sr) / sr
    r = float(np.exp(-1.0 / max(tau * sr, 1e-3)))
    return signal.lfilter([np.sin(theta)], [1.0, -2.0 * r * np.cos(theta), r * r], impulses)


def _formant_coeffs(freq: float, bandwidth: float, sr: int) -> tuple[float, np.ndarray]:
    """Gain and denominator of a two-pole resonance with unit gain at ``freq``."""
    theta = 2.0 * np.pi * min(freq, 0.45 * sr) / sr
    r = float(np.exp(-np.pi * bandwidth / sr))
    b0 = (1.0 - r) * np.sqrt(1.0 - 2.0 * r * np.cos(2.0 * theta) + r * r)
    return b0, np.array([1.0, -2.0 * r * np.cos(theta), r * r])


def _formant(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """Two-pole resonance with unit gain at ``freq``: one vocal-tract formant."""
    b0, a = _formant_coeffs(freq, bandwidth, sr)
    return signal.lfilter([b0], a, x)


def _formant_bank(x: np.ndarray, formants: Sequence[tuple[float, float, float]],
                  sr: int) -> np.ndarray:
    """Sum of parallel formants ``(freq, bandwidth, gain)``, run as one rational filter.

    Putting the parallel resonators over a common denominator gives the same output as
    filtering three times and adding, with a third of the filter calls (voices render one
    short segment per syllable, so per-call overhead dominates).
    """
    coeffs = [_formant_coeffs(f, bw, sr) for f, bw, _ in formants]
    den = np.array([1.0])
    for _, a in coeffs:
        den = np.convolve(den, a)
    num = np.zeros(den.size - 2)
    for i, ((b0, _), (_, _, gain)) in enumerate(zip(coeffs, formants, strict=True)):
        term = np.array([gain * b0])
        for j, (_, a) in enumerate(coeffs):
            if j != i:
                term = np.convolve(term, a)
        num[: term.size] += term
    return signal.lfilter(num, den, x)


def _smooth_random(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """Slow random curve in [-1, 1] with about ``rate`` independent values per second.

    Used for RPM wander, loudness drift and pitch jitter: changes that real sources show but
    that must stay slow compared with the event's own periodicity.
    """
    knots = max(2, int(np.ceil(n / sr * rate)) + 2)
    values = rng.uniform(-1.0, 1.0, knots)
    return np.interp(np.linspace(0.0, knots - 1.0, n), np.arange(knots), values)


def _fade(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear fade-in / fade-out envelope; ramps shrink to fit very short events."""
    env = np.ones(n)
    na = min(int(attack * sr), n // 2)
    nr = min(int(release * sr), n // 2)
    if na > 0:
        env[:na] = np.linspace(0.0, 1.0, na, endpoint=False)
    if nr > 0:
        env[n - nr:] = np.linspace(1.0, 0.0, nr)
    return env


def _gate(segments: Sequence[tuple[float, float]], n: int, sr: int) -> np.ndarray:
    """0/1 array that is 1 inside each ``(start_s, end_s)`` segment."""
    gate = np.zeros(n)
    for start, end in segments:
        gate[max(int(start * sr), 0): max(int(end * sr), 0)] = 1.0
    return gate


def _impulses(times: Sequence[float], amps: Sequence[float], n: int, sr: int) -> np.ndarray:
    """Sparse impulse train: ``amps[i]`` at sample ``times[i] * sr`` (late ones dropped)."""
    out = np.zeros(n)
    idx = (np.asarray(times, dtype=np.float64) * sr).astype(np.int64)
    keep = (idx >= 0) & (idx < n)
    np.add.at(out, idx[keep], np.asarray(amps, dtype=np.float64)[keep])
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    """Scale to unit RMS (silent input stays silent), so recipe weights mean relative loudness."""
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return x / rms if rms > 1e-12 else x


def _duration(rng: np.random.Generator, lo: float, hi: float, max_s: float) -> float:
    """Random duration in [lo, hi] seconds, squeezed to fit ``max_s``."""
    hi = min(hi, max_s)
    lo = min(lo, hi)
    return float(rng.uniform(lo, hi)) if hi > lo else hi


def _n(seconds: float, sr: int) -> int:
    return max(1, int(round(seconds * sr)))


def _place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    """Add ``x`` into ``out`` from sample ``start`` on, dropping what falls past the end."""
    if start >= out.size or x.size == 0:
        return
    end = min(out.size, start + x.size)
    out[start:end] += x[: end - start]


def _harmonic_amps(rng: np.random.Generator, count: int, slope: float,
                   jitter_db: float = 0.0) -> np.ndarray:
    """``k ** -slope`` harmonic amplitudes with optional random per-harmonic colouring (timbre)."""
    k = np.arange(1, count + 1, dtype=np.float64)
    amps = k ** -slope
    if jitter_db:
        amps = amps * 10.0 ** (rng.uniform(-jitter_db, jitter_db, count) / 20.0)
    return amps


# --------------------------------------------------------------------------------------------
# 1. engine: low harmonic hum with slow RPM / load changes
# --------------------------------------------------------------------------------------------

_ENGINE_F0 = {"small-engine": (80.0, 120.0), "medium-engine": (45.0, 80.0),
              "large-engine": (25.0, 45.0)}


def _engine(rng: np.random.Generator, sr: int, max_s: float, subtype: str) -> np.ndarray:
    """Firing-rate harmonic series (many harmonics of 25-120 Hz) plus combustion noise.

    Idling or cruising engines wander slowly in RPM and sometimes accelerate; a passing vehicle
    adds a loudness bell and a small Doppler glide. The firing-rate pulse also modulates the
    noise, which gives the characteristic "rumble" rather than a clean organ tone.
    """
    n = _n(_duration(rng, 3.0, 10.0, max_s), sr)
    t = np.arange(n) / sr
    rpm = 1.0 + 0.08 * _smooth_random(rng, n, sr, 0.5) + 0.03 * _smooth_random(rng, n, sr, 3.0)
    if rng.random() < 0.5:  # an acceleration somewhere in the event
        t0 = rng.uniform(0.0, 0.6) * t[-1]
        rpm = rpm * (1.0 + rng.uniform(0.2, 0.5) * np.clip((t - t0) / rng.uniform(1.0, 3.0), 0, 1))
    gain = np.ones(n)
    if rng.random() < 0.4:  # pass-by: loudness bell + Doppler (higher while approaching)
        tc = rng.uniform(0.3, 0.7) * t[-1]
        width = rng.uniform(0.15, 0.3) * t[-1] + 0.2
        rpm = rpm * (1.0 - 0.03 * np.tanh((t - tc) / (0.3 * width)))
        gain = 0.2 + np.exp(-0.5 * ((t - tc) / width) ** 2)
    f0 = rng.uniform(*_ENGINE_F0[subtype]) * rpm
    tone = _osc(f0, sr, _harmonic_amps(rng, 48, rng.uniform(0.5, 1.0), jitter_db=6.0))
    half = _osc(0.5 * f0, sr, [1.0, 0.0, 0.6, 0.0, 0.3])  # four-stroke half orders
    firing = 0.5 + 0.5 * _osc(f0, sr, [1.0], phase=0.25)
    noise = _filter(rng.standard_normal(n), "lowpass", rng.uniform(300.0, 900.0), sr) * firing
    body = _filter(_unit(tone) + 0.4 * _unit(half), "lowpass", rng.uniform(700.0, 2500.0), sr)
    x = _unit(body) + rng.uniform(0.15, 0.4) * _unit(noise)
    return x * gain * _fade(n, sr, 0.3, 0.5)


# --------------------------------------------------------------------------------------------
# 2. machinery-impact: periodic impulse trains (jackhammer, rock drill, hoe ram, pile driver)
# --------------------------------------------------------------------------------------------

_IMPACT_RATE = {"rock-drill": (18.0, 25.0), "jackhammer": (12.0, 20.0), "hoe-ram": (6.0, 12.0),
                "pile-driver": (0.7, 1.5)}


def _machinery_impact(rng: np.random.Generator, sr: int, max_s: float, subtype: str) -> np.ndarray:
    """Strictly periodic blows: the most repetitive sound in the dataset.

    Hammers (jackhammer, rock drill, hoe ram) are bursts of 6-25 blows per second; each blow is a
    broadband click (fresh noise, so blows are alike but not identical), a metallic ring of the
    tool and a low thump of the ground, over the compressor's hum. A pile driver is about one
    heavy blow per second: a long low thud with a clang.
    """
    rate = rng.uniform(*_IMPACT_RATE[subtype])
    if subtype == "pile-driver":
        return _pile_driver(rng, sr, max_s, rate)
    n = _n(_duration(rng, 2.0, 9.0, max_s), sr)
    dur = n / sr
    times: list[float] = []
    bursts: list[tuple[float, float]] = []
    start = rng.uniform(0.0, 0.1)
    while start < dur:
        end = min(start + rng.uniform(1.2, 3.5), dur)
        count = max(1, int((end - start) * rate))
        periods = (1.0 / rate) * (1.0 + 0.02 * rng.standard_normal(count))
        times.extend(start + np.concatenate([[0.0], np.cumsum(periods[:-1])]))
        bursts.append((start, end))
        start = end + rng.uniform(0.3, 0.9)
    amps = 1.0 + 0.12 * rng.standard_normal(len(times))
    imp = _impulses(times, amps, n, sr)
    click_tau = {"rock-drill": 0.004, "jackhammer": 0.007, "hoe-ram": 0.02}[subtype]
    click = rng.standard_normal(n) * _decay_train(imp, click_tau * rng.uniform(0.7, 1.3), sr)
    ring = _ring(imp, rng.uniform(1200.0, 3500.0), rng.uniform(0.008, 0.02), sr)
    thump_f = rng.uniform(60.0, 120.0) if subtype == "hoe-ram" else rng.uniform(100.0, 220.0)
    thump = _ring(imp, thump_f, rng.uniform(0.01, 0.03), sr)
    motor_f = rng.uniform(30.0, 70.0)
    motor = _osc(np.full(n, motor_f), sr, _harmonic_amps(rng, 10, 1.0))
    hiss = _filter(rng.standard_normal(n), "highpass", 2500.0, sr) * _one_pole(
        _gate(bursts, n, sr), 0.03, sr)
    x = (_unit(click) + 0.6 * _unit(ring) + rng.uniform(0.3, 0.8) * _unit(thump)
         + 0.08 * _unit(motor) + 0.05 * _unit(hiss))
    return x * _fade(n, sr, 0.005, 0.05)


def _pile_driver(rng: np.random.Generator, sr: int, max_s: float, rate: float) -> np.ndarray:
    period = 1.0 / rate
    n = _n(min(max_s, period * rng.uniform(4.0, 9.0) + 0.3), sr)  # at least four blows if room
    count = max(1, int((n / sr - 0.05) / period) + 1)
    periods = period * (1.0 + 0.02 * rng.standard_normal(count - 1))
    times = 0.05 + np.concatenate([[0.0], np.cumsum(periods)])
    imp = _impulses(times, 1.0 + 0.08 * rng.standard_normal(count), n, sr)
    thud = _ring(imp, rng.uniform(40.0, 80.0), rng.uniform(0.12, 0.25), sr)
    rumble = _filter(rng.standard_normal(n), "lowpass", rng.uniform(150.0, 300.0), sr) \
        * _decay_train(imp, rng.uniform(0.05, 0.1), sr)
    clang = sum(_ring(imp, f, rng.uniform(0.15, 0.35), sr)
                for f in rng.uniform(400.0, 1600.0, 3))
    engine = _osc(np.full(n, rng.uniform(25.0, 40.0)), sr, _harmonic_amps(rng, 12, 0.8))
    x = _unit(thud) + 0.7 * _unit(rumble) + 0.25 * _unit(clang) + 0.1 * _unit(engine)
    return x * _fade(n, sr, 0.005, 0.1)


# --------------------------------------------------------------------------------------------
# 3. non-machinery-impact: one or two isolated slams / drops
# --------------------------------------------------------------------------------------------


def _non_machinery_impact(rng: np.random.Generator, sr: int, max_s: float,
                          subtype: str) -> np.ndarray:
    """One or two isolated hits: click + low body + short room tail, never a regular train.

    A second hit (a door bouncing in its frame, an object falling over) comes at an irregular
    delay and clearly softer, so the event has no repeated structure: the counter-example to
    the repetitive classes.
    """
    hits = [rng.uniform(0.01, 0.08)]
    amps = [1.0]
    if rng.random() < 0.35:
        hits.append(hits[0] + rng.uniform(0.25, 1.2))
        amps.append(rng.uniform(0.15, 0.45))
    tail_tau = rng.uniform(0.12, 0.35)
    n = _n(min(max_s, hits[-1] + 5.0 * tail_tau + 0.1), sr)
    imp = _impulses(hits, amps, n, sr)
    click = _filter(rng.standard_normal(n), "lowpass", rng.uniform(3000.0, 9000.0), sr) \
        * _decay_train(imp, rng.uniform(0.003, 0.012), sr)
    if subtype == "door-slam":
        modes = [(rng.uniform(60.0, 140.0), rng.uniform(0.04, 0.1), 1.0),
                 (rng.uniform(180.0, 400.0), rng.uniform(0.02, 0.05), 0.5),
                 (rng.uniform(1500.0, 3000.0), rng.uniform(0.005, 0.015), 0.3)]  # latch click
    else:
        base = rng.uniform(300.0, 900.0)
        modes = [(rng.uniform(80.0, 200.0), rng.uniform(0.02, 0.05), 0.6)] + [
            (base * ratio, rng.uniform(0.03, 0.15), 0.6 / i)
            for i, ratio in enumerate((1.0, 2.76, 5.4), start=1)
        ]
    body = sum(w * _unit(_ring(imp, f, tau, sr)) for f, tau, w in modes)
    tail = _filter(rng.standard_normal(n), "lowpass", rng.uniform(1500.0, 4000.0), sr) \
        * _decay_train(imp, tail_tau, sr)
    x = _unit(click) + _unit(body) + rng.uniform(0.1, 0.25) * _unit(tail)
    return x * _fade(n, sr, 0.0, 0.05)


# --------------------------------------------------------------------------------------------
# 4. powered-saw: whining harmonic tone whose pitch drops while cutting
# --------------------------------------------------------------------------------------------

_SAW = {  # idle fundamental (Hz), relative pitch drop under load, cutting-noise band (Hz)
    "chainsaw": ((100.0, 160.0), (0.10, 0.25), (1000.0, 4500.0)),
    "circular-saw": ((180.0, 300.0), (0.15, 0.35), (2500.0, 7000.0)),
    "large-saw": ((100.0, 180.0), (0.10, 0.25), (800.0, 3500.0)),
}


def _powered_saw(rng: np.random.Generator, sr: int, max_s: float, subtype: str) -> np.ndarray:
    """Spin-up, then a few cuts in which the motor pitch sags and cutting noise appears.

    The sag under load (with smooth onset, like a real motor's torque curve) is the cue that
    separates a saw from a steady whine; strong upper harmonics make it sound "screaming".
    """
    f_range, drop_range, band = _SAW[subtype]
    n = _n(_duration(rng, 2.5, 9.0, max_s), sr)
    dur = n / sr
    t = np.arange(n) / sr
    spin_up = rng.uniform(0.3, 0.7)
    cuts: list[tuple[float, float]] = []
    start = min(spin_up + rng.uniform(0.2, 0.8), 0.4 * dur)
    while start < dur - 0.3 and len(cuts) < 4:
        end = min(start + rng.uniform(0.6, 2.5), dur - 0.2)
        cuts.append((start, end))
        start = end + rng.uniform(0.3, 1.0)
    load = _one_pole(_gate(cuts, n, sr), rng.uniform(0.08, 0.2), sr)
    speed = 1.0 - 0.6 * np.exp(-t / (spin_up / 3.0))
    spin_down = min(0.5, 0.2 * dur)
    speed = speed * np.clip((dur - t) / spin_down, 0.3, 1.0)
    drop = rng.uniform(*drop_range)
    f0 = rng.uniform(*f_range) * speed * (1.0 - drop * load) \
        * (1.0 + 0.01 * _smooth_random(rng, n, sr, 4.0))
    amps = _harmonic_amps(rng, 40, 0.7 if subtype == "chainsaw" else 0.9, jitter_db=3.0)
    amps[5:20] *= rng.uniform(1.5, 3.0)  # strong upper harmonics: the whine
    tone = _osc(f0, sr, amps)
    cutting = _filter(rng.standard_normal(n), "bandpass", band, sr) * load \
        * (0.6 + 0.4 * _osc(f0, sr, [1.0]))
    x = _unit(tone) * (0.6 + 0.4 * load) + rng.uniform(0.25, 0.6) * _unit(cutting)
    return x * speed ** 2 * _fade(n, sr, 0.02, 0.05)


# --------------------------------------------------------------------------------------------
# 5. alert-signal: sirens, alarms, horns, beepers
# --------------------------------------------------------------------------------------------


def _alert_signal(rng: np.random.Generator, sr: int, max_s: float, subtype: str) -> np.ndarray:
    """Standardised warning sounds; all but a single horn honk are periodic by design.

    * wail: slow sinusoidal sweep (600-1500 Hz, period 2-5 s, at least two periods if room);
    * yelp: the same sweep, 0.15-0.3 s per cycle;
    * smoke alarm: ISO 8201 "T3" temporal pattern (three 0.5 s beeps, pause) at about 3 kHz;
    * car horn: two harmonic tones a major third apart, honked in a short repeated pattern;
    * reverse beeper: about 1 kHz, 50 % duty cycle, one beep a second;
    * car alarm: fast alternation between two tones.
    """
    if subtype in ("siren-wail", "siren-yelp"):
        if subtype == "siren-wail":
            period = min(rng.uniform(2.0, 5.0), max(max_s / 2.2, 0.5))
            dur = min(max_s, period * rng.uniform(2.2, 4.0))
            lo, hi = rng.uniform(600.0, 800.0), rng.uniform(1200.0, 1500.0)
        else:
            period = rng.uniform(0.15, 0.3)
            dur = _duration(rng, 1.5, 7.0, max_s)
            lo, hi = rng.uniform(700.0, 900.0), rng.uniform(1300.0, 1600.0)
        n = _n(dur, sr)
        t = np.arange(n) / sr
        phase0 = rng.uniform(0.0, 2 * np.pi)
        freq = lo + (hi - lo) * (0.5 - 0.5 * np.cos(2.0 * np.pi * t / period + phase0))
        amps = [1.0, 0.0, 0.3, 0.0, 0.15, 0.0, 0.08] if rng.random() < 0.5 else \
            [1.0, 0.45, 0.25, 0.12, 0.06]
        x = _osc(freq, sr, amps)
        if rng.random() < 0.5:  # vehicle passing by
            tc, width = rng.uniform(0.3, 0.7) * dur, rng.uniform(0.3, 0.6) * dur
            x = x * (0.3 + np.exp(-0.5 * ((t - tc) / width) ** 2))
        return x * _fade(n, sr, 0.05, 0.1)

    if subtype == "smoke-alarm":
        cycles = rng.uniform(2.0, 3.0)  # alarms sound until silenced: at least two cycles
        n = _n(min(max_s, 4.0 * cycles), sr)
        starts = [4.0 * c + 1.0 * b for c in range(int(cycles) + 2) for b in range(3)]
        gate = _one_pole(_gate([(s, s + 0.5) for s in starts], n, sr), 0.002, sr)
        tone = _osc(np.full(n, rng.uniform(3000.0, 3300.0)), sr, [1.0, 0.1, 0.05])
        return tone * gate

    if subtype == "reverse-beeper":
        on = rng.uniform(0.35, 0.6)
        n = _n(_duration(rng, 3.0, 10.0, max_s), sr)
        starts = np.arange(0.0, n / sr, 2.0 * on)
        gate = _one_pole(_gate([(s, s + on) for s in starts], n, sr), 0.003, sr)
        tone = _osc(np.full(n, rng.uniform(950.0, 1250.0)), sr, [1.0, 0.0, 0.33, 0.0, 0.2])
        return tone * gate

    if subtype == "car-alarm":
        n = _n(_duration(rng, 3.0, 10.0, max_s), sr)
        t = np.arange(n) / sr
        f1 = rng.uniform(800.0, 1200.0)
        toggle = np.floor(t * rng.uniform(4.0, 10.0)) % 2
        freq = _one_pole(f1 * (1.0 + 0.5 * toggle), 0.004, sr)
        return _osc(freq, sr, [1.0, 0.0, 0.3, 0.0, 0.15]) * _fade(n, sr, 0.02, 0.05)

    # car horn: one honk pattern ("beep", "beep-beep", ...) repeated a few times
    f1 = rng.uniform(350.0, 450.0)
    honks = int(rng.integers(1, 4))
    pattern: list[tuple[float, float]] = []
    t0 = 0.0
    for _ in range(honks):
        length = rng.uniform(0.15, 0.8) if honks == 1 else rng.uniform(0.12, 0.35)
        pattern.append((t0, t0 + length))
        t0 += length + rng.uniform(0.08, 0.2)
    repeat = t0 + rng.uniform(0.4, 1.2)
    segments = [(r * repeat + s, r * repeat + e) for r in range(int(rng.integers(1, 4)))
                for s, e in pattern]
    n = _n(min(max_s, segments[-1][1] + 0.05), sr)
    gate = _one_pole(_gate(segments, n, sr), 0.006, sr)
    amps = _harmonic_amps(rng, 30, 0.8, jitter_db=4.0)
    horn = _osc(np.full(n, f1), sr, amps) + _osc(np.full(n, f1 * rng.uniform(1.2, 1.27)), sr, amps)
    return _filter(horn, "lowpass", 4000.0, sr) * gate


# --------------------------------------------------------------------------------------------
# 6. music: chords, bass, melody on a beat grid, with drums
# --------------------------------------------------------------------------------------------

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 3), (0, 4, 5, 3), (5, 3, 0, 4), (0, 0, 3, 4))


def _midi_hz(note: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0)


def _note_track(notes: Sequence[tuple[float, float, float | tuple[float, ...]]], n: int, sr: int,
                amps: Sequence[float], attack: float, decay: float, release: float = 0.05,
                vibrato: np.ndarray | None = None) -> np.ndarray:
    """A voice playing ``(start_s, length_s, midi)`` notes; ``midi`` may be a tuple (a chord).

    Each sample looks up the note it belongs to (``searchsorted``), so the per-note envelope
    (attack ramp, exponential decay, release after the note ends) is computed once for the
    whole track without a Python loop over samples, and shared by all notes of a chord. Between
    notes the pitch holds, which keeps the oscillator phase continuous.
    """
    if not notes:
        return np.zeros(n)
    notes = sorted(notes, key=lambda note: note[0])
    starts = np.array([int(s * sr) for s, _, _ in notes])
    lengths = np.array([max(d, 1.0 / sr) for _, d, _ in notes])
    freqs = _midi_hz(np.array([np.atleast_1d(m) for _, _, m in notes]))  # [notes, voices]
    pos = np.arange(n)
    which = np.searchsorted(starts, pos, side="right") - 1
    active = which >= 0
    which = np.maximum(which, 0)
    since = (pos - starts[which]) / sr
    past = np.maximum(since - lengths[which], 0.0)
    env = np.minimum(since / attack, 1.0) * np.exp(-since / decay - past / release) * active
    out = np.zeros(n)
    for voice in range(freqs.shape[1]):
        freq = freqs[which, voice]
        out += _osc(freq if vibrato is None else freq * vibrato, sr, amps)
    return out * env


def _drum_kit(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    """One kick, snare and hi-hat sample, reused for every hit (drum machines do exactly that)."""
    t = np.arange(_n(0.35, sr)) / sr
    kick_f = rng.uniform(45.0, 60.0) + rng.uniform(80.0, 140.0) * np.exp(-t / 0.03)
    kick = _osc(kick_f, sr, [1.0]) * np.exp(-t / rng.uniform(0.08, 0.15))
    ts = t[: _n(0.25, sr)]
    snare = (_filter(rng.standard_normal(ts.size), "bandpass", (1000.0, 6000.0), sr)
             * np.exp(-ts / rng.uniform(0.04, 0.08))
             + 0.5 * _osc(np.full(ts.size, rng.uniform(170.0, 230.0)), sr, [1.0])
             * np.exp(-ts / 0.04))
    th = t[: _n(0.08, sr)]
    hat = _filter(rng.standard_normal(th.size), "highpass", 6000.0, sr) * np.exp(-th / 0.015)
    return {"kick": kick / np.max(np.abs(kick)), "snare": 0.7 * snare / np.max(np.abs(snare)),
            "hat": 0.25 * hat / max(np.max(np.abs(hat)), 1e-9)}


def _music(rng: np.random.Generator, sr: int, max_s: float, subtype: str) -> np.ndarray:
    """A looping groove: chord progression, bass, melody riff and drums on a 16-step grid.

    The drum pattern is identical in every bar and the melody riff repeats every one or two
    bars, so the clip is self-similar at the bar level, as real popular music is. The
    ice-cream-truck tune is a bell-like melody box loop without drums; a car stereo is the
    band heard through a car body (strong low-pass, loud bass).
    """
    n = _n(_duration(rng, 4.0, 10.0, max_s), sr)
    dur = n / sr
    if subtype == "ice-cream-truck":
        return _ice_cream(rng, sr, n)
    beat = 60.0 / rng.uniform(85.0, 135.0)
    step = beat / 4.0
    bar = 16 * step
    scale = _MAJOR if rng.random() < 0.6 else _MINOR
    root = int(rng.integers(45, 57))
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    riff_bars = int(rng.integers(1, 3))
    riff = [(int(s), int(rng.integers(0, 8))) for s in range(0, 16 * riff_bars, 2)
            if rng.random() < 0.7]

    def degree(d: int) -> int:
        return scale[d % 7] + 12 * (d // 7)

    bass_steps = ((0, 4, 8, 12), (0, 6, 8, 14), (0, 8, 10))[int(rng.integers(3))]
    bass, chords, melody = [], [], []
    bars = int(np.ceil(dur / bar)) + 1
    for b in range(bars):
        chord = progression[b % len(progression)]
        t_bar = b * bar
        for s in bass_steps:
            bass.append((t_bar + s * step, 3.6 * step, root - 12 + degree(chord)))
        chords.append((t_bar, bar, tuple(root + 12 + degree(chord + 2 * v) for v in range(3))))
        for s, d in riff:
            if (s // 16) == b % riff_bars:
                melody.append((t_bar + (s % 16) * step, 1.8 * step,
                               root + 24 + degree(chord + d)))
    x = _unit(_note_track(bass, n, sr, _harmonic_amps(rng, 8, 1.2), 0.01, 0.4))
    x += 0.6 * _unit(_note_track(chords, n, sr, _harmonic_amps(rng, 12, 1.5), 0.03, 1.5))
    x += 0.7 * _unit(_note_track(melody, n, sr, _harmonic_amps(rng, 10, 1.0, 3.0), 0.01, 0.3))
    kit = _drum_kit(rng, sr)
    kicks = ((0, 8), (0, 6, 8), (0, 10), (0, 7, 10))[int(rng.integers(4))]
    hats = range(0, 16, 2) if rng.random() < 0.6 else range(16)
    drums = np.zeros(n)
    for b in range(bars):
        for name, steps in (("kick", kicks), ("snare", (4, 12)), ("hat", hats)):
            for s in steps:
                _place(drums, kit[name], int((b * bar + s * step) * sr))
    x = x / 3.0 + rng.uniform(0.6, 1.0) * drums
    if subtype == "car-stereo":
        x = _filter(x, "lowpass", rng.uniform(300.0, 700.0), sr)
        t = np.arange(n) / sr
        tc, width = rng.uniform(0.3, 0.7) * dur, rng.uniform(0.3, 0.6) * dur
        x = x * (0.3 + np.exp(-0.5 * ((t - tc) / width) ** 2))
    return x * _fade(n, sr, 0.2, 0.3)


def _ice_cream(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Music-box loop: bell partials (1, 2.76, 5.4 ratios), short tune, wobbly old speaker."""
    step = 60.0 / rng.uniform(110.0, 160.0) / 2.0
    root = int(rng.integers(69, 78))
    tune = [(i, _MAJOR[int(d) % 7] + 12 * (int(d) // 7))
            for i, d in enumerate(rng.integers(0, 10, int(rng.integers(8, 13))))]
    loop = (len(tune) + 2) * step
    notes = [(r * loop + i * step, step, root + d) for r in range(int(n / sr / loop) + 1)
             for i, d in tune]
    wobble = 1.0 + 0.006 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * np.arange(n) / sr)
    x = np.zeros(n)
    for ratio, weight, decay in ((1.0, 1.0, 0.5), (2.76, 0.4, 0.15), (5.4, 0.2, 0.06)):
        shifted = [(s, d, m + 12 * np.log2(ratio)) for s, d, m in notes]
        x += weight * _note_track(shifted, n, sr, [1.0], 0.003, decay, 0.1, wobble)
    return _filter(x, "bandpass", (300.0, 5000.0), sr) * _fade(n, sr, 0.05, 0.2)


# --------------------------------------------------------------------------------------------
# 7. human-voice: syllables of a glottal source through vowel formants
# --------------------------------------------------------------------------------------------

_VOWELS = np.array([  # F1, F2, F3 (Hz) of an adult male speaker
    (730.0, 1090.0, 2440.0),  # a
    (530.0, 1840.0, 2480.0),  # e
    (270.0, 2290.0, 3010.0),  # i
    (570.0, 840.0, 2410.0),  # o
    (300.0, 870.0, 2240.0),  # u
    (660.0, 1720.0, 2410.0),  # ae
    (490.0, 1350.0, 1690.0),  # er
])


def _talker(rng: np.random.Generator, sr: int, n: int, f_base: float, tract: float,
            brightness: float, syl_range: tuple[float, float]) -> np.ndarray:
    """One speaker: words of 1-3 syllables, phrases with falling pitch, pauses between.

    The source is a harmonic series with a glottal spectral tilt; each syllable picks a vowel
    and is shaped by three formant resonances (scaled by ``tract``: shorter tracts for higher
    voices). Some syllables start with a fricative or plosive noise burst.
    """
    dur = n / sr
    syllables: list[tuple[float, float]] = []
    t = rng.uniform(0.02, 0.1)
    phrase_start, phrase_words, words = t, int(rng.integers(3, 7)), 0
    pitch = np.ones(n)
    while t < dur - syl_range[0]:
        for _ in range(int(rng.integers(1, 4))):
            length = min(rng.uniform(*syl_range), dur - t)
            if length < 0.05:
                break
            syllables.append((t, length))
            t += length + rng.uniform(0.0, 0.04)
        t += rng.uniform(0.06, 0.2)
        words += 1
        if words >= phrase_words:
            a, b = int(phrase_start * sr), min(int(t * sr), n)
            pitch[a:b] = np.linspace(1.15, 0.85, max(b - a, 0))  # declination
            t += rng.uniform(0.25, 0.6)
            phrase_start, phrase_words, words = t, int(rng.integers(3, 7)), 0
    if not syllables:  # too short for the schedule: one syllable filling the event
        syllables.append((0.0, dur))
    a = int(phrase_start * sr)
    if a < n:
        pitch[a:] = np.linspace(1.15, 0.85, n - a)
    for start, length in syllables:
        if rng.random() < 0.4:  # stressed syllable: raised pitch (steps fall in silent gaps)
            pitch[int(start * sr): int((start + length) * sr)] *= 1.0 + rng.uniform(0.05, 0.2)
    f0 = f_base * pitch * (1.0 + 0.02 * _smooth_random(rng, n, sr, 8.0))
    source = _osc(f0, sr, _harmonic_amps(rng, 48, 1.6 - brightness))
    hiss = _sos("highpass", rng.uniform(2500.0, 5000.0), sr)
    out = np.zeros(n)
    for start, length in syllables:
        a, m = int(start * sr), max(int(length * sr), 2)
        seg = source[a: a + m]
        env = np.sqrt(np.sin(np.pi * np.arange(seg.size) / seg.size))
        f1, f2, f3 = _VOWELS[int(rng.integers(len(_VOWELS)))] * tract
        voiced = seg * env
        vowel = _formant_bank(voiced, ((f1, 90.0, 1.0), (f2, 110.0, 0.6), (f3, 160.0, 0.3)), sr)
        _place(out, vowel, a)
        if rng.random() < 0.45:  # consonant: fricative hiss or plosive burst before the vowel
            burst_len = _n(rng.uniform(0.03, 0.08), sr)
            burst = signal.sosfilt(hiss, rng.standard_normal(burst_len)) * np.hanning(burst_len)
            _place(out, 0.25 * float(np.max(np.abs(vowel)) + 1e-9) * burst / (
                np.max(np.abs(burst)) + 1e-9), max(a - burst_len // 2, 0))
    return out


def _human_voice(rng: np.random.Generator, sr: int, max_s: float, subtype: str) -> np.ndarray:
    """Talking, shouting (higher, brighter, longer syllables) or a crowd (several talkers)."""
    if subtype == "crowd":
        n = _n(_duration(rng, 3.0, 10.0, max_s), sr)
        x = np.zeros(n)
        for _ in range(int(rng.integers(3, 6))):
            female = rng.random() < 0.5
            f_base = rng.uniform(170.0, 240.0) if female else rng.uniform(100.0, 140.0)
            x += rng.uniform(0.5, 1.0) * _unit(_talker(rng, sr, n, f_base,
                                                       1.15 if female else 1.0, 0.4, (0.1, 0.3)))
        return _filter(x, "lowpass", 3500.0, sr) * _fade(n, sr, 0.3, 0.3)
    n = _n(_duration(rng, 1.0, 6.0, max_s), sr)
    female = rng.random() < 0.5
    f_base = rng.uniform(170.0, 240.0) if female else rng.uniform(100.0, 140.0)
    tract = (1.15 if female else 1.0) * rng.uniform(0.95, 1.05)
    if subtype == "shouting":
        return _talker(rng, sr, n, min(f_base * rng.uniform(1.3, 1.6), 350.0), tract, 0.8,
                       (0.18, 0.3))
    return _talker(rng, sr, n, f_base, tract, 0.4, (0.1, 0.3))


# --------------------------------------------------------------------------------------------
# 8. dog: bouts of short harmonic barks at a steady rhythm
# --------------------------------------------------------------------------------------------


def _dog(rng: np.random.Generator, sr: int, max_s: float, subtype: str) -> np.ndarray:
    """A bout of 4-9 barks (fewer if ``max_s`` is short) at a steady interval (0.3-1 s gaps).

    A bark is a harmonic burst (300-800 Hz fundamental) whose pitch falls fast, with a noisy
    onset, shaped by the dog's two vocal-tract resonances. The same dog keeps its pitch and
    rhythm within a bout, which makes barking one of the repetitive classes.
    """
    bark_len = rng.uniform(0.1, 0.25)
    interval = bark_len + rng.uniform(0.3, 1.0)
    count = int(rng.integers(4, 10))
    count = max(1, min(count, int((max_s - 0.02 - bark_len) / interval) + 1))
    onsets = 0.02 + np.concatenate([[0.0], np.cumsum(
        interval * (1.0 + 0.015 * rng.standard_normal(count - 1)))])
    n = _n(min(max_s, onsets[-1] + 1.3 * bark_len + 0.05), sr)
    f_dog = rng.uniform(300.0, 800.0)
    formants = (rng.uniform(700.0, 1200.0), rng.uniform(1800.0, 3000.0))
    onset_band = _sos("bandpass", (1000.0, 6000.0), sr)
    out = np.zeros(n)
    for onset in onsets:
        m = _n(bark_len * rng.uniform(0.85, 1.15), sr)
        t = np.arange(m) / sr
        u = t / t[-1] if m > 1 else t
        f0 = f_dog * rng.uniform(0.92, 1.08) * (1.0 + 0.15 * np.sin(np.pi * np.minimum(u / 0.2, 1))
                                                 * (u < 0.2)) * (1.0 - 0.4 * u)
        env = np.minimum(t / 0.008, 1.0) * (1.0 - u) ** 0.8
        tone = _osc(f0, sr, _harmonic_amps(rng, 20, 0.9))
        voiced = tone * env
        shaped = 0.4 * voiced + _formant(voiced, formants[0], 250.0, sr) \
            + 0.6 * _formant(voiced, formants[1], 400.0, sr)
        noise = rng.standard_normal(m)
        onset_noise = signal.sosfilt(onset_band, noise) * np.exp(-t / 0.015)
        bark = _unit(shaped) + 0.25 * _unit(onset_noise) + 0.1 * noise * env
        _place(out, bark * rng.uniform(0.85, 1.15), int(onset * sr))
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

_RENDERERS: dict[str, Callable[[np.random.Generator, int, float, str], np.ndarray]] = {
    "engine": _engine,
    "machinery-impact": _machinery_impact,
    "non-machinery-impact": _non_machinery_impact,
    "powered-saw": _powered_saw,
    "alert-signal": _alert_signal,
    "music": _music,
    "human-voice": _human_voice,
    "dog": _dog,
}


def _check_common(sample_rate: int, name: str = "sample_rate") -> None:
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) \
            or sample_rate < 8000:
        raise ConfigError(f"{name}={sample_rate!r}: expected an integer >= 8000 (Hz)")


def _finish(x: np.ndarray, max_len: int, sr: int) -> np.ndarray:
    """Trim to ``max_len`` (with a short fade so the cut does not click), remove DC, normalise."""
    if x.size > max_len:
        x = x[:max_len] * _fade(max_len, sr, 0.0, 0.01)
    x = x - float(np.mean(x)) if x.size > 1 else x
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak):
        raise RuntimeError("event renderer produced non-finite samples")  # a bug, not user error
    if peak > 1e-12:
        x = x * (_PEAK / peak)
    return x.astype(np.float32)


def render_labelled_event(class_name: str, rng: np.random.Generator, sample_rate: int,
                          max_seconds: float, *, subtype: str | None = None) -> RenderedEvent:
    """Render one event of ``class_name`` and report which sub-type / fine label it is.

    Args:
        class_name: one of ``COARSE_CLASSES``.
        rng: source of all randomness (pass a seeded generator for reproducible audio).
        sample_rate: Hz, at least 8000 (every recipe keeps its content below 0.45 of it).
        max_seconds: upper bound on the event length; recipes shorten themselves to fit.
        subtype: force a recipe (a key of ``SUBTYPES[class_name]``); default: random.

    Returns:
        A :class:`RenderedEvent` whose ``audio`` has at most ``max_seconds * sample_rate``
        samples.
    """
    if class_name not in _RENDERERS:
        raise ConfigError(f"class_name={class_name!r}: expected one of {list(COARSE_CLASSES)}")
    _check_common(sample_rate)
    if not isinstance(max_seconds, (int, float, np.floating)) or isinstance(max_seconds, bool) \
            or not np.isfinite(max_seconds) or int(max_seconds * sample_rate) < 1:
        raise ConfigError(f"max_seconds={max_seconds!r}: expected a positive number of seconds "
                          "(at least one sample long)")
    options = SUBTYPES[class_name]
    if subtype is None:
        names = tuple(options)
        subtype = names[int(rng.integers(len(names)))]
    elif subtype not in options:
        raise ConfigError(
            f"subtype={subtype!r} for {class_name!r}: expected one of {list(options)}"
        )
    sr = int(sample_rate)
    max_len = int(max_seconds * sr)
    audio = _RENDERERS[class_name](rng, sr, max_len / sr, subtype)
    return RenderedEvent(_finish(audio, max_len, sr), class_name, subtype, options[subtype])


def render_event(class_name: str, rng: np.random.Generator, sample_rate: int,
                 max_seconds: float) -> np.ndarray:
    """float32 mono samples of one random ``class_name`` event (peak about 0.89).

    Shorthand for :func:`render_labelled_event` when the sub-type does not matter.
    """
    return render_labelled_event(class_name, rng, sample_rate, max_seconds).audio


@functools.lru_cache(maxsize=8)
def _pink_filter(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """IIR coefficients of an approximately -3 dB/octave ("pink") filter for white noise.

    Sum of one-pole low-passes with corners four times apart, each weighted by
    ``corner ** -0.5``: between corners the staircase of -6 dB/octave slopes averages to
    -3 dB/octave within about 1 dB over 20 Hz-10 kHz. Merged into one rational filter so pink
    noise costs a single ``lfilter`` pass instead of an FFT of the whole clip.
    """
    corners = [10.0 * 4.0**i for i in range(8) if 10.0 * 4.0**i < 0.45 * sr]
    poles = [float(np.exp(-2.0 * np.pi * f / sr)) for f in corners]
    den = np.array([1.0])
    for p in poles:
        den = np.convolve(den, [1.0, -p])
    num = np.zeros(len(poles))
    for i, (p, f) in enumerate(zip(poles, corners, strict=True)):
        term = np.array([(1.0 - p) * f**-0.5])
        for j, q in enumerate(poles):
            if j != i:
                term = np.convolve(term, [1.0, -q])
        num[: term.size] += term
    return num, den


def render_background(rng: np.random.Generator, sample_rate: int, n_samples: int) -> np.ndarray:
    """City ambience: a random mix of pink noise, brown noise, traffic rumble and mains hum.

    Real SONYC recordings never contain digital silence; a background with a 1/f-ish spectrum
    and slow level changes is what events are detected against, and varying its colour per clip
    keeps a model from keying on one fixed noise floor. Returned at unit RMS (float32); the
    caller sets its level.
    """
    _check_common(sample_rate)
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
        raise ConfigError(f"n_samples={n_samples!r}: expected a positive integer")
    sr, n = int(sample_rate), int(n_samples)
    pink = signal.lfilter(*_pink_filter(sr), rng.standard_normal(n))
    white = rng.standard_normal(n)
    # brown: leaky integrator (corner 20 Hz) followed by a DC blocker, merged into one filter
    leak = 1.0 - 2.0 * np.pi * 20.0 / sr
    brown = signal.lfilter([1.0, -1.0], np.convolve([1.0, -leak], [1.0, -0.999]), white)
    # distant traffic: band-limited rumble whose level drifts slowly
    rumble = _filter(white, "lowpass", rng.uniform(120.0, 300.0), sr, order=4) \
        * (1.0 + 0.5 * _smooth_random(rng, n, sr, 0.3))
    x = (rng.uniform(0.2, 1.0) * _unit(pink) + rng.uniform(0.2, 1.0) * _unit(brown)
         + rng.uniform(0.3, 1.5) * _unit(rumble))
    if rng.random() < 0.5:  # transformer / street-light hum at the mains frequency
        mains = 50.0 if rng.random() < 0.5 else 60.0
        hum = _osc(np.full(n, mains), sr, [0.3, 1.0, 0.5, 0.3, 0.2, 0.1])
        x += rng.uniform(0.05, 0.2) * _unit(hum)
    return _unit(x).astype(np.float32)


def _validate_tables() -> None:
    """Fail at import if a sub-type maps to a fine label that the schema does not know."""
    if not set(SUBTYPES) == set(COARSE_CLASSES) == set(_RENDERERS):
        raise RuntimeError("synth_sounds: SUBTYPES / renderers do not cover COARSE_CLASSES")
    if not REPETITIVE_SUBTYPES <= {name for options in SUBTYPES.values() for name in options}:
        raise RuntimeError("synth_sounds: REPETITIVE_SUBTYPES names an unknown sub-type")
    for index, cls in enumerate(COARSE_CLASSES, start=1):
        for fine in SUBTYPES[cls].values():
            if fine not in FINE_CLASSES[index]:
                raise RuntimeError(f"synth_sounds: {fine!r} is not a fine class of {cls!r}")


_validate_tables()
