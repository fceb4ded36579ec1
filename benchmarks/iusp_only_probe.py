"""IUSP-only probe: how far does the IUSP term alone move a fresh student towards the teacher?

Before blaming a loss weight, measure what the loss term does to the quantity it targets: a
fresh student is trained on the IUSP term *alone* (no labels, no KD), and its mean IUSP distance
to the teacher on the validation clips is measured in every form before and after, whatever
form was trained. A form whose own distance hardly moves cannot transfer temporal structure,
whatever weight it gets beside BCE and KD.

Teacher outputs come from the teacher-output cache (computed once per clip), so each probe
costs a student's training only. Results go to ``benchmarks/results/iusp_only_probe.json``.

Usage (the paper-scale benchmark's data and teacher)::

    keras-iusp experiment --config configs/experiment_paper.toml --out runs/paper --until teacher
    python benchmarks/iusp_only_probe.py --data runs/paper/data --teacher runs/paper/teacher \\
        --clip-seconds 10 --forms cosine paper --seeds 0 1 2
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


def _layer_outputs(model, layer: str, features, batch_size: int = 32):
    import numpy as np
    import tf_keras as keras

    probe = keras.Model(model.input, model.get_layer(layer).output)
    return np.concatenate([probe(np.asarray(features[i:i + batch_size]), training=False).numpy()
                           for i in range(0, len(features), batch_size)])


def _distances(t_out, s_out, forms) -> dict[str, float]:
    """Mean per-clip IUSP distance in each form (the exact low-rank path; no T x T maps)."""
    import numpy as np

    from keras_iusp.distill.losses import iusp_loss

    out = {}
    for form in forms:
        values = [iusp_loss(t_out[i:i + 16], s_out[i:i + 16], form=form).numpy()
                  for i in range(0, len(t_out), 16)]
        out[form] = float(np.mean(np.concatenate(values)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (annotations.csv, audio/)")
    parser.add_argument("--teacher", required=True, help="trained teacher run folder")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--student", default="cnn_lstm_xs")
    parser.add_argument("--teacher-layer", default=None, help="default: the method default")
    parser.add_argument("--student-layer", default=None, help="default: the family default")
    parser.add_argument("--forms", nargs="+", default=["cosine", "paper"],
                        help="forms to train (each is measured in every form)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "iusp_only_probe.json"))
    args = parser.parse_args()

    import tf_keras as keras

    from keras_iusp.data import read_dataset
    from keras_iusp.distill.distillation import IUSPDistillation
    from keras_iusp.distill.distiller import Distiller
    from keras_iusp.distill.losses import IUSP_FORMS
    from keras_iusp.distill.teacher_targets import teacher_outputs
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.features.pipeline import make_dataset
    from keras_iusp.models import MODEL_SPECS, build_model
    from keras_iusp.train.recipe import DEFAULT_STUDENT_LAYER, DEFAULT_TEACHER_LAYER
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.utils.atomic import atomic_write_text

    cache = build_feature_cache(read_dataset(args.data, "majority"),
                                FeatureConfig(clip_seconds=args.clip_seconds))
    teacher = load_run(args.teacher)
    t_layer = args.teacher_layer or DEFAULT_TEACHER_LAYER
    s_layer = args.student_layer or DEFAULT_STUDENT_LAYER[MODEL_SPECS[args.student].family]
    cached = teacher_outputs(teacher.model, (t_layer,), cache)
    x_tr, y_tr = cache.split("train")
    x_va, _ = cache.split("validate")
    t_val = cached.split(cache, "validate")[1]  # [logits, layer]: the layer's outputs
    forms = list(IUSP_FORMS)
    rows = []
    for form in args.forms:
        for seed in args.seeds:
            start = time.perf_counter()
            keras.utils.set_random_seed(seed)
            student = build_model(args.student, x_tr.shape[1:], len(cache.class_names),
                                  cache.stats)
            before = _distances(t_val, _layer_outputs(student, s_layer, x_va), forms)
            distiller = Distiller(teacher=teacher.model, student=student,
                                  distillation_losses=[IUSPDistillation(t_layer, s_layer,
                                                                        form=form)],
                                  distillation_loss_weights=[1.0], student_loss_weight=0.0)
            distiller.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
            train = make_dataset(x_tr, y_tr, args.batch_size, shuffle=True, seed=seed,
                                 extras=cached.split(cache, "train"))
            distiller.fit(train, epochs=args.epochs, verbose=2)
            after = _distances(t_val, _layer_outputs(student, s_layer, x_va), forms)
            row = {"trained_form": form, "seed": seed, "before": before, "after": after,
                   "own_change": after[form] / before[form] - 1.0,
                   "seconds": time.perf_counter() - start}
            rows.append(row)
            print(f"{form} seed {seed}: {form} distance {before[form]:.4g} -> {after[form]:.4g} "
                  f"({row['own_change']:+.0%})", flush=True)
    summary = {}
    for form in args.forms:
        changes = [r["own_change"] for r in rows if r["trained_form"] == form]
        summary[form] = {"mean_own_change": sum(changes) / len(changes), "seeds": len(changes)}
    result = {
        "benchmark": "iusp_only_probe",
        "description": "A fresh student trained on the IUSP term alone (student_loss_weight 0, "
                       "no KD), Adam, batch 16; mean IUSP distance to the teacher on the "
                       "validation clips in every form, before and after.",
        "command": "python benchmarks/iusp_only_probe.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if v is not None and k != "out"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "data": {"train_clips": int(len(x_tr)), "validate_clips": int(len(x_va)),
                 "frames": int(x_tr.shape[1])},
        "pair": {"teacher": [t_layer, list(t_val.shape[1:])], "student": s_layer},
        "student": args.student, "epochs": args.epochs, "learning_rate": args.learning_rate,
        "summary": summary, "runs": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
