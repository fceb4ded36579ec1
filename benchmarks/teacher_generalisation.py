"""Where a grid's teacher (and its students) generalise: train clips, new mixtures, new sources.

Diagnosis for the real-recordings benchmark (docs/real_audio.md), read from the caches a grid run
leaves beside the data (the feature cache and the teacher-output cache of
``keras_iusp.distill.teacher_targets``), so it needs no TensorFlow and trains nothing:

- ``train``: the teacher's clip scores on its own training clips, against the crowd labels it
  was trained on and against the builder's ground truth;
- ``unlabeled``: on the pool (new mixtures of the train split's source recordings), against the
  builder's ground truth;
- ``validate``: on new mixtures of source recordings the teacher never heard, against the
  verified labels.

``--runs`` adds the same three views for trained students (run folders), which does load
TensorFlow: a student that scores as low on its own training clips as on validation is
underfitting, and no teacher signal on more clips of the same sources can be expected to fix
that. The test split is never read. Usage::

    python benchmarks/teacher_generalisation.py --data runs/data/real_audio \\
        --runs runs/real_audio/runs/cnn_lstm_xs/*/seed0 \\
        --out benchmarks/results/real_audio_teacher_generalisation.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from keras_iusp.utils.atomic import atomic_write_text  # noqa: E402 (after the path set-up)

SPLITS = ("train", "validate")


def _feature_cache(folder: Path) -> Path:
    """The one feature cache under ``folder/.keras-iusp-cache`` (refuses zero or several)."""
    found = [p.parent for p in sorted((folder / ".keras-iusp-cache").glob("*/meta.json"))]
    if len(found) != 1:
        raise SystemExit(f"teacher_generalisation: error: expected one feature cache under "
                         f"{folder}/.keras-iusp-cache, found {len(found)}")
    return found[0]


def _teacher_logits(folder: Path, features: Path, weights: str | None) -> tuple[np.ndarray, str]:
    """Cached teacher logits for ``features`` (the teacher named by ``weights`` if several)."""
    hits = {}
    for info in sorted((folder / ".keras-iusp-cache").glob("teacher-*/info.json")):
        fields = json.loads(info.read_text())
        if fields["features"] == features.name and weights in (None, fields["weights"]):
            hits.setdefault(fields["weights"], info.parent / "logits.npy")
    if len(hits) != 1:
        raise SystemExit(f"teacher_generalisation: error: expected the cached logits of one "
                         f"teacher for {features}, found {len(hits)} (name one with --weights)")
    (sha, path), = hits.items()
    return np.load(path), sha


def _truth(config: dict, filenames: list[str], class_names: list[str]) -> np.ndarray:
    """The builder's ground-truth clip labels (any event of the class in the clip)."""
    by_name = {clip["audio_filename"]: clip for clip in config["clips"]}
    labels = np.zeros((len(filenames), len(class_names)), dtype=np.int64)
    for row, filename in enumerate(filenames):
        for event in by_name[os.path.basename(filename)]["events"]:
            for name in event["classes"]:
                labels[row, class_names.index(name)] = 1
    return labels


def _scores(labels: np.ndarray, logits: np.ndarray, class_names: list[str]) -> dict:
    """Micro-AUPRC and per-class AUPRC (classes without a positive are left out)."""
    per_class = {name: round(float(average_precision_score(labels[:, c], logits[:, c])), 4)
                 for c, name in enumerate(class_names) if labels[:, c].any()}
    return {"clips": int(labels.shape[0]),
            "micro_auprc": round(float(average_precision_score(labels.ravel(),
                                                                 logits.ravel())), 4),
            "positive_rate": round(float(labels.mean()), 4), "per_class_auprc": per_class}


def _students(runs: list[Path], features: Path, pool_features: Path, views: dict,
              crowd: np.ndarray, truth: np.ndarray, pool_truth: np.ndarray,
              class_names: list[str]) -> dict:
    """Micro-AUPRC of each student run on ``views`` (split -> rows; train also against the
    ground truth) and on the pool against the ground truth."""
    # TensorFlow only when students are scored: the teacher's part reads cached logits
    from keras_iusp.train.saved_runs import load_run

    clips = np.load(features / "features.npy", mmap_mode="r")
    pool = np.load(pool_features / "features.npy", mmap_mode="r")
    out = {}
    for run in runs:
        model = load_run(run).model
        micro = {}
        for split, rows in views.items():
            logits = model.predict(np.asarray(clips[rows]), batch_size=32, verbose=0)
            micro[f"{split}_against_split_labels"] = round(float(average_precision_score(
                (crowd[rows] >= 0.5).ravel(), logits.ravel())), 4)
            if split == "train":
                micro["train_against_ground_truth"] = round(float(average_precision_score(
                    truth[rows].ravel(), logits.ravel())), 4)
        logits = model.predict(np.asarray(pool), batch_size=32, verbose=0)
        micro["unlabeled_against_ground_truth"] = round(float(average_precision_score(
            pool_truth.ravel(), logits.ravel())), 4)
        out[str(run)] = micro
        print(f"{run}: {micro}", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path,
                        help="a real-recordings benchmark built by `keras-iusp build-real-audio`, "
                             "on which a grid has trained (its caches are read)")
    parser.add_argument("--weights", help="the teacher's weights fingerprint, if several "
                                          "teachers' outputs are cached")
    parser.add_argument("--runs", nargs="*", type=Path, default=[],
                        help="student run folders to score the same way (loads TensorFlow)")
    parser.add_argument("--out", type=Path, help="write the JSON here")
    args = parser.parse_args(argv)
    config_path = args.data / "real_audio_config.json"
    if not config_path.is_file():
        parser.error(f"--data: expected a folder with real_audio_config.json, got {args.data}")
    config = json.loads(config_path.read_text())

    features = _feature_cache(args.data)
    meta = json.loads((features / "meta.json").read_text())
    class_names = list(meta["class_names"])
    logits, sha = _teacher_logits(args.data, features, args.weights)
    splits = np.asarray(meta["splits"])
    filenames = list(meta["filenames"])
    crowd = np.load(features / "labels.npy")
    truth = _truth(config, filenames, class_names)
    result = {"benchmark": str(args.data), "teacher_weights_sha256": sha, "test_split": "not read"}
    for split in SPLITS:
        rows = np.flatnonzero(splits == split)
        result[split] = {"against_split_labels": _scores((crowd[rows] >= 0.5).astype(np.int64),
                                                         logits[rows], class_names)}
        if split == "train":
            result[split]["against_ground_truth"] = _scores(truth[rows], logits[rows],
                                                            class_names)
            result[split]["crowd_label_error_rate"] = round(
                float(((crowd[rows] >= 0.5) != truth[rows].astype(bool)).mean()), 4)

    pool_features = _feature_cache(args.data / "unlabeled")
    pool_meta = json.loads((pool_features / "meta.json").read_text())
    pool_logits, _ = _teacher_logits(args.data / "unlabeled", pool_features, sha)
    pool_truth = _truth(config, list(pool_meta["filenames"]), class_names)
    result["unlabeled"] = {"against_ground_truth": _scores(pool_truth, pool_logits, class_names)}
    if args.runs:
        views = {split: np.flatnonzero(splits == split) for split in SPLITS}
        result["students"] = _students(args.runs, features, pool_features, views, crowd,
                                       truth, pool_truth, class_names)

    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
