"""Paired validation comparison of finished runs, for recipes that no grid config trains.

Each ``--arm NAME=GLOB`` names the run folders of one recipe (``GLOB`` matches ``.../seedN``
folders, live runs or the records a grid archives: only ``history.json`` is read). A run's
score is the validation micro-AUPRC of its kept epoch
(``keras_iusp.experiments.statistics.kept_epoch``: the epoch whose weights the run kept; the
number behind the grid reports' "validation micro-AUPRC" column). Each ``--compare A:B``
gives ``A - B`` seed by seed, over the seeds both arms have, with
``keras_iusp.experiments.statistics.paired_difference`` (95 % paired t-interval). Nothing is
trained or evaluated, and no test label is read. Used for the default recipe's check and the
two-teacher comparison on the real-recordings benchmark (docs/results.md)::

    python benchmarks/real_audio/recipe_check.py \\
        --arm baseline='docs/results/real_audio_test/cnn_lstm_xs/baseline/seed*' \\
        --arm iusp_default='runs/real_audio_default/iusp/seed*' \\
        --compare iusp_default:baseline --out benchmarks/results/real_audio_default_recipe.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from keras_iusp.experiments.statistics import kept_epoch, paired_difference  # noqa: E402
from keras_iusp.utils.atomic import atomic_write_text  # noqa: E402 (after the path set-up)


def _arms(specs: list[str], parser: argparse.ArgumentParser) -> dict[str, list[Path]]:
    arms: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, pattern = spec.partition("=")
        runs = sorted(Path(p) for p in glob.glob(pattern))
        if not sep or not name or not runs:
            parser.error(f"--arm {spec!r}: expected NAME=GLOB matching at least one run folder")
        bad = [str(r) for r in runs
               if not (r / "history.json").is_file() or not re.fullmatch(r"seed\d+", r.name)]
        if bad:
            parser.error(f"--arm {name}: expected finished seedN run folders with a "
                         f"history.json, got {bad}")
        arms[name] = runs
    return arms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", action="append", required=True, metavar="NAME=GLOB")
    parser.add_argument("--compare", action="append", required=True, metavar="A:B",
                        help="report A - B (two arm names)")
    parser.add_argument("--student", default="cnn_lstm_xs", help="label for the rows")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    arms = _arms(args.arm, parser)
    pairs = [tuple(c.split(":")) for c in args.compare]
    bad = [c for c, pair in zip(args.compare, pairs)
           if len(pair) != 2 or not set(pair) <= set(arms) or pair[0] == pair[1]]
    if bad:
        parser.error(f"--compare {bad}: expected A:B, two different arms of {list(arms)}")

    rows = []
    for name, runs in arms.items():
        for run in runs:
            history = json.loads((run / "history.json").read_text())
            best = kept_epoch(history)
            if best is None:
                parser.error(f"{run}/history.json: no finite val_auprc")
            rows.append({"student": args.student, "method": name, "seed": int(run.name[4:]),
                         "run": str(run), "val_auprc": float(history["val_auprc"][best]),
                         "kept_epoch": best + 1,
                         "epochs": len(history["val_auprc"])})
    comparisons = []
    for name, reference in pairs:
        diff = paired_difference(rows, args.student, name, reference, key="val_auprc")
        if diff is None:
            parser.error(f"--compare {name}:{reference}: the two arms share no seed")
        comparisons.append({"student": args.student, **diff})
    quoted = [f"'{a}'" if any(c in a for c in "*[]?") else a
              for a in (sys.argv[1:] if argv is None else argv)]
    report = {
        "benchmark": "recipe_check",
        "command": "python benchmarks/real_audio/recipe_check.py " + " ".join(quoted),
        "description": __doc__.split("\n\n")[0],
        "score": "validation micro-AUPRC (Keras PR-AUC) of each run's kept epoch",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": rows,
        "means": {name: float(np.mean([r["val_auprc"] for r in rows if r["method"] == name]))
                  for name in arms},
        "comparisons": comparisons,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    for name, mean in report["means"].items():
        print(f"{name}: mean {mean:.4f} over {sum(r['method'] == name for r in rows)} runs")
    for c in comparisons:
        print(f"{c['method']} - {c['reference']}: {c['mean']:+.4f} "
              f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] over seeds {c['seeds']}")
    print(f"written {out}")


if __name__ == "__main__":
    main()
