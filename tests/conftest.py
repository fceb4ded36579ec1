"""Shared test set-up: quiet TensorFlow, small helpers that write audio and CSV files."""

from __future__ import annotations

import os

#: TF_ENABLE_ONEDNN_OPTS as pytest was started with (None: not set, oneDNN on as for users).
ONEDNN_SETTING_AT_START = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_tone(path: Path, sample_rate: int, seconds: float, freq: float = 440.0,
               channels: int = 1, fmt: str | None = None, subtype: str | None = None) -> Path:
    """Write a sine tone (the same on every channel, scaled per channel) and return the path."""
    import soundfile

    t = np.arange(int(round(sample_rate * seconds))) / sample_rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([tone * (1.0 - 0.25 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, sample_rate, format=fmt, subtype=subtype)
    return path


@pytest.fixture
def tone_writer():
    return write_tone


# --- shared tiny runs -------------------------------------------------------------------------
# Many tests need a trained teacher, a distilled CNN-LSTM student, its compressed version and a
# fresh export. Each is built once per session (on 24 one-second clips, one or two epochs), so a
# test that needs one pays for it only if no earlier test did.

TINY_CLIPS = 24
TINY_SECONDS = 1.0


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """``(root, data_dir, cache)``: a 24-clip synthetic set of 1 s clips and its feature cache."""
    from keras_iusp.data import read_sonyc, synthesize
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig

    root = tmp_path_factory.mktemp("tiny")
    synthesize(root / "data", clips=TINY_CLIPS, seed=11, clip_seconds=TINY_SECONDS,
               sample_rate=16000, progress=False)
    cache = build_feature_cache(read_sonyc(root / "data"),
                                FeatureConfig(clip_seconds=TINY_SECONDS), progress=False)
    return root, root / "data", cache


@pytest.fixture(scope="session")
def tiny_teacher(tiny_data):
    """A teacher_cnn run trained for one epoch on :func:`tiny_data`."""
    from keras_iusp.train.training import train_teacher

    root, _, cache = tiny_data
    return train_teacher(cache, root / "teacher", epochs=1, batch_size=8, verbose=0)


@pytest.fixture(scope="session")
def lstm_student(tiny_data, tiny_teacher):
    """A cnn_lstm_xs run distilled with IUSP (KD + IUSP terms) for one epoch."""
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    root, _, cache = tiny_data
    return distill(cache, tiny_teacher, "cnn_lstm_xs", root / "lstm_student",
                   DistillConfig(method="iusp", epochs=1, batch_size=8), verbose=0)


@pytest.fixture
def tiny_grid_header(tiny_data, tiny_teacher):
    """``header(name)``: the ``name``/``[data]``/``[teacher]`` part of an experiment config on
    :func:`tiny_data` with :func:`tiny_teacher`; a test appends its own ``[grid]``."""
    _, data_dir, _ = tiny_data

    def header(name: str) -> str:
        return (f'name = "{name}"\n[data]\npath = "{data_dir}"\nclip_seconds = 1.0\n'
                f'[teacher]\nrun = "{tiny_teacher.path}"\n')

    return header


LSTM_SPARSITY = 0.5


@pytest.fixture(scope="session")
def lstm_compressed(tiny_data, tiny_teacher, lstm_student):
    """The student pruned to 50 % and QAT-trained, still distilling from the teacher."""
    from keras_iusp.compress import CompressConfig, compress

    root, _, cache = tiny_data
    return compress(lstm_student, cache, root / "lstm_compressed",
                    CompressConfig(target_sparsity=LSTM_SPARSITY, prune_epochs=2, qat_epochs=1,
                                   batch_size=8), teacher_run=tiny_teacher, verbose=0)


@pytest.fixture(scope="session")
def lstm_export(tiny_data, lstm_compressed):
    """``(folder, report)`` of a fresh int8 export of the compressed student (0.5 s windows).

    Tests must not modify the folder; one that needs to rewrite an export makes its own copy.
    """
    from keras_iusp.export import export_model

    root, _, cache = tiny_data
    report = export_model(lstm_compressed, cache, root / "lstm_fw", window_seconds=0.5,
                          golden_vectors=3, representative_windows=20)
    return root / "lstm_fw", report


# --- bit-stable Eigen for the few tests that need it -------------------------------------------
# In-process tests run with oneDNN on, as users do (TensorFlow's default on x86). oneDNN's float32
# kernels pick their blocking (and so their summation order) at run time, so two runs of the same
# computation can differ in the last bits. A test that compares two trainings for *equality* is
# marked ``@pytest.mark.eigen("why")``; it then runs in a child pytest process with
# TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow reads the switch once, when it loads). Marked tests run
# in-process when the switch is already off.

EIGEN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "eigen(reason): compares results bit for bit, so it runs in a child process "
        "with TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels); the reason says why it needs that")


def _eigen_already() -> bool:
    return os.environ.get(EIGEN_ENV, "1") in ("0", "false", "False")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    marker = pyfuncitem.get_closest_marker("eigen")
    if marker is None or _eigen_already():
        return None
    if not marker.args or not str(marker.args[0]).strip():
        pytest.fail("@pytest.mark.eigen needs a reason: why the test needs bit-stable kernels")
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid],
        cwd=root, env={**os.environ, EIGEN_ENV: "0"}, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"failed in a child process with {EIGEN_ENV}=0 ({marker.args[0]}):\n"
                    f"{proc.stdout[-6000:]}{proc.stderr[-2000:]}", pytrace=False)
    return True
