"""Where the int8 streaming model loses AUPRC against its float twin: calibration and saturation.

For one trained run it builds the streaming model (``--block-frames``, the export's cell-state
bound), converts it to int8 with several calibration sets and scores every conversion on the
VALIDATION split (clip score = mean frame logit, each clip streamed from zero state, as
``keras-iusp export --streaming`` scores it). A calibration set ``C:K`` is ``C`` samples drawn by
:func:`keras_iusp.export.streaming_export.representative_states` from ``K`` training clips
streamed end to end (picks spread over all their blocks; the export's default is
``CALIBRATION_SAMPLES:CALIBRATION_CLIPS``). Per conversion it also
reports how much of the float model's values fall outside each int8 tensor's range
(saturation): the frame logits over every validation clip streamed from zero state (as scored),
the input block and every carried state over 20 validation clips streamed end to end (as the
device carries them).

Usage::

    python benchmarks/streaming_int8_gap.py --run RUN --data DATA \\
        --calibration 200:2 200:16 500:16 2000:64 --out benchmarks/results/streaming_int8_gap.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _saturation(samples: list[dict], logits: list, io) -> dict[str, float]:
    """Share of float values outside each int8 tensor's representable range."""
    import numpy as np

    def outside(values: np.ndarray, quant) -> float:
        low = (-128 - quant.zero_point) * quant.scale
        high = (127 - quant.zero_point) * quant.scale
        return float(np.mean((values < low) | (values > high)))

    shares = {"frame_logits": outside(np.concatenate(logits), io.output_quant["frame_logits"])}
    for name, quant in io.input_quant.items():
        if name in samples[0] and name != "log_mel_block":
            shares[name] = outside(np.stack([s[name] for s in samples]), quant)
    shares["log_mel_block"] = outside(np.stack([s["log_mel_block"] for s in samples]),
                                      io.input_quant["log_mel_block"])
    return shares


def _clip_scores(frame_logits: list):
    import numpy as np

    return 1 / (1 + np.exp(-np.asarray([f.mean(axis=0) for f in frame_logits])))


def measure(run: Path, data: Path, block_frames: int, calibrations: list[tuple[int, int]],
            seed: int) -> dict:
    import numpy as np

    from keras_iusp.data import read_sonyc
    from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming, run_stream
    from keras_iusp.export.streaming_export import (
        convert_streaming,
        representative_states,
        stream_io,
        stream_scores,
        tflite_invoke,
    )
    from keras_iusp.features import build_feature_cache
    from keras_iusp.metrics import micro_auprc
    from keras_iusp.train.saved_runs import load_run

    trained = load_run(run)
    cache = build_feature_cache(read_sonyc(data), trained.feature_config, progress=False)
    x_train, _ = cache.split("train")
    x_val, y_val = cache.split("validate")
    x_train, x_val = np.asarray(x_train, np.float32), np.asarray(x_val, np.float32)
    streaming = build_streaming(trained.model, block_frames, DEFAULT_CELL_CLIP)
    float_bytes = convert_streaming(streaming)
    flt = tflite_invoke(streaming, float_bytes)
    whole = trained.model.predict(x_val, batch_size=16, verbose=0)
    val_logits = [run_stream(streaming, clip, flt) for clip in x_val]
    float_scores = _clip_scores(val_logits)
    # float states over 20 validation clips streamed end to end, for the saturation shares
    val_states = representative_states(streaming, x_val, 4000, seed, stream_clips=20)
    result = {
        "float_whole_clip_auprc": float(micro_auprc(y_val, 1 / (1 + np.exp(-whole)))),
        "float_streaming_auprc": float(micro_auprc(y_val, float_scores)),
        "conversions": [],
    }
    for count, clips in calibrations:
        started = time.perf_counter()
        samples = representative_states(streaming, x_train, count, seed, stream_clips=clips)
        int8_bytes = convert_streaming(streaming, samples)
        io = stream_io(int8_bytes)
        scores = stream_scores(streaming, x_val, tflite_invoke(streaming, int8_bytes))
        logits_q = io.output_quant["frame_logits"]
        block_q = io.input_quant["log_mel_block"]
        # the float model on input frames rounded to the int8 input grid, and its frame logits
        # rounded to the int8 output grid: each rounding's own cost
        rounded_in = [run_stream(streaming, block_q.dequantize(block_q.quantize(clip)), flt)
                      for clip in x_val]
        rounded_out = [logits_q.dequantize(logits_q.quantize(f)) for f in val_logits]
        row = {
            "samples": len(samples), "clips_streamed": min(clips, len(x_train)),
            "int8_streaming_auprc": float(micro_auprc(y_val, scores)),
            "float_input_rounded_auprc": float(micro_auprc(y_val, _clip_scores(rounded_in))),
            "float_output_rounded_auprc": float(micro_auprc(y_val, _clip_scores(rounded_out))),
            "log_mel_block_scale": block_q.scale,
            "frame_logits_scale": logits_q.scale, "frame_logits_zero_point": logits_q.zero_point,
            "frame_logits_range": [(-128 - logits_q.zero_point) * logits_q.scale,
                                   (127 - logits_q.zero_point) * logits_q.scale],
            "float_frame_logits_range_validation": [
                float(min(f.min() for f in val_logits)), float(max(f.max() for f in val_logits))],
            "saturated_share_validation": _saturation(val_states, val_logits, io),
            "seconds": round(time.perf_counter() - started, 1),
        }
        result["conversions"].append(row)
        print(json.dumps(row), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--block-frames", type=int, default=2)
    parser.add_argument("--calibration", nargs="+", default=["200:2", "2000:64"],
                        help="SAMPLES:CLIPS calibration sets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from keras_iusp.utils.atomic import atomic_write_text

    calibrations = [tuple(int(v) for v in c.split(":")) for c in args.calibration]
    started = time.perf_counter()
    result = measure(args.run, args.data, args.block_frames, calibrations, args.seed)
    command = "python benchmarks/streaming_int8_gap.py " + " ".join(
        argv if argv is not None else __import__("sys").argv[1:])
    doc = {"benchmark": "streaming_int8_gap", "command": command, "run": str(args.run),
           "block_frames": args.block_frames, "split": "validate",
           "machine": platform.platform(), "seconds": round(time.perf_counter() - started, 1),
           **result}
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
