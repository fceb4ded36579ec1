"""What produced a run: package versions, git revision, machine. Written into every run directory.

A number in a report is only useful if the code and library versions behind it can be found
again, so every run records them next to its config.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("keras-iusp", "tensorflow", "tf-keras", "keras", "tensorflow-model-optimization",
            "tflite-micro", "ai-edge-litert", "numpy")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_revision(folder: Path | None = None) -> str | None:
    """``<commit>`` or ``<commit>-dirty`` of the checkout holding the package, if it is one."""
    folder = folder or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance() -> dict:
    """Versions, git revision, Python and machine, and the time (UTC)."""
    return {
        "versions": {p: _version(p) for p in PACKAGES},
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def cpu_model(fallback: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``fallback`` (default: the platform's
    processor or machine name)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if fallback is None:
        return platform.processor() or platform.machine()
    return fallback


def machine_description() -> str:
    """CPU model and core count of this machine, for reports."""
    return f"{cpu_model()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"
