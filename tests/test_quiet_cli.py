"""A first run prints the project's own lines, not TensorFlow's C++ start-up log.

On a CPU-only machine TensorFlow's native libraries log oneDNN notices, "Could not find cuda
drivers" and an ``E``-level "failed call to cuInit" while they load, before
``TF_CPP_MIN_LOG_LEVEL`` takes effect. The CLI filters exactly those lines unless ``--verbose``.
Each command runs in a fresh process with the environment a new user has (no TF_* variables).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from keras_iusp.utils.console import filtered_stderr, is_startup_noise

# absl/TensorFlow C++ log line: "I0000 00:00:1795855668.419235    4170 port.cc:153] ..."
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]", re.M)
NOISE_MARKERS = ("absl::InitializeLog", "cuInit", "oneDNN custom operations",
                 "cpu_feature_guard", "WARNING:tensorflow")


def fresh_user_env() -> dict[str, str]:
    """This environment without the TF_* settings conftest.py makes for the test process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["MPLBACKEND"] = "Agg"
    return env


def tensorflow_noise(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are TensorFlow's own log output."""
    return [line for line in stderr.splitlines()
            if TF_LOG_LINE.match(line) or any(m in line for m in NOISE_MARKERS)]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keras_iusp.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, env=fresh_user_env())


def test_filter_drops_startup_noise_and_keeps_everything_else(capfd):
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795855668.419235    4170 port.cc:153] oneDNN custom operations are on. "
        "You may see slightly different numerical results.",
        "E0000 00:00:1795855671.859597    4170 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    real = [
        "E0000 00:00:1795855671.859597    4170 op_kernel.cc:1830] OP_REQUIRES failed: "
        "out of memory",
        "ImportError: libcudart.so.12: cannot open shared object file",
    ]
    bar = ["\rlog-mel features:  50%|#####     | 8/16",
           "\rlog-mel features: 100%|##########| 16/16\n"]
    with filtered_stderr(is_startup_noise):
        for line in noise[:2] + real[:1] + noise[2:] + real[1:]:
            os.write(2, (line + "\n").encode())
        os.write(2, b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8, "
                    b"output_inference_type: INT8\nINFO: Created TensorFlow Lite XNNPACK "
                    b"delegate for CPU.\n")
        for piece in bar:  # a progress bar redraws with carriage returns, in pieces
            os.write(2, piece.encode())
        os.write(2, b"no newline at the end")
    err = capfd.readouterr().err
    assert err == "\n".join(real) + "\n" + "".join(bar) + "no newline at the end"
    # fd 2 is back: writes after the block are not filtered
    os.write(2, (noise[0] + "\n").encode())
    assert capfd.readouterr().err == noise[0] + "\n"


def test_filter_restores_stderr_when_the_block_fails(capfd):
    try:
        with filtered_stderr(is_startup_noise):
            raise ImportError("no tensorflow")
    except ImportError:
        pass
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_models_and_synth_print_no_tensorflow_log_lines(tmp_path: Path):
    models = run_cli("models", "cnn_lstm_xs", "--clip-seconds", "1")
    assert models.returncode == 0, models.stderr
    assert "IUSP candidate layers" in models.stdout
    assert tensorflow_noise(models.stderr) == [], models.stderr

    synth = run_cli("synth", str(tmp_path / "data"), "--clips", "3", "--clip-seconds", "1",
                    "--sample-rate", "16000", "--plot")
    assert synth.returncode == 0, synth.stderr
    assert (tmp_path / "data" / "class_examples.png").is_file()
    assert tensorflow_noise(synth.stderr) == [], synth.stderr

    # the control: the same command with --verbose shows what the filter removed (on a machine
    # where TensorFlow logs nothing at start-up this part has nothing to compare)
    verbose = run_cli("--verbose", "models", "cnn_lstm_xs", "--clip-seconds", "1")
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == models.stdout
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        assert tensorflow_noise(verbose.stderr), "expected TensorFlow start-up lines here"


def test_user_error_still_reaches_stderr_unfiltered(tmp_path: Path):
    # a file that exists (so the arguments parse) but is no export: the error is raised by
    # the command, after TensorFlow loaded inside the filter
    (tmp_path / "none.tflite").write_bytes(b"not a flatbuffer")
    proc = run_cli("evaluate", str(tmp_path / "none.tflite"), "--data", str(tmp_path))
    assert proc.returncode == 2
    assert tensorflow_noise(proc.stderr) == []
    assert proc.stderr.strip().splitlines()[-1].startswith("keras-iusp: error:")


def test_filter_ends_while_a_child_still_holds_stderr(capfd):
    # `experiment --jobs` starts multiprocessing's resource tracker, which inherits fd 2 (the
    # filter's pipe) and lives until this process exits: waiting for EOF hung the CLI for good.
    import time

    with filtered_stderr(is_startup_noise):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        os.write(2, b"kept line\n")
        start = time.monotonic()
    elapsed = time.monotonic() - start
    child.kill()
    child.wait()
    assert elapsed < 10
    assert "kept line" in capfd.readouterr().err
