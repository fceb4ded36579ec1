"""Validation average precision per class of finished runs (teacher and students), as JSON.

    python benchmarks/real_audio/per_class_ap.py --data runs/data/real_audio \
        --run teacher=runs/real_audio/teacher --run baseline=RUN ... --out RESULT.json

Every run is scored on the ``--split`` clips (default ``validate``) of the data's feature cache
built with the first run's feature config; no run is trained.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from keras_iusp.data import read_sonyc
from keras_iusp.features import build_feature_cache
from keras_iusp.metrics import micro_auprc, per_class_ap
from keras_iusp.train.saved_runs import load_run
from keras_iusp.utils.atomic import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="SONYC-UST-format dataset folder")
    parser.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR",
                        help="a run to score (repeat)")
    parser.add_argument("--split", default="validate", choices=["validate", "test"])
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    named = []
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--run {item!r}: expected NAME=RUN_DIR")
        named.append((name, path))
    runs = [(name, path, load_run(path)) for name, path in named]
    cache = build_feature_cache(read_sonyc(args.data), runs[0][2].feature_config, progress=False)
    x, y = cache.split(args.split)
    result = {"command": "python benchmarks/real_audio/per_class_ap.py " + " ".join(sys.argv[1:]),
              "split": args.split, "clips": int(len(y)), "class_names": list(cache.class_names),
              "positives": y.sum(0).astype(int).tolist(), "runs": {}}
    for name, path, run in runs:
        scores = run.model.predict(np.asarray(x), batch_size=16, verbose=0)
        ap = per_class_ap(y, scores)
        result["runs"][name] = {"run": path, "micro_auprc": float(micro_auprc(y, scores)),
                                "per_class_ap": {c: None if np.isnan(v) else float(v)
                                                 for c, v in zip(cache.class_names, ap)}}
        print(f"{name:10s} micro {result['runs'][name]['micro_auprc']:.3f}", flush=True)
    atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
