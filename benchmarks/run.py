"""Performance benchmarks of keras_iusp: IUSP loss, distillation train steps, memory, features.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full sizes, ~6 minutes on 2 CPU cores
    .venv/bin/python benchmarks/run.py --quick    # small sizes, ~2 minutes (a smoke test)

Each section writes ``benchmarks/results/<section>[_quick].json`` (``iusp_loss``, ``train_step``,
``memory``, ``features``), every file with a ``machine`` block; see ``benchmarks/README.md``.
Timings are wall-clock medians after warm-up; on a shared machine compare ratios measured in the
same run (they are interleaved so that load spikes hit every method alike), not absolute times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Same TensorFlow set-up as the CLI (keras_iusp.cli.main): TensorFlow's own oneDNN default (on for
# x86 Linux) unless the caller sets TF_ENABLE_ONEDNN_OPTS.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"

FULL = {
    "loss": {"batch": 32, "t_teacher": [250, 500, 1000], "d_teacher": 128,
             "d_student": [12, 32, 64], "repeats": 7},
    "step": {"batch": 16, "frames": [250, 500, 1000], "n_mels": 64, "repeats": 11, "warmup": 2},
    "memory": {"batch": 16, "frames": 1000, "n_mels": 64, "steps": 3,
               "loss_batch": 32, "loss_t_teacher": 1000, "loss_d_student": 64},
    "features": {"clips": 40, "clip_seconds": 10.0},
    "fullrate": {"batch": 16, "frames": 1000, "n_mels": 64, "student_hidden": 32,
                 "repeats": 11, "warmup": 2},
}
QUICK = {
    "loss": {"batch": 8, "t_teacher": [100, 200], "d_teacher": 128, "d_student": [12, 64],
             "repeats": 3},
    "step": {"batch": 4, "frames": [100, 200], "n_mels": 64, "repeats": 3, "warmup": 1},
    "memory": {"batch": 4, "frames": 200, "n_mels": 64, "steps": 2,
               "loss_batch": 8, "loss_t_teacher": 200, "loss_d_student": 64},
    "features": {"clips": 4, "clip_seconds": 10.0},
    "fullrate": {"batch": 4, "frames": 200, "n_mels": 64, "student_hidden": 32,
                 "repeats": 3, "warmup": 1},
}
SECTIONS = ("loss", "step", "memory", "features", "fullrate")
FILE_NAMES = {"loss": "iusp_loss", "step": "train_step", "memory": "memory",
              "features": "features", "fullrate": "train_step_fullrate"}
#: Methods of the train-step comparison: (name, DistillConfig.method, IUSP implementation).
STEP_METHODS = [("baseline", "baseline", None), ("kd", "kd", None), ("sp", "sp", None),
                ("iusp_reference", "iusp", "reference"), ("iusp_lowrank", "iusp", "lowrank"),
                ("iusp_auto", "iusp", "auto")]


# --------------------------------------------------------------------------- machine info


def machine_info() -> dict:
    import tensorflow as tf
    import tf_keras

    from keras_iusp.distill import iusp_fast
    from keras_iusp.utils.provenance import cpu_model

    cpu = cpu_model(fallback=platform.processor() or "")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "memory_gb": _total_memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "numpy": np.__version__,
        "onednn": iusp_fast.uses_onednn(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "git_commit": commit,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _total_memory_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def _median(values) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def _log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- features for tests


def relu_features(rng, batch, frames, width):
    """ReLU activations that vary slowly in time (like a conv/dense layer on log-mel)."""
    x = np.cumsum(rng.normal(size=(batch, frames, width)), axis=1) * 0.1
    x += rng.normal(0.3, 1.0, (batch, 1, width))
    return np.maximum(x, 0).astype(np.float32)


# --------------------------------------------------------------------------- 1. IUSP loss alone


def bench_loss(cfg: dict) -> dict:
    import tensorflow as tf

    from keras_iusp.distill import losses

    def compiled(implementation):
        @tf.function
        def step(t, s):
            with tf.GradientTape() as tape:
                tape.watch(s)
                value = tf.reduce_mean(losses.iusp_loss(t, s, implementation=implementation))
            return value, tape.gradient(value, s)

        return step

    def value_and_grad(implementation, t, s):
        value, grad = compiled(implementation)(tf.constant(t), tf.constant(s))
        per_clip = losses.iusp_loss(t, s, implementation=implementation).numpy()
        return per_clip.astype(np.float64), grad.numpy().astype(np.float64)

    rng = np.random.default_rng(0)
    b, d_t = cfg["batch"], cfg["d_teacher"]
    rows = []
    for t_t in cfg["t_teacher"]:
        for d_s in cfg["d_student"]:
            t_s = t_t // 2
            teacher = relu_features(rng, b, t_t, d_t)
            student = np.tanh(relu_features(rng, b, t_s, d_s) - 0.5)  # an LSTM-like output
            t32, s32 = tf.constant(teacher), tf.constant(student)
            steps = {impl: compiled(impl) for impl in ("reference", "lowrank")}
            for step in steps.values():  # trace + warm up
                step(t32, s32)[1].numpy()
            times = {impl: [] for impl in steps}
            cpu = {impl: [] for impl in steps}
            for _ in range(cfg["repeats"]):  # interleaved, so load spikes hit both
                for impl, step in steps.items():
                    start, cpu_start = time.perf_counter(), time.process_time()
                    step(t32, s32)[1].numpy()
                    times[impl].append(time.perf_counter() - start)
                    cpu[impl].append(time.process_time() - cpu_start)
            truth, truth_grad = value_and_grad("reference", teacher.astype(np.float64),
                                               student.astype(np.float64))
            row = {"batch": b, "t_teacher": t_t, "t_student": t_s, "d_teacher": d_t,
                   "d_student": d_s, "loss_mean": float(truth.mean()),
                   "auto_picks": "lowrank" if losses.iusp_prefers_lowrank(t_t, t_s, d_t, d_s)
                   else "reference"}
            for impl in steps:
                value, grad = value_and_grad(impl, teacher, student)
                row[f"{impl}_s"] = _median(times[impl])
                row[f"{impl}_min_s"] = float(np.min(times[impl]))
                row[f"{impl}_cpu_s"] = _median(cpu[impl])
                row[f"{impl}_runs_s"] = [round(v, 5) for v in times[impl]]
                row[f"{impl}_f32_rel_err"] = float(np.max(np.abs(value - truth) / truth))
                row[f"{impl}_f32_grad_rel_err"] = float(
                    np.max(np.abs(grad - truth_grad)) / np.max(np.abs(truth_grad)))
            row["speedup"] = row["reference_s"] / row["lowrank_s"]
            row["cpu_speedup"] = row["reference_cpu_s"] / row["lowrank_cpu_s"]
            rows.append(row)
            _log(f"  loss T_t={t_t:4d} T_s={t_s:4d} D_s={d_s:3d}: reference "
                 f"{row['reference_s'] * 1e3:7.1f} ms, lowrank {row['lowrank_s'] * 1e3:7.1f} ms "
                 f"({row['speedup']:.2f}x wall, {row['cpu_speedup']:.2f}x CPU), "
                 f"auto={row['auto_picks']}, f32 rel err ref/low "
                 f"{row['reference_f32_rel_err']:.1e}/{row['lowrank_f32_rel_err']:.1e}")
    return {"description": "IUSP loss alone, forward + backward (gradient w.r.t. the student "
                           "features) in one tf.function; median wall seconds (*_s), fastest "
                           "run (*_min_s) and median process CPU seconds (*_cpu_s) over "
                           "interleaved repeats after a warm-up call. Teacher: ReLU "
                           "features; student: tanh features. *_f32_rel_err: float32 "
                           "result vs the reference in float64 (max over clips); "
                           "*_grad_rel_err: max |grad error| / max |grad|.",
            "config": cfg, "results": rows}


# --------------------------------------------------------------------------- 2. train steps


def _distiller(method: str, implementation: str | None, teacher, frames: int, n_mels: int):
    import tf_keras as keras

    from keras_iusp.distill.distillation import IUSPDistillation
    from keras_iusp.distill.distiller import Distiller
    from keras_iusp.models import MODEL_SPECS, build_model
    from keras_iusp.train.recipe import DistillConfig, distillation_losses

    config = DistillConfig(method=method)
    student = build_model("cnn_lstm_xs", (frames, n_mels))
    items, weights, student_weight = distillation_losses(config,
                                                         MODEL_SPECS["cnn_lstm_xs"].family)
    for item in items:
        if isinstance(item, IUSPDistillation):
            item.implementation = implementation
    distiller = Distiller(teacher=teacher if items else None, student=student,
                          distillation_losses=items, distillation_loss_weights=weights,
                          student_loss_weight=student_weight)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    return distiller


def _step_data(batch: int, frames: int, n_mels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, frames, n_mels)).astype(np.float32)
    y = (rng.random((batch, 8)) < 0.3).astype(np.float32)
    return x, y


def bench_step(cfg: dict) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    from keras_iusp.distill import losses
    from keras_iusp.models import build_model
    from keras_iusp.train.recipe import DEFAULT_STUDENT_LAYER, DEFAULT_TEACHER_LAYER

    b, n_mels = cfg["batch"], cfg["n_mels"]
    rows = []
    for frames in cfg["frames"]:
        keras.utils.set_random_seed(0)
        teacher = build_model("teacher_cnn", (frames, n_mels))
        t_shape = teacher.get_layer(DEFAULT_TEACHER_LAYER).output.shape
        x, y = _step_data(b, frames, n_mels)
        xt, yt = tf.constant(x), tf.constant(y)
        distillers = {}
        for name, method, impl in STEP_METHODS:
            distillers[name] = _distiller(method, impl, teacher, frames, n_mels)
        s_shape = distillers["kd"].student.get_layer(DEFAULT_STUDENT_LAYER["cnn_lstm"]).output.shape
        for distiller in distillers.values():  # trace + warm up
            for _ in range(cfg["warmup"]):
                distiller.train_on_batch(xt, yt)
        wall = {name: [] for name in distillers}
        cpu = {name: [] for name in distillers}
        for _ in range(cfg["repeats"]):  # interleaved rounds
            for name, distiller in distillers.items():
                w0, c0 = time.perf_counter(), time.process_time()
                distiller.train_on_batch(xt, yt)
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
        row = {"frames": frames, "batch": b, "n_mels": n_mels,
               "iusp_pair": {"teacher": [DEFAULT_TEACHER_LAYER, list(t_shape[1:])],
                             "student": [DEFAULT_STUDENT_LAYER["cnn_lstm"], list(s_shape[1:])]},
               "auto_picks": "lowrank" if losses.iusp_prefers_lowrank(
                   t_shape[1], s_shape[1], int(np.prod(t_shape[2:])), int(np.prod(s_shape[2:])))
               else "reference",
               "methods": {}}
        kd_wall, kd_cpu = _median(wall["kd"]), _median(cpu["kd"])
        for name in distillers:
            row["methods"][name] = {
                "step_s": _median(wall[name]), "min_s": float(np.min(wall[name])),
                "cpu_s": _median(cpu[name]),
                "ratio_to_kd": _median(wall[name]) / kd_wall,
                "cpu_ratio_to_kd": _median(cpu[name]) / kd_cpu,
                "runs_s": [round(v, 4) for v in wall[name]],
            }
        row["with_pipeline"] = _pipeline_steps(distillers, x, y, cfg)
        rows.append(row)
        summary = ", ".join(f"{n} {m['step_s'] * 1e3:.0f} ms ({m['ratio_to_kd']:.3f} wall, "
                            f"{m['cpu_ratio_to_kd']:.3f} CPU)" for n, m in row["methods"].items())
        _log(f"  step T={frames}: {summary}")
        pipe = ", ".join(f"{n} {v['step_s'] * 1e3:.0f} ms wall, {v['cpu_s'] * 1e3:.0f} ms CPU"
                         for n, v in row["with_pipeline"].items())
        _log(f"  step T={frames} with tf.data: {pipe}")
        del distillers, teacher
        keras.backend.clear_session()
    return {"description": "One distillation train step (Distiller.train_on_batch on fixed "
                           "tensors: forward of student and frozen teacher, losses, backward, "
                           "Adam update) of cnn_lstm_xs with teacher_cnn, losses and weights "
                           "as keras_iusp.train.recipe.distillation_losses builds them "
                           "(IUSP/SP on the default layers). Median wall seconds over interleaved "
                           "rounds "
                           "after warm-up; ratio_to_kd against the KD step of the same run; "
                           "cpu_s is process CPU time (robust to other load). with_pipeline: "
                           "Distiller.fit over keras_iusp.features.make_dataset of an in-memory "
                           "array (shuffled), median time between consecutive batch starts.",
            "config": cfg, "results": rows}


def _pipeline_steps(distillers: dict, x, y, cfg: dict) -> dict:
    """Per-step time of ``fit`` fed by ``make_dataset`` (gather + batching + prefetch)."""
    import tf_keras as keras

    from keras_iusp.features import make_dataset

    class BatchTimer(keras.callbacks.Callback):
        """Wall time at the start of every batch and at the end of training."""

        def __init__(self):
            super().__init__()
            self.starts: list[float] = []
            self.cpu: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.starts.append(time.perf_counter())
            self.cpu.append(time.process_time())

        def on_train_end(self, logs=None):
            self.on_train_batch_begin(-1)

    b = cfg["batch"]
    clips = 4 * b
    rng = np.random.default_rng(1)
    features = np.repeat(x, clips // b, axis=0) + rng.normal(0, 0.1, (clips, *x.shape[1:])).astype(
        np.float32)
    labels = np.repeat(y, clips // b, axis=0)
    steps = cfg["repeats"] + 1
    out = {}
    for name in ("kd", "iusp_auto"):
        distiller = distillers[name]
        ds = make_dataset(features, labels, b, shuffle=True, seed=0, drop_remainder=True).repeat()
        timer = BatchTimer()
        distiller.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)  # trace fit's train_function
        distiller.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        gaps = np.diff(timer.starts)[1:]  # the first gap includes fit's own set-up
        cpu = np.diff(timer.cpu)[1:]
        out[name] = {"step_s": _median(gaps), "min_s": float(np.min(gaps)), "cpu_s": _median(cpu),
                     "runs_s": [round(v, 4) for v in gaps]}
    kd_cpu = out["kd"]["cpu_s"]
    for values in out.values():
        values["cpu_ratio_to_kd"] = values["cpu_s"] / kd_cpu
    return out


# --------------------------------------------------------------------------- 2b. full frame rate


def fullrate_teacher(frames: int, n_mels: int):
    """A teacher that keeps every frame: two conv blocks (16 and 32 channels) pooled only in
    frequency (4x each), so its ``embedding`` layer is ``[T, n_mels/16 · 32]`` = ``[1000, 128]``
    for 1000 frames of 64 mel bands. Issue 11's case for IUSP at full frame rate."""
    import tf_keras as keras

    layers = keras.layers
    inp = keras.Input((frames, n_mels), name="mels")
    x = layers.Reshape((frames, n_mels, 1), name="add_channel")(inp)
    for i, channels in enumerate((16, 32), 1):
        x = layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D((1, 4), name=f"pool{i}")(x)
    x = layers.Reshape((frames, x.shape[2] * x.shape[3]), name="embedding")(x)
    x = layers.GlobalAveragePooling1D(name="time_pool")(x)
    return keras.Model(inp, layers.Dense(8, name="logits")(x), name="fullrate_teacher")


def _float32_kept(teacher, student, x) -> dict:
    """Per IUSP form: whether the low-rank loss kept its float32 evaluation on this batch's
    (initial-weight) features, i.e. equals the value with the float32 path switched off
    (``LOWRANK_FLOAT32_RTOL = 0``); if not, the timed steps also paid the float64 recompute."""
    import tf_keras as keras

    from keras_iusp.distill import iusp_fast, losses

    t = keras.Model(teacher.input, teacher.get_layer("embedding").output)(x)
    s = keras.Model(student.input, student.get_layer("lstm").output)(x)
    kept = {}
    for form in losses.IUSP_FORMS:
        value = losses.iusp_loss_lowrank(t, s, form=form).numpy()
        saved = iusp_fast.LOWRANK_FLOAT32_RTOL  # read by iusp_fast.lowrank_squared
        iusp_fast.LOWRANK_FLOAT32_RTOL = 0.0
        try:
            in64 = losses.iusp_loss_lowrank(t, s, form=form).numpy()
        finally:
            iusp_fast.LOWRANK_FLOAT32_RTOL = saved
        kept[form] = bool(np.any(value != in64))
    return kept


def bench_fullrate(cfg: dict) -> dict:
    """KD + IUSP vs KD-only train steps with a teacher layer at full frame rate, every form."""
    import tensorflow as tf
    import tf_keras as keras

    from keras_iusp.distill import losses
    from keras_iusp.distill.distillation import IUSPDistillation
    from keras_iusp.distill.distiller import Distiller
    from keras_iusp.models.zoo import build_cnn_lstm
    from keras_iusp.train.recipe import DistillConfig, distillation_losses

    b, frames, n_mels = cfg["batch"], cfg["frames"], cfg["n_mels"]
    keras.utils.set_random_seed(0)
    teacher = fullrate_teacher(frames, n_mels)

    def make(method: str, form: str | None = None, implementation: str | None = None):
        student = build_cnn_lstm((frames, n_mels), hidden=cfg["student_hidden"])
        config = DistillConfig(method=method, iusp_form=form or losses.DEFAULT_IUSP_FORM,
                               teacher_layer="embedding", student_layer="lstm")
        items, weights, student_weight = distillation_losses(config, "cnn_lstm")
        for item in items:
            if isinstance(item, IUSPDistillation):
                item.implementation = implementation
        distiller = Distiller(teacher=teacher, student=student, distillation_losses=items,
                              distillation_loss_weights=weights,
                              student_loss_weight=student_weight)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
        return distiller

    distillers = {"kd": make("kd")}
    for form in losses.IUSP_FORMS:
        for impl in ("auto", "reference", "lowrank"):
            distillers[f"iusp_{form}_{impl}"] = make("iusp", form, impl)
    t_shape = teacher.get_layer("embedding").output.shape
    s_shape = distillers["kd"].student.get_layer("lstm").output.shape
    x, y = _step_data(b, frames, n_mels)
    xt, yt = tf.constant(x), tf.constant(y)
    for distiller in distillers.values():
        for _ in range(cfg["warmup"]):
            distiller.train_on_batch(xt, yt)
    wall = {name: [] for name in distillers}
    cpu = {name: [] for name in distillers}
    order = np.random.default_rng(0)
    names = list(distillers)
    for _ in range(cfg["repeats"]):  # interleaved rounds, in a new order each round, so no
        for name in order.permutation(names):  # method always follows the same neighbour
            w0, c0 = time.perf_counter(), time.process_time()
            distillers[name].train_on_batch(xt, yt)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    dims = (t_shape[1], s_shape[1], t_shape[2], s_shape[2])
    row = {"batch": b, "frames": frames, "n_mels": n_mels,
           "iusp_pair": {"teacher": ["embedding", list(t_shape[1:])],
                         "student": ["lstm", list(s_shape[1:])]},
           "auto_picks": {form: "lowrank" if losses.iusp_prefers_lowrank(*dims, form=form)
                          else "reference" for form in losses.IUSP_FORMS},
           "lowrank_float32_kept": _float32_kept(teacher, distillers["kd"].student, xt),
           "methods": {}}
    kd_wall, kd_cpu = _median(wall["kd"]), _median(cpu["kd"])
    for name in distillers:
        row["methods"][name] = {
            "step_s": _median(wall[name]), "min_s": float(np.min(wall[name])),
            "cpu_s": _median(cpu[name]), "ratio_to_kd": _median(wall[name]) / kd_wall,
            "min_ratio_to_kd": float(np.min(wall[name])) / float(np.min(wall["kd"])),
            "cpu_ratio_to_kd": _median(cpu[name]) / kd_cpu,
            "runs_s": [round(v, 4) for v in wall[name]]}
        m = row["methods"][name]
        _log(f"  fullrate {name:28s} {m['step_s'] * 1e3:6.0f} ms, wall {m['ratio_to_kd']:.3f}x"
             f" (min {m['min_ratio_to_kd']:.3f}x), CPU {m['cpu_ratio_to_kd']:.3f}x KD")
    _log(f"  fullrate auto picks {row['auto_picks']}, low-rank float32 kept "
         f"{row['lowrank_float32_kept']}")
    return {"description": "IUSP at full frame rate (issue 11): one Distiller.train_on_batch "
                           "step, KD + IUSP vs KD only, batch 16, teacher = two conv blocks "
                           "(16, 32 channels) pooled only in frequency, IUSP on its embedding "
                           "[1000, 128]; student = CNN-LSTM (conv 8/16, LSTM 32) whose lstm "
                           "output is [500, 32]; losses and weights from "
                           "keras_iusp.train.recipe.distillation_losses "
                           "(DistillConfig defaults), per IUSP form and implementation. Median "
                           "wall seconds over "
                           "interleaved rounds after warm-up; ratio_to_kd (medians), "
                           "min_ratio_to_kd (fastest runs), cpu_ratio_to_kd (process CPU). "
                           "lowrank_float32_kept: whether the low-rank loss kept its float32 "
                           "evaluation on the benchmark batch (else it was recomputed in "
                           "float64, see keras_iusp.distill.iusp_fast.lowrank_squared).",
            "config": cfg, "results": row}


# --------------------------------------------------------------------------- 3. memory


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _vm_hwm_bytes() -> int | None:
    """The process's peak RSS (``VmHWM``; unlike ``ru_maxrss`` it is not inherited from the
    parent across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_worker(spec: dict) -> dict:
    """Run in a fresh process: peak RSS growth while running ``spec`` (after a warm-up)."""
    import tensorflow as tf

    from keras_iusp.distill import losses

    if spec["kind"] == "loss":
        rng = np.random.default_rng(0)
        t_t, b = spec["t_teacher"], spec["batch"]
        teacher = tf.constant(relu_features(rng, b, t_t, 128))
        student = tf.constant(np.tanh(relu_features(rng, b, t_t // 2, spec["d_student"]) - 0.5))

        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch(student)
                value = tf.reduce_mean(losses.iusp_loss(teacher, student,
                                                        implementation=spec["implementation"]))
            return tape.gradient(value, student)

        def step():
            run().numpy()
    else:
        import tf_keras as keras

        from keras_iusp.models import build_model

        keras.utils.set_random_seed(0)
        frames, n_mels = spec["frames"], spec["n_mels"]
        teacher = build_model("teacher_cnn", (frames, n_mels))
        distiller = _distiller(spec["method"], spec.get("implementation"), teacher, frames,
                               n_mels)
        x, y = _step_data(spec["batch"], frames, n_mels)
        xt, yt = tf.constant(x), tf.constant(y)

        def step():
            distiller.train_on_batch(xt, yt)

    step()  # trace, allocate weights and optimizer slots
    step()
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(spec["steps"]):
        step()
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    hwm = _vm_hwm_bytes()
    if hwm is None:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm *= 1 if sys.platform == "darwin" else 1024
    return {"rss_before_mb": before / 2**20, "peak_rss_mb": peak[0] / 2**20,
            "peak_delta_mb": (peak[0] - before) / 2**20, "process_peak_rss_mb": hwm / 2**20}


def bench_memory(cfg: dict) -> dict:
    specs = []
    for name, method, impl in STEP_METHODS:
        if name == "iusp_auto":
            continue
        specs.append({"name": f"step/{name}", "kind": "step", "method": method,
                      "implementation": impl, "frames": cfg["frames"], "n_mels": cfg["n_mels"],
                      "batch": cfg["batch"], "steps": cfg["steps"]})
    for impl in ("reference", "lowrank"):
        specs.append({"name": f"loss/{impl}", "kind": "loss", "implementation": impl,
                      "t_teacher": cfg["loss_t_teacher"], "d_student": cfg["loss_d_student"],
                      "batch": cfg["loss_batch"], "steps": cfg["steps"]})
    rows = []
    # A fixed mmap threshold stops glibc from keeping freed large buffers in the heap (its
    # dynamic threshold otherwise grows after the first step), so RSS follows live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    for spec in specs:  # one process each, one at a time
        proc = subprocess.run([sys.executable, __file__, "--memory-worker", json.dumps(spec)],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"memory worker {spec['name']} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({**spec, **result})
        _log(f"  memory {spec['name']:22s}: peak +{result['peak_delta_mb']:7.1f} MB during "
             f"steps (RSS {result['rss_before_mb']:.0f} MB before, process peak "
             f"{result['process_peak_rss_mb']:.0f} MB)")
    return {"description": "Peak memory per method on CPU, each in a fresh subprocess: RSS is "
                           "sampled every 2 ms by a thread (psutil) while `steps` steps run "
                           "after two warm-up steps; peak_delta_mb = peak RSS during the steps "
                           "minus RSS before them (the transient memory of a step: activations, "
                           "T x T matrices, gradients). The workers run with "
                           "MALLOC_MMAP_THRESHOLD_=131072 so that freed large buffers go back "
                           "to the OS and RSS tracks live memory. process_peak_rss_mb is the "
                           "worker's lifetime peak (VmHWM: includes importing TensorFlow, "
                           "tracing and model building). step/*: a train step "
                           "as in train_step.json; loss/*: the IUSP loss alone, forward + "
                           "backward.",
            "config": cfg, "results": rows}


# --------------------------------------------------------------------------- 4. features


def bench_features(cfg: dict) -> dict:
    from keras_iusp.data import read_dataset, synthesize
    from keras_iusp.features import build_feature_cache

    with tempfile.TemporaryDirectory(prefix="keras-iusp-bench-") as tmp:
        start = time.perf_counter()
        root = synthesize(Path(tmp) / "synth", cfg["clips"], seed=0,
                          clip_seconds=cfg["clip_seconds"], progress=False)
        synth_s = time.perf_counter() - start
        index = read_dataset(root)
        audio_s = len(index) * cfg["clip_seconds"]
        cache_dir = Path(tmp) / "cache"
        start = time.perf_counter()
        cache = build_feature_cache(index, cache_dir=cache_dir, progress=False)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        cached = build_feature_cache(index, cache_dir=cache_dir, progress=False)
        np.asarray(cached.features).sum()  # touch the memory map
        warm_s = time.perf_counter() - start
        shape = list(cache.features.shape)
    result = {"clips": len(index), "audio_seconds": audio_s, "feature_shape": shape,
              "synthesis_s": synth_s, "cold_s": cold_s, "cached_s": warm_s,
              "cold_audio_s_per_s": audio_s / cold_s, "cached_audio_s_per_s": audio_s / warm_s}
    _log(f"  features: cold {cold_s:.2f} s = {audio_s / cold_s:.0f} s of audio per s; cached "
         f"{warm_s:.3f} s = {audio_s / warm_s:.0f} s of audio per s")
    return {"description": "Log-mel feature extraction throughput (seconds of audio per wall "
                           "second). cold: build_feature_cache on a fresh synthetic SONYC-UST "
                           "folder (22.05 kHz WAV decoding, resampling to 16 kHz, tf.signal "
                           "log-mel, writing the memory-mapped cache); cached: the second call, "
                           "which finds the cache and memory-maps it (and reads every value "
                           "once). Synthesis time is reported but not counted.",
            "config": cfg, "results": result}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~2 minute run")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=None,
                        help="override the timed repeats of the loss and train-step sections")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_worker:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
        return 0

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    sizes = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.repeats:
        for section in ("loss", "step", "fullrate"):
            sizes[section]["repeats"] = args.repeats
    args.out.mkdir(parents=True, exist_ok=True)
    runners = {"loss": bench_loss, "step": bench_step, "memory": bench_memory,
               "features": bench_features, "fullrate": bench_fullrate}
    for section in sections:
        _log(f"[{section}]")
        start = time.perf_counter()
        info = machine_info()
        body = runners[section](sizes[section])
        info["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        doc = {"benchmark": FILE_NAMES[section], "quick": args.quick, "machine": info,
               "elapsed_s": time.perf_counter() - start, **body}
        path = args.out / f"{FILE_NAMES[section]}{'_quick' if args.quick else ''}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        _log(f"  -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
             f"({doc['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
