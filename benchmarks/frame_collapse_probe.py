"""Frame collapse probe: what does IUSP do to the student's frames, beyond lowering its distance?

The paper grid's IUSP students lost the isolated-transient class (``non-machinery-impact``)
even when their ``lstm`` frames were max-pooled (``student_pooling_probe.json``), so their frames
no longer single the transient out. One mechanism would do that on its own: the teacher's
``embedding`` frames are ReLU outputs, so every pair of them has a cosine similarity >= 0, and if
their clip maps are mostly large positive values, a student that copies them must make all its
frames point the same way, transient frames included.

This probe measures, per model and on the validation split, without training anything:

- ``mean_offdiag_cosine``: the mean cosine similarity of two different frames of a clip (the
  mean off-diagonal entry of the cosine-form IUSP map), averaged over clips. 1 means every frame
  of a clip is the same direction.
- ``effective_rank``: the participation ratio ``(Σσ²)² / Σσ⁴`` of the singular values of a
  clip's frame matrix after removing its mean frame, averaged over clips: how many directions
  the frames use to differ from each other (1 = a single direction).

Teacher runs are read at ``embedding``, students at ``--student-layer`` (default ``lstm``).
Results go to ``benchmarks/results/frame_collapse_probe.json`` (``--out`` for another file).

Usage (the paper grid's runs)::

    python benchmarks/frame_collapse_probe.py --data runs/paper/data --teacher runs/paper/teacher \\
        --runs runs/paper/runs/cnn_lstm_xs/*/seed* runs/paper/runs/cnn_lstm_s/*/seed*
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


def frame_statistics(frames) -> dict[str, float]:
    """``mean_offdiag_cosine`` and ``effective_rank`` of frames ``[N, T, D]`` (means over clips).

    Frames with no energy (all zero, e.g. silent ReLU frames) are left out of a clip's cosine
    mean, as the IUSP map gives them zero rows; a clip with fewer than two frames with energy
    has no such mean and is left out of it. A clip whose centred frames are zero up to rounding
    (all frames equal) has effective rank 0.
    """
    import numpy as np

    frames = np.asarray(frames, np.float64)
    frames = frames.reshape(frames.shape[0], frames.shape[1], -1)
    cosines, ranks = [], []
    for q in frames:
        norms = np.linalg.norm(q, axis=1)
        live = q[norms > 1e-6] / norms[norms > 1e-6, None]
        n = len(live)
        if n >= 2:
            total = np.square(live.sum(axis=0)).sum()  # Σ_ij cos(i, j), diagonal included
            cosines.append((total - n) / (n * (n - 1)))
        s2 = np.square(np.linalg.svd(q - q.mean(axis=0), compute_uv=False))
        flat = s2.sum() <= 1e-20 * max(np.square(q).sum(), 1e-300)  # rounding noise only
        ranks.append(0.0 if flat else float(s2.sum() ** 2 / np.square(s2).sum()))
    return {"mean_offdiag_cosine": float(np.mean(cosines)) if cosines else float("nan"),
            "effective_rank": float(np.mean(ranks))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (annotations.csv, audio/)")
    parser.add_argument("--teacher", required=True, help="trained teacher run folder")
    parser.add_argument("--runs", nargs="+", required=True, help="student run folders")
    parser.add_argument("--student-layer", default="lstm")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "frame_collapse_probe.json"))
    args = parser.parse_args()

    import numpy as np

    from keras_iusp.data import read_dataset
    from keras_iusp.experiments.distances import layer_output_batches
    from keras_iusp.features import build_feature_cache
    from keras_iusp.train.recipe import DEFAULT_TEACHER_LAYER
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.utils.atomic import atomic_write_text

    # the features the runs were trained on: the teacher's (students take theirs from it)
    cache = build_feature_cache(read_dataset(args.data, "majority"),
                                load_run(args.teacher).feature_config)
    x_va, _ = cache.split("validate")

    def stats(path: str, layer: str) -> dict:
        run = load_run(path)
        out = np.concatenate([b.numpy() for b in layer_output_batches(run.model, layer, x_va)])
        entry = {"run": str(path), "model": run.info.get("model_name", run.model.name),
                 "method": run.info.get("hyperparameters", {}).get("method", "teacher"),
                 "layer": layer, "frames": int(out.shape[1]),
                 "width": int(np.prod(out.shape[2:])), **frame_statistics(out)}
        print(f"{path} [{layer}, {entry['frames']} x {entry['width']}]: mean off-diagonal cosine "
              f"{entry['mean_offdiag_cosine']:.3f}, effective rank {entry['effective_rank']:.2f}",
              flush=True)
        return entry

    teacher = stats(args.teacher, DEFAULT_TEACHER_LAYER)
    students = [stats(p, args.student_layer) for p in args.runs]
    groups: dict[str, list[dict]] = {}
    for s in students:
        # a grid's runs/<student>/<method or variant>/seed<k>: grouped by the folder, so that
        # two variants of one method are not pooled
        run = Path(s["run"])
        arm = run.parent.name if run.name.startswith("seed") else s["method"]
        groups.setdefault(f"{s['model']}/{arm}", []).append(s)
    summary = {k: {"runs": len(v),
                   "mean_offdiag_cosine": float(np.mean([s["mean_offdiag_cosine"] for s in v])),
                   "effective_rank": float(np.mean([s["effective_rank"] for s in v]))}
               for k, v in groups.items()}
    for k, v in summary.items():
        print(f"{k} ({v['runs']} runs): mean off-diagonal cosine {v['mean_offdiag_cosine']:.3f}, "
              f"effective rank {v['effective_rank']:.2f}")
    result = {
        "benchmark": "frame_collapse_probe",
        "description": "Validation split, no training: mean off-diagonal cosine similarity of a "
                       "clip's frames and the effective rank (participation ratio) of its "
                       "centred frames, averaged over clips; the teacher at its embedding "
                       "layer, students at the given layer.",
        "command": "python benchmarks/frame_collapse_probe.py --data " + args.data
                   + " --teacher " + args.teacher + " --runs " + " ".join(args.runs)
                   + f" --student-layer {args.student_layer}",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "data": {"validate_clips": int(len(x_va)), "frames": int(x_va.shape[1])},
        "teacher": teacher,
        "summary": summary,
        "runs": students,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
