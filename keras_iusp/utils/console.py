"""The console: which of TensorFlow's start-up lines the CLI drops, and fd-level stderr control.

Native code (TensorFlow, TFLite-Micro) writes to file descriptor 2 directly, so replacing
``sys.stderr`` does not reach it; :func:`filtered_stderr` filters fd 2 line by line and
:func:`silenced_stderr` discards it for a block.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator

# TensorFlow's native libraries log these lines while they load and probe for a GPU, before
# TF_CPP_MIN_LOG_LEVEL is read (absl prints anything logged before its InitializeLog). On a
# CPU-only machine "failed call to cuInit ... ERROR" reads like a failure. The TFLite converter and
# LiteRT add two more notices during an export. The CLI drops exactly these lines; anything else
# written to stderr (a real error, a progress bar) still gets through.
_TENSORFLOW_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers"
    r"|failed call to cuInit"
    r"|cpu_feature_guard|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions:.*rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|^fully_quantize: \d+, inference_type: \d+, input_inference_type:"
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
)


def is_startup_noise(line: str) -> bool:
    """True for a TensorFlow log line that says nothing the user must act on (see above)."""
    return _TENSORFLOW_NOISE.search(line) is not None


#: Written into the stderr pipe when :func:`filtered_stderr` ends.
_STDERR_END = b"\x00keras-iusp: end of filtered stderr\x00"


@contextlib.contextmanager
def filtered_stderr(drop: Callable[[str], bool]) -> Iterator[None]:
    """Send the process's file descriptor 2 through a line filter while the block runs.

    Native code writes to fd 2 directly, so replacing ``sys.stderr`` would not catch it. A pipe
    takes fd 2's place and a thread forwards its text to the real stderr: a line ending in a
    newline is dropped when ``drop`` says so, text ending in a carriage return (a progress bar
    redrawing itself) is passed on at once, unfiltered. fd 2 is restored and the pipe drained
    when the block ends, also on error.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()

    def forward() -> None:
        pending = b""
        done = False
        while not done:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            pending += chunk
            end = pending.find(_STDERR_END)
            if end >= 0:
                pending, done = pending[:end], True
            cut = max(pending.rfind(b"\n"), pending.rfind(b"\r"))
            if cut < 0:
                continue
            ready, pending = pending[:cut + 1], pending[cut + 1:]
            os.write(saved, b"".join(
                piece for piece in ready.splitlines(keepends=True)
                if not (piece.endswith(b"\n") and drop(piece.decode("utf-8", "replace")))))
        if pending and not drop(pending.decode("utf-8", "replace")):
            os.write(saved, pending)
        os.close(read_fd)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        # An end marker, not EOF, stops the thread: a child process that inherited fd 2 (e.g.
        # multiprocessing's resource tracker, started by `experiment --jobs`) keeps a write end
        # open until this process exits, so waiting for EOF would never end.
        os.write(2, _STDERR_END)
        os.dup2(saved, 2)
        thread.join()
        os.close(saved)


def quiet_tensorflow() -> None:
    """Import TensorFlow and let it find its devices now, with its Python warnings off.

    Called inside :func:`filtered_stderr`, so the start-up lines are dropped. oneDNN stays on
    (TensorFlow's fast CPU default), so its notice is filtered rather than avoided.
    C++ errors (level 2) and Python-side errors are still printed; TensorFlow's Python warnings
    (tf.function retracing notices) and the converter's "Statistics for quantized inputs"
    warning are not, since they are about TensorFlow's internals, not the user's data or
    settings.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.list_physical_devices()  # the CUDA probe (cuInit) runs here, not at import
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Discard everything written to fd 2 while the block runs (restored also on error)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
