"""Structured crowd-annotation errors: who hears what, and what they call it.

Real crowd labels (SONYC-UST's volunteers) are not the truth with independent flips. Their
errors have structure, and that structure is what a label-aggregation rule or a teacher's soft
targets can or cannot undo:

* **Faint events are missed.** The chance that an annotator marks an event falls with its
  signal-to-noise ratio along a logistic curve: loud events are almost always heard (up to a
  small lapse rate), events near the annotator's threshold half of the time, buried ones
  almost never.
* **Annotators differ.** Each annotator has a fixed hearing threshold (some listen on laptop
  speakers), a fixed per-class propensity (one over-reports engines in every street clip,
  another never ticks "music") and a fixed tendency to confuse.
* **Similar classes are confused.** A heard event is sometimes reported as a class that sounds
  alike (a chainsaw as an engine, a jackhammer as a non-machinery impact, a shout as a dog),
  either instead of or in addition to the right one.
* **False alarms are class-specific.** Absent classes are ticked at a small rate that follows
  the annotator's propensity for that class.

:class:`CrowdErrorModel` holds the population-level parameters; :func:`annotator_profiles`
draws each annotator's fixed traits from it (deterministically from a seed and the annotator
id, so an annotator keeps their habits across clips and runs) and :func:`crowd_labels` draws
one annotator's label set for one clip. Used by the real-recordings benchmark builder
(:mod:`keras_iusp.data.real_audio`) and by the synthetic generator's ``realistic`` preset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from keras_iusp.data.schema import COARSE_CLASSES
from keras_iusp.utils.errors import ConfigError

__all__ = ["CONFUSABLE", "AnnotatorProfile", "CrowdErrorModel", "annotator_profiles",
           "crowd_labels"]

#: For each coarse class, the classes a listener may mistake it for (most likely first).
CONFUSABLE: dict[str, tuple[str, ...]] = {
    "engine": ("machinery-impact", "powered-saw"),
    "machinery-impact": ("non-machinery-impact", "powered-saw", "engine"),
    "non-machinery-impact": ("machinery-impact",),
    "powered-saw": ("engine", "machinery-impact"),
    "alert-signal": ("music", "engine"),
    "music": ("human-voice", "alert-signal"),
    "human-voice": ("music", "dog"),
    "dog": ("human-voice",),
}

_PROFILE_STREAM = 7  # spawn-key tag of the per-annotator trait streams


@dataclass(frozen=True)
class CrowdErrorModel:
    """Population parameters of the crowd's errors (all probabilities in [0, 1]).

    Attributes:
        threshold_snr_db: SNR (dB, event over background) at which an average annotator hears
            an event half of the time.
        slope_db: width of the logistic hearing curve (dB per e-fold of the odds); > 0.
        lapse: chance of missing even a loud event (attention lapses).
        threshold_spread_db: standard deviation of the annotators' personal thresholds.
        confusion: average chance that a heard event is reported as a confusable class.
        confusion_adds: share of confusions that add the wrong class rather than replace the
            right one.
        false_alarm: average chance of ticking an absent class.
        propensity_spread: standard deviation of each annotator's per-class log-odds bias
            (scales both the hearing odds and the false-alarm rate of that class).
    """

    threshold_snr_db: float = 0.0
    slope_db: float = 2.5
    lapse: float = 0.03
    threshold_spread_db: float = 3.0
    confusion: float = 0.08
    confusion_adds: float = 0.5
    false_alarm: float = 0.01
    propensity_spread: float = 0.5

    def __post_init__(self) -> None:
        for name in ("lapse", "confusion", "confusion_adds", "false_alarm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
                raise ConfigError(f"CrowdErrorModel.{name}={value!r}: expected a probability "
                                  "in [0, 1]")
        for name in ("slope_db",):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"CrowdErrorModel.{name}={value!r}: expected a positive number")
        for name in ("threshold_snr_db", "threshold_spread_db", "propensity_spread"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ConfigError(f"CrowdErrorModel.{name}={value!r}: expected a finite number")
        if self.threshold_spread_db < 0 or self.propensity_spread < 0:
            raise ConfigError("CrowdErrorModel spreads must be >= 0")

    def to_dict(self) -> dict[str, float]:
        """The parameters as a JSON-ready dictionary."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class AnnotatorProfile:
    """One annotator's fixed habits, drawn by :func:`annotator_profiles`."""

    annotator_id: int
    threshold_snr_db: float
    propensity: Mapping[str, float]  # per-class log-odds bias
    confusion: float


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


def annotator_profiles(seed: int, annotator_ids: Iterable[int],
                       model: CrowdErrorModel) -> dict[int, AnnotatorProfile]:
    """Each annotator's threshold, per-class propensity and confusion rate.

    Deterministic in ``(seed, annotator id)``: the same annotator gets the same habits whatever
    other annotators are in the pool.
    """
    profiles = {}
    for annotator in annotator_ids:
        rng = np.random.default_rng(
            np.random.SeedSequence(int(seed), spawn_key=(_PROFILE_STREAM, int(annotator))))
        threshold = model.threshold_snr_db + model.threshold_spread_db * float(rng.normal())
        bias = rng.normal(0.0, model.propensity_spread, size=len(COARSE_CLASSES))
        # Confusion rate varies between annotators around the population mean (beta, mean kept).
        confusion = float(rng.beta(2.0, 2.0 * (1.0 - model.confusion) / model.confusion)) \
            if 0.0 < model.confusion < 1.0 else model.confusion
        profiles[int(annotator)] = AnnotatorProfile(
            annotator_id=int(annotator), threshold_snr_db=threshold,
            propensity={c: float(b) for c, b in zip(COARSE_CLASSES, bias, strict=True)},
            confusion=confusion)
    return profiles


def crowd_labels(rng: np.random.Generator, events: Sequence[tuple[str, float]],
                 profile: AnnotatorProfile, model: CrowdErrorModel) -> set[str]:
    """The coarse classes one annotator reports for one clip.

    Args:
        rng: the clip's label stream (consumed in a fixed order: deterministic).
        events: ``(class, snr_db)`` of every labelled event in the clip (a class may repeat).
        profile: the annotator's habits.
        model: the population parameters.

    Returns:
        The set of class names the annotator ticks.
    """
    for cls, _ in events:
        if cls not in CONFUSABLE:
            raise ConfigError(f"unknown class {cls!r}: expected one of {list(COARSE_CLASSES)}")
    loudest: dict[str, float] = {}
    for cls, snr in events:
        loudest[cls] = max(loudest.get(cls, -math.inf), float(snr))
    heard: set[str] = set()
    for cls in COARSE_CLASSES:  # fixed order: the draws do not depend on the events' order
        bias = profile.propensity[cls]
        if cls in loudest:
            p_hear = (1.0 - model.lapse) * _sigmoid(
                (loudest[cls] - profile.threshold_snr_db) / model.slope_db + bias)
            draw_hear, draw_conf, draw_kind, draw_which = rng.random(4)
            if draw_hear >= p_hear:
                continue  # missed
            if draw_conf < profile.confusion:
                options = CONFUSABLE[cls]
                wrong = options[min(int(draw_which * len(options)), len(options) - 1)]
                heard.add(wrong)
                if draw_kind < model.confusion_adds:
                    heard.add(cls)
            else:
                heard.add(cls)
        else:
            draw = rng.random()
            if draw < _sigmoid(_logit(model.false_alarm) + bias):
                heard.add(cls)
    return heard
