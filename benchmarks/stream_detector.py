"""The reference student's calibrated event detector on continuous audio (validation and test).

Re-creates the reference assets' data (the built-in synthetic set: 400 clips of 4 s, seed 0, the
data `benchmarks/mcu_sizing.py` trained the reference student on), optionally re-calibrates the
detector of ``firmware_assets/reference`` on its validation split
(:func:`keras_iusp.export.pipeline.add_detector`, ``--calibrate``), and runs
``keras-iusp evaluate --stream`` on the validation and the test split: event F1 with a 1 s onset
collar (sed_eval), false alarms per hour, detection latency. Results go to
``benchmarks/results/stream_detector.json``.

Usage::

    python benchmarks/stream_detector.py --work /tmp/stream_detector [--calibrate]
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

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "firmware_assets" / "reference"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="scratch folder for the synthetic data")
    parser.add_argument("--calibrate", action="store_true",
                        help="re-calibrate the reference detector first (rewrites its assets)")
    parser.add_argument("--seed", type=int, default=0, help="stream order seed (default 0)")
    parser.add_argument("--collar", type=float, default=1.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "stream_detector.json"))
    args = parser.parse_args()

    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.export.pipeline import add_detector
    from keras_iusp.export.stream_eval import evaluate_stream, format_stream_evaluation
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.utils.atomic import atomic_write_text

    data = Path(args.work) / "data"
    if not (data / "synth_config.json").is_file():
        synthesize(data, clips=400, seed=0, clip_seconds=4.0, progress=False)
    cache = build_feature_cache(read_sonyc(data), FeatureConfig(clip_seconds=4.0),
                                progress=False)
    if args.calibrate:
        add_detector(REFERENCE, cache)
    model = REFERENCE / "model.tflite"
    results = {}
    for split in ("validate", "test"):
        started = time.perf_counter()
        result = evaluate_stream(model, cache, split, seed=args.seed, collar=args.collar)
        result["model"] = str(model.relative_to(ROOT))
        result["seconds_to_run"] = round(time.perf_counter() - started, 1)
        result["command"] = (f"keras-iusp evaluate {result['model']} --data {data} --split "
                             f"{split} --stream --seed {args.seed} --collar {args.collar:g}")
        print(format_stream_evaluation(result))
        results[split] = result
    out = {
        "benchmark": "stream_detector",
        "description": __doc__.splitlines()[0],
        "command": "python benchmarks/stream_detector.py " + " ".join(sys.argv[1:]),
        "data": "synthetic, 400 clips of 4 s, seed 0 (as benchmarks/mcu_sizing.py)",
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "calibration": json.loads((REFERENCE / "export_report.json").read_text())["detector"],
        "results": results,
    }
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
