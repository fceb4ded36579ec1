"""The run-folder marker: a run folder is finished exactly when its metrics file exists.

Training writes the metrics file last (temp file, then rename), after the weights and
``model_info.json``, so its presence means everything else of the run is in place; resuming,
the grid, the tuner, the archive and the cross-fitting folds all ask :func:`is_finished`.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The file whose presence marks a finished run (holds the run's final metrics).
METRICS_FILE = "metrics.json"


def is_finished(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a finished run."""
    return (Path(run_dir) / METRICS_FILE).is_file()
