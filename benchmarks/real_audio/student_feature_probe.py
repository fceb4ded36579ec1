"""What a trained student's own frame features hold, read by linear models with other poolings.

Diagnosis for the real-recordings benchmark (docs/real_audio.md). A student's head is a dense
layer on the *mean over time* of its ``lstm`` frames. This probe takes a finished student run,
computes the per-frame outputs of the layers named by ``--layers`` on the train and validate
splits (from the feature cache a grid run leaves beside the data), pools each over time with the
statistics of ``linear_probe.py`` (mean, standard deviation, maximum, and combinations) and fits
one L2-regularised logistic regression per class on the train split, ``C`` chosen by 5-fold
cross-validation on train only (``linear_probe.probe``). It reads no test label.

How to read it: the mean-pooled probe of ``lstm`` has the student head's form, refitted; if it
lands near the student's own validation score while the max- or std-pooled probes of the same
frames score well above it, the frames hold what the mean discards, and the head's pooling is
the bottleneck. If every pooling of the student's frames stays near its score, the frames
themselves are the limit (front end, optimisation). Usage::

    python benchmarks/real_audio/student_feature_probe.py --data runs/data/real_audio \\
        --run baseline=runs/probe/baseline_seed0 --run iusp=runs/probe/iusp_seed0 \\
        --out benchmarks/results/real_audio_student_feature_probe.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from linear_probe import _feature_cache_dir, _micro_auprc, probe, write_result  # noqa: E402

from keras_iusp.features.cache import load_feature_cache  # noqa: E402 (after the path set-up)

#: Poolings of the student's frames, as ``linear_probe.STATISTICS`` names.
FEATURE_SETS = (("mean",), ("std",), ("max",), ("mean", "max"), ("mean", "std", "max"))
BATCH = 32


def _fail(message: str) -> None:
    print(f"student_feature_probe: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def layer_frames(model, layer_names: list[str], features: np.ndarray) -> dict[str, np.ndarray]:
    """``{layer: [clips, frames, dims]}``: each named layer's output over time, in batches."""
    import tf_keras as keras

    missing = [n for n in layer_names if n not in {la.name for la in model.layers}]
    if missing:
        raise ValueError(f"layers {missing} not in {model.name}")
    outputs = [model.get_layer(n).output for n in layer_names]
    bad = [n for n, o in zip(layer_names, outputs) if len(o.shape) != 3]
    if bad:
        raise ValueError(f"layers {bad} have no [batch, time, features] output")
    sub = keras.Model(model.input, outputs)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in layer_names}
    for start in range(0, len(features), BATCH):
        out = sub(np.asarray(features[start:start + BATCH], np.float32), training=False)
        out = out if isinstance(out, list) else [out]
        for name, value in zip(layer_names, out):
            parts[name].append(np.asarray(value, np.float32))
    return {n: np.concatenate(v) for n, v in parts.items()}


def _student_score(model, features: np.ndarray, labels: np.ndarray) -> float:
    logits = np.concatenate([np.asarray(model(np.asarray(features[s:s + BATCH], np.float32),
                                              training=False))
                             for s in range(0, len(features), BATCH)])
    return _micro_auprc(labels, logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a built benchmark folder")
    parser.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR",
                        help="a finished student run (distill --out); repeatable")
    parser.add_argument("--layers", default="frames,lstm",
                        help="comma-separated layers with a time axis (default frames,lstm)")
    parser.add_argument("--out", required=True, type=Path, help="result JSON")
    parser.add_argument("--seed", type=int, default=0, help="cross-validation folds' seed")
    args = parser.parse_args()
    if not args.data.is_dir():
        _fail(f"--data {args.data}: not a folder")
    runs = {}
    for spec in args.run:
        name, sep, path = spec.partition("=")
        if not sep or not name or not (Path(path) / "model.keras").is_file():
            _fail(f"--run {spec!r}: expected NAME=RUN_DIR with a model.keras in RUN_DIR")
        runs[name] = Path(path)
    layer_names = [n for n in args.layers.split(",") if n]

    from keras_iusp.train.saved_runs import load_run

    cache = load_feature_cache(_feature_cache_dir(args.data))
    x_train, y_train = cache.split("train")
    x_val, y_val = cache.split("validate")
    start = time.perf_counter()
    rows = []
    for name, path in runs.items():
        model = load_run(path).model
        try:
            train = layer_frames(model, layer_names, x_train)
            val = layer_frames(model, layer_names, x_val)
        except ValueError as err:
            _fail(f"--layers {args.layers}: {err}")
        own = round(_student_score(model, x_val, y_val), 4)
        print(f"{name}: the student's own validation micro-AUPRC {own:.3f}", flush=True)
        for layer in layer_names:
            for stats in FEATURE_SETS:
                row = probe(train[layer], y_train, val[layer], y_val, stats, args.seed)
                row.update(run=name, layer=layer, dims=int(train[layer].shape[-1]),
                           frames=int(train[layer].shape[1]), student_validate_micro_auprc=own)
                rows.append(row)
                print(f"  {layer:>7} {'+'.join(stats):>13}: C {row['C']:<6} train fit "
                      f"{row['train_fit_micro_auprc']:.3f}  validation "
                      f"{row['validate_micro_auprc']:.3f}", flush=True)
    result = {
        "command": "python benchmarks/real_audio/student_feature_probe.py "
                   + " ".join(sys.argv[1:]),
        "runs": {n: str(p) for n, p in runs.items()},
        "selection": "C by 5-fold cross-validation on the train split; validation is only "
                     "scored; the test split is not read",
        "chance_micro_auprc": {"train": round(float(np.mean(y_train)), 4),
                               "validate": round(float(np.mean(y_val)), 4)},
        "probes": rows,
    }
    write_result(args.out, result, start)


if __name__ == "__main__":
    main()
