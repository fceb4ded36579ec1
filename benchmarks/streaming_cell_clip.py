"""The LSTM cell-state bound of the int8 streaming export, measured on a trained run.

For each bound (``none`` = the exact, unbounded rebuild) builds the streaming model of the run
at ``--block-frames``, converts it to int8 with the export's calibration
(``keras_iusp.export.streaming_export.streaming_assets``) and records the validation
micro-AUPRC of the float and the int8 streaming model (clip score = mean frame logit), the
int8 scale of the ``lstm_c`` state, and the largest ``|c|`` each LSTM unit reaches while the
float, unbounded model streams the first ``--clips`` training clips end to end. The test split
is not read. Usage::

    python benchmarks/streaming_cell_clip.py --run runs/real_audio/runs/cnn_lstm_xs/iusp/seed0 \\
        --bounds none 4 8 16 --out benchmarks/results/streaming_cell_clip.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def unit_peaks(run_model, block: int, clips: np.ndarray) -> list[float]:
    """max |c| per LSTM unit over ``clips`` streamed end to end by the unbounded float model."""
    from keras_iusp.export.streaming import build_streaming, keras_invoke

    streaming = build_streaming(run_model, block)
    index = [s.name for s in streaming.states].index("lstm_c")
    invoke, states = keras_invoke(streaming), streaming.zero_states()
    peak = np.zeros(streaming.states[index].shape).ravel()
    for clip in clips:
        clip = np.asarray(clip, np.float32)
        for n in range(len(clip) // block):
            _, states = invoke(clip[n * block:(n + 1) * block], states)
            peak = np.maximum(peak, np.abs(states[index]).ravel())
    return [round(float(v), 3) for v in peak]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a trained cnn_lstm run folder")
    parser.add_argument("--bounds", nargs="+", default=["none", "8"],
                        help="cell-state bounds to measure ('none': unbounded)")
    parser.add_argument("--block-frames", type=int, default=4)
    parser.add_argument("--clips", type=int, default=4,
                        help="training clips streamed to measure each unit's peak |c|")
    parser.add_argument("--out", type=Path, help="write the JSON here")
    args = parser.parse_args(argv)

    from keras_iusp.export.streaming_export import streaming_assets
    from keras_iusp.features.cache import load_feature_cache
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.utils.atomic import atomic_write_text

    run = load_run(args.run)
    cache = load_feature_cache(run.info["data_cache"])
    x_val, y_val = cache.split("validate")
    x_train, _ = cache.split("train")
    # the detector the export calibrates beside (not measured here) uses 0.5 s windows
    window_frames = cache.config.num_frames(cache.config.sample_rate // 2)
    order = np.random.default_rng(0).permutation(len(x_train))[:args.clips]
    result = {
        "command": "python benchmarks/streaming_cell_clip.py " + " ".join(argv or sys.argv[1:]),
        "run": str(args.run), "split": f"validate ({len(x_val)} clips)",
        "block_frames": args.block_frames,
        "unbounded_peak_abs_c_per_unit": unit_peaks(run.model, args.block_frames,
                                                    x_train[np.sort(order)]),
        "bounds": {},
    }
    for bound in args.bounds:
        clip = None if bound == "none" else float(bound)
        start = time.time()
        _, _, report = streaming_assets(run.model, args.block_frames, cache, window_frames,
                                        cell_clip=clip)
        c = next(q for q in report["state_quantization"] if q["name"] == "lstm_c")
        result["bounds"][bound] = {
            "float_streaming_auprc": round(report["float_streaming_auprc"], 4),
            "int8_streaming_auprc": round(report["int8_streaming_auprc"], 4),
            "lstm_c_int8_scale": c["input_scale"], "seconds": round(time.time() - start, 1)}
        print(bound, result["bounds"][bound], file=sys.stderr, flush=True)
    text = json.dumps(result, indent=1)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
