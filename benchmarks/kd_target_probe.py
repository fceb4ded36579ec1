"""KD target probe: how much do the teacher's soft labels say beyond the hard labels?

Classic KD replaces part of the label loss by a cross-entropy against the teacher's tempered
sigmoid outputs. It can only teach the student something the labels do not already say where
those outputs *differ* from the labels the student trains on. This probe measures that gap on
the training split (what KD actually feeds the student) and on the validation split (new clips,
for comparison), without training anything:

- ``mean_abs_gap``: mean over clips and classes of ``|sigmoid(z / T) - y|``;
- ``disagree_fraction``: share of (clip, class) entries where the teacher's probability is on
  the other side of 0.5 from the label;
- ``soft_fraction``: share of entries with a probability strictly between 0.1 and 0.9, the
  entries whose target is visibly soft;
- ``mean_entropy_bits``: mean binary entropy of the teacher's probabilities (0 = hard targets);
- ``label_bce``: the teacher's binary cross-entropy against the labels (at that temperature).

On the built-in synthetic data (a ``synth_config.json`` with every clip's true events beside
``annotations.csv``) each split also gets ``vs_truth``: the same statistics against the true
labels, and ``label_error_vs_truth``, the share of label entries the crowd majority (train) or
the verified row (validate) gets wrong. Soft labels can only correct the training labels where
the teacher is nearer the truth than they are.

With ``--fold-teachers DIR`` (``keras-iusp train-fold-teachers --out DIR``) the probe adds
``train_cross_fitted``: the same statistics for the training clips as KD sees them when each
is scored by the fold teacher that did not train on it (:mod:`keras_iusp.experiments.cross_fit`).

Results go to ``benchmarks/results/kd_target_probe.json`` (``--out`` for another file).

Usage (the paper grid's teacher)::

    python benchmarks/kd_target_probe.py --data runs/paper/data --teacher runs/paper/teacher
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def target_statistics(labels, logits, temperature: float = 1.0) -> dict[str, float]:
    """The soft-target statistics above for labels ``[N, C]`` in {0, 1} and teacher logits."""
    y = np.asarray(labels, np.float64)
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64) / temperature))
    gap = np.abs(p - y)
    q = np.clip(p, 1e-12, 1 - 1e-12)
    entropy = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return {"mean_abs_gap": float(gap.mean()),
            "disagree_fraction": float(np.mean((p >= 0.5) != (y >= 0.5))),
            "soft_fraction": float(np.mean((p > 0.1) & (p < 0.9))),
            "mean_entropy_bits": float(entropy.mean()),
            "label_bce": float(bce.mean())}


def true_labels(data_dir, filenames, class_names) -> np.ndarray | None:
    """``[N, C]`` 0/1 true labels of ``filenames`` from the synthetic generator's record of
    every clip's events; None for a dataset without one (real recordings)."""
    path = Path(data_dir) / "synth_config.json"
    if not path.is_file():
        return None
    events = {c["audio_filename"]: {e["class"] for e in c["events"]}
              for c in json.loads(path.read_text())["clips"]}
    return np.array([[float(name in events[f]) for name in class_names] for f in filenames])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (annotations.csv, audio/)")
    parser.add_argument("--teacher", required=True, help="trained teacher run folder")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--fold-teachers", default=None, metavar="DIR",
                        help="also score each training clip by the fold teacher that held it "
                             "out (train-fold-teachers --out)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "kd_target_probe.json"))
    args = parser.parse_args()

    from keras_iusp.data import read_dataset
    from keras_iusp.features import build_feature_cache
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.utils.atomic import atomic_write_text

    teacher = load_run(args.teacher)
    cache = build_feature_cache(read_dataset(args.data, "majority"), teacher.feature_config)
    def recorded_val_auprc(run) -> float | None:
        path = Path(run.path) / "metrics.json"
        return json.loads(path.read_text()).get("val_auprc") if path.is_file() else None

    teacher_val = recorded_val_auprc(teacher)
    fold_vals: list = []
    splits = {}
    logits_of = {}
    for split in ("train", "validate"):
        features, _ = cache.split(split)
        logits_of[split] = teacher.model.predict(np.asarray(features, np.float32),
                                                 batch_size=16, verbose=0)
    if args.fold_teachers:
        from keras_iusp.distill.teacher_targets import check_folds
        from keras_iusp.experiments.cross_fit import held_out_folds, load_fold_teachers

        folds = load_fold_teachers(args.fold_teachers)
        fold_vals = [recorded_val_auprc(run) for run in folds]
        features, _ = cache.split("train")
        crossed = np.empty_like(logits_of["train"])
        # the check distillation applies: every training clip in exactly one fold
        held = check_folds(held_out_folds(folds, cache), len(features))
        for run, rows in zip(folds, held):
            crossed[rows] = run.model.predict(np.asarray(features[rows], np.float32),
                                              batch_size=16, verbose=0)
        logits_of["train_cross_fitted"] = crossed
    for split, logits in logits_of.items():
        base = split.replace("_cross_fitted", "")
        _, labels = cache.split(base)
        splits[split] = {"clips": int(len(labels)),
                         "label_density": float(np.mean(labels)),
                         **{f"T={t:g}": target_statistics(labels, logits, t)
                            for t in args.temperatures}}
        truth = true_labels(args.data, cache.split_filenames(base), cache.class_names)
        if truth is not None:
            splits[split]["vs_truth"] = {
                "label_error_vs_truth": float(np.mean(truth != labels)),
                **{f"T={t:g}": target_statistics(truth, logits, t)
                   for t in args.temperatures}}
        for t in args.temperatures:
            against = [("labels", splits[split]), ("truth", splits[split].get("vs_truth"))]
            for name, stats in against:
                if stats is None:
                    continue
                s = stats[f"T={t:g}"]
                print(f"{split} vs {name} T={t:g}: mean |p - y| {s['mean_abs_gap']:.4f}, disagree "
                      f"{s['disagree_fraction']:.4f}, soft {s['soft_fraction']:.4f}, entropy "
                      f"{s['mean_entropy_bits']:.4f} bits, BCE {s['label_bce']:.4f}", flush=True)
        if truth is not None:
            print(f"{split}: labels wrong vs truth on "
                  f"{splits[split]['vs_truth']['label_error_vs_truth']:.4f} of entries")
    result = {
        "benchmark": "kd_target_probe",
        "description": "No training: how far the teacher's tempered sigmoid outputs are from "
                       "the labels, per split (train labels are the crowd majority, validate "
                       "labels the verified row), i.e. what KD can add beyond the label loss.",
        "command": f"python benchmarks/kd_target_probe.py --data {args.data} --teacher "
                   f"{args.teacher} --temperatures {' '.join(f'{t:g}' for t in args.temperatures)}"
                   + (f" --fold-teachers {args.fold_teachers}" if args.fold_teachers else ""),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "teacher": {"run": args.teacher, "model": teacher.info.get("model_name")},
        "fold_teachers": args.fold_teachers,
        # each teacher's validation AUPRC at its kept epoch, as its run recorded it
        "val_auprc": {"teacher": teacher_val,
                      **{f"fold{k}": v for k, v in enumerate(fold_vals)}},
        "splits": splits,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
