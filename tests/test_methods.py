"""The method registry is the one place a method is defined: every consumer reads it."""

from __future__ import annotations

import subprocess
import sys

from keras_iusp.cli.main import _METHOD_FLAGS, build_parser
from keras_iusp.distill import methods
from keras_iusp.distill.methods import METHODS, label
from keras_iusp.experiments.stale_runs import RELEVANT_SETTINGS
from keras_iusp.experiments.tune import SEARCH_SPACE


def _choices(command: str, dest: str) -> tuple:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return tuple(next(a for a in sub._actions if a.dest == dest).choices)


def test_every_consumer_reads_the_registry():
    assert METHODS == methods.METHODS == ("baseline", "kd", "sp", "iusp")
    assert _choices("distill", "method") == methods.METHODS
    assert _choices("tune", "methods") == methods.METHODS
    assert RELEVANT_SETTINGS == {n: m.settings for n, m in methods.REGISTRY.items()}
    assert SEARCH_SPACE == {n: m.search_space for n, m in methods.REGISTRY.items()}
    assert _METHOD_FLAGS == {n: m.flags for n, m in methods.REGISTRY.items() if m.flags}
    assert [label(m) for m in ("baseline", "kd", "sp", "iusp", "iusp_pool")] == [
        "baseline", "KD", "SP", "IUSP", "iusp_pool"]


def test_method_flags_are_the_settings_distill_sets_with_its_own_flags():
    iusp = methods.method("iusp")
    assert "iusp_weight" in iusp.flags and "sp_weight" not in iusp.flags
    assert "cross_fitted" in iusp.settings and "cross_fitted" not in iusp.flags
    assert methods.method("baseline").flags == () and not methods.method("baseline").uses_teacher
    # every flag a method reads is a real `distill` option
    distill_dests = {a.dest for a in next(
        a for a in build_parser()._actions if a.dest == "command").choices["distill"]._actions}
    assert {f for m in methods.REGISTRY.values() for f in m.flags} <= distill_dests


def test_the_registry_loads_without_tensorflow():
    code = "import sys, keras_iusp.distill.methods; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_iusp_forms_in_the_registry_are_the_losses_forms():
    from keras_iusp.distill.losses import IUSP_FORMS

    assert methods.IUSP_FORM_NAMES == IUSP_FORMS
    assert SEARCH_SPACE["iusp"]["iusp_form"] == ("cat", list(IUSP_FORMS))


def test_tune_searches_the_schedule_length_unless_epochs_are_fixed():
    from keras_iusp.experiments.config import ExperimentConfig, GridSection
    from keras_iusp.experiments.tune import default_params, search_space

    config = ExperimentConfig(grid=GridSection(epochs=30))
    for m in methods.METHODS:
        assert search_space(config, m)["epochs"] == ("cat", [30, 60])
        assert "epochs" not in search_space(config, m, tune_epochs=False)
        # the config's own length is the first trial's, and is left out when it is fixed
        assert default_params(config, m)["epochs"] == 30
        assert "epochs" not in default_params(config, m, tune_epochs=False)
    # an empty iusp_form is the loss's default form, so the first trial is the config's own
    assert default_params(config, "iusp")["iusp_form"] == "cosine"


def test_the_grid_and_distill_share_one_default_recipe():
    import dataclasses

    from keras_iusp.experiments.config import GridSection
    from keras_iusp.train.recipe import DistillConfig

    grid, recipe = GridSection(), DistillConfig()
    shared = {f.name for f in dataclasses.fields(GridSection)} & {
        f.name for f in dataclasses.fields(DistillConfig)}
    # "" (grid) and None (DistillConfig) both mean "the family's default layer / the default
    # form"; {} and None both mean no augmentation; the grid's unlabeled_ratio 0 is the switch
    # "no pool", DistillConfig reads its ratio only with a pool
    spelled_apart = {"iusp_form", "teacher_layer", "student_layer", "augmentation",
                     "unlabeled_ratio", "seed"}
    assert {"epochs", "learning_rate", "temperature", "iusp_weight"} <= shared - spelled_apart
    for name in sorted(shared - spelled_apart):
        assert getattr(grid, name) == getattr(recipe, name), name
