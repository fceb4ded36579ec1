"""Where a distillation epoch's time goes: train steps, the gaps between them, validation.

For each method it runs :func:`keras_iusp.train.training.distill` for ``--epochs`` epochs on a
data set (the teacher's outputs cached, as the CLI does) with a timing callback inside the fit,
and reports per epoch: the time inside train steps, the time between them (input pipeline), the
validation pass, and the rest (epoch-end callbacks: checkpoint, best weights, CSV log). The first
epoch includes tracing. Run it on a quiet machine: the numbers are wall times.

Usage::

    python benchmarks/distill_epoch_parts.py --data DATA --teacher TEACHER_RUN \\
        --student cnn_lstm_xs --methods baseline kd iusp --epochs 3 \\
        --out benchmarks/results/distill_epoch_parts.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _timer(marks: list):
    import tf_keras as keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append(("epoch_begin", time.perf_counter()))

        def on_train_batch_begin(self, batch, logs=None):
            marks.append(("step_begin", time.perf_counter()))

        def on_train_batch_end(self, batch, logs=None):
            marks.append(("step_end", time.perf_counter()))

        def on_test_begin(self, logs=None):
            marks.append(("val_begin", time.perf_counter()))

        def on_test_end(self, logs=None):
            marks.append(("val_end", time.perf_counter()))

    return Timer()


def epoch_parts(marks: list, epoch_ends: list[float]) -> list[dict]:
    """Per epoch: seconds in steps, between steps, in validation, and the rest up to the next
    epoch's start (or the fit's end)."""
    rows, current, last, steps = [], None, None, 0
    for kind, t in marks:
        if kind == "epoch_begin":
            current = {"begin": t, "train_steps_s": 0.0, "between_steps_s": 0.0,
                       "validation_s": 0.0}
            last, steps = t, 0
        elif kind == "step_begin":
            current["between_steps_s"] += t - last
            current["_step"] = t
        elif kind == "step_end":
            current["train_steps_s"] += t - current.pop("_step")
            last, steps = t, steps + 1
        elif kind == "val_begin":
            current["_val"] = t
        elif kind == "val_end":
            current["validation_s"] += t - current.pop("_val")
            current["steps"] = steps
            rows.append(current)
    for row, end in zip(rows, epoch_ends):
        total = end - row.pop("begin")
        row["epoch_s"] = total
        row["rest_s"] = total - row["train_steps_s"] - row["between_steps_s"] - row["validation_s"]
        row["step_ms"] = 1000 * row["train_steps_s"] / max(row["steps"], 1)
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", default="cnn_lstm_xs")
    parser.add_argument("--methods", nargs="+", default=["baseline", "kd", "iusp"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import keras_iusp.train.training as training
    from keras_iusp.data import read_sonyc
    from keras_iusp.features import build_feature_cache
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.utils.atomic import atomic_write_text

    teacher = load_run(args.teacher)
    cache = build_feature_cache(read_sonyc(args.data), teacher.feature_config, progress=False)
    fit = training.fit_resumable
    results = {}
    load_before = os.getloadavg()
    for method in args.methods:
        marks: list = []
        epoch_ends: list[float] = []

        def timed_fit(*a, callbacks=(), _marks=marks, _ends=epoch_ends, **k):
            import tf_keras as keras

            end = keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: _ends.append(time.perf_counter()))
            # the end mark runs after every other callback (checkpoint, best weights, CSV log)
            return fit(*a, callbacks=[_timer(_marks), *callbacks, end], **k)

        training.fit_resumable = timed_fit
        config = DistillConfig(method=method, epochs=args.epochs)  # the family's default layers
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            training.distill(cache, teacher if method != "baseline" else None, args.student,
                             Path(work) / "run", config, verbose=0)
        results[method] = {"wall_s": round(time.perf_counter() - started, 1),
                           "epochs": epoch_parts(marks, epoch_ends)}
        print(method, json.dumps(results[method]["epochs"][-1]), flush=True)
    training.fit_resumable = fit
    doc = {"benchmark": "distill_epoch_parts",
           "command": "python benchmarks/distill_epoch_parts.py " + " ".join(
               argv if argv is not None else __import__("sys").argv[1:]),
           "student": args.student, "data": str(args.data), "train_clips": sum(
               1 for s in cache.splits if s == "train"), "batch_size": DistillConfig().batch_size,
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "load_average_before": load_before,
                       "load_average_after": os.getloadavg()},
           "results": results}
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
