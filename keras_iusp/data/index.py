"""The dataset index every loader returns: clip paths, splits and multi-hot labels.

Loaders differ (SONYC-UST annotations, a plain CSV), but training, caching and evaluation only see
this one structure, so supporting another format means writing one function that returns it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_iusp.data.schema import SPLITS
from keras_iusp.utils.errors import DataError


@dataclass(frozen=True)
class DatasetIndex:
    """Clips of a dataset, one entry per clip (not per annotation row).

    Attributes:
        root: folder the dataset was read from (used to name caches and reports).
        paths: absolute audio path per clip.
        splits: ``"train"``, ``"validate"`` or ``"test"`` per clip.
        labels: ``[N, C]`` uint8 array of 0/1, columns in ``class_names`` order.
        class_names: label names.
    """

    root: Path
    paths: tuple[Path, ...]
    splits: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.splits.shape != (n,) or self.labels.shape != (n, len(self.class_names)):
            raise ValueError(
                f"DatasetIndex: inconsistent sizes: {n} paths, splits {self.splits.shape}, "
                f"labels {self.labels.shape}, {len(self.class_names)} classes"
            )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def filenames(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.paths)

    def subset(self, split: str) -> DatasetIndex:
        """The clips of one split (an empty index when the split has none)."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        keep = np.flatnonzero(self.splits == split)
        return self.select(keep)

    def select(self, positions: np.ndarray | list[int]) -> DatasetIndex:
        positions = np.asarray(positions, dtype=np.int64)
        return DatasetIndex(
            root=self.root,
            paths=tuple(self.paths[i] for i in positions),
            splits=self.splits[positions],
            labels=self.labels[positions],
            class_names=self.class_names,
        )

    def fingerprint(self) -> str:
        """Hash of the clip list, labels and each file's size and modification time.

        Part of the feature-cache key: if a file is replaced, added or relabelled, the cache built
        from the old state is not reused.
        """
        digest = hashlib.sha256()
        digest.update(repr(self.class_names).encode())
        for path, split, row in zip(self.paths, self.splits, self.labels):
            try:
                stat = path.stat()
                file_state = f"{stat.st_size}:{stat.st_mtime_ns}"
            except OSError:
                file_state = "missing"
            digest.update(f"{path}|{split}|{file_state}|".encode())
            digest.update(row.tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        """Human-readable counts per split and class prevalence."""
        lines = [f"{len(self)} clips from {self.root}"]
        for split in SPLITS:
            sub = self.subset(split)
            if len(sub) == 0:
                continue
            prevalence = ", ".join(
                f"{name}={int(count)}" for name, count in zip(self.class_names, sub.labels.sum(0))
            )
            lines.append(f"  {split:8s} {len(sub):5d} clips; positives: {prevalence}")
        return "\n".join(lines)
