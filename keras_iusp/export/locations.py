"""Where the C++ the export's checks compile lives: the project's ``deploy/`` sources and the
TFLite-Micro builds they link against. One module, so every builder and test reads one place.

In a source checkout both are found next to the package: ``deploy/`` in the repository, and
TFLite-Micro in ``../shared/tflm-host`` (its README says how it was built: a host library with the
reference kernels, and ``lib/cortex-m4+fp-cmsis_nn/`` for the emulated Cortex-M4). Elsewhere (an
installed package, another layout) set ``KERAS_IUSP_DEPLOY`` to a folder holding the repository's
``deploy/`` tree and ``KERAS_IUSP_TFLM`` to a TFLite-Micro build with that layout; what is
missing is reported by :func:`missing`, and ``keras-iusp export`` then records the target budget
as not measured instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository a source checkout of the package sits in.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The project's C++ sources: the stream runner, the TFLM harness, the bare-metal targets.
DEPLOY_DIR = Path(os.environ.get("KERAS_IUSP_DEPLOY") or REPO_ROOT / "deploy")
RUNNER_DIR = DEPLOY_DIR / "stream_runner"
HARNESS_DIR = DEPLOY_DIR / "tflm_app"
#: Start-up code, linker script and budget program of the emulated Cortex-M4F (QEMU mps2-an386).
TARGET_DIR = DEPLOY_DIR / "targets" / "mps2_an386"
#: A TFLite-Micro build: ``include/``, ``lib/`` (host, reference kernels) and the Cortex-M4 one.
TFLM_DIR = Path(os.environ.get("KERAS_IUSP_TFLM") or REPO_ROOT.parent / "shared" / "tflm-host")
TFLM_INCLUDE = TFLM_DIR / "include"
TFLM_HOST_LIBRARY = TFLM_DIR / "lib" / "libtensorflow-microlite.a"
#: TFLite-Micro built for a Cortex-M4 with FPU and CMSIS-NN kernels.
TFLM_M4_LIBRARY = TFLM_DIR / "lib" / "cortex-m4+fp-cmsis_nn" / "libtensorflow-microlite.a"


def missing(*, m4: bool = False) -> list[str]:
    """What a host build (or with ``m4``, a Cortex-M4 build) lacks of the sources and libraries
    above, each as a line naming the path and the variable that moves it; empty when complete."""
    out = []
    if not (RUNNER_DIR / "stream_runner.cc").is_file():
        out.append(f"the project's deploy/ sources at {DEPLOY_DIR} (set KERAS_IUSP_DEPLOY)")
    library = TFLM_M4_LIBRARY if m4 else TFLM_HOST_LIBRARY
    if not library.is_file():
        out.append(f"the TFLite-Micro library {library} (set KERAS_IUSP_TFLM)")
    return out
