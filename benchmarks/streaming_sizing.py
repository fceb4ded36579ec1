"""Sizing of the windowed (0.5 s) and the block streaming runner per student: total RAM, flash,
instructions per second of audio on the emulated Cortex-M4F, AUPRC.

For each student (default ``cnn_lstm_xs`` and ``dscnn_xs``) it trains a baseline run on the
built-in synthetic data (or takes ``--run STUDENT=RUN_FOLDER`` with ``--data``), exports it with
``--window-seconds 0.5 --streaming --block-frames N`` for every ``N``, and measures

- windowed 0.5 s: ``benchmarks/target_budget.py``'s program on the emulated core (instructions
  per second of audio at the runner's schedule, ``arena_used_bytes`` after AllocateTensors with
  CMSIS-NN), RAM = front-end state + frame ring + event detector + that arena;
- streaming N: ``deploy/stream_runner/block_main.cc`` on the emulated core under ``-icount
  shift=0`` over the validation clips as one stream (instructions per second of audio, front end
  and model), RAM = front-end state + block + state tensors + the detector's window of frame
  logits + event detector + ``arena_used_bytes`` (CMSIS-NN), and the same on the host
  (reference kernels);
- flash: the int8 model's bytes; AUPRC: the export's validation micro-AUPRC (whole-clip float,
  windowed int8 = max over half-overlapping windows, streaming float/int8 = mean frame logit).
  ``--score-split test`` scores the same four models on the test split instead (for a run whose
  settings were chosen on validation; the export itself still verifies on validation);
- events: each runner's calibrated detector (chosen on validation by the export) on the score
  split's clips as one stream: event micro-F1 (1 s onset collar), false alarms per hour and
  median latency (``keras_iusp.export.stream_eval`` and ``.stream_detector``).

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

    from keras_iusp.data import read_sonyc
    from keras_iusp.data.audio import read_audio
    from keras_iusp.export.frontend import PCM_FULL_SCALE

    rate = cache.config.sample_rate  # the runner's rate: mono, resampled as the features were
    by_name = {Path(p).name: p for p in read_sonyc(data).paths}
    names = [Path(f).name for f, s in zip(cache.filenames, cache.splits) if s == split]
    clips, total = [], 0.0
    for name in names:
        audio = read_audio(by_name[name], rate)
        clips.append(np.clip(np.round(audio * PCM_FULL_SCALE), -32768, 32767).astype(np.int16))
        total += len(clips[-1]) / rate
        if total >= max_seconds:
            break
    stream = np.concatenate(clips)
    return stream[:len(stream) // 160 * 160]


def split_auprc(run: Path, export: Path, cache, split: str, block_frames: int) -> dict:
    """micro-AUPRC on ``split`` of the export's four models: the run's float model on whole
    clips, the int8 window model (max over half-overlapping windows), and the float and int8
    streaming models (mean frame logit, state carried through each clip). For a run that was
    not compressed (a compressed run's float model is its QAT model, which this does not load)."""
    import numpy as np

    from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming
    from keras_iusp.export.streaming_export import stream_scores, tflite_invoke
    from keras_iusp.export.verify import windowed_clip_scores
    from keras_iusp.metrics import micro_auprc
    from keras_iusp.train.saved_runs import load_run

    x, y = cache.split(split)
    x = np.asarray(x, np.float32)
    model = load_run(run).model
    report = json.loads((export / "export_report.json").read_text())
    hop = max(1, report["window_frames"] // 2)
    streaming = build_streaming(model, block_frames, DEFAULT_CELL_CLIP)
    whole = model.predict(x, batch_size=16, verbose=0)
    scores = {
        "float_whole_clip_auprc": 1 / (1 + np.exp(-whole)),
        "int8_windowed_auprc": windowed_clip_scores((export / "model.tflite").read_bytes(), x,
                                                    hop),
        "float_streaming_auprc": stream_scores(streaming, x, tflite_invoke(
            streaming, (export / "stream_model_float.tflite").read_bytes())),
        "int8_streaming_auprc": stream_scores(streaming, x, tflite_invoke(
            streaming, (export / "stream_model.tflite").read_bytes())),
    }
    return {"split": split, "clips": int(len(y)),
            **{name: float(micro_auprc(y, s)) for name, s in scores.items()}}


def split_events(run: Path, export: Path, cache, split: str, block_frames: int) -> dict:
    """Event metrics on ``split`` as one stream of the window model's and of the streaming
    model's calibrated detectors (each from its export's report)."""
    from keras_iusp.export.stream_detector import evaluate_stream_detector
    from keras_iusp.export.stream_eval import evaluate_stream
    from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming
    from keras_iusp.export.streaming_export import stream_io, tflite_invoke
    from keras_iusp.train.saved_runs import load_run

    def overall(result: dict) -> dict:
        o = result["overall"]
        return {"event_micro_f1": o["micro_f1"], "event_macro_f1": o["macro_f1"],
                "false_alarms_per_hour": o["false_alarms_per_hour"],
                "latency_median_s": o["latency_median_s"]}

    windowed = evaluate_stream(export / "model.tflite", cache, split)
    model_bytes = (export / "stream_model.tflite").read_bytes()
    streaming = build_streaming(load_run(run).model, block_frames, DEFAULT_CELL_CLIP)
    detector = json.loads((export / "stream_report.json").read_text())["detector"]
    streamed = evaluate_stream_detector(streaming, tflite_invoke(streaming, model_bytes),
                                        stream_io(model_bytes).output_quant["frame_logits"],
                                        detector, cache, split)
    return {"split": split, "stream_seconds": streamed["stream_seconds"],
            "reference_events": streamed["reference_events"],
            "windowed": overall(windowed), "streaming": overall(streamed)}


def measure(student: str, run: Path, data: Path, cache, blocks: list[int], work: Path,
            stream_seconds: float, score_split: str = "validate") -> dict:
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
        if score_split != "validate":  # the same four models scored on another split
            scored = split_auprc(run, export, cache, score_split, n)
            report["float_whole_clip_auprc"] = scored["float_whole_clip_auprc"]
            report["int8_windowed_auprc"] = scored["int8_windowed_auprc"]
            stream = {**stream, "float_streaming_auprc": scored["float_streaming_auprc"],
                      "int8_streaming_auprc": scored["int8_streaming_auprc"]}
        events = split_events(run, export, cache, score_split, n)
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
                # + the detector's bytes, measured with the streaming program below
                "total_ram_bytes_m4": frontend_state + ring + budget.arena_used_bytes,
                "m4_instructions_per_second": budget.stream_instructions_per_second,
                "float_whole_clip_auprc": report["float_whole_clip_auprc"],
                "int8_auprc": report["int8_windowed_auprc"],
                "events": events["windowed"]})
        host = sbt.run_host(sbt.build_host(export, work / f"block_host_{student}_{n}"),
                            pcm[None], work)
        counted = sbt.run_m4(sbt.build_m4(builder, export, count_instructions=True), pcm[None],
                             work, icount=True)
        ram = counted["ram"]
        if n == blocks[0]:  # the windowed runner holds the same Detector
            rows[-1]["detector_bytes"] = ram["detector"]
            rows[-1]["total_ram_bytes_m4"] += ram["detector"]
        rows.append({
            "mode": f"streaming N={n}", "block_frames": n,
            "flash_int8_bytes": stream["flash_int8_bytes"],
            "host_arena_bytes": stream["arena_bytes"],
            "host_arena_used_bytes": host["ram"]["arena_used"],
            "m4_arena_used_bytes": ram["arena_used"],
            "frontend_state_bytes": ram["frontend_state"], "block_bytes": ram["block"],
            "state_bytes": ram["state"], "window_ring_bytes": ram["window_ring"],
            "detector_bytes": ram["detector"],
            # sizeof(BlockRunner): these parts plus its bookkeeping (float log-mel row, last
            # block's logits, clip statistics), not in the total (the windowed row leaves out
            # its runner's bookkeeping alike)
            "runner_bytes": ram["runner"],
            "total_ram_bytes_m4": ram["frontend_state"] + ram["block"] + ram["state"]
            + ram["window_ring"] + ram["detector"] + ram["arena_used"],
            "m4_instructions_per_second": int(round(sbt.instructions_per_second(counted,
                                                                                  hop_s))),
            "m4_stream_seconds": len(pcm) / 16000.0,
            "float_auprc": stream["float_streaming_auprc"],
            "int8_auprc": stream["int8_streaming_auprc"],
            "events": events["streaming"]})
        print(json.dumps(rows[-1]), flush=True)
    return {"student": student, "run": str(run), "auprc_split": score_split,
            "events_split": score_split, "events_stream_seconds": events["stream_seconds"],
            "reference_events": events["reference_events"], "rows": rows}


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
    parser.add_argument("--score-split", choices=["validate", "test"], default="validate",
                        help="split the AUPRC columns are measured on (default validate)")
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
                               args.stream_seconds, args.score_split))
    out = {"command": "python benchmarks/streaming_sizing.py " + " ".join(argv or sys.argv[1:]),
           "data": str(data), "seconds": round(time.time() - started, 1),
           "machine": platform.platform(),
           "note": "RAM: bytes the audio path holds (front end + frame ring or block + state "
                   "tensors + detector window + event detector + TFLM arena_used_bytes after "
                   "AllocateTensors on the emulated Cortex-M4F, CMSIS-NN); instructions: QEMU "
                   "-icount shift=0 SysTick counts (instructions, not cycles); AUPRC: "
                   "micro-AUPRC on the students' auprc_split; events: each runner's calibrated "
                   "detector on events_split as one stream",
           "students": results}
    atomic_write_text(args.out, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
