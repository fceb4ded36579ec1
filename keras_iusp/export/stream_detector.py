"""The always-on event detector on the block streaming model: window scores of its int8 frame
logits, calibration on the validation split streamed end to end, and the C++ constants.

The block runner (``deploy/stream_runner/block_runner.cc``) scores windows of the streaming
model's output frames the way the window runner scores windows of audio, so the detector
(:mod:`keras_iusp.detect`, ``detector.h``) and its calibration are the window export's:

* window ``w`` covers output frames ``[w * hop, w * hop + frames)`` of the stream (counted from
  its start, warm-up excluded); ``frames`` output frames span the window export's input window
  or a multiple of it (:data:`WINDOW_MULTIPLES`, chosen on validation, below) and ``hop`` is half
  of that, so windows fall every half window as in the window runner;
* its score per class is the mean of those int8 frame logits rounded half up, in the frame
  logits' own quantisation: ``q = zp + floor((2 S + n) / (2 n))`` with ``S = sum(q_i - zp)``
  and ``n = frames`` -- integer arithmetic, the same in Python and C++;
* the detector's thresholds are in that quantisation (``keras_iusp_stream::kLogitsScale`` /
  ``kLogitsZeroPoint`` of ``stream_settings.h``).

Calibration (:func:`calibrate_stream_detector`) streams the validation split's clips end to end
as ONE stream (state carried across clip boundaries, as on the device), in the seeded order of
:func:`keras_iusp.export.stream_eval.build_stream`, and chooses the settings with
:func:`keras_iusp.detect.calibrate` against that stream's reference events, for each window
length of :data:`WINDOW_MULTIPLES`; the length whose settings reach the highest mean per-class
event F1 on that stream wins (ties: the shorter). Why a choice: the streaming CNN-LSTM's frame
logits carry context from earlier audio, and over 0.5 s their mean separates events less well
than the window model's fresh 0.5 s windows do, over 1 s as well
(``benchmarks/results/stream_event_windows_cnn_lstm_xs.json``, docs/streaming.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_iusp.detect import (
    DEFAULT_OPERATING_POINT,
    NEVER,
    DetectorSettings,
    OperatingPoint,
    WindowTiming,
    calibrate,
)
from keras_iusp.export.stream_eval import build_stream, reference_events, score_events
from keras_iusp.export.streaming import Invoke, StreamingModel, run_stream
from keras_iusp.export.verify import TensorQuant
from keras_iusp.features.cache import FeatureCache
from keras_iusp.utils.errors import ConfigError, KerasIuspError

#: Detector window lengths tried, in multiples of the window export's window.
WINDOW_MULTIPLES = (1, 2)


@dataclass(frozen=True)
class StreamWindows:
    """Windows of a stream's output frames: ``frames`` per window, one every ``hop``."""

    frames: int
    hop: int
    frame_stride: int  # input frames per output frame

    def timing(self, frame_hop_seconds: float, frame_seconds: float) -> WindowTiming:
        """Where each window lies in time, in input frames (what event times are made of)."""
        return WindowTiming(self.frames * self.frame_stride, self.hop * self.frame_stride,
                            frame_hop_seconds, frame_seconds)


def stream_windows(window_frames: int, frame_stride: int) -> StreamWindows:
    """The windows matching a window export of ``window_frames`` input frames."""
    frames = window_frames // frame_stride
    if frames < 1:
        raise ConfigError(f"a window of {window_frames} frames holds no output frame of a "
                          f"streaming model with frame stride {frame_stride}")
    return StreamWindows(frames, max(1, frames // 2), frame_stride)


def window_scores(frame_logits: np.ndarray, windows: StreamWindows,
                  zero_point: int) -> np.ndarray:
    """int8 window scores ``[W, C]`` of int8 frame logits ``[O, C]``: the rounded mean of each
    window's frame logits (the rule of the module docstring); windows that would run past the
    last output frame are not scored."""
    q = np.asarray(frame_logits)
    if q.dtype != np.int8 or q.ndim != 2:
        raise ConfigError(f"frame logits of dtype {q.dtype} and shape {q.shape}: expected int8 "
                          "[frames, classes]")
    n = windows.frames
    count = (len(q) - n) // windows.hop + 1 if len(q) >= n else 0
    steps = np.asarray(q, np.int64) - zero_point
    total = np.concatenate([np.zeros((1, q.shape[1]), np.int64), np.cumsum(steps, axis=0)])
    starts = np.arange(count) * windows.hop
    sums = total[starts + n] - total[starts]
    return np.clip(zero_point + (2 * sums + n) // (2 * n), -128, 127).astype(np.int8)


def stream_frame_logits(streaming: StreamingModel, invoke: Invoke, frames: np.ndarray,
                        logits_quant: TensorQuant) -> np.ndarray:
    """int8 frame logits ``[O, C]`` of an int8 streaming model over one continuous stream of
    log-mel ``frames`` (``invoke`` gives real values; they lie on the int8 grid)."""
    return logits_quant.quantize(run_stream(streaming, frames, invoke))


def calibrate_stream_detector(streaming: StreamingModel, invoke: Invoke,
                              logits_quant: TensorQuant, cache: FeatureCache,
                              window_frames: int, *, seed: int = 0,
                              operating_point: OperatingPoint | None = None,
                              collar: float = 1.0) -> dict[str, Any]:
    """The streaming export's ``detector`` block: window layout (``window_frames`` input frames
    times the chosen multiple), settings calibrated on the validation split as one stream, and
    that stream's event metrics with them: the keys of the window export's ``detector`` block,
    plus ``window_output_frames``, ``window_hop_output_frames``, ``window_seconds``,
    ``hop_seconds`` and ``window_choices`` (each length's mean per-class validation F1)."""
    stream = build_stream(cache, "validate", seed)
    reference, source = reference_events(stream, cache)
    frame_logits = stream_frame_logits(streaming, invoke, stream.frames, logits_quant)
    names = list(cache.class_names)
    hop_s, win_s = cache.config.hop_ms / 1000.0, cache.config.window_ms / 1000.0
    best, choices = None, []
    for multiple in WINDOW_MULTIPLES:
        windows = stream_windows(window_frames * multiple, streaming.frame_stride)
        scores = window_scores(frame_logits, windows, logits_quant.zero_point)
        if len(scores) == 0:
            continue
        timing = windows.timing(hop_s, win_s)
        block = calibrate(scores, reference, names, timing, logits_quant.scale,
                          operating_point or DEFAULT_OPERATING_POINT, collar=collar)
        mean_f1 = float(np.mean([r["f1"] for r in block["per_class"].values()]))
        choices.append({"window_output_frames": windows.frames, "mean_class_f1": mean_f1})
        if best is None or mean_f1 > best[0]:
            best = (mean_f1, windows, timing, scores, block)
    if best is None:
        raise KerasIuspError(f"{cache.path}: the validation stream is shorter than one detector "
                             f"window ({window_frames // streaming.frame_stride} output frames)")
    _, windows, timing, scores, block = best
    scored = score_events(scores, DetectorSettings.from_dict(block["settings"]), timing,
                          reference, names, collar)
    block.update({"window_output_frames": windows.frames, "window_hop_output_frames": windows.hop,
                  "window_seconds": timing.end_seconds(0), "hop_seconds": timing.hop_seconds,
                  "window_choices": choices, "stream_seed": seed, "reference_events": source,
                  "validation_stream_seconds": stream.seconds,
                  "validation": {"overall": scored["overall"], "per_class": scored["per_class"]}})
    return block


def stream_detector_lines(block: dict[str, Any]) -> list[str]:
    """C++ constants of the block runner's detector (inside ``namespace keras_iusp_stream``)."""
    s = DetectorSettings.from_dict(block["settings"])

    def ints(values) -> str:
        return ", ".join(str(int(v)) for v in values)

    return [
        "// Event detector of the block runner (detector.h rule): window w = output frames",
        "// [w * kWindowHopOutputs, w * kWindowHopOutputs + kWindowOutputs) of the stream, score",
        "// = their mean int8 frame logit rounded half up (kLogitsScale / kLogitsZeroPoint);",
        f"// calibrated on the validation split as one stream: {block['operating_point_text']},",
        f"// event onsets matched within {block['collar_seconds']:g} s. An on threshold of {NEVER}",
        "// disables a class; hold-offs are in windows.",
        f"constexpr int kWindowOutputs = {block['window_output_frames']};",
        f"constexpr int kWindowHopOutputs = {block['window_hop_output_frames']};",
        f"constexpr int kDetectorSmoothingWindows = {s.smoothing_windows};",
        f"constexpr int kDetectorOnThreshold[] = {{{ints(s.on_threshold)}}};",
        f"constexpr int kDetectorOffThreshold[] = {{{ints(s.off_threshold)}}};",
        f"constexpr int kDetectorHoldOffWindows[] = {{{ints(s.hold_off_windows)}}};",
    ]


def evaluate_stream_detector(streaming: StreamingModel, invoke: Invoke,
                             logits_quant: TensorQuant, detector: dict[str, Any],
                             cache: FeatureCache, split: str, *, seed: int = 0) -> dict[str, Any]:
    """Event metrics of an int8 streaming model (``invoke``, e.g.
    :func:`keras_iusp.export.streaming_export.tflite_invoke` of ``stream_model.tflite``) and its
    calibrated detector (the ``detector`` block of ``stream_report.json``) on ``split`` streamed
    end to end as one stream (the order of :func:`keras_iusp.export.stream_eval.build_stream`
    with ``seed``): the block runner's decisions on that audio, up to two differences -- the
    frames are the Python front end's, and the decision times (``WindowTiming.end_seconds``)
    leave out the model's warm-up delay line (``warmup_frames * frame_stride`` input frames) and
    the wait for a block to fill."""
    windows = StreamWindows(int(detector["window_output_frames"]),
                            int(detector["window_hop_output_frames"]), streaming.frame_stride)
    stream = build_stream(cache, split, seed)
    reference, source = reference_events(stream, cache)
    timing = windows.timing(cache.config.hop_ms / 1000.0, cache.config.window_ms / 1000.0)
    frame_logits = stream_frame_logits(streaming, invoke, stream.frames, logits_quant)
    scores = window_scores(frame_logits, windows, logits_quant.zero_point)
    result = score_events(scores, DetectorSettings.from_dict(detector["settings"]), timing,
                          reference, list(cache.class_names), float(detector["collar_seconds"]))
    result.update({"split": split, "seed": seed, "clips": len(stream.filenames),
                   "stream_seconds": stream.seconds, "windows": int(len(scores)),
                   "reference_events": source, "detector": detector["settings"],
                   "operating_point": detector["operating_point_text"]})
    return result
