"""Experiments: the grid (:mod:`.grid`) with its claims and archive, cross-fitted teachers, the
Optuna tuner and its storage, the quickstart, and the report with its figures.
"""
