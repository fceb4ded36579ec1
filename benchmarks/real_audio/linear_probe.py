"""How much a linear model on clip statistics of the log-mel gets: a floor for every student.

Diagnosis for the real-recordings benchmark (docs/real_audio.md), read from the feature cache a
grid run leaves beside the data; it trains no network and reads no test label. For each set of
per-band clip statistics over time (mean, standard deviation, maximum, 90th percentile, and
combinations), one L2-regularised logistic regression per class (scikit-learn) is fitted on the
train split's labels; its inverse regularisation ``C`` is chosen by 5-fold cross-validation on
the train split (micro-AUPRC), never on validation. Reported: the chosen ``C``, micro-AUPRC on
the train clips (its fit) and on the validation split, the parameter count, and the chance level
(label density) of each split.

A student that scores below such a probe on validation, and fits its own training clips worse
than it, is limited by what its architecture or optimisation extracts, not by the labels or the
amount of audio. Usage::

    python benchmarks/real_audio/linear_probe.py --data runs/data/real_audio \\
        --out benchmarks/results/real_audio_linear_probe.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from keras_iusp.features.cache import load_feature_cache  # noqa: E402 (after the path set-up)
from keras_iusp.utils.atomic import atomic_write_text  # noqa: E402

#: Per-band statistics over time, each ``[clips, frames, bands] -> [clips, bands]``.
STATISTICS = {
    "mean": lambda x: x.mean(axis=1),
    "std": lambda x: x.std(axis=1),
    "max": lambda x: x.max(axis=1),
    "p90": lambda x: np.percentile(x, 90, axis=1),
}
FEATURE_SETS = (("mean",), ("std",), ("max",), ("p90",), ("mean", "std"), ("mean", "max"),
                ("mean", "std", "max", "p90"))
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
FOLDS = 5


def _fail(message: str) -> None:
    print(f"linear_probe: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _feature_cache_dir(data: Path) -> Path:
    found = [p.parent for p in sorted((data / ".keras-iusp-cache").glob("*/meta.json"))]
    if len(found) != 1:
        _fail(f"--data {data}: expected one feature cache under {data}/.keras-iusp-cache "
              f"(run a grid or `keras-iusp features` on it first), found {len(found)}")
    return found[0]


def _micro_auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(average_precision_score(labels.ravel(), scores.ravel()))


def _fit_scores(x_fit, y_fit, x_eval, c: float) -> np.ndarray:
    """Decision scores on ``x_eval`` of one standardised logistic regression per class."""
    columns = []
    for k in range(y_fit.shape[1]):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        columns.append(model.fit(x_fit, y_fit[:, k]).decision_function(x_eval))
    return np.stack(columns, axis=1)


def _cv_auprc(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> float:
    scores = np.zeros(y.shape, np.float64)
    for fit, held in KFold(FOLDS, shuffle=True, random_state=seed).split(x):
        scores[held] = _fit_scores(x[fit], y[fit], x[held], c)
    return _micro_auprc(y, scores)


def probe(features_train, labels_train, features_val, labels_val, names, seed: int) -> dict:
    """Choose ``C`` by cross-validation on train, refit on all of train, score train and val."""
    x_train = np.concatenate([STATISTICS[n](features_train) for n in names], axis=1)
    x_val = np.concatenate([STATISTICS[n](features_val) for n in names], axis=1)
    cv = {c: _cv_auprc(x_train, labels_train, c, seed) for c in C_GRID}
    best = max(C_GRID, key=lambda c: cv[c])
    return {
        "statistics": list(names),
        "parameters": int((x_train.shape[1] + 1) * labels_train.shape[1]),
        "cv_train_micro_auprc": {str(c): round(v, 4) for c, v in cv.items()},
        "C": best,
        "train_fit_micro_auprc": round(
            _micro_auprc(labels_train, _fit_scores(x_train, labels_train, x_train, best)), 4),
        "validate_micro_auprc": round(
            _micro_auprc(labels_val, _fit_scores(x_train, labels_train, x_val, best)), 4),
    }


def write_result(out: Path, result: dict, start: float) -> None:
    """Add the wall time since ``start`` and the machine, then write ``out`` atomically."""
    result = {**result, "wall_s": round(time.perf_counter() - start, 1),
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a built benchmark folder")
    parser.add_argument("--out", required=True, type=Path, help="result JSON")
    parser.add_argument("--seed", type=int, default=0, help="cross-validation folds' seed")
    args = parser.parse_args()
    if not args.data.is_dir():
        _fail(f"--data {args.data}: not a folder")
    cache = load_feature_cache(_feature_cache_dir(args.data))
    start = time.perf_counter()
    x_train, y_train = (np.asarray(a, np.float32) for a in cache.split("train"))
    x_val, y_val = (np.asarray(a, np.float32) for a in cache.split("validate"))
    if len(x_train) == 0 or len(x_val) == 0:
        _fail(f"--data {args.data}: the feature cache needs train and validate clips")
    rows = []
    for names in FEATURE_SETS:
        rows.append(probe(x_train, y_train, x_val, y_val, names, args.seed))
        print(f"{'+'.join(names):>18}: C {rows[-1]['C']:<6} train fit "
              f"{rows[-1]['train_fit_micro_auprc']:.3f}  validation "
              f"{rows[-1]['validate_micro_auprc']:.3f}", flush=True)
    result = {
        "command": "python benchmarks/real_audio/linear_probe.py " + " ".join(sys.argv[1:]),
        "features": {"shape": list(cache.features.shape), "cache": cache.path.name},
        "class_names": list(cache.class_names),
        "chance_micro_auprc": {"train": round(float(y_train.mean()), 4),
                               "validate": round(float(y_val.mean()), 4)},
        "selection": f"C by {FOLDS}-fold cross-validation on the train split (seed {args.seed}); "
                     "validation is only scored; the test split is not read",
        "probes": rows,
    }
    write_result(args.out, result, start)


if __name__ == "__main__":
    main()
