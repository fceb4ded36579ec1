"""Train grid cells of an experiment config outside the grid, keeping their weights, for probes.

A grid archives run records without weights, and a probe of a student's layers
(``student_feature_probe.py``) or of another architecture (``cnn_lstm_xs_meanmax``) needs a
trained model. This script trains ``--student`` with each ``--methods`` entry's settings of
``--config`` (``ExperimentConfig.distill_config``, the grid's own recipe: one place for it) into
``OUT/METHOD/seedN``, one run at a time, skipping finished runs and resuming unfinished ones.
Nothing is evaluated on the config's ``eval_split``; the run's history holds the validation
scores that ``recipe_check.py`` compares. Two processes with different ``--seeds`` use two cores::

    python benchmarks/real_audio/train_probe_students.py --student cnn_lstm_xs_meanmax \\
        --methods baseline iusp --seeds 0 1 2 3 4 --out runs/probe/meanmax
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from keras_iusp.experiments.config import load_config  # noqa: E402 (after the path set-up)
from keras_iusp.experiments.preparation import prepare_data, prepare_teacher  # noqa: E402
from keras_iusp.train.run_folder import is_finished  # noqa: E402
from keras_iusp.train.training import distill  # noqa: E402
from keras_iusp.utils.errors import KerasIuspError  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path,
                        default=Path("configs/experiment_real_audio_test.toml"),
                        help="experiment config whose teacher, data and method settings are used "
                             "(default the real-audio test grid's)")
    parser.add_argument("--student", required=True, help="zoo student")
    parser.add_argument("--methods", nargs="+", required=True, help="methods of the config")
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    parser.add_argument("--out", required=True, type=Path, help="writes OUT/METHOD/seedN")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
        unknown = [m for m in args.methods if m not in config.grid.methods]
        if unknown:
            raise KerasIuspError(f"--methods {unknown}: not in {args.config} "
                                 f"(its methods: {config.grid.methods})")
        cache = prepare_data(config, args.out)
        teacher = prepare_teacher(config, args.out, cache)
        for seed in args.seeds:
            for method in args.methods:
                run_dir = args.out / method / f"seed{seed}"
                if is_finished(run_dir):
                    print(f"{run_dir}: finished, kept", flush=True)
                    continue
                print(f"== {args.student} {method} seed {seed} -> {run_dir}", flush=True)
                cell = config.distill_config(method, seed, args.out)
                distill(cache, teacher if config.base_method(method) != "baseline" else None,
                        args.student, run_dir, cell, verbose=2)
    except KerasIuspError as err:
        print(f"train_probe_students: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
