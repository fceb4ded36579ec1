"""Always-on event detection on a stream of int8 window outputs, as the device runs it.

The detector turns the model's per-window int8 output logits into events (class, onset window,
offset window). Everything is integer arithmetic in the model's output quantisation, so this
module and the generated C++ ``detector.h/.cc`` make the same decisions on the same scores; the
tests compare them bit for bit.

Per class, at each window ``w`` (windows numbered from 0 since the last reset):

* smoothing: ``S`` is the sum of the last ``n = min(w + 1, K)`` int8 logits of the class
  (``K`` = ``smoothing_windows``, shared by all classes), i.e. their mean is ``S / n``;
* inactive class: an event begins at ``w`` (its onset window) when ``w >= hold_until`` and
  ``S >= on_threshold * n``;
* active class: the event ends at ``w`` (its offset window, the first window no longer part of
  it) when ``S < off_threshold * n``; then ``hold_until = w + hold_off_windows``, so no new event
  of the class begins before ``hold_off_windows`` windows have passed;
* end of stream (:func:`detect_events` / the C++ ``Flush()``): an open event ends at the number
  of windows pushed.

Thresholds are int8 logit values (``real = scale * (q - zero_point)``); ``on_threshold = 128``
(:data:`NEVER`) disables a class. ``-127 <= off_threshold <= on_threshold <= 128``.

:func:`calibrate` chooses the settings on a validation stream for an operating point (a target
event precision or a false-alarm budget per hour); see its docstring and ``docs/embedded.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from keras_iusp.event_metrics import event_counts
from keras_iusp.utils.errors import ConfigError

#: ``on_threshold`` value that no smoothed int8 score reaches: the class never fires.
NEVER = 128
#: Largest smoothing length the C++ detector's ring holds.
MAX_SMOOTHING_WINDOWS = 8
#: Calibration grid (see :func:`calibrate`).
SMOOTHING_CHOICES = (1, 2, 3)
HYSTERESIS_LOGITS = (0.0, 1.0)
HOLD_OFF_SECONDS = (0.0, 1.0, 2.0)
MAX_THRESHOLD_CANDIDATES = 24


@dataclass(frozen=True)
class DetectorSettings:
    """Smoothing length and per-class int8 thresholds and hold-offs of the detector."""

    smoothing_windows: int
    on_threshold: tuple[int, ...]
    off_threshold: tuple[int, ...]
    hold_off_windows: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.on_threshold)
        if not 1 <= int(self.smoothing_windows) <= MAX_SMOOTHING_WINDOWS:
            raise ConfigError(f"smoothing_windows={self.smoothing_windows}: expected 1.."
                              f"{MAX_SMOOTHING_WINDOWS}")
        if len(self.off_threshold) != n or len(self.hold_off_windows) != n or n == 0:
            raise ConfigError("detector settings: on_threshold, off_threshold and "
                              "hold_off_windows need one entry per class")
        for c, (on, off, hold) in enumerate(zip(self.on_threshold, self.off_threshold,
                                                self.hold_off_windows)):
            if not -127 <= off <= on <= NEVER:
                raise ConfigError(f"detector class {c}: expected -127 <= off_threshold ({off}) "
                                  f"<= on_threshold ({on}) <= {NEVER}")
            if hold < 0:
                raise ConfigError(f"detector class {c}: hold_off_windows={hold} is negative")

    @property
    def num_classes(self) -> int:
        return len(self.on_threshold)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetectorSettings:
        try:
            return cls(int(values["smoothing_windows"]),
                       tuple(int(v) for v in values["on_threshold"]),
                       tuple(int(v) for v in values["off_threshold"]),
                       tuple(int(v) for v in values["hold_off_windows"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"detector settings {values!r}: {exc}") from exc


@dataclass(frozen=True)
class Event:
    """A detected event: windows ``onset_window .. offset_window - 1`` were active."""

    class_index: int
    onset_window: int
    offset_window: int


@dataclass(frozen=True)
class WindowTiming:
    """Where window ``w`` of a stream lies in time: frames ``[w * hop, w * hop + frames)``."""

    frames: int            # frames per window
    hop: int               # frames between window starts
    frame_hop_seconds: float
    frame_seconds: float   # one frame's analysis window

    @property
    def hop_seconds(self) -> float:
        return self.hop * self.frame_hop_seconds

    def end_seconds(self, window: int) -> float:
        """Time of the last audio sample of window ``window``: when the device can decide."""
        return (window * self.hop + self.frames - 1) * self.frame_hop_seconds + self.frame_seconds

    def tile(self, window: int) -> tuple[float, float]:
        """The hop-long stretch centred on the window: consecutive windows tile the stream."""
        centre = (window * self.hop * self.frame_hop_seconds
                  + ((self.frames - 1) * self.frame_hop_seconds + self.frame_seconds) / 2)
        return centre - self.hop_seconds / 2, centre + self.hop_seconds / 2

    def event_seconds(self, event: Event) -> tuple[float, float]:
        """(onset, offset) in seconds: from the tile of the onset window to the tile of the last
        active window."""
        return self.tile(event.onset_window)[0], self.tile(event.offset_window - 1)[1]


def _class_events(scores: np.ndarray, smoothing: int, on: np.ndarray, off: np.ndarray,
                  hold: np.ndarray) -> list[list[tuple[int, int]]]:
    """Events of one class's int8 scores ``[W]`` for ``J`` settings at once (the rule of the
    module docstring); returns ``J`` lists of (onset, offset) windows."""
    x = np.asarray(scores, np.int64)
    total = np.cumsum(x)
    sums = total.copy()
    sums[smoothing:] -= total[:-smoothing]
    counts = np.minimum(np.arange(1, len(x) + 1), smoothing)
    on, off, hold = (np.asarray(v, np.int64) for v in (on, off, hold))
    jobs = len(on)
    active = np.zeros(jobs, bool)
    onset = np.zeros(jobs, np.int64)
    hold_until = np.zeros(jobs, np.int64)
    events: list[list[tuple[int, int]]] = [[] for _ in range(jobs)]
    for w in range(len(x)):
        s, n = sums[w], counts[w]
        ends = active & (s < off * n)
        starts = ~active & (w >= hold_until) & (s >= on * n)
        for j in np.flatnonzero(ends):
            events[j].append((int(onset[j]), w))
        hold_until[ends] = w + hold[ends]
        onset[starts] = w
        active = (active & ~ends) | starts
    for j in np.flatnonzero(active):
        events[j].append((int(onset[j]), len(x)))
    return events


def detect_events(logits: np.ndarray, settings: DetectorSettings) -> list[Event]:
    """Events of a stream of int8 window outputs ``[W, C]``, in the order the C++ detector
    reports them (by offset window, then class; open events end at ``W``)."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != settings.num_classes:
        raise ConfigError(f"window outputs of shape {logits.shape}: expected [windows, "
                          f"{settings.num_classes}]")
    if logits.dtype != np.int8:
        raise ConfigError(f"window outputs must be int8 (the model's output), got {logits.dtype}")
    events = []
    for c in range(settings.num_classes):
        found = _class_events(logits[:, c], settings.smoothing_windows,
                              [settings.on_threshold[c]], [settings.off_threshold[c]],
                              [settings.hold_off_windows[c]])[0]
        events += [Event(c, a, b) for a, b in found]
    return sorted(events, key=lambda e: (e.offset_window, e.class_index))


# --- calibration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """What the calibration must reach per class on validation: a minimum event precision or a
    maximum number of false alarms (unmatched detections) per hour of audio."""

    target_precision: float | None = None
    false_alarms_per_hour: float | None = None

    def __post_init__(self) -> None:
        if (self.target_precision is None) == (self.false_alarms_per_hour is None):
            raise ConfigError("operating point: give exactly one of target_precision and "
                              "false_alarms_per_hour")
        if self.target_precision is not None and not 0 < self.target_precision <= 1:
            raise ConfigError(f"target_precision={self.target_precision}: expected 0 < p <= 1")
        if self.false_alarms_per_hour is not None and self.false_alarms_per_hour < 0:
            raise ConfigError(f"false_alarms_per_hour={self.false_alarms_per_hour}: expected >= 0")

    def met(self, counts: dict[str, float], hours: float) -> bool:
        """Whether one class's event counts (``Nsys``, ``Ntp``, ``Nfp``) meet the point; a class
        with no detection at all does not."""
        if counts["Nsys"] == 0:
            return False
        if self.target_precision is not None:
            return counts["Ntp"] / counts["Nsys"] >= self.target_precision
        return counts["Nfp"] / hours <= self.false_alarms_per_hour

    def describe(self) -> str:
        if self.target_precision is not None:
            return f"event precision >= {self.target_precision:g} per class"
        return f"<= {self.false_alarms_per_hour:g} false alarms per hour per class"

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


#: The export's operating point when the user gives none.
DEFAULT_OPERATING_POINT = OperatingPoint(target_precision=0.5)


def _threshold_candidates(scores: np.ndarray) -> np.ndarray:
    """Distinct int8 scores of a class above its median (a detector that is on for half of
    the stream or more is not an event detector), at most MAX_THRESHOLD_CANDIDATES."""
    scores = np.asarray(scores, np.int64)
    values = np.unique(scores[scores > np.median(scores)])
    if len(values) > MAX_THRESHOLD_CANDIDATES:
        picks = np.linspace(0, len(values) - 1, MAX_THRESHOLD_CANDIDATES).round().astype(int)
        values = values[np.unique(picks)]
    return np.clip(values, -127, 127)


def calibrate(logits: np.ndarray, reference: list[tuple[str, float, float]],
              class_names: list[str], timing: WindowTiming, output_scale: float,
              operating_point: OperatingPoint = DEFAULT_OPERATING_POINT, *,
              collar: float = 1.0) -> dict[str, Any]:
    """Detector settings chosen on a validation stream's int8 window outputs ``[W, C]`` and its
    reference events ``(class name, onset s, offset s)``.

    Settings are scored by event-based onset matching with ``collar`` (sed_eval) on the
    stream. For every smoothing length ``K`` in :data:`SMOOTHING_CHOICES` and per class: every
    on threshold among (up to :data:`MAX_THRESHOLD_CANDIDATES`) distinct int8 scores of the
    class above its median, with every hysteresis of :data:`HYSTERESIS_LOGITS` (off = on
    - that many logits, in int8 steps) and no hold-off; then the best of these with each
    hold-off of :data:`HOLD_OFF_SECONDS` (in windows). The setting with the highest event F1
    among those meeting ``operating_point`` wins (ties: higher threshold, then shorter
    hold-off); a class where none meets it is disabled (``on_threshold = NEVER``). ``K`` is the
    one with the highest mean F1 over classes (ties: smaller ``K``). Returns ``{"settings",
    "operating_point", "collar", "per_class"}`` (validation precision/recall/F1/false alarms
    per hour of each class's chosen setting).
    """

    logits = np.asarray(logits)
    hours = logits.shape[0] * timing.hop_seconds / 3600.0
    if hours <= 0:
        raise ConfigError("calibration needs at least one window of validation stream")
    gaps = sorted({int(round(g / output_scale)) for g in HYSTERESIS_LOGITS})
    holds = sorted({int(round(s / timing.hop_seconds)) for s in HOLD_OFF_SECONDS})
    best_k = None
    scored: dict[tuple, dict[str, float]] = {}

    def best_of(c: int, name: str, k: int, grid: list[tuple[int, int, int]], best):
        if not grid:  # a class whose scores never rise above their median
            return best
        ref = [e for e in reference if e[0] == name]
        found = _class_events(logits[:, c], k, *(np.array(v) for v in zip(*grid)))
        for (on, off, hold), events in zip(grid, found):
            if not events:  # no detection never meets an operating point
                continue
            key = (c, tuple(events))
            if key not in scored:  # many settings give the same events: match once
                est = [(name, *timing.event_seconds(Event(c, a, b))) for a, b in events]
                scored[key] = event_counts(ref, est, [name], collar)[name]
            counts = scored[key]
            if operating_point.met(counts, hours):
                rank = (counts["f1"], int(on), -int(hold))
                if best is None or rank > best[0]:
                    best = (rank, int(on), int(off), int(hold), counts)
        return best

    for k in SMOOTHING_CHOICES:
        chosen = []
        for c, name in enumerate(class_names):
            grid = [(int(on), max(-127, int(on) - gap), 0)
                    for on in _threshold_candidates(logits[:, c]) for gap in gaps]
            best = best_of(c, name, k, grid, None)
            if best is not None and len(holds) > 1:
                best = best_of(c, name, k, [(best[1], best[2], h) for h in holds[1:]], best)
            chosen.append(best or ((0.0,), NEVER, NEVER, 0, None))
        mean_f1 = float(np.mean([b[0][0] for b in chosen]))
        if best_k is None or mean_f1 > best_k[1]:
            best_k = (k, mean_f1, chosen)
    k, _, chosen = best_k
    settings = DetectorSettings(k, tuple(b[1] for b in chosen), tuple(b[2] for b in chosen),
                                tuple(b[3] for b in chosen))
    per_class = {}
    for name, (key, on, _, _, counts) in zip(class_names, chosen):
        counts = counts or {"Nref": float(sum(e[0] == name for e in reference)), "Nsys": 0.0,
                            "Ntp": 0.0, "Nfp": 0.0}
        per_class[name] = {"f1": key[0], "detections": int(counts["Nsys"]),
                           "references": int(counts["Nref"]),
                           "false_alarms_per_hour": counts["Nfp"] / hours,
                           "enabled": on != NEVER}
    return {"settings": settings.to_dict(), "operating_point": operating_point.to_dict(),
            "operating_point_text": operating_point.describe(), "collar_seconds": collar,
            "validation_hours": hours, "per_class": per_class}
