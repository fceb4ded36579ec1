"""Teacher pooling probe: is a teacher's weak class a pooling problem?

The paper-scale teacher (``teacher_cnn``, mean pooling over time) scored 0.47 validation AP on
``non-machinery-impact`` against 0.85-1.00 on every other class, and distillation copied that
weakness into the students. The synthetic ``non-machinery-impact`` events are one or two
isolated transients in a 10-s clip, and the teacher's CNN sees only a few hundred milliseconds
around each frame, so averaging its frames over the whole clip dilutes the evidence.

This probe checks that without training anything. For a teacher whose head is
``time_pool -> logits`` with a mean pool (a linear head on the mean of ``embedding`` frames), the
per-frame projections ``embedding_t @ W`` are exact, and their mean over time plus the bias *is*
the model's output. Pooling the projections by ``max`` or ``mean + max`` instead (plus the bias,
once) shows what another clip pooling could find in the same features. (It is not what a
``teacher_cnn_meanmax`` head computes, which takes the max of the embedding before ``W``.)
Any further teacher runs given (e.g. one trained
with ``teacher_cnn_meanmax``) are scored as they are. Validation split only.

Students work the same way (``--runs``): a CNN-LSTM student's head mean-pools its ``lstm``
frames. Re-pooling them by max asks whether a student sees an event in some frame but does not
carry it through the clip, where the mean would count it.

Results go to ``benchmarks/results/teacher_pooling_probe.json`` (``--out`` for another file).

Usage (the paper-scale benchmark's data and teachers)::

    python benchmarks/teacher_pooling_probe.py --data runs/paper/data \\
        --teachers runs/paper/teacher runs/paper_mm/teacher
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def _scores(labels, logits, class_names) -> dict:
    """Micro-AUPRC (the project's metric) and per-class AP of clip logits."""
    import numpy as np

    from keras_iusp.metrics import micro_auprc, per_class_ap

    probs = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    return {"micro_auprc": float(micro_auprc(labels, probs)),
            "per_class_ap": dict(zip(class_names, map(float, per_class_ap(labels, probs))))}


def _frame_projections(model, features, batch_size: int = 16):
    """``([N, T, C], [C])``: per-frame ``frames @ W`` of a mean-pooled linear head, and its
    bias ``b``. Pooling the projections over time and adding ``b`` once gives clip logits; for
    the mean this is the model's own output (exact at inference)."""
    import numpy as np
    import tf_keras as keras

    # the frames the head pools: the teacher's embedding, a CNN-LSTM's lstm output, ...
    embed = keras.Model(model.input, model.get_layer("time_pool").input)
    kernel, bias = model.get_layer("logits").get_weights()
    frames = np.concatenate([embed(np.asarray(features[i:i + batch_size]), training=False).numpy()
                             for i in range(0, len(features), batch_size)])
    return frames @ kernel, bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (annotations.csv, audio/)")
    parser.add_argument("--teachers", "--runs", nargs="+", required=True, dest="teachers",
                        help="trained run folders (teachers, or students to compare the same way)")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "teacher_pooling_probe.json"))
    args = parser.parse_args()

    import numpy as np
    import tf_keras as keras

    from keras_iusp.data import read_dataset
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.utils.atomic import atomic_write_text

    cache = build_feature_cache(read_dataset(args.data, "majority"),
                                FeatureConfig(clip_seconds=args.clip_seconds))
    x_va, y_va = cache.split("validate")
    names = list(cache.class_names)
    teachers = []
    for path in args.teachers:
        run = load_run(path)
        model = run.model
        logits = np.concatenate([model(np.asarray(x_va[i:i + 16]), training=False).numpy()
                                 for i in range(0, len(x_va), 16)])
        entry = {"run": str(path), "model": run.info.get("model_name", model.name),
                 "as_trained": _scores(y_va, logits, names)}
        pool = model.get_layer("time_pool")
        if isinstance(pool, keras.layers.GlobalAveragePooling1D):
            proj, bias = _frame_projections(model, x_va)
            mean, peak = proj.mean(axis=1), proj.max(axis=1)
            # the re-derived mean must be the model's own output, or the probe measures nothing
            entry["frame_logits_max_abs_error"] = float(np.max(np.abs(mean + bias - logits)))
            entry["repooled"] = {
                "mean": _scores(y_va, mean + bias, names),
                "max": _scores(y_va, peak + bias, names),
                "mean+max": _scores(y_va, mean + peak + bias, names),
            }
        teachers.append(entry)
        print(f"{path}: micro-AUPRC {entry['as_trained']['micro_auprc']:.3f}; per class "
              + ", ".join(f"{k} {v:.2f}" for k, v in entry["as_trained"]["per_class_ap"].items()),
              flush=True)
        for how, s in entry.get("repooled", {}).items():
            print(f"  per-frame logits pooled by {how}: micro {s['micro_auprc']:.3f}; "
                  + ", ".join(f"{k} {v:.2f}" for k, v in s["per_class_ap"].items()), flush=True)
    result = {
        "benchmark": "teacher_pooling_probe",
        "description": "Validation micro-AUPRC and per-class AP of each teacher as trained; for "
                       "a mean-pooled linear head also of its exact per-frame logits pooled "
                       "over time by mean (= the model), max and mean+max. No training.",
        "command": "python benchmarks/teacher_pooling_probe.py --data " + args.data
                   + " --teachers " + " ".join(args.teachers)
                   + f" --clip-seconds {args.clip_seconds}",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "data": {"validate_clips": int(len(x_va)), "frames": int(x_va.shape[1])},
        "teachers": teachers,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
