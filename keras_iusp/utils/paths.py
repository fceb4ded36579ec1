"""Path comparison shared by the grid's staleness checks and the run archive."""

from __future__ import annotations

import os
from pathlib import Path


def same_path(stored: str | None, configured: str | os.PathLike | None) -> bool:
    """Whether a path recorded in a run (``stored``) names the same file or folder as the
    configured one: equal after resolving, or the same file on disk (hard links, bind mounts).
    Two ``None`` are the same; one ``None`` is not."""
    if stored is None or configured is None:
        return stored is None and configured is None
    a, b = Path(stored).resolve(), Path(configured).resolve()
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
