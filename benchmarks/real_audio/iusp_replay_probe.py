"""Replay the first epochs of the real-audio IUSP recipe with whichever keras_iusp is importable.

Run once with a checkout of an older commit first on ``PYTHONPATH`` and once with this one, on
one machine, to tell a code change from another cause (a teacher, a machine): identical per-epoch
losses and AUPRC mean the two versions train identically.

    PYTHONPATH=CHECKOUT python benchmarks/real_audio/iusp_replay_probe.py OUT_DIR \
        --data runs/data/real_audio --teacher runs/real_audio/teacher [--epochs 3]

The recipe is the ``[method.iusp]`` table of ``configs/experiment_real_audio.toml`` (seed 0).
Prints one ``RESULT`` line: the history's ``iusp``, ``kd`` and ``val_auprc`` per epoch.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import keras_iusp
from keras_iusp.data import read_sonyc

try:  # the layout since the subpackage restructuring
    from keras_iusp.features import build_feature_cache
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.saved_runs import load_run
    from keras_iusp.train.training import distill
except ImportError:  # the flat layout before it
    from keras_iusp.training import DistillConfig, distill, load_run

    from keras_iusp.data import build_feature_cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="run folder to (re)write")
    parser.add_argument("--data", required=True)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    print("keras_iusp from", Path(keras_iusp.__file__).parent)
    teacher = load_run(args.teacher)
    cache = build_feature_cache(read_sonyc(args.data), teacher.feature_config, progress=False)
    config = DistillConfig(method="iusp", epochs=args.epochs, seed=0,
                           learning_rate=0.009437997935055413, temperature=1.0,
                           student_loss_weight=0.524821628931401, iusp_weight=10.0,
                           iusp_form="cosine", student_layer="lstm", augmentation=None)
    distill(cache, teacher, "cnn_lstm_xs", out, config, verbose=0)
    history = json.loads((out / "history.json").read_text())
    print("RESULT", json.dumps({k: history[k] for k in ("iusp", "kd", "val_auprc")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
