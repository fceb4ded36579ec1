"""Epoch cost of distillation vs the baseline, with and without the teacher-output cache.

Trains ``cnn_lstm_xs`` from ``teacher_cnn`` for one epoch per (method, cache) on 10-second
synthetic clips (998 frames, the paper's scale) through ``Distiller.fit`` on
``make_dataset`` batches, exactly as ``keras-iusp distill`` does, after one warm-up epoch that
pays for tracing. Reports wall and process-CPU seconds per epoch and their ratio to the baseline
epoch. On a shared machine the CPU-time ratio is the stable one.

With ``--onednn-compare`` it also times the baseline and KD epochs in two subprocesses with
``TF_ENABLE_ONEDNN_OPTS=0`` and ``=1`` (TensorFlow's default, which the CLI keeps), the before /
after of switching the CLI back to TensorFlow's fast default.

    .venv/bin/python benchmarks/distill_epoch.py --clips 96 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _epoch_times(clips: int, methods: list[str], repeats: int) -> dict:
    import numpy as np
    import tf_keras as keras

    from keras_iusp.data import read_dataset, synthesize
    from keras_iusp.distill.distiller import Distiller
    from keras_iusp.distill.teacher_targets import teacher_outputs
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.models import build_model
    from keras_iusp.train.datasets import training_datasets
    from keras_iusp.train.recipe import DistillConfig, distillation_losses

    work = Path(tempfile.mkdtemp(prefix="kiusp_epoch_"))
    synthesize(work / "data", clips=clips, seed=0, clip_seconds=10.0, sample_rate=16000,
               split_fractions=(1.0, 0.0, 0.0), progress=False)
    cache = build_feature_cache(read_dataset(work / "data"), FeatureConfig(clip_seconds=10.0),
                                progress=False)
    shape = cache.features.shape[1:]
    keras.utils.set_random_seed(0)
    teacher = build_model("teacher_cnn", shape, stats=cache.stats)
    results = {}
    for method in methods:
        for use_cache in ([False] if method == "baseline" else [False, True]):
            keras.utils.set_random_seed(0)
            student = build_model("cnn_lstm_xs", shape, stats=cache.stats)
            items, weights, w_s = distillation_losses(DistillConfig(method=method), "cnn_lstm")
            d = Distiller(teacher if items else None, student, items, weights, w_s)
            d.compile(optimizer=keras.optimizers.Adam(1e-3))
            cached = teacher_outputs(teacher, d.teacher_output_layers, cache, verbose=False) \
                if use_cache else None
            train, _ = training_datasets(cache, 16, 0, cached)
            d.fit(train, epochs=1, verbose=0)  # warm-up: tracing
            wall, cpu = [], []
            for _ in range(repeats):
                w0, c0 = time.perf_counter(), time.process_time()
                d.fit(train, epochs=1, verbose=0)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
            mode = "cached" if use_cache else "live"
            key = method if method == "baseline" else f"{method}_{mode}"
            results[key] = {"wall_s": float(np.median(wall)), "cpu_s": float(np.median(cpu)),
                            "wall_runs_s": wall, "cpu_runs_s": cpu}
            print(key, results[key]["wall_s"], results[key]["cpu_s"], flush=True)
    base = results["baseline"]
    for value in results.values():
        value["wall_ratio_to_baseline"] = value["wall_s"] / base["wall_s"]
        value["cpu_ratio_to_baseline"] = value["cpu_s"] / base["cpu_s"]
    return results


def _machine() -> dict:
    import tensorflow as tf

    from keras_iusp.utils.provenance import machine_description

    return {"cpu": machine_description(), "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(), "tensorflow": tf.__version__,
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "date": time.strftime("%Y-%m-%d")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96, help="10-second clips per epoch")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per case")
    parser.add_argument("--methods", nargs="+", default=["baseline", "kd", "sp", "iusp"])
    parser.add_argument("--onednn-compare", action="store_true",
                        help="also time baseline and KD epochs with oneDNN off and on")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    if args.worker:  # one configuration in a fresh process (the oneDNN switch is read at import)
        print(json.dumps(_epoch_times(args.clips, args.methods, args.repeats)))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = {"benchmark": "distill_epoch", "description": __doc__.split("\n\n")[0],
              "config": {"clips": args.clips, "clip_seconds": 10.0, "frames": 998,
                         "student": "cnn_lstm_xs", "teacher": "teacher_cnn", "batch_size": 16,
                         "repeats": args.repeats},
              "machine": _machine(), "results": _epoch_times(args.clips, args.methods,
                                                             args.repeats)}
    if args.onednn_compare:
        report["onednn"] = {}
        for flag in ("0", "1"):
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag}
            done = subprocess.run(
                [sys.executable, __file__, "--worker", "--clips", str(args.clips),
                 "--repeats", str(args.repeats), "--methods", "baseline", "kd"],
                env=env, capture_output=True, text=True, check=True)
            report["onednn"][f"TF_ENABLE_ONEDNN_OPTS={flag}"] = json.loads(
                done.stdout.strip().splitlines()[-1])
        off = report["onednn"]["TF_ENABLE_ONEDNN_OPTS=0"]
        on = report["onednn"]["TF_ENABLE_ONEDNN_OPTS=1"]
        report["onednn"]["speedup_on_vs_off"] = {
            k: {"wall": off[k]["wall_s"] / on[k]["wall_s"], "cpu": off[k]["cpu_s"] / on[k]["cpu_s"]}
            for k in ("baseline", "kd_live")}
    report["elapsed_s"] = time.perf_counter() - start
    path = out / "distill_epoch.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
