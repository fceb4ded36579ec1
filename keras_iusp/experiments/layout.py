"""Where each grid cell lives and in which order cells are trained."""

from __future__ import annotations

import os
from pathlib import Path

from keras_iusp.experiments.config import ExperimentConfig


def grid_cells(config: ExperimentConfig) -> list[tuple[str, str, int]]:
    """``(student, method, seed)`` in run order: seed by seed, so an interrupted grid always
    holds complete, paired method comparisons for the seeds it finished. ``method`` is the grid's
    name for it (a variant's own name), see :meth:`ExperimentConfig.base_method`."""
    g = config.grid
    seeds_of = {s: list(g.student_seeds.get(s, g.seeds)) for s in g.students}
    all_seeds = sorted({x for seeds in seeds_of.values() for x in seeds})
    return [(s, m, seed) for seed in all_seeds for s in g.students if seed in seeds_of[s]
            for m in g.methods]


def cell_dir(out: str | os.PathLike, student: str, method: str, seed: int) -> Path:
    """Run directory of one grid cell: ``OUT/runs/<student>/<method or variant name>/seed<k>``."""
    return Path(out) / "runs" / student / method / f"seed{seed}"
