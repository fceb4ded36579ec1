"""int8 inference time per window and per clip in TFLite-Micro and LiteRT, with arena and flash.

Times the exported window models found under a work folder of ``benchmarks/mcu_sizing.py``
(``<work>/<student>_firmware/model.tflite``) on the host CPU, one thread: the median over
repeated invocations of one window, and per 10-second clip (the number of half-overlapping
windows a 10 s clip needs times the window time). Host timings rank the students; they are not
microcontroller latencies. Results: ``benchmarks/results/inference.json``.

Usage::

    python benchmarks/inference.py --work /tmp/exp/sizing [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_tflm(model: bytes, arena: int, window, repeats: int) -> float:
    from tflite_micro.python.tflite_micro import runtime

    micro = runtime.Interpreter.from_bytes(model, arena_size=arena)

    def run():
        micro.set_input(window, 0)
        micro.invoke()
        micro.reset()

    return _median_seconds(run, repeats)


def _time_litert(model: bytes, window, repeats: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    lite = Interpreter(model_content=model, num_threads=1)
    lite.allocate_tensors()
    index = lite.get_input_details()[0]["index"]

    def run():
        lite.set_tensor(index, window)
        lite.invoke()

    return _median_seconds(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="mcu_sizing.py work folder")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import numpy as np

    from keras_iusp.export.verify import io_details, window_starts

    rows = []
    for folder in sorted(Path(args.work).glob("*_firmware")):
        model = (folder / "model.tflite").read_bytes()
        report = json.loads((folder / "export_report.json").read_text())
        inp, _ = io_details(model)
        window = np.random.default_rng(0).integers(-128, 128, inp.shape, dtype=np.int8)

        frames = inp.shape[1]
        clip_frames = 998  # 10 s at the default 10 ms hop
        windows_per_clip = len(window_starts(clip_frames, frames, max(1, frames // 2)))
        tflm_s = _time_tflm(model, report["arena_bytes"], window, args.repeats)
        litert_s = _time_litert(model, window, args.repeats)
        rows.append({
            "model": report["model"], "params": report["params"],
            "window_frames": frames, "arena_bytes": report["arena_bytes"],
            "flash_int8_bytes": report["flash_int8_bytes"],
            "tflm_ms_per_window": 1000 * tflm_s, "litert_ms_per_window": 1000 * litert_s,
            "windows_per_10s_clip": windows_per_clip,
            "tflm_ms_per_10s_clip": 1000 * tflm_s * windows_per_clip,
            "litert_ms_per_10s_clip": 1000 * litert_s * windows_per_clip,
        })
        print(json.dumps(rows[-1]), flush=True)

    import tensorflow as tf

    result = {
        "command": f"python benchmarks/inference.py --work {args.work} --repeats {args.repeats}",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version(), "tensorflow": tf.__version__},
        "date": time.strftime("%Y-%m-%d"),
        "models": rows,
    }
    out = ROOT / "benchmarks" / "results" / "inference.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
