"""Sizing of the windowed (0.5 s) and the block streaming runner per student: total RAM, flash,
instructions per second of audio on the emulated Cortex-M4F, AUPRC.

For each student (default ``cnn_lstm_xs`` and ``dscnn_xs``) it trains a baseline run on the
built-in synthetic data (or takes ``--run STUDENT=RUN_FOLDER`` with ``--data``), exports it with
``--window-seconds 0.5 --streaming --block-frames N`` for every ``N``, and measures

- windowed 0.5 s: ``benchmarks/target_budget.py``'s program on the emulated core (instructions
  per second of audio at the runner's schedule, ``arena_used_bytes`` after AllocateTensors with
  CMSIS-NN), RAM = front-end state + frame ring + that arena;
- streaming N: ``deploy/stream_runner/block_main.cc`` on the emulated core under ``-icount
  shift=0`` over the validation clips as one stream (instructions per second of audio, front end
  and model), RAM = front-end state + block + state tensors + ``arena_used_bytes`` (CMSIS-NN),
  and the same on the host (reference kernels);
- flash: the int8 model's bytes; AUPRC: the export's validation micro-AUPRC (whole-clip float,
  windowed int8 = max over half-overlapping windows, streaming float/int8 = mean frame logit).

Usage::

    python benchmarks/streaming_sizing.py --work /tmp/streaming_sizing \\
        --out benchmarks/results/streaming_sizing.json
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
sys.path.insert(0, str(ROOT / "tests"))


def _pcm_stream(data: Path, cache, split: str, max_seconds: float):
    import numpy as np
    import soundfile

    from keras_iusp.data import read_sonyc

    by_name = {Path(p).name: p for p in read_sonyc(data).paths}
    names = [Path(f).name for f, s in zip(cache.filenames, cache.splits) if s == split]
    clips, total = [], 0.0
    for name in names:
        audio, rate = soundfile.read(by_name[name], dtype="int16")
        clips.append(audio if audio.ndim == 1 else audio[:, 0])
        total += len(clips[-1]) / rate
        if total >= max_seconds:
            break
    stream = np.concatenate(clips)
    return stream[:len(stream) // 160 * 160]


def measure(student: str, run: Path, data: Path, cache, blocks: list[int], work: Path,
            stream_seconds: float) -> dict:
    import stream_block_target as sbt

    import keras_iusp.export.cortex_m4 as m4
    from keras_iusp.cli.main import main

    builder = m4.M4Builder(work / "m4")
    rows = []
    pcm = _pcm_stream(data, cache, "validate", stream_seconds)
    for n in blocks:
        export = work / f"{student}_n{n}"
        if not (export / "stream_report.json").is_file():
            code = main(["export", str(run), "--data", str(data), "--out", str(export),
                         "--window-seconds", "0.5", "--golden", "1", "--streaming",
                         "--block-frames", str(n)])
            if code != 0:
                raise SystemExit(f"export of {run} failed ({code})")
        report = json.loads((export / "export_report.json").read_text())
        stream = report["streaming"]
        hop_s = report["feature_config"]["hop_ms"] / 1000.0
        frontend_state = report["frontend"]["state_bytes"]
        if n == blocks[0]:
            budget = m4.measure_budget(builder, export)
            ring = report["runner"]["frame_ring_bytes"]
            rows.append({
                "mode": "windowed 0.5 s", "window_frames": report["window_frames"],
                "flash_int8_bytes": report["flash_int8_bytes"],
                "host_arena_bytes": report["arena_bytes"],
                "m4_arena_used_bytes": budget.arena_used_bytes,
                "frontend_state_bytes": frontend_state, "frame_ring_bytes": ring,
                "total_ram_bytes_m4": frontend_state + ring + budget.arena_used_bytes,
                "m4_instructions_per_second": budget.stream_instructions_per_second,
                "float_whole_clip_auprc": report["float_whole_clip_auprc"],
                "int8_auprc": report["int8_windowed_auprc"]})
        host = sbt.run_host(sbt.build_host(export, work / f"block_host_{student}_{n}"),
                            pcm[None], work)
        counted = sbt.run_m4(sbt.build_m4(builder, export, count_instructions=True), pcm[None],
                             work, icount=True)
        ram = counted["ram"]
        rows.append({
            "mode": f"streaming N={n}", "block_frames": n,
            "flash_int8_bytes": stream["flash_int8_bytes"],
            "host_arena_bytes": stream["arena_bytes"],
            "host_arena_used_bytes": host["ram"]["arena_used"],
            "m4_arena_used_bytes": ram["arena_used"],
            "frontend_state_bytes": ram["frontend_state"], "block_bytes": ram["block"],
            "state_bytes": ram["state"],
            "total_ram_bytes_m4": ram["frontend_state"] + ram["block"] + ram["state"]
            + ram["arena_used"],
            "m4_instructions_per_second": int(round(sbt.instructions_per_second(counted,
                                                                                  hop_s))),
            "m4_stream_seconds": len(pcm) / 16000.0,
            "float_auprc": stream["float_streaming_auprc"],
            "int8_auprc": stream["int8_streaming_auprc"]})
        print(json.dumps(rows[-1]), flush=True)
    return {"student": student, "run": str(run), "rows": rows}


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--students", nargs="+", default=["cnn_lstm_xs", "dscnn_xs"])
    parser.add_argument("--run", action="append", default=[],
                        help="STUDENT=RUN_FOLDER: use this trained run (needs --data)")
    parser.add_argument("--data", type=Path, help="data set of the --run folders")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--block-frames", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--stream-seconds", type=float, default=6.0)
    args = parser.parse_args(argv)

    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill
    from keras_iusp.utils.atomic import atomic_write_text

    args.work.mkdir(parents=True, exist_ok=True)
    runs = dict(item.split("=", 1) for item in args.run)
    data = args.data
    if data is None:
        data = args.work / "data"
        if not data.is_dir():
            synthesize(data, clips=args.clips, seed=5, clip_seconds=args.clip_seconds,
                       sample_rate=16000, progress=False)
    index = read_sonyc(data)
    clip_seconds = args.clip_seconds if args.data is None else None
    config = FeatureConfig(clip_seconds=clip_seconds) if clip_seconds else FeatureConfig()
    cache = build_feature_cache(index, config, progress=False)
    started = time.time()
    results = []
    for student in args.students:
        run = Path(runs[student]) if student in runs else args.work / f"run_{student}"
        if student not in runs and not (run / "model.keras").is_file():
            distill(cache, None, student, run, DistillConfig(method="baseline",
                                                               epochs=args.epochs), verbose=0)
        results.append(measure(student, run, data, cache, args.block_frames, args.work,
                               args.stream_seconds))
    out = {"command": "python benchmarks/streaming_sizing.py " + " ".join(argv or sys.argv[1:]),
           "data": str(data), "seconds": round(time.time() - started, 1),
           "machine": platform.platform(),
           "note": "RAM: bytes the audio path holds (front end + frame ring or block + state "
                   "tensors + TFLM arena_used_bytes after AllocateTensors on the emulated "
                   "Cortex-M4F, CMSIS-NN); instructions: QEMU -icount shift=0 SysTick counts "
                   "(instructions, not cycles); AUPRC: validation micro-AUPRC of the export",
           "students": results}
    atomic_write_text(args.out, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
