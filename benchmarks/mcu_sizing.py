"""Always-on sizing: which students fit a microcontroller, and what they score there.

For every student size: distil with IUSP from one teacher on the built-in synthetic data, prune
to 50 % and QAT-train, export a 1-second int8 window model, verify it in TFLite-Micro, and record
flash, arena and validation micro-AUPRC (whole-clip float vs windowed int8) against the target
profiles in ``deploy/targets``. Results go to ``benchmarks/results/mcu_sizing.json`` and a
markdown table next to it. With ``--ship NAME`` the assets of that student are also written to
``firmware_assets/reference`` (the reference model committed with the repository).

Usage::

    python benchmarks/mcu_sizing.py [--clips 400] [--epochs 30] [--ship dscnn_s]
    python benchmarks/mcu_sizing.py --students cnn_lstm_xs dscnn_xs --window-seconds 0.5 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = ["dscnn_xs", "dscnn_s", "dscnn_m", "cnn_lstm_xs", "cnn_lstm_s", "cnn_lstm_m"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/mcu_sizing", help="scratch folder")
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=30, help="student distillation epochs")
    parser.add_argument("--students", nargs="+", default=STUDENTS)
    parser.add_argument("--window-seconds", type=float, nargs="+", default=[1.0],
                        help="one export per window length (e.g. 0.5 1 2): AUPRC and RAM vs "
                             "window; the students are trained once")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"),
                        help="where mcu_sizing.json/.md go (use a scratch folder for small runs)")
    parser.add_argument("--ship", default=None, help="student whose assets go to firmware_assets/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import tensorflow as tf

    from keras_iusp.compress import CompressConfig, compress
    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.export import export_model
    from keras_iusp.export.targets import format_target_table
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.train.training import distill, train_teacher

    work = Path(args.work)
    data = work / "data"
    if not (data / "annotations.csv").is_file():
        synthesize(data, clips=args.clips, seed=args.seed, clip_seconds=args.clip_seconds)
    cache = build_feature_cache(read_sonyc(data), FeatureConfig(clip_seconds=args.clip_seconds))
    if not (work / "teacher" / "metrics.json").is_file():
        train_teacher(cache, work / "teacher", epochs=args.teacher_epochs, seed=args.seed,
                      verbose=2)
    teacher = load_run(work / "teacher")

    rows = []
    for name in args.students:
        student_dir = work / name
        compressed = work / f"{name}_compressed"
        for window in args.window_seconds:
            start = time.perf_counter()
            suffix = "" if window == 1.0 else f"_{window:g}s"
            fw = work / f"{name}_firmware{suffix}"
            if (fw / "export_report.json").is_file():  # exported by an interrupted earlier run
                rows.append(json.loads((fw / "export_report.json").read_text()))
                print(f"{name} {window:g} s: reusing {fw}", flush=True)
                continue
            if not (student_dir / "metrics.json").is_file():
                distill(cache, teacher, name, student_dir,
                        DistillConfig(method="iusp", epochs=args.epochs, seed=args.seed),
                        verbose=2)
            if not (compressed / "compress_report.json").is_file():
                compress(load_run(student_dir), cache, compressed,
                         CompressConfig(seed=args.seed), teacher_run=teacher, verbose=2)
            report = export_model(compressed, cache, fw, window_seconds=window, seed=args.seed)
            report["seconds"] = time.perf_counter() - start
            rows.append(report)
            print(f"{name} {window:g} s: arena {report['arena_bytes']} total RAM "
                  f"{report['runner']['total_ram_bytes']} flash {report['flash_int8_bytes']} "
                  f"int8 windowed AUPRC {report['int8_windowed_auprc']:.3f}", flush=True)
            if args.ship == name and window == args.window_seconds[0]:
                target = ROOT / "firmware_assets" / "reference"
                tmp = target.with_name(".reference.tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(fw, tmp)
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)

    results = {
        "command": "python benchmarks/mcu_sizing.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if v is not None),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "tensorflow": tf.__version__},
        "date": time.strftime("%Y-%m-%d"),
        "teacher_val_auprc": json.loads((work / "teacher" / "metrics.json").read_text())
        .get("val_auprc"),
        "students": [{k: v for k, v in r.items() if k not in ("source_run", "out")} for r in rows],
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mcu_sizing.json").write_text(json.dumps(results, indent=1))
    lines = ["| student | window (s) | params | sparsity | flash int8 | int8+gzip | arena | "
             "total RAM (front end + ring + arena) | float AUPRC (clip) | int8 AUPRC (windowed) "
             "| cortex-m4 | always-on-dsp |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        fits = {t["target"]: "fits" if t["fits"] else "no" for t in r["targets"]}
        lines.append(f"| {r['model']} | {r['window_seconds']:.2f} | {r['params']:,} | "
                     f"{r['kernel_sparsity']:.0%} | "
                     f"{r['flash_int8_bytes']:,} | {r['flash_int8_gzip_bytes']:,} | "
                     f"{r['arena_bytes']:,} | {r['runner']['total_ram_bytes']:,} | "
                     f"{r['float_whole_clip_auprc']:.3f} | "
                     f"{r['int8_windowed_auprc']:.3f} | {fits.get('cortex-m4', '?')} | "
                     f"{fits.get('always-on-dsp', '?')} |")
    table = "\n".join(lines)
    (out_dir / "mcu_sizing.md").write_text(table + "\n")
    print(table)
    if rows:
        print(format_target_table(rows[0]["targets"]))


if __name__ == "__main__":
    main()
