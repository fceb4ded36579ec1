"""Instruction budget of every zoo student on an emulated Cortex-M4F, beside its whole-image size.

For each student and window length: a one-epoch baseline run on a small synthetic set (the
instruction count of an int8 model depends on its shapes, not on how well it is trained), an
int8 export, and ``deploy/targets/mps2_an386/budget_main.cc`` run on QEMU's ``mps2-an386`` with
``-icount shift=0``: instructions per ``Invoke()``, per hop of the front end, and per second of
audio with the runner's schedule (a front-end frame every hop, the model every half window). The
"MHz needed" column is that last number divided by 10^6: the clock a core retiring one
instruction per cycle would need. It is an instruction count, not a cycle count: QEMU models no
pipeline, no flash wait states, no memory timing. Beside it, the whole firmware image
(``benchmarks/firmware_size.py``: ``device_main.cc`` with CMSIS-NN kernels, -Os, newlib-nano).

With ``--assets FOLDER`` it measures one existing export instead and writes the budget into that
folder: a ``cortex_m4_budget`` block in ``export_report.json`` and a comment block in
``model_settings.h`` (how ``firmware_assets/reference`` got its numbers).

Usage::

    python benchmarks/target_budget.py [--students cnn_lstm_xs dscnn_xs] [--window-seconds 0.5 1 2]
    python benchmarks/target_budget.py --assets firmware_assets/reference
    python benchmarks/target_budget.py --table [--out RESULTS.json] [--also MORE.json ...]
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
sys.path.insert(0, str(ROOT))
from keras_iusp.export.cortex_m4 import M4Builder, missing_tools  # noqa: E402
from keras_iusp.export.target_budget import (  # noqa: E402,F401  (BEGIN, END: tests read them)
    BEGIN,
    END,
    budget_block,
    settings_comment,
    write_into_assets,
)

STUDENTS = ["cnn_lstm_xs", "cnn_lstm_s", "cnn_lstm_m", "cnn_lstm_l", "dscnn_xs", "dscnn_s",
            "dscnn_m", "dscnn_l"]


def fresh_export(name: str, window: float, cache, work: Path) -> Path:
    """A one-epoch baseline run of ``name`` exported at ``window`` seconds (reused if present)."""
    from keras_iusp.export import export_model
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    run = work / name
    if not (run / "metrics.json").is_file():
        distill(cache, None, name, run, DistillConfig(method="baseline", epochs=1, batch_size=8),
                verbose=0)
    out = work / f"{name}_fw_{window:g}s"
    if not (out / "export_report.json").is_file():
        export_model(run, cache, out, window_seconds=window, golden_vectors=2,
                     representative_windows=20)
    return out


def table(rows: list[dict]) -> str:
    lines = ["| student | window (s) | params | model flash (int8) | RAM (front end + ring + "
             "arena) | instructions / invoke | invokes / s | instructions / s of audio | "
             "MHz needed at 1 instruction per cycle | whole image flash | whole image static "
             "RAM |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        b = r["cortex_m4_budget"]
        lines.append(
            f"| {r['model']} | {r['window_seconds']:.2f} | {r['params']:,} | "
            f"{r['flash_int8_bytes']:,} | {r['total_ram_bytes']:,} | "
            f"{b['invoke_instructions']:,} | {b['invokes_per_second']:.2f} | "
            f"{b['stream_instructions_per_second']:,} | "
            f"{b['mhz_needed_at_1_instruction_per_cycle']:.1f} | {b['firmware_flash_bytes']:,} | "
            f"{b['firmware_static_ram_bytes']:,} |")
    return "\n".join(lines)


def readme_table(rows: list[dict]) -> str:
    """The README's compact form of :func:`table` (one row per student and window)."""
    lines = ["| student | window | model flash | RAM (audio path) | instructions / invoke | "
             "MHz needed at 1 instruction per cycle (M instructions / s of audio) | whole image "
             "flash / static RAM |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        b = r["cortex_m4_budget"]
        lines.append(
            f"| `{r['model']}` | {r['window_request_seconds']:g} s | "
            f"{r['flash_int8_bytes'] / 1024:.1f} KB | {r['total_ram_bytes'] / 1024:.1f} KB | "
            f"{b['invoke_instructions'] / 1e6:.1f} M | "
            f"{b['mhz_needed_at_1_instruction_per_cycle']:.1f} | "
            f"{b['firmware_flash_bytes'] / 1024:.0f} / {b['firmware_static_ram_bytes'] / 1024:.0f}"
            " KB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default=None,
                        help="measure this export folder and write the budget into it")
    parser.add_argument("--students", nargs="+", default=STUDENTS)
    parser.add_argument("--window-seconds", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--clip-seconds", type=float, default=2.0,
                        help="synthetic clip length (at least the longest window)")
    parser.add_argument("--work", default="runs/target_budget", help="scratch folder")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "target_budget.json"))
    parser.add_argument("--table", action="store_true",
                        help="only print the README table of the --out JSON(s) given")
    parser.add_argument("--also", nargs="*", default=[],
                        help="with --table: further result JSONs whose rows join the table")
    args = parser.parse_args()
    if args.table:
        rows = [r for path in [args.out, *args.also]
                for r in json.loads(Path(path).read_text())["rows"]]
        rows.sort(key=lambda r: (STUDENTS.index(r["model"]), r["window_request_seconds"]))
        print(readme_table(rows))
        return
    lacking = missing_tools()
    if lacking:
        raise SystemExit("target_budget: missing " + ", ".join(lacking))
    work = Path(args.work)
    builder = M4Builder(work / "m4_build")
    if args.assets:
        assets = Path(args.assets)
        block = budget_block(assets, builder)
        write_into_assets(assets, block)
        print(json.dumps(block, indent=1))
        return

    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig

    clip_seconds = args.clip_seconds
    if clip_seconds < max(args.window_seconds):
        parser.error(f"--clip-seconds {clip_seconds:g} is shorter than the longest window")
    data = work / "data"
    if not (data / "annotations.csv").is_file():
        synthesize(data, clips=args.clips, seed=0, clip_seconds=clip_seconds, sample_rate=16000,
                   progress=False)
    cache = build_feature_cache(read_sonyc(data), FeatureConfig(clip_seconds=clip_seconds),
                                progress=False)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    for row in previous.get("rows", []):  # files written before rows carried their command
        row.setdefault("command", previous.get("command"))
    rows = [r for r in previous.get("rows", [])
            if (r["model"], r["window_request_seconds"]) not in
            {(s, w) for s in args.students for w in args.window_seconds}]
    for name in args.students:
        for window in args.window_seconds:
            start = time.perf_counter()
            folder = fresh_export(name, window, cache, work)
            report = json.loads((folder / "export_report.json").read_text())
            block = budget_block(folder, builder)
            rows.append({"model": name, "window_request_seconds": window,
                         "window_seconds": report["window_seconds"],
                         "window_frames": report["window_frames"], "params": report["params"],
                         "flash_int8_bytes": report["flash_int8_bytes"],
                         "arena_bytes": report["arena_bytes"],
                         "total_ram_bytes": report["runner"]["total_ram_bytes"],
                         "cortex_m4_budget": block,
                         "seconds": round(time.perf_counter() - start, 1)})
            print(f"{name} {window:g} s: {block['invoke_instructions']:,} instructions/invoke, "
                  f"{block['mhz_needed_at_1_instruction_per_cycle']:.1f} MHz at 1 IPC, flash "
                  f"{block['firmware_flash_bytes']:,} B", flush=True)
            command = ("python benchmarks/target_budget.py --students " + " ".join(args.students)
                       + " --window-seconds " + " ".join(f"{w:g}" for w in args.window_seconds)
                       + f" --clips {args.clips} --clip-seconds {args.clip_seconds:g}")
            rows[-1]["command"] = command
            result = {
                "commands": sorted({r["command"] for r in rows if r.get("command")}),
                "note": "instruction counts on QEMU mps2-an386 with -icount shift=0, not cycle "
                        "counts (no pipeline, wait states or memory timing); models trained one "
                        "epoch (the count depends on the shapes, not the weights)",
                "machine": {"platform": platform.platform(), "date": time.strftime("%Y-%m-%d")},
                "rows": sorted(rows, key=lambda r: (STUDENTS.index(r["model"])
                                                    if r["model"] in STUDENTS else 99,
                                                    r["window_request_seconds"])),
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            from keras_iusp.utils.atomic import atomic_write_text

            atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(table(result["rows"]))


if __name__ == "__main__":
    main()
