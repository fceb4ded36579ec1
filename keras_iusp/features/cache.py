"""On-disk cache of log-mel features for one dataset and one :class:`FeatureConfig`.

Decoding and resampling dominate data loading (SONYC audio is 44.1/48 kHz), and every experiment
trains several students on the same clips, so features are computed once and memory-mapped after.

The cache key hashes the feature config and the dataset fingerprint (clip list, labels, each
file's size and mtime): change any of them and a new cache is built; a stale one is never reused.
A cache directory is written under a temporary name and renamed into place, so an interrupted
build leaves no half-written cache behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.data.audio import fit_length, read_audio
from keras_iusp.data.index import DatasetIndex
from keras_iusp.data.schema import SPLITS
from keras_iusp.features.logmel import FeatureConfig, log_mel_tf
from keras_iusp.utils.errors import AudioError, DataError

#: Bumped when the cache layout or the feature computation changes, so old caches are rebuilt.
CACHE_VERSION = 1

#: Default cache folder inside the dataset folder.
DEFAULT_CACHE_DIRNAME = ".keras-iusp-cache"


@dataclass(frozen=True)
class FeatureStats:
    """Per-mel-band mean and standard deviation over all train-split frames.

    Computed on the training split only, so validation/test numbers are not optimistic; saved
    with the model so inference normalises exactly as training did.
    """

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureStats:
        return cls(
            mean=np.asarray(values["mean"], dtype=np.float32),
            std=np.asarray(values["std"], dtype=np.float32),
        )


@dataclass
class FeatureCache:
    """Features of every usable clip, ordered by split so each split is one contiguous slice.

    ``features`` is a read-only memory map of shape ``[N, frames, n_mels]``.
    """

    path: Path
    config: FeatureConfig
    features: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    filenames: tuple[str, ...]
    class_names: tuple[str, ...]
    stats: FeatureStats | None
    report: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(features, labels)`` of one split, as views (no copy)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        where = np.flatnonzero(self.splits == name)
        if where.size == 0:
            return self.features[:0], self.labels[:0]
        start, stop = int(where[0]), int(where[-1]) + 1
        return self.features[start:stop], self.labels[start:stop]

    def split_filenames(self, name: str) -> tuple[str, ...]:
        return tuple(f for f, s in zip(self.filenames, self.splits) if s == name)

    def describe(self) -> str:
        counts = ", ".join(f"{s}={int((self.splits == s).sum())}" for s in SPLITS)
        r = self.report
        return (
            f"features {tuple(self.features.shape)} at {self.path} ({counts}); "
            f"padded {r.get('padded', 0)}, trimmed {r.get('trimmed', 0)}, "
            f"skipped {len(r.get('skipped', []))}"
        )


def cache_key(index: DatasetIndex, config: FeatureConfig) -> str:
    """Key naming the cache folder: changes whenever the config or any clip changes."""
    text = f"v{CACHE_VERSION}|{config.to_json()}|{index.fingerprint()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_feature_cache(
    index: DatasetIndex,
    config: FeatureConfig | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    on_error: str = "raise",
    strict_duration: bool = False,
    batch_size: int = 16,
    progress: bool = True,
) -> FeatureCache:
    """Compute (or reuse) log-mel features of every clip in ``index``.

    Args:
        index: the clips, e.g. from :func:`keras_iusp.data.read_sonyc`.
        config: feature parameters (default :class:`FeatureConfig()`).
        cache_dir: where caches live (default ``<dataset root>/.keras-iusp-cache``).
        on_error: ``"raise"`` stops at the first undecodable/empty/NaN file; ``"skip"`` leaves such
            clips out and prints a report of each skipped file and why.
        strict_duration: make a clip whose length differs from ``config.clip_seconds`` an error
            (by default it is padded/trimmed and counted in the report).
        batch_size: clips per ``tf.signal`` call.
        progress: show a progress bar while computing.
    """
    config = config or FeatureConfig()
    if on_error not in ("raise", "skip"):
        raise DataError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
    root = Path(cache_dir) if cache_dir is not None else index.root / DEFAULT_CACHE_DIRNAME
    key = cache_key(index, config)
    final = root / key
    if (final / "meta.json").is_file():
        cache = load_feature_cache(final)
        _check_reused(cache, on_error, strict_duration)
        return cache
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{root}: cannot create the feature cache folder ({exc})") from exc

    order = np.concatenate([np.flatnonzero(index.splits == s) for s in SPLITS])
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    try:
        _compute(index.select(order), config, tmp, on_error, strict_duration, batch_size, progress)
        try:
            os.replace(tmp, final)
        except OSError:
            # Another process finished the same cache first; theirs is equally valid.
            if not (final / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache = load_feature_cache(final)
    if cache.report.get("skipped"):
        _print_skipped(cache.report["skipped"])
    return cache


def _compute(
    index: DatasetIndex,
    config: FeatureConfig,
    out: Path,
    on_error: str,
    strict_duration: bool,
    batch_size: int,
    progress: bool,
) -> None:
    import tensorflow as tf
    from tqdm import tqdm  # plain bar: tqdm.auto warns in notebooks without ipywidgets

    frames = config.num_frames()
    n = len(index)
    store = np.lib.format.open_memmap(
        out / "features.npy", mode="w+", dtype=np.float32, shape=(n, frames, config.n_mels)
    )
    extract = tf.function(
        lambda x: log_mel_tf(x, config),
        input_signature=[tf.TensorSpec([None, config.clip_samples], tf.float32)],
    )
    kept: list[int] = []
    skipped: list[dict[str, str]] = []
    padded = trimmed = 0
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            start = len(kept) - len(pending)
            store[start : len(kept)] = extract(np.stack(pending)).numpy()  # noqa: F821
            pending.clear()

    bar = tqdm(index.paths, desc="log-mel features", unit="clip", disable=not progress)
    for i, path in enumerate(bar):
        try:
            samples = read_audio(path, config.sample_rate)
            if samples.shape[0] != config.clip_samples:
                if strict_duration:
                    raise AudioError(
                        f"{path}: {samples.shape[0] / config.sample_rate:.3f} s long, expected "
                        f"{config.clip_seconds} s (strict duration)"
                    )
                if samples.shape[0] < config.clip_samples:
                    padded += 1
                else:
                    trimmed += 1
        except AudioError as exc:
            if on_error == "raise":
                raise
            skipped.append({"file": str(path), "reason": str(exc)})
            continue
        kept.append(i)
        pending.append(fit_length(samples, config.clip_samples))
        if len(pending) == batch_size:
            flush()
    flush()
    store.flush()
    del store  # close the write map before reading the file back
    if not kept:
        raise DataError(f"{index.root}: no clip could be decoded ({len(skipped)} skipped)")

    features = np.load(out / "features.npy", mmap_mode="r")[: len(kept)]
    if len(kept) < n:  # drop the unused tail left by skipped clips
        compact = out / "features.compact.npy"
        np.save(compact, np.asarray(features))
        del features
        os.replace(compact, out / "features.npy")
        features = np.load(out / "features.npy", mmap_mode="r")
    if not np.all(np.isfinite(features)):
        raise DataError(f"{index.root}: non-finite log-mel values; check log_offset and the audio")

    kept_index = index.select(kept)
    stats = _train_stats(features, kept_index.splits)
    np.save(out / "labels.npy", kept_index.labels)
    meta = {
        "version": CACHE_VERSION,
        "config": config.to_dict(),
        "dataset_root": str(index.root),
        "filenames": [str(p) for p in kept_index.paths],
        "splits": kept_index.splits.tolist(),
        "class_names": list(index.class_names),
        "stats": stats.to_dict() if stats else None,
        "report": {"padded": padded, "trimmed": trimmed, "skipped": skipped,
                   "strict_duration": strict_duration},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


def _train_stats(features: np.ndarray, splits: np.ndarray) -> FeatureStats | None:
    """Mean/std per mel band over train frames, accumulated in float64 one clip at a time."""
    train = np.flatnonzero(splits == "train")
    if train.size == 0:
        return None
    total = np.zeros(features.shape[-1])
    total_sq = np.zeros(features.shape[-1])
    for i in train:
        clip = features[i].astype(np.float64)
        total += clip.sum(axis=0)
        total_sq += (clip**2).sum(axis=0)
    count = train.size * features.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return FeatureStats(mean=mean.astype(np.float32), std=np.maximum(std, 1e-3).astype(np.float32))


def load_feature_cache(path: str | os.PathLike) -> FeatureCache:
    """Open a finished cache folder (features are memory-mapped, not read)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        features = np.load(path / "features.npy", mmap_mode="r")
        labels = np.load(path / "labels.npy")
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable feature cache ({exc}); delete it to rebuild") from exc
    if meta.get("version") != CACHE_VERSION:
        raise DataError(
            f"{path}: feature cache version {meta.get('version')}, expected {CACHE_VERSION}"
        )
    return FeatureCache(
        path=path,
        config=FeatureConfig.from_dict(meta["config"], source=str(path / "meta.json")),
        features=features,
        labels=labels,
        splits=np.array(meta["splits"], dtype=str),
        filenames=tuple(Path(f).name for f in meta["filenames"]),
        class_names=tuple(meta["class_names"]),
        stats=FeatureStats.from_dict(meta["stats"]) if meta.get("stats") else None,
        report=meta.get("report", {}),
    )


def _check_reused(cache: FeatureCache, on_error: str, strict_duration: bool) -> None:
    """A cache built leniently must not satisfy a stricter request."""
    skipped = cache.report.get("skipped", [])
    if skipped and on_error == "raise":
        raise AudioError(skipped[0]["reason"] + f" ({len(skipped)} bad file(s) in all)")
    if skipped:
        _print_skipped(skipped)
    off_length = cache.report.get("padded", 0) + cache.report.get("trimmed", 0)
    if strict_duration and off_length:
        raise DataError(
            f"{cache.path}: {off_length} clip(s) differ from {cache.config.clip_seconds} s "
            "(strict duration)"
        )


def _print_skipped(skipped: list[dict[str, str]]) -> None:
    print(f"[keras-iusp] skipped {len(skipped)} unreadable clip(s):")
    for item in skipped:
        print(f"  - {item['reason']}")
