"""Grid throughput of ``keras-iusp experiment --jobs 1`` against ``--jobs 2``.

One small CNN-LSTM training process does not keep every core of a small CPU machine busy, so two
runs side by side can finish more work per hour. This times the same grid (``cnn_lstm_xs``
baseline, two seeds, a few epochs, on an existing experiment's data) with one and with two jobs,
each into a fresh folder, and reports the ratio of wall times (process start-up included).
Results: ``benchmarks/results/jobs_throughput.json``.

Usage (the paper-scale benchmark's data)::

    keras-iusp experiment --config configs/experiment_paper.toml --out runs/paper --until teacher
    python benchmarks/jobs_throughput.py --data runs/paper/data --clip-seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_iusp.utils.atomic import atomic_write_text  # noqa: E402

CONFIG = """name = "jobs_throughput"
[data]
path = "{data}"
clip_seconds = {clip_seconds}
[grid]
students = ["cnn_lstm_xs"]
methods = ["baseline"]
seeds = {seeds}
epochs = {epochs}
batch_size = 16
eval_split = "validate"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a SONYC-UST-format data folder")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--runs", type=int, default=2, help="grid runs (seeds) per timing")
    args = parser.parse_args()
    cli = Path(sys.executable).with_name("keras-iusp")
    result = {"command": "python benchmarks/jobs_throughput.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} cores",
              "grid": f"cnn_lstm_xs baseline, {args.runs} seeds, {args.epochs} epochs",
              "wall_seconds": {}}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        config = scratch / "grid.toml"
        # the teacher is needed by every experiment: a 1-epoch one, trained once, shared
        teacher_out = scratch / "teacher_run"
        config.write_text(CONFIG.format(data=Path(args.data).resolve(),
                                        clip_seconds=args.clip_seconds,
                                        seeds=list(range(args.runs)), epochs=args.epochs)
                          + "[teacher]\nepochs = 1\n")
        subprocess.run([str(cli), "experiment", "--config", str(config), "--out",
                        str(teacher_out), "--until", "teacher"], check=True,
                       stdout=subprocess.DEVNULL)
        config.write_text(config.read_text().replace(
            "[teacher]\nepochs = 1\n", f'[teacher]\nrun = "{teacher_out / "teacher"}"\n'))
        for jobs in (1, 2):
            out = scratch / f"jobs{jobs}"
            start = time.perf_counter()
            subprocess.run([str(cli), "experiment", "--config", str(config), "--out", str(out),
                            "--jobs", str(jobs)], check=True, stdout=subprocess.DEVNULL)
            result["wall_seconds"][str(jobs)] = time.perf_counter() - start
            shutil.rmtree(out)
            print(f"--jobs {jobs}: {result['wall_seconds'][str(jobs)]:.1f} s", flush=True)
    result["throughput_ratio_2_over_1"] = result["wall_seconds"]["1"] / result["wall_seconds"]["2"]
    path = ROOT / "benchmarks" / "results" / "jobs_throughput.json"
    atomic_write_text(path, json.dumps(result, indent=1))
    print(f"throughput with 2 jobs: {result['throughput_ratio_2_over_1']:.2f}x; written {path}")


if __name__ == "__main__":
    main()
