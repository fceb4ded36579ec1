"""Streaming probe: whole-clip vs windowed-with-reset vs streaming AUPRC, RAM, int8 state drift.

Trains ``cnn_lstm_xs`` (baseline, no teacher: a small probe) on the built-in synthetic data,
then on the validation split measures micro-AUPRC of the whole-clip float model, of today's
windowed runner (float and int8 windows, LSTM reset per window, clip score = max over
half-overlapping windows) and of the streaming model (float and int8, state carried, clip score =
mean frame logit). It measures the streaming model's TFLite-Micro arena (with the allocation
report), its state and block bytes, and the int8-vs-float error of the frame logits over one
long stream (validation and test clips, repeated, ``--stream-minutes`` of audio), per segment.

Usage::

    python benchmarks/streaming_probe.py --work /tmp/streaming_probe --out \\
        benchmarks/results/streaming_probe.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _capture_fd2(sink: list[str]):
    """Collect what C code prints to fd 2 (TFLM's allocation report)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile("w+") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clips", type=int, default=160)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--block-frames", type=int, nargs="+", default=[8])
    parser.add_argument("--window-seconds", type=float, default=0.5)
    parser.add_argument("--stream-minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np

    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.export.convert import random_windows, rebuild_for_window, to_tflite
    from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming, describe
    from keras_iusp.export.streaming_export import (
        convert_streaming,
        drift,
        representative_states,
        stream_arena,
        stream_scores,
        tflite_invoke,
    )
    from keras_iusp.export.verify import measure_arena, windowed_clip_scores
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.metrics import micro_auprc
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.train.training import distill

    work = Path(args.work)
    data = work / "data"
    if not (data / "annotations.csv").is_file():
        synthesize(data, clips=args.clips, seed=args.seed, clip_seconds=args.clip_seconds,
                   sample_rate=16000, progress=False)
    config = FeatureConfig(clip_seconds=args.clip_seconds)
    cache = build_feature_cache(read_sonyc(data), config, progress=False)
    run_dir = work / "cnn_lstm_xs"
    started = time.time()
    if not (run_dir / "model.keras").is_file():
        distill(cache, None, "cnn_lstm_xs", run_dir,
                DistillConfig(method="baseline", epochs=args.epochs, batch_size=16,
                              seed=args.seed), verbose=0)
    train_s = time.time() - started
    model = load_run(run_dir).model
    x_train, _ = cache.split("train")
    x_val, y_val = cache.split("validate")
    x_test, _ = cache.split("test")

    whole = model.predict(np.asarray(x_val, np.float32), batch_size=16, verbose=0)
    frames = config.num_frames(int(round(args.window_seconds * config.sample_rate)))
    hop = max(1, frames // 2)
    window_float = to_tflite(rebuild_for_window(model, frames))
    window_int8 = to_tflite(rebuild_for_window(model, frames),
                            random_windows(x_train, frames, 200, args.seed))
    window_q = np.zeros((frames, config.n_mels), np.int8)
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "data": {"clips": args.clips, "clip_seconds": args.clip_seconds,
                 "validation_clips": int(len(x_val)), "train_clips": int(len(x_train))},
        "model": "cnn_lstm_xs", "method": "baseline", "epochs": args.epochs,
        "train_seconds": round(train_s, 1),
        "float_whole_clip_auprc": micro_auprc(y_val, 1 / (1 + np.exp(-whole))),
        "window": {"window_frames": frames, "hop_frames": hop,
                   "float_windowed_auprc": micro_auprc(
                       y_val, windowed_clip_scores(window_float, x_val, hop)),
                   "int8_windowed_auprc": micro_auprc(
                       y_val, windowed_clip_scores(window_int8, x_val, hop)),
                   "int8_arena_bytes": measure_arena(window_int8, window_q),
                   "int8_flash_bytes": len(window_int8)},
        "streaming": [],
    }
    stream = np.concatenate([np.asarray(c, np.float32) for c in [*x_val, *x_test]])
    target = int(round(args.stream_minutes * 60 * 1000 / config.hop_ms))
    stream = np.tile(stream, (target // len(stream) + 1, 1))[:target]
    for block in args.block_frames:
        streaming = build_streaming(model, block, DEFAULT_CELL_CLIP)  # as the export builds it
        int8_bytes = convert_streaming(
            streaming, representative_states(streaming, x_train, seed=args.seed))
        float_bytes = convert_streaming(streaming)
        int8, flt = tflite_invoke(streaming, int8_bytes), tflite_invoke(streaming, float_bytes)
        arena = stream_arena(int8_bytes)
        from tflite_micro.python.tflite_micro import runtime

        report: list[str] = []
        with _capture_fd2(report):
            interpreter = runtime.Interpreter.from_bytes(int8_bytes, arena_size=arena)
            interpreter.print_allocations()
        entry = {
            **describe(streaming),
            "flash_int8_bytes": len(int8_bytes),
            "arena_bytes": arena,
            "state_bytes": int(sum(int(np.prod(s.shape)) for s in streaming.states)),
            "block_bytes": block * config.n_mels,
            "tflm_allocations": [line for line in report[0].strip().splitlines()
                                 if "RecordingMicroAllocator" in line],
            "float_streaming_auprc": micro_auprc(y_val, stream_scores(streaming, x_val, flt)),
            "int8_streaming_auprc": micro_auprc(y_val, stream_scores(streaming, x_val, int8)),
        }
        entry["total_model_ram_bytes"] = (entry["arena_bytes"] + entry["state_bytes"]
                                          + entry["block_bytes"])
        started = time.time()
        entry["drift"] = drift(streaming, stream, int8, flt, segments=6)
        entry["drift"]["audio_minutes"] = len(stream) * config.hop_ms / 60000
        entry["drift"]["seconds"] = round(time.time() - started, 1)
        result["streaming"].append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "tflm_allocations"},
                         indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
