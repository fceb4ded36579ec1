"""Experiments: the grid's config schema (:mod:`.config`), cell layout (:mod:`.layout`), stale-run
checks (:mod:`.stale_runs`), preparation of data and teachers (:mod:`.preparation`), the cell
scheduler with its claims (:mod:`.scheduler`, :mod:`.claims`) and the run loop (:mod:`.grid`);
the archive, cross-fitted teachers, the Optuna tuner and its storage, the quickstart, and the
report with its figures.
"""
