"""IUSP loss + gradient when the student's time axis is downsampled more than 2x onto the teacher's.

The paper grid's pair (``cnn_lstm_xs`` ``lstm``: 499 frames; ``teacher_cnn`` ``embedding``: 249
frames) skips some student frames when bilinearly resized. The low-rank path's resize adjoint
once gave every skipped frame a window over all output rows (one gather per row). This measures
the reference loss, the low-rank loss as it is, and the low-rank loss with the old windows
(rebuilt here only for the comparison), forward + backward, float32, batch 16, random ReLU
teacher / tanh student features. Results: ``benchmarks/results/iusp_downsampling.json``.

Usage::

    python benchmarks/iusp_downsampling.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_iusp.distill import iusp_fast, losses  # noqa: E402
from keras_iusp.utils.atomic import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: (teacher frames, student frames, teacher features, student features)
SHAPES = [(249, 499, 128, 12), (249, 499, 128, 24), (500, 998, 128, 12), (998, 499, 128, 12)]


def _old_windows(in_size: int, out_size: int):
    """The adjoint windows before the fix: an all-zero column got the range 0..out-1."""
    r = losses.bilinear_resize_matrix(in_size, out_size)
    nonzero = r != 0
    first = np.argmax(nonzero, axis=0)
    last = out_size - 1 - np.argmax(nonzero[::-1], axis=0)
    width = int((last - first).max()) + 1
    rows = first[None, :] + np.arange(width)[:, None]
    idx = np.minimum(rows, out_size - 1)
    w = np.where(rows <= last[None, :], r[idx, np.arange(in_size)[None, :]], 0.0)
    return idx.astype(np.int32), w


def _time_ms(teacher, student, implementation: str, rounds: int) -> float:
    @tf.function
    def step(t, s):
        with tf.GradientTape() as tape:
            tape.watch(s)
            loss = tf.reduce_mean(losses.iusp_loss(t, s, implementation=implementation))
        return tape.gradient(loss, s)

    step(teacher, student)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step(teacher, student)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for t_t, t_s, d_t, d_s in SHAPES:
        teacher = tf.constant(np.maximum(rng.normal(size=(16, t_t, d_t)), 0).astype(np.float32))
        student = tf.constant(np.tanh(rng.normal(size=(16, t_s, d_s))).astype(np.float32))
        row = {"t_teacher": t_t, "t_student": t_s, "d_teacher": d_t, "d_student": d_s,
               "windows_now": int(iusp_fast.adjoint_windows(t_s, t_t)[0].shape[0]),
               "windows_before": int(_old_windows(t_s, t_t)[0].shape[0]),
               "reference_ms": _time_ms(teacher, student, "reference", 15),
               "lowrank_ms": _time_ms(teacher, student, "lowrank", 15)}
        fixed = iusp_fast.adjoint_windows
        iusp_fast.adjoint_windows = _old_windows
        try:
            row["lowrank_before_fix_ms"] = _time_ms(teacher, student, "lowrank", 15)
        finally:
            iusp_fast.adjoint_windows = fixed
        print(row, flush=True)
        rows.append(row)
    out = ROOT / "benchmarks" / "results" / "iusp_downsampling.json"
    atomic_write_text(out, json.dumps({
        "command": "python benchmarks/iusp_downsampling.py",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "note": "median of 15 rounds, forward + backward, float32, batch 16, cosine form",
        "results": rows}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
