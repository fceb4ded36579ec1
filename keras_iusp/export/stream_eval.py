"""Continuous-audio evaluation: a split's clips as one long stream, the windowed int8 model and
the detector over it, event metrics against the true events.

The stream is the split's clips in a seeded random order, their cached log-mel frames placed end
to end (each clip keeps the frames it has on its own, so a clip boundary is a cut, not a
crossfade). The int8 model runs on windows starting every half window
(:func:`keras_iusp.export.verify.window_outputs`, the streaming runner's schedule), the detector
(:mod:`keras_iusp.detect`) turns the int8 outputs into events, and
:mod:`keras_iusp.event_metrics` scores them.

Reference events: the true events the dataset's builder recorded beside the annotations -- the
synthetic generator's ``synth_config.json`` (class, onset and duration inside each clip) or the
real-recordings builder's ``real_audio_config.json`` (classes, onset and duration of each mixed
event; its distractors are not events). A dataset without them (SONYC-UST) falls back to
clip-level events: every clip labelled with a class is one event of that class
lasting the whole clip. Touching or overlapping reference events of the same class (the same
class in consecutive clips) are merged into one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.detect import (
    DEFAULT_OPERATING_POINT,
    DetectorSettings,
    WindowTiming,
    calibrate,
    detect_events,
)
from keras_iusp.event_metrics import summarise
from keras_iusp.export.verify import io_details, window_outputs
from keras_iusp.features.cache import FeatureCache
from keras_iusp.utils.errors import KerasIuspError

SYNTH_SOURCE = "synthetic event onsets and durations (synth_config.json)"
REAL_SOURCE = ("event onsets and durations of the real-recordings builder "
               "(real_audio_config.json)")
CLIP_SOURCE = "clip-level events (no event times in the dataset: each labelled clip is one event)"


@dataclass(frozen=True)
class Stream:
    """A split's clips end to end: frames ``[T, n_mels]``, clip order and first frames."""

    frames: np.ndarray
    filenames: tuple[str, ...]
    starts: tuple[int, ...]  # first stream frame of each clip
    labels: np.ndarray       # [clips, C] in stream order
    frame_hop_seconds: float

    @property
    def seconds(self) -> float:
        return len(self.frames) * self.frame_hop_seconds


def build_stream(cache: FeatureCache, split: str, seed: int) -> Stream:
    """The clips of ``split`` in a random order drawn from ``seed``, frames end to end."""
    features, labels = cache.split(split)
    if len(features) == 0:
        raise KerasIuspError(f"{cache.path}: split {split!r} has no clips")
    order = np.random.default_rng(seed).permutation(len(features))
    names = cache.split_filenames(split)
    per_clip = features.shape[1]
    return Stream(np.concatenate([np.asarray(features[i], np.float32) for i in order]),
                  tuple(names[i] for i in order),
                  tuple(int(k * per_clip) for k in range(len(order))),
                  np.asarray(labels)[order], cache.config.hop_ms / 1000.0)


ClipEvents = dict[str, list[tuple[str, float, float]]]


def _true_events(cache: FeatureCache) -> tuple[ClipEvents, str] | None:
    """Per clip file name, its events ``(class, onset s, duration s)`` and where they came from;
    None when the dataset recorded none."""
    try:
        root = Path(json.loads((cache.path / "meta.json").read_text())["dataset_root"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None
    for name, source in (("real_audio_config.json", REAL_SOURCE),
                         ("synth_config.json", SYNTH_SOURCE)):
        try:
            config = json.loads((root / name).read_text())
            found: ClipEvents = {}
            for clip in config["clips"]:
                events = []
                for e in clip["events"]:
                    classes = e["classes"] if "classes" in e else [e["class"]]
                    if not isinstance(classes, list):
                        raise TypeError(f"{name}: an event's classes must be a list")
                    events += [(str(c), float(e["onset"]), float(e["duration"]))
                               for c in classes]
                found[Path(clip["audio_filename"]).name] = events
            return found, source
        except (OSError, KeyError, TypeError, ValueError, AttributeError):
            continue
    return None


def reference_events(stream: Stream, cache: FeatureCache) -> tuple[list[tuple[str, float, float]],
                                                                  str]:
    """(events ``(class, onset s, offset s)`` on the stream's time line, where they came from)."""
    names = list(cache.class_names)
    clip_frames = len(stream.frames) // max(1, len(stream.filenames))
    clip_seconds = clip_frames * stream.frame_hop_seconds
    found = _true_events(cache)
    truth, source = found if found is not None else (None, CLIP_SOURCE)
    if truth is not None and not all(f in truth for f in stream.filenames):
        truth, source = None, CLIP_SOURCE
    events = []
    for k, name in enumerate(stream.filenames):
        t0 = stream.starts[k] * stream.frame_hop_seconds
        if truth is not None:
            for cls, start, duration in truth[name]:
                if cls in names:
                    onset = min(start, clip_seconds)
                    offset = min(onset + duration, clip_seconds)
                    if offset > onset:
                        events.append((cls, t0 + onset, t0 + offset))
        else:
            events += [(c, t0, t0 + clip_seconds) for c, v in zip(names, stream.labels[k]) if v]
    merged: list[tuple[str, float, float]] = []
    for c in names:
        for _, a, b in sorted(e for e in events if e[0] == c):
            if merged and merged[-1][0] == c and a <= merged[-1][2]:
                merged[-1] = (c, merged[-1][1], max(b, merged[-1][2]))
            else:
                merged.append((c, a, b))
    return sorted(merged, key=lambda e: e[1]), source


def stream_timing(model_bytes: bytes, cache: FeatureCache) -> WindowTiming:

    frames = io_details(model_bytes)[0].shape[1]
    return WindowTiming(frames, max(1, frames // 2), cache.config.hop_ms / 1000.0,
                        cache.config.window_ms / 1000.0)


def run_stream(model_bytes: bytes, stream: Stream, timing: WindowTiming) -> np.ndarray:
    """Int8 window outputs ``[W, C]`` of the model over the stream."""

    if len(stream.frames) < timing.frames:
        raise KerasIuspError(f"stream of {len(stream.frames)} frames is shorter than one window "
                             f"({timing.frames} frames)")
    return window_outputs(model_bytes, stream.frames, timing.hop)


def score_events(logits: np.ndarray, settings: DetectorSettings, timing: WindowTiming,
                 reference: list[tuple[str, float, float]], class_names: list[str],
                 collar: float) -> dict[str, Any]:
    """Detector events on ``logits`` and their metrics against ``reference``."""

    events = detect_events(logits, settings)
    estimated = [(class_names[e.class_index], *timing.event_seconds(e)) for e in events]
    decisions = [timing.end_seconds(e.onset_window) for e in events]
    hours = len(logits) * timing.hop_seconds / 3600.0
    result = summarise(reference, estimated, decisions, class_names, collar, hours)
    result["events"] = [{"class": c, "onset_s": round(a, 4), "offset_s": round(b, 4)}
                        for c, a, b in estimated]
    return result


def load_detector(model_path: Path) -> tuple[DetectorSettings, dict[str, Any]]:
    report_path = model_path.parent / "export_report.json"
    try:
        block = json.loads(report_path.read_text())["detector"]
    except (OSError, json.JSONDecodeError, KeyError):
        raise KerasIuspError(f"{report_path}: no calibrated detector (export again, or add one "
                             "with keras_iusp.export.pipeline.add_detector)") from None
    return DetectorSettings.from_dict(block["settings"]), block


def evaluate_stream(model_path: str | os.PathLike, cache: FeatureCache, split: str = "validate",
                    *, seed: int = 0, collar: float = 1.0) -> dict[str, Any]:
    """Event metrics of an exported int8 model and its calibrated detector (from the export's
    ``export_report.json``, the values of its ``model_settings.h``) on ``split`` as a stream."""
    path = Path(model_path)
    if path.suffix != ".tflite":
        raise KerasIuspError(f"{path}: --stream needs an exported .tflite (inside an export "
                             "folder with its calibrated detector)")
    settings, block = load_detector(path)
    if settings.num_classes != len(cache.class_names):
        raise KerasIuspError(f"{path}: detector for {settings.num_classes} classes, the data "
                             f"has {len(cache.class_names)}")
    model_bytes = path.read_bytes()
    timing = stream_timing(model_bytes, cache)
    stream = build_stream(cache, split, seed)
    reference, source = reference_events(stream, cache)
    logits = run_stream(model_bytes, stream, timing)
    result = score_events(logits, settings, timing, reference, list(cache.class_names), collar)
    result.update({
        "model": str(path), "split": split, "seed": seed, "clips": len(stream.filenames),
        "stream_seconds": stream.seconds, "windows": int(len(logits)),
        "window_seconds": timing.end_seconds(0), "hop_seconds": timing.hop_seconds,
        "collar_seconds": collar, "reference_events": source,
        "detector": settings.to_dict(),
        "operating_point": block.get("operating_point_text"),
        "onset_error": "detected onset = start of the onset window's hop-long tile "
                       "(WindowTiming.tile)",
    })
    return result


def format_stream_evaluation(result: dict[str, Any]) -> str:
    """Readable per-class table of :func:`evaluate_stream`."""
    lines = [f"{result['model']} on a {result['split']} stream: {result['clips']} clips, "
             f"{result['stream_seconds'] / 60:.1f} min, {result['windows']} windows (seed "
             f"{result['seed']}); reference: {result['reference_events']}",
             f"  detector calibrated for {result['operating_point']}; event F1 with a "
             f"{result['collar_seconds']:g} s onset collar (sed_eval)",
             f"  {'class':22s} {'refs':>5s} {'dets':>5s} {'F1':>6s} {'F1 on+off':>9s} "
             f"{'FA/hour':>8s} {'found':>6s} {'latency':>8s}"]

    def show(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    for name, r in result["per_class"].items():
        latency = r["latency_median_s"]
        latency = "n/a" if latency is None else f"{latency:.2f} s"
        lines.append(f"  {name:22s} {r['references']:5d} {r['detections']:5d} {r['f1']:6.3f} "
                     f"{r['f1_onset_offset']:9.3f} {r['false_alarms_per_hour']:8.1f} "
                     f"{show(r['detected_fraction'], '.0%'):>6s} "
                     f"{latency:>8s}")
    o = result["overall"]
    lines.append(f"  micro event F1 {o['micro_f1']:.3f}   macro {o['macro_f1']:.3f}   false "
                 f"alarms {o['false_alarms_per_hour']:.1f}/hour   median latency "
                 f"{show(o['latency_median_s'], '.2f')} s")
    return "\n".join(lines)


def calibrate_detector(model_bytes: bytes, cache: FeatureCache, *, seed: int = 0,
                       operating_point=None, collar: float = 1.0) -> dict[str, Any]:
    """The export's ``detector`` block: settings calibrated on the validation split as a stream
    (:func:`keras_iusp.detect.calibrate`) and that stream's event metrics with them."""

    timing = stream_timing(model_bytes, cache)
    stream = build_stream(cache, "validate", seed)
    reference, source = reference_events(stream, cache)
    logits = run_stream(model_bytes, stream, timing)
    names = list(cache.class_names)
    block = calibrate(logits, reference, names, timing, io_details(model_bytes)[1].scale,
                      operating_point or DEFAULT_OPERATING_POINT, collar=collar)
    scored = score_events(logits, DetectorSettings.from_dict(block["settings"]), timing,
                          reference, names, collar)
    block.update({"stream_seed": seed, "reference_events": source,
                  "validation_stream_seconds": stream.seconds,
                  "validation": {"overall": scored["overall"],
                                 "per_class": scored["per_class"]}})
    return block
