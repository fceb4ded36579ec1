"""What the device tests need, and the one rule for when it is missing.

A test that builds or runs C++ (the front end, the streaming runner, the TFLite-Micro harness,
the emulated Cortex-M4) calls :func:`require` with what it needs. When something is missing the
test is skipped on a developer's machine, but FAILS under ``CI=true``: a CI machine without the
toolchain must not pass green with the device side untested.
"""

from __future__ import annotations

import os
import shutil

import pytest

from keras_iusp.export.locations import TFLM_HOST_LIBRARY, TFLM_M4_LIBRARY

#: need -> (how to tell it is there, what to install when it is not)
NEEDS = {
    "g++": (lambda: shutil.which("g++") is not None, "apt-get install g++"),
    "tflm-host": (TFLM_HOST_LIBRARY.is_file,
                  f"the TFLite-Micro host build at {TFLM_HOST_LIBRARY} (see "
                  "../shared/tflm-host/README.md)"),
    "arm-gcc": (lambda: all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++")),
                "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "libstdc++-arm-none-eabi-newlib"),
    "tflm-m4": (TFLM_M4_LIBRARY.is_file,
                f"the Cortex-M4 CMSIS-NN TFLite-Micro library at {TFLM_M4_LIBRARY}"),
    "qemu": (lambda: shutil.which("qemu-system-arm") is not None,
             "apt-get install qemu-system-arm"),
}
#: Everything a run on the emulated Cortex-M4F needs.
CORTEX_M4 = ("arm-gcc", "tflm-m4", "qemu")


def in_ci() -> bool:
    """True when the CI environment variable says so (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(*needs: str) -> list[str]:
    """The install hints of every need in ``needs`` that this machine lacks."""
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"unknown need(s) {unknown}; known: {sorted(NEEDS)}")
    return [NEEDS[n][1] for n in needs if not NEEDS[n][0]()]


def require(*needs: str) -> None:
    """Skip the calling test when a need is missing, or fail it under ``CI=true``."""
    lacking = missing(*needs)
    if not lacking:
        return
    message = "missing: " + "; ".join(lacking)
    if in_ci():
        pytest.fail(f"CI=true and a device test cannot run, {message}", pytrace=False)
    pytest.skip(message)
