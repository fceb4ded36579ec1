"""In-process tests run with oneDNN on, the kernels users get by default; only tests marked
``@pytest.mark.eigen`` (see conftest.py) run in a child process with TF_ENABLE_ONEDNN_OPTS=0."""

from __future__ import annotations

import os

import pytest
from conftest import EIGEN_ENV, ONEDNN_SETTING_AT_START


def test_the_test_set_up_leaves_onednn_as_users_have_it():
    if ONEDNN_SETTING_AT_START is not None:
        pytest.skip(f"pytest was started with {EIGEN_ENV}={ONEDNN_SETTING_AT_START}")
    setting = os.environ.get(EIGEN_ENV)
    assert setting is None, setting  # no fixture or conftest line turned it off


@pytest.mark.eigen("checks that the marker gives the test Eigen kernels")
def test_a_marked_test_runs_with_eigen_kernels():
    setting = os.environ.get(EIGEN_ENV)
    assert setting == "0", setting
