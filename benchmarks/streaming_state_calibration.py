"""int8 state calibration of the streaming export on the tests' tiny student, per training seed.

Builds the tests' tiny set (24 synthetic 1 s clips, seed 11), trains its teacher (1 epoch) and one
``cnn_lstm_xs`` per seed (IUSP, 1 epoch), converts the streaming model (N = 4) with
``keras_iusp.export.streaming_export.representative_states`` and prints one JSON line per seed:
the int8 (LiteRT) vs float mean absolute error of the frame logits in output int8 steps, on
validation clip 0 and on the validation clips as one stream, and per state ``[float min, float
max over that stream, int8 range low, high, fraction of float values outside it]``
(``benchmarks/results/streaming_state_calibration.json`` holds the lines of two runs).

Usage: ``python benchmarks/streaming_state_calibration.py --work DIR SEED [SEED ...]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def float_states(streaming, frames: np.ndarray) -> list[np.ndarray]:
    """Every value each state takes while the float model streams ``frames`` continuously."""
    from keras_iusp.export.streaming import keras_invoke

    invoke, states = keras_invoke(streaming), streaming.zero_states()
    seen: list[list[np.ndarray]] = [[] for _ in states]
    n_block = streaming.block_frames
    for n in range(len(frames) // n_block):
        for i, s in enumerate(states):
            seen[i].append(s.ravel())
        _, states = invoke(frames[n * n_block:(n + 1) * n_block], states)
        states = [np.zeros_like(s) if spec.reset_after_blocks == n + 1 else s
                  for s, spec in zip(states, streaming.states)]
    return [np.concatenate(s) for s in seen]


def measure(seed: int, cache, teacher, work: Path, block: int = 4) -> dict:
    from keras_iusp.export.streaming import build_streaming, keras_invoke, run_stream
    from keras_iusp.export.streaming_export import (
        convert_streaming,
        representative_states,
        stream_io,
        tflite_invoke,
    )
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    x_train, _ = cache.split("train")
    x_val, _ = cache.split("validate")
    run = distill(cache, teacher, "cnn_lstm_xs", work / f"s{seed}",
                  DistillConfig(method="iusp", epochs=1, batch_size=8, seed=seed), verbose=0,
                  overwrite=True)
    streaming = build_streaming(run.model, block)
    clip = np.asarray(x_val[0], np.float32)
    stream = np.concatenate([np.asarray(c, np.float32) for c in x_val])
    model = convert_streaming(streaming, representative_states(streaming, x_train, 200, 0))
    io = stream_io(model)
    step = io.output_quant["frame_logits"].scale
    errors = {}
    for name, frames in (("clip0", clip), ("valstream", stream)):
        ref = run_stream(streaming, frames, keras_invoke(streaming))
        out = run_stream(streaming, frames, tflite_invoke(streaming, model))
        errors[f"mean_err_steps_{name}"] = float(np.abs(out - ref).mean() / step)
    ranges = {}
    for spec, values in zip(streaming.states, float_states(streaming, stream)):
        q = io.input_quant[spec.name]
        lo, hi = q.scale * (-128 - q.zero_point), q.scale * (127 - q.zero_point)
        outside = float(((values < lo) | (values > hi)).mean())
        ranges[spec.name] = [round(float(values.min()), 3), round(float(values.max()), 3),
                             round(lo, 3), round(hi, 3), round(outside, 4)]
    return {"seed": seed, **errors, "step": step, "states": ranges}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/streaming_state_calibration"))
    parser.add_argument("seeds", type=int, nargs="+")
    args = parser.parse_args()
    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.train.training import train_teacher

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "data"
    if not data.exists():
        synthesize(data, clips=24, seed=11, clip_seconds=1.0, sample_rate=16000, progress=False)
    cache = build_feature_cache(read_sonyc(data), FeatureConfig(clip_seconds=1.0),
                                progress=False)
    teacher = train_teacher(cache, args.work / "teacher", epochs=1, batch_size=8, verbose=0,
                            overwrite=True)
    for seed in args.seeds:
        print(json.dumps(measure(seed, cache, teacher, args.work)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
