"""A small probe of distillation from an unlabelled pool: pool size 0 / 1x / 4x the labelled clips.

Quickstart-scale synthetic data (``--clips`` 4-second clips, the quickstart's split, label
noise and recipe: ``teacher_cnn`` for 12 epochs with augmentation, ``cnn_lstm_xs`` students
with the default ``DistillConfig`` for ``--epochs`` epochs), plus ``4 x`` the training clips
again from the same generator without labels (``synthesize(unlabeled=N)``). The 1x pool is the
first quarter of that pool (a CSV listing it). Every distilled student mixes pool clips into
its batches at ``--ratio`` pool clips per labelled clip, so the 1x and 4x arms do the same work
per step and differ only in how many distinct unlabelled clips they see.

Scored on the *validation* split (best-epoch micro-AUPRC, what ``keras-iusp tune`` scores);
the test split is not read. Sized for a shared 2-core machine, so it can only point at where
the pool pays; the full-scale command is in ``docs/unlabeled.md``.

    nice -n 10 .venv/bin/python benchmarks/unlabeled_probe.py --out benchmarks/results
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=240)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["kd", "iusp"])
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--work", default="/tmp/kiusp_unlabeled_probe")
    parser.add_argument("--out", default=None, help="folder for unlabeled_probe.json")
    args = parser.parse_args(argv)

    from run import machine_info

    from keras_iusp.data import read_dataset, synthesize
    from keras_iusp.distill.augment import default_augmentation
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.train.training import distill, train_teacher

    start = time.perf_counter()
    machine = machine_info()
    work = Path(args.work)
    data = work / "data"
    train_clips = round(0.6 * args.clips)
    pool_clips = 4 * train_clips
    if not (data / "unlabeled.csv").is_file():
        synthesize(data, clips=args.clips, seed=0, clip_seconds=args.clip_seconds,
                   unlabeled=pool_clips, overwrite=True, progress=False)
    names = (data / "unlabeled.csv").read_text().splitlines()[1:]
    one_x = work / "pool_1x.csv"
    one_x.write_text("audio_filename\n" + "\n".join(f"data/{n}" for n in
                                                    names[:train_clips]) + "\n")
    pools = {"0": "", "1x": str(one_x), "4x": str(data / "unlabeled.csv")}
    cache = build_feature_cache(read_dataset(data), FeatureConfig(clip_seconds=args.clip_seconds),
                                progress=False)
    n_train = int((cache.splits == "train").sum())
    teacher_dir = work / "teacher"
    if (teacher_dir / "metrics.json").is_file():
        teacher = load_run(teacher_dir)
    else:
        frames = int(cache.features.shape[1])
        teacher = train_teacher(cache, teacher_dir, epochs=args.teacher_epochs, verbose=2,
                                augmentation=default_augmentation(frames, 0))
    teacher_val = json.loads((teacher_dir / "metrics.json").read_text())["val_auprc"]

    arms = [("baseline", "0")] + [(m, p) for p in ("0", "1x", "4x") for m in args.methods]
    runs = []
    for seed in args.seeds:
        for method, pool in arms:
            run_dir = work / f"{method}_pool{pool}_seed{seed}"
            if not (run_dir / "metrics.json").is_file():
                t0 = time.perf_counter()
                config = DistillConfig(method=method, epochs=args.epochs, seed=seed,
                                       unlabeled=pools[pool], unlabeled_ratio=args.ratio)
                distill(cache, teacher if method != "baseline" else None, "cnn_lstm_xs",
                        run_dir, config, verbose=2, overwrite=True)
                (run_dir / "wall_s.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
            val = json.loads((run_dir / "metrics.json").read_text())["val_auprc"]
            wall = float((run_dir / "wall_s.txt").read_text()) \
                if (run_dir / "wall_s.txt").is_file() else None
            runs.append({"method": method, "pool": pool, "seed": seed,
                         "val_micro_auprc": round(float(val), 4), "wall_s": wall})
            print(f"== {method} pool {pool} seed {seed}: val micro-AUPRC {val:.4f}", flush=True)

    def mean(method: str, pool: str) -> float:
        return statistics.fmean(r["val_micro_auprc"] for r in runs
                                if r["method"] == method and r["pool"] == pool)

    base = mean("baseline", "0")
    summary = {}
    for method, pool in arms:
        value = mean(method, pool)
        gap = teacher_val - base
        paired = [r["val_micro_auprc"] - b["val_micro_auprc"]
                  for r in runs if r["method"] == method and r["pool"] == pool
                  for b in runs if b["method"] == "baseline" and b["seed"] == r["seed"]]
        summary[f"{method}_pool{pool}"] = {
            "val_micro_auprc_mean": round(value, 4),
            "minus_baseline_per_seed": [round(v, 4) for v in paired],
            "share_of_teacher_baseline_gap": round((value - base) / gap, 3) if gap else None,
        }
    machine["load_average_after"] = list(os.getloadavg())
    report = {
        "benchmark": "unlabeled_probe",
        "command": "nice -n 10 .venv/bin/python benchmarks/unlabeled_probe.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "description": __doc__.split("\n\n")[0] + " See the module docstring.",
        "machine": machine,
        "shared_machine": "2 CPU cores shared with other jobs (see load_average)",
        "elapsed_s": round(time.perf_counter() - start, 1),
        "config": {"clips": args.clips, "clip_seconds": args.clip_seconds,
                   "train_clips": n_train, "pool_clips": {"0": 0, "1x": train_clips,
                                                          "4x": pool_clips},
                   "unlabeled_ratio": args.ratio, "epochs": args.epochs,
                   "teacher_epochs": args.teacher_epochs, "seeds": args.seeds,
                   "student": "cnn_lstm_xs", "split": "validate",
                   "validate_clips": int((cache.splits == "validate").sum())},
        "teacher_val_micro_auprc": round(float(teacher_val), 4),
        "summary": summary,
        "runs": runs,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        path = Path(args.out) / "unlabeled_probe.json"
        atomic_write_text(path, text + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
