"""What makes a cached-teacher CNN-LSTM distillation step faster on CPU, with equal results.

One IUSP distillation step (KD + IUSP on the default layers, the teacher's outputs read from the
cache as ``keras-iusp distill`` does) of each student on 10-second clips (998 frames, 64 mels),
in these variants of the *same* model and recipe:

- ``default``: what ``Distiller.compile`` gives today (``tf.function``; tf_keras's LSTM picks its
  fused ``standard_lstm`` while-loop on CPU).
- ``jit``: ``compile(jit_compile=True)``: the whole train step compiled by XLA.
- ``unroll``: the LSTM rebuilt with ``unroll=True`` (the generic cell, unrolled in the graph;
  weights copied), with and without ``jit``.
- ``batch32``: the default step at batch 32, timed per clip (the recipe's batch is 16, so this
  one changes the optimisation; reported, not adoptable as "equal results").

Equal results: every variant starts from the same weights and trains ``--check-steps`` steps on
the same batches; its per-step losses must match the default's to ``rtol`` (float tolerance).
Timing: ``Distiller.train_on_batch`` on fixed tensors, rounds interleaved across variants so that
load from other processes hits all alike; medians. Epoch time is ``steps_per_epoch`` (480
training clips, the real-audio benchmark's size) times the median step. GMAC/s counts
``3 x`` the forward MACs of the student per clip (forward + backward), as in the issue.

    nice -n 10 .venv/bin/python benchmarks/train_step_speed.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keras_iusp.utils.atomic import atomic_write_text  # noqa: E402 (after the path set-up)

TRAIN_CLIPS = 480


def _with_unroll(model):
    """The same model with ``unroll=True`` on its LSTM layers, weights copied."""
    import tf_keras as keras

    from keras_iusp.models.layers import FeatureStandardization

    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "LSTM":
            layer["config"]["unroll"] = True
    clone = keras.Model.from_config(
        config, custom_objects={"keras_iusp>FeatureStandardization": FeatureStandardization,
                                "FeatureStandardization": FeatureStandardization})
    clone.set_weights(model.get_weights())
    return clone


def _distiller(teacher, student, jit: bool):
    import tf_keras as keras

    from keras_iusp.distill.distiller import Distiller
    from keras_iusp.train.recipe import DistillConfig, distillation_losses

    items, weights, w_s = distillation_losses(DistillConfig(method="iusp"), "cnn_lstm")
    d = Distiller(teacher, student, items, weights, w_s)
    d.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
    return d


def run(students: list[str], rounds: int, steps: int, check_steps: int, rtol: float,
        variants: list[str], clip_seconds: float = 10.0) -> dict:
    import numpy as np
    import tf_keras as keras

    from keras_iusp.distill.distiller import feature_extractor
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.models import build_model, model_summary

    frames, mels = FeatureConfig(clip_seconds=clip_seconds).num_frames(), 64
    rng = np.random.default_rng(0)
    batches = {b: [(rng.normal(size=(b, frames, mels)).astype(np.float32),
                    (rng.random((b, 8)) < 0.3).astype(np.float32)) for _ in range(check_steps)]
               for b in (16, 32)}
    keras.utils.set_random_seed(0)
    teacher = build_model("teacher_cnn", (frames, mels))
    out = {}
    for name in students:
        keras.utils.set_random_seed(1)
        base = build_model(name, (frames, mels))
        init = base.get_weights()
        macs = model_summary(base)["macs"]
        made, prepared = {}, {}
        for variant in variants:
            t0 = time.perf_counter()
            student = _with_unroll(base) if variant.startswith("unroll") else \
                keras.models.clone_model(base)
            student.set_weights(init)
            d = _distiller(teacher, student, jit=variant.endswith("jit"))
            ext = feature_extractor(teacher, d.teacher_output_layers)
            batch = 32 if variant == "batch32" else 16
            data = []
            for x, y in batches[batch]:
                t_out = ext(x, training=False)
                t_out = t_out if isinstance(t_out, list) else [t_out]
                data.append(((x, *[t.numpy() for t in t_out]), y))
            losses = [float(d.train_on_batch(*b, return_dict=True)["loss"]) for b in data]
            made[variant] = d
            prepared[variant] = {"data": data, "losses": losses, "batch": batch,
                                 "build_and_first_steps_s": time.perf_counter() - t0,
                                 "times": []}
            print(f"{name} {variant}: ready in {prepared[variant]['build_and_first_steps_s']:.1f}"
                  f" s, losses {[round(v, 6) for v in losses]}", flush=True)
        for _ in range(rounds):
            for variant in variants:
                d, p = made[variant], prepared[variant]
                for s in range(steps):
                    x, y = p["data"][s % len(p["data"])]
                    t0 = time.perf_counter()
                    d.train_on_batch(x, y)
                    p["times"].append(time.perf_counter() - t0)
        ref = prepared["default"]["losses"]
        ref_step = statistics.median(prepared["default"]["times"])
        rows = {}
        for variant in variants:
            p = prepared[variant]
            step = statistics.median(p["times"])
            per_clip = step / p["batch"]
            steps_per_epoch = -(-TRAIN_CLIPS // p["batch"])
            equal = (p["batch"] == 16 and bool(np.allclose(p["losses"], ref, rtol=rtol,
                                                           atol=0.0)))
            rows[variant] = {
                "batch": p["batch"], "step_s": round(step, 5),
                "min_step_s": round(min(p["times"]), 5),
                "per_clip_s": round(per_clip, 6),
                "epoch_s": round(step * steps_per_epoch, 3),
                "gmac_per_s": round(3 * macs * p["batch"] / step / 1e9, 2),
                "speedup_per_clip": round((ref_step / 16) / per_clip, 3),
                "first_losses": [round(v, 7) for v in p["losses"]],
                "max_rel_loss_diff": float(np.max(np.abs(np.subtract(p["losses"], ref[:len(
                    p["losses"])])) / np.abs(ref))) if p["batch"] == 16 else None,
                "equal_results": equal,
                "build_and_first_steps_s": round(p["build_and_first_steps_s"], 1),
                "timed_steps": len(p["times"]),
            }
        out[name] = {"forward_macs_per_clip": int(macs), "variants": rows}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", nargs="+", default=["cnn_lstm_xs", "cnn_lstm_s"])
    parser.add_argument("--variants", nargs="+",
                        default=["default", "jit", "unroll", "unroll_jit", "batch32"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--check-steps", type=int, default=3)
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--out", default=None, help="folder for train_step_speed.json")
    args = parser.parse_args(argv)
    if "default" not in args.variants:
        parser.error("--variants must include default (the reference)")
    from run import machine_info

    machine = machine_info()
    start = time.perf_counter()
    results = run(args.students, args.rounds, args.steps, args.check_steps, args.rtol,
                  args.variants, args.clip_seconds)
    machine["load_average_after"] = list(os.getloadavg())
    report = {
        "benchmark": "train_step_speed",
        "command": "nice -n 10 .venv/bin/python benchmarks/train_step_speed.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "description": __doc__.split("\n\n")[0] + " See the module docstring.",
        "machine": machine,
        "shared_machine": "2 CPU cores shared with other jobs during the run (see "
                          "load_average): compare variants of one run, medians of "
                          "interleaved rounds",
        "elapsed_s": round(time.perf_counter() - start, 1),
        "config": {"clip_seconds": args.clip_seconds, "method": "iusp", "teacher_cache": True,
                   "rounds": args.rounds, "steps_per_round": args.steps,
                   "check_steps": args.check_steps, "rtol": args.rtol,
                   "train_clips_for_epoch": TRAIN_CLIPS},
        "results": results,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        path = Path(args.out) / "train_step_speed.json"
        atomic_write_text(path, text + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
