"""Write the trials record (``trials.json``'s format) of every study in a ``tune --storage``
database, finished or not: what a search that was stopped reached, method by method.

    python benchmarks/real_audio/tuning_record.py sqlite:///runs/real_audio_tune/studies.db \
        --budget 3 --out docs/results/real_audio_tune/trials.json
"""

from __future__ import annotations

import argparse
import json
import sys

import optuna

from keras_iusp.experiments.tune import method_summary
from keras_iusp.utils.atomic import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storage", help="the --storage URL the searches used")
    parser.add_argument("--budget", type=int, required=True, help="trials per method (--trials)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record: dict = {"storage": args.storage, "budget": args.budget, "split": "validate",
                    "methods": {}}
    for name in sorted(optuna.get_all_study_names(args.storage)):
        study = optuna.load_study(study_name=name, storage=args.storage)
        states = [t.state.name for t in study.trials]
        summary = method_summary(optuna, study, args.budget)
        record["methods"][name] = {**(summary or {}),
                                   "states": {s: states.count(s) for s in sorted(set(states))}}
    atomic_write_text(args.out, json.dumps(record, indent=1))
    print(f"{args.out}: {', '.join(record['methods']) or 'no studies'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
