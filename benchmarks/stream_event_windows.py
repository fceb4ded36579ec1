"""Why the streaming CNN-LSTM's event detector finds fewer events than the windowed one: window
length and periodic state resets of the block runner's detector, on VALIDATION only.

For one trained run and its ``export --streaming`` folder it streams the validation split end
to end (``keras_iusp.export.stream_eval.build_stream``, seed 0) through the int8 streaming model
(LiteRT), optionally restarting the stream every R seconds (``run_stream(...,
reset_every_blocks)``, the periodic reset option), and for every detector window length
calibrates the detector (``keras_iusp.detect.calibrate``) for two operating points and records
the validation event metrics of the chosen settings -- in-sample numbers, for diagnosis, not
for reporting a detector. The window model (``model.tflite``) gets the same calibrations on its
half-overlapping windows as the reference row.

Usage::

    python benchmarks/stream_event_windows.py --run RUN --export EXPORT \\
        --out benchmarks/results/stream_event_windows_cnn_lstm_xs.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="trained run folder")
    parser.add_argument("--export", type=Path, required=True,
                        help="its export folder made with --streaming")
    parser.add_argument("--windows", type=int, nargs="+", default=[12, 24, 48],
                        help="detector window lengths in output frames (hop: half of it)")
    parser.add_argument("--reset-seconds", nargs="+", default=["none", "2", "5"],
                        help="restart the stream every that many seconds ('none': never)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import numpy as np

    from keras_iusp.detect import OperatingPoint, calibrate
    from keras_iusp.export.stream_detector import StreamWindows, window_scores
    from keras_iusp.export.stream_eval import build_stream, reference_events, stream_timing
    from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming, run_stream
    from keras_iusp.export.streaming_export import stream_io, tflite_invoke
    from keras_iusp.export.verify import io_details, window_outputs
    from keras_iusp.features.cache import load_feature_cache
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.utils.atomic import atomic_write_text

    started = time.time()
    run = load_run(args.run)
    cache = load_feature_cache(run.info["data_cache"])
    report = json.loads((args.export / "stream_report.json").read_text())
    block = report["block_frames"]
    streaming = build_streaming(run.model, block, DEFAULT_CELL_CLIP)
    model_bytes = (args.export / "stream_model.tflite").read_bytes()
    quant = stream_io(model_bytes).output_quant["frame_logits"]
    invoke = tflite_invoke(streaming, model_bytes)
    stream = build_stream(cache, "validate", 0)
    reference, source = reference_events(stream, cache)
    names = list(cache.class_names)
    hop_s, win_s = cache.config.hop_ms / 1000.0, cache.config.window_ms / 1000.0
    points = {"precision >= 0.5": OperatingPoint(target_precision=0.5),
              "<= 30 false alarms / hour": OperatingPoint(false_alarms_per_hour=30.0)}

    def calibrated(scores, timing, scale) -> dict:
        out = {}
        for label, point in points.items():
            block_ = calibrate(scores, reference, names, timing, scale, point)
            per = block_["per_class"]
            out[label] = {
                "mean_class_f1": round(float(np.mean([r["f1"] for r in per.values()])), 4),
                "enabled_classes": sum(r["enabled"] for r in per.values()),
                "detections": sum(r["detections"] for r in per.values()),
                "false_alarms_per_hour": round(sum(r["false_alarms_per_hour"]
                                                   for r in per.values()), 1),
                "settings": block_["settings"]}
        return out

    window_model = (args.export / "model.tflite").read_bytes()
    wtiming = stream_timing(window_model, cache)
    rows = [{"model": "windowed (model.tflite)", "window_frames": wtiming.frames,
             **calibrated(window_outputs(window_model, stream.frames, wtiming.hop), wtiming,
                          io_details(window_model)[1].scale)}]
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for reset in args.reset_seconds:
        every = None if reset == "none" else max(1, round(float(reset) / hop_s / block))
        q = quant.quantize(run_stream(streaming, stream.frames, invoke, reset_every_blocks=every))
        for frames in args.windows:
            windows = StreamWindows(frames, max(1, frames // 2), streaming.frame_stride)
            rows.append({"model": "streaming (stream_model.tflite)", "reset_seconds": reset,
                         "window_output_frames": frames,
                         "window_frames": frames * streaming.frame_stride,
                         **calibrated(window_scores(q, windows, quant.zero_point),
                                      windows.timing(hop_s, win_s), quant.scale)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"command": "python benchmarks/stream_event_windows.py "
                         + " ".join(argv or sys.argv[1:]),
              "run": str(args.run), "export": str(args.export), "split": "validate",
              "stream_seconds": stream.seconds, "reference_events": source,
              "block_frames": block, "machine": platform.platform(),
              "seconds": round(time.time() - started, 1),
              "note": "in-sample: settings calibrated and scored on the same validation stream",
              "rows": rows}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
