"""Build the real-recordings development benchmark: real sounds mixed into SONYC-UST v2 clips.

Source recordings come from Debian packages (sound effects of games and educational software,
speech prompts, music), listed with their class, split, licence, attribution and sha256 in a
committed manifest (``benchmarks/real_audio/manifest.json``, written by
``benchmarks/real_audio/make_manifest.py``). :func:`fetch_sources` downloads the pinned
package versions with ``apt-get download pkg=version`` and unpacks them with ``dpkg-deb -x``
(no installation); :func:`build_real_audio` verifies every source's checksum and writes:

* ``audio/<sensor>_<clip>.wav|.flac``: 10-s mixtures of one or two real ambience beds (over a
  faint noise floor), 0-3 labelled events (scheduled so every class is the main event of one
  clip per block of eight) and 0-2 unlabelled distractor events (animals, household sounds...),
  each event cropped, sped up or slowed a little and placed at a random SNR. Most files are
  44.1 kHz mono 16-bit WAV; some are 48 kHz, some stereo, some FLAC.
* ``annotations.csv`` in the SONYC-UST v2 layout (:data:`keras_iusp.data.synth.CSV_COLUMNS`):
  every clip has three crowd rows drawn with :mod:`keras_iusp.data.crowd` (SNR-dependent
  misses, annotator habits, confusions of similar classes); validate and test clips add the
  verified row (``annotator_id`` 0) with the true classes.
* ``unlabeled/u_<clip>.wav|.flac``: the unlabelled pool, mixed like the train clips from the
  train sources only, with no labels anywhere in the dataset's CSV.
* ``real_audio_config.json``: the arguments, the manifest's digest and every clip's events.

Train (and the unlabelled pool) use only sources whose manifest ``split`` is ``train``;
validate and test only those marked ``eval``; sources cut from one original recording share an
``origin`` and a split. The output is a pure function of (manifest, sources, arguments): each
clip draws from its own seed stream, so the same seed gives the same bytes. The folder is built
next to the target and renamed into place.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.data.crowd import CrowdErrorModel, annotator_profiles, crowd_labels
from keras_iusp.data.schema import COARSE_CLASSES, FINE_CLASSES, SPLITS, VERIFIED_ANNOTATOR
from keras_iusp.data.sound_archives import read_member
from keras_iusp.data.synth import CSV_COLUMNS
from keras_iusp.data.synth_sounds import render_background
from keras_iusp.utils.errors import ConfigError, DataError

__all__ = ["DEFAULT_CROWD", "DEFAULT_MANIFEST", "build_real_audio", "fetch_sources",
           "load_manifest"]

#: The committed manifest (in the source tree next to the package).
DEFAULT_MANIFEST = (Path(__file__).resolve().parents[2] / "benchmarks" / "real_audio"
                    / "manifest.json")

#: Crowd-error parameters of the benchmark's crowd rows.
DEFAULT_CROWD = CrowdErrorModel(threshold_snr_db=-3.0, slope_db=2.5, lapse=0.05,
                                threshold_spread_db=3.0, confusion=0.1, confusion_adds=0.5,
                                false_alarm=0.015, propensity_spread=0.5)

_RATE = 44100  # internal mixing rate
_ROLES = ("background", "distractor")
_SNR_DB = (-8.0, 15.0)
_DISTRACTOR_SNR_DB = (-10.0, 10.0)
_BED_DBFS = (-42.0, -26.0)
_NOISE_FLOOR_DB = -14.0  # synthetic noise floor relative to the beds
_EMPTY_CLIP_PROB = 0.07
_EVENT_COUNTS, _EVENT_COUNT_PROBS = (1, 2, 3), (0.45, 0.35, 0.2)
_NEAR_SNR_DB = 8.0
_CLIPS_PER_SENSOR = 5
_P_48K, _P_STEREO, _P_FLAC = 0.25, 0.1, 0.1
_CLIP_PEAK = 0.95
_CROWD = 3
_SPLIT_TAG = {"train": 0, "validate": 1, "test": 2, "unlabeled": 3}
_LAYOUT_TAG, _SCHEDULE_TAG = 10, 11


# --------------------------------------------------------------------------------------------
# Manifest and sources
# --------------------------------------------------------------------------------------------


def load_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a manifest: packages, and sources with class/split/origin/sha256."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read manifest ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sources"), list):
        raise DataError(f"{path}: expected an object with a 'sources' list")
    packages = manifest.get("packages", {})
    origins: dict[str, str] = {}
    for i, src in enumerate(manifest["sources"]):
        for key in ("package", "path", "sha256", "class", "split", "origin"):
            if not isinstance(src.get(key), str):
                raise DataError(f"{path}: sources[{i}] lacks {key!r}")
        if src["package"] not in packages:
            raise DataError(f"{path}: sources[{i}]: package {src['package']!r} not in 'packages'")
        if src["split"] not in ("train", "eval"):
            raise DataError(f"{path}: sources[{i}]: split {src['split']!r}, expected "
                            "'train' or 'eval'")
        for cls in src["class"].split("+"):
            if cls not in COARSE_CLASSES and cls not in _ROLES:
                raise DataError(f"{path}: sources[{i}]: class {cls!r}, expected one of "
                                f"{list(COARSE_CLASSES) + list(_ROLES)}")
        if origins.setdefault(src["origin"], src["split"]) != src["split"]:
            raise DataError(f"{path}: origin {src['origin']!r} is in both splits")
    return manifest


def fetch_sources(manifest: dict[str, Any], sources_dir: str | os.PathLike) -> Path:
    """Download the manifest's pinned packages and unpack each into ``sources_dir/<package>``.

    Uses ``apt-get download <package>=<version>`` and ``dpkg-deb -x`` (nothing is installed);
    a package already unpacked (marker file ``.unpacked`` holding its version) is skipped.
    """
    root = Path(sources_dir)
    root.mkdir(parents=True, exist_ok=True)
    for package, info in sorted(manifest["packages"].items()):
        target = root / package
        marker = target / ".unpacked"
        if marker.is_file() and marker.read_text().strip() == info["version"]:
            continue
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            os.chmod(tmp, 0o777)  # apt's sandbox user must be able to write the .deb
            spec = f"{package}={info['version']}"
            try:
                run = subprocess.run(["apt-get", "download", spec], cwd=tmp,
                                     capture_output=True, text=True, check=False)
            except FileNotFoundError:
                raise DataError("--fetch needs Debian's apt-get, which is not on PATH "
                                "(unpack the packages into the sources folder instead)") from None
            debs = list(Path(tmp).glob("*.deb"))
            if run.returncode != 0 or not debs:
                last = ((run.stderr or run.stdout).strip().splitlines() or ["no output"])[-1]
                raise DataError(f"apt-get download {spec} failed: {last}")
            shutil.rmtree(target, ignore_errors=True)
            unpack = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(target)],
                                    capture_output=True, text=True, check=False)
            if unpack.returncode != 0:
                raise DataError(f"dpkg-deb -x {debs[0].name} failed: {unpack.stderr.strip()}")
        marker.write_text(info["version"] + "\n")
    return root


@dataclass
class _Source:
    index: int
    classes: tuple[str, ...]
    split: str
    audio: np.ndarray  # float32 mono at _RATE


def _decode(data: bytes, name: str) -> np.ndarray:
    import soundfile
    import soxr

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - any decoder failure names the source
        raise DataError(f"{name}: cannot decode audio ({exc})") from exc
    mono = samples.mean(axis=1)
    if rate != _RATE:
        mono = soxr.resample(mono, rate, _RATE, quality="HQ").astype(np.float32)
    return mono


def _load_sources(manifest: dict[str, Any], sources_dir: Path) -> list[_Source]:
    sources = []
    for i, src in enumerate(manifest["sources"]):
        name = src["path"] + (f"[{src['member']}]" if src.get("member") is not None else "")
        data = read_member(sources_dir / src["package"] / src["path"], src.get("member"))
        digest = hashlib.sha256(data).hexdigest()
        if digest != src["sha256"]:
            raise DataError(f"{src['package']}/{name}: sha256 {digest} does not match the "
                            f"manifest's {src['sha256']} (wrong package version?)")
        audio = _decode(data, f"{src['package']}/{name}")
        if audio.size < _RATE // 50 or not np.any(audio):
            raise DataError(f"{src['package']}/{name}: silent or shorter than 20 ms")
        sources.append(_Source(i, tuple(src["class"].split("+")), src["split"], audio))
    return sources


# --------------------------------------------------------------------------------------------
# Mixing
# --------------------------------------------------------------------------------------------


def _active_rms(x: np.ndarray) -> float:
    frame = _RATE // 50
    usable = max(frame, x.size - x.size % frame)
    padded = np.zeros(usable)
    padded[: min(x.size, usable)] = x[:usable]
    energy = np.mean(padded.reshape(-1, frame) ** 2, axis=1)
    peak = float(energy.max())
    return float(np.sqrt(np.mean(energy[energy >= peak * 1e-3]))) if peak > 0 else 0.0


def _loop(rng: np.random.Generator, audio: np.ndarray, n: int) -> np.ndarray:
    """``n`` samples of ``audio`` from a random start, looped with 50 ms crossfades."""
    fade = min(_RATE // 20, audio.size // 4)
    out = np.zeros(n)
    pos = -int(rng.integers(0, max(1, audio.size - fade)))
    ramp = np.linspace(0.0, 1.0, fade) if fade else np.zeros(0)
    piece = audio.astype(np.float64).copy()
    if fade:
        piece[:fade] *= ramp
        piece[-fade:] *= ramp[::-1]
    while pos < n:
        lo, hi = max(pos, 0), min(pos + piece.size, n)
        out[lo:hi] += piece[lo - pos: hi - pos]
        pos += piece.size - fade if piece.size > fade else piece.size
    return out


def _event_audio(rng: np.random.Generator, audio: np.ndarray, clip_n: int) -> np.ndarray:
    """A crop (long sources) or 1-3 repeats (short ones) of a source, slightly re-speeded."""
    import soxr

    speed = float(rng.uniform(0.92, 1.08))
    max_len = int(rng.uniform(1.5, 8.0) * _RATE)
    if audio.size > max_len:
        start = int(rng.integers(0, audio.size - max_len + 1))
        piece = audio[start: start + max_len].astype(np.float64)
        fade = _RATE // 50
        piece[:fade] *= np.linspace(0.0, 1.0, fade)
        piece[-fade:] *= np.linspace(1.0, 0.0, fade)
    elif audio.size < int(1.5 * _RATE):
        repeats = int(rng.integers(1, 4))
        parts = []
        for r in range(repeats):
            parts.append(audio.astype(np.float64))
            if r < repeats - 1:
                parts.append(np.zeros(int(rng.uniform(0.15, 1.2) * _RATE)))
        piece = np.concatenate(parts)
    else:
        piece = audio.astype(np.float64)
    piece = soxr.resample(piece, _RATE * speed, _RATE, quality="HQ")
    return piece[:clip_n]


def _place(mix: np.ndarray, rng: np.random.Generator, piece: np.ndarray, bed_rms: float,
           snr_db: float) -> tuple[int, int]:
    level = _active_rms(piece)
    onset = int(rng.integers(0, mix.size - piece.size + 1))
    if level > 0:
        mix[onset: onset + piece.size] += piece * (bed_rms * 10.0 ** (snr_db / 20.0) / level)
    return onset, piece.size


def _primary(seed: int, tag: int, index: int) -> str:
    block, slot = divmod(index, len(COARSE_CLASSES))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SCHEDULE_TAG, tag,
                                                                         block)))
    return COARSE_CLASSES[int(rng.permutation(len(COARSE_CLASSES))[slot])]


def _render(rng: np.random.Generator, pools: dict[str, list[_Source]], primary: str,
            clip_n: int) -> tuple[np.ndarray, list[dict[str, Any]], list[dict[str, Any]]]:
    """Beds, labelled events and distractors; returns the mono mix and the event records."""
    bed_dbfs = float(rng.uniform(*_BED_DBFS))
    bed_rms = 10.0 ** (bed_dbfs / 20.0)
    mix = render_background(rng, _RATE, clip_n).astype(np.float64) * bed_rms \
        * 10.0 ** (_NOISE_FLOOR_DB / 20.0)
    for _ in range(int(rng.integers(1, 3))):
        bed = pools["background"][int(rng.integers(len(pools["background"])))]
        looped = _loop(rng, bed.audio, clip_n)
        level = _active_rms(looped)
        if level > 0:
            mix += looped * (bed_rms / level) * float(rng.uniform(0.5, 1.0))
    events: list[dict[str, Any]] = []
    if rng.random() >= _EMPTY_CLIP_PROB:
        count = int(rng.choice(_EVENT_COUNTS, p=_EVENT_COUNT_PROBS))
        others = [c for c in COARSE_CLASSES if c != primary]
        chosen = [primary] + [others[int(i)] for i in
                              rng.choice(len(others), size=count - 1, replace=False)]
        for cls in chosen:
            source = pools[cls][int(rng.integers(len(pools[cls])))]
            piece = _event_audio(rng, source.audio, clip_n)
            snr = float(rng.uniform(*_SNR_DB))
            onset, length = _place(mix, rng, piece, bed_rms, snr)
            events.append({"classes": [c for c in source.classes if c in COARSE_CLASSES],
                           "source": source.index, "onset": round(onset / _RATE, 4),
                           "duration": round(length / _RATE, 4), "snr_db": round(snr, 2)})
    distractors: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(0, 3))):
        source = pools["distractor"][int(rng.integers(len(pools["distractor"])))]
        piece = _event_audio(rng, source.audio, clip_n)
        snr = float(rng.uniform(*_DISTRACTOR_SNR_DB))
        onset, length = _place(mix, rng, piece, bed_rms, snr)
        distractors.append({"source": source.index, "onset": round(onset / _RATE, 4),
                            "duration": round(length / _RATE, 4), "snr_db": round(snr, 2)})
    peak = float(np.max(np.abs(mix)))
    if peak > _CLIP_PEAK:
        mix *= _CLIP_PEAK / peak
    return mix, events, distractors


def _write_audio(rng: np.random.Generator, path_stem: Path, mono: np.ndarray) -> tuple[str, dict]:
    """Write the clip at 44.1 or 48 kHz, mono or stereo, WAV or FLAC; return name and format."""
    import soundfile
    import soxr

    rate = 48000 if rng.random() < _P_48K else _RATE
    stereo = rng.random() < _P_STEREO
    flac = rng.random() < _P_FLAC
    delay = int(rng.integers(1, 30))
    gain = float(rng.uniform(0.6, 1.0))
    audio = mono if rate == _RATE else soxr.resample(mono, _RATE, rate, quality="HQ")
    if stereo:
        right = np.concatenate([np.zeros(delay), audio[:-delay]]) * gain
        audio = np.stack([audio, right], axis=1)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    name = path_stem.name + (".flac" if flac else ".wav")
    soundfile.write(str(path_stem.with_name(name)), audio, rate, subtype="PCM_16",
                    format="FLAC" if flac else "WAV")
    return name, {"sample_rate": rate, "channels": 2 if stereo else 1,
                  "format": "FLAC" if flac else "WAV"}


# --------------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------------

_FINE = tuple(name for key in sorted(FINE_CLASSES) for name in FINE_CLASSES[key])


def _uncertain(cls: str) -> str:
    names = FINE_CLASSES[COARSE_CLASSES.index(cls) + 1]
    return next((f for f in names if f.split("_", 1)[0].endswith("-X")), names[0])


def _row(clip: dict[str, Any], annotator: int, proximity: dict[str, str],
         meta: Sequence[str]) -> list[str]:
    fine = {_uncertain(c): p for c, p in proximity.items()}
    return [clip["split"], str(clip["sensor_id"]), clip["audio_filename"], str(annotator),
            *meta,
            *("1" if f in fine else "0" for f in _FINE),
            *("1" if c in proximity else "0" for c in COARSE_CLASSES),
            *(fine.get(f, "-1") for f in _FINE)]


def _rows(rng: np.random.Generator, clip: dict[str, Any], events: list[dict[str, Any]],
          pool: np.ndarray, profiles: dict, crowd: CrowdErrorModel) -> list[list[str]]:
    labelled = [(c, e["snr_db"]) for e in events for c in e["classes"]]
    truth: dict[str, str] = {}
    for cls, snr in labelled:
        near = "near" if snr >= _NEAR_SNR_DB else "far"
        truth[cls] = "near" if truth.get(cls) == "near" else near
    meta = [str(clip["borough"]), str(clip["block"]), clip["latitude"], clip["longitude"],
            str(int(rng.integers(2016, 2020))), str(int(rng.integers(1, 53))),
            str(int(rng.integers(0, 7))), str(int(rng.integers(0, 24)))]
    rows = []
    for annotator in np.sort(rng.choice(pool, size=_CROWD, replace=False)):
        heard = crowd_labels(rng, labelled, profiles[int(annotator)], crowd)
        rows.append(_row(clip, int(annotator),
                         {c: truth.get(c, "notsure") for c in COARSE_CLASSES if c in heard},
                         meta))
    if clip["split"] != "train":
        rows.append(_row(clip, VERIFIED_ANNOTATOR, truth, meta))
    return rows


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------


def _layout(seed: int, counts: dict[str, int]) -> list[dict[str, Any]]:
    """Clips of the labelled splits with sensor-disjoint ids and places (fixed by the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LAYOUT_TAG,)))
    sensors_per = {s: max(1, round(counts[s] / _CLIPS_PER_SENSOR)) for s in SPLITS
                   if counts[s]}
    ids = rng.permutation(sum(sensors_per.values()))
    clips, first = [], 0
    boroughs = ((1, 40.75, -73.99), (3, 40.69, -73.95), (4, 40.73, -73.84))
    for split in SPLITS:
        if not counts[split]:
            continue
        sensors = ids[first: first + sensors_per[split]]
        first += sensors_per[split]
        places = {}
        for sensor in sensors:
            b, lat, lon = boroughs[int(rng.integers(3))]
            places[int(sensor)] = (b, int(rng.integers(1, 2000)),
                                   f"{lat + rng.uniform(-0.02, 0.02):.5f}",
                                   f"{lon + rng.uniform(-0.02, 0.02):.5f}")
        for j in range(counts[split]):
            sensor = int(sensors[j % len(sensors)])
            b, block, lat, lon = places[sensor]
            clips.append({"split": split, "index": j, "sensor_id": sensor, "borough": b,
                          "block": block, "latitude": lat, "longitude": lon,
                          "stem": f"{sensor:02d}_{_SPLIT_TAG[split]}{j:05d}"})
    return clips


def _pools(sources: list[_Source], split: str) -> dict[str, list[_Source]]:
    wanted = "train" if split in ("train", "unlabeled") else "eval"
    pools: dict[str, list[_Source]] = {c: [] for c in (*COARSE_CLASSES, *_ROLES)}
    for source in sources:
        if source.split == wanted:
            for cls in source.classes:
                pools[cls].append(source)
    empty = [c for c, p in pools.items() if not p]
    if empty:
        raise DataError(f"manifest has no {wanted!r} sources for {empty}")
    return pools


def _check_counts(counts: dict[str, int], clip_seconds: float, seed: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name}={value!r}: expected a non-negative integer")
    if counts["train"] < 1:
        raise ConfigError(f"train={counts['train']!r}: expected an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r}: expected a non-negative integer")
    if not (isinstance(clip_seconds, (int, float)) and math.isfinite(clip_seconds)
            and 0.5 <= clip_seconds <= 60):
        raise ConfigError(f"clip_seconds={clip_seconds!r}: expected a number in [0.5, 60]")


def build_real_audio(
    out_dir: str | os.PathLike,
    sources_dir: str | os.PathLike,
    *,
    manifest_path: str | os.PathLike = DEFAULT_MANIFEST,
    seed: int = 0,
    train: int = 480,
    validate: int = 150,
    test: int = 600,
    unlabeled: int = 1920,
    clip_seconds: float = 10.0,
    crowd: CrowdErrorModel = DEFAULT_CROWD,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the benchmark into ``out_dir`` (see the module docstring) and return its path.

    Args:
        out_dir: folder to create; must not exist or be empty unless ``overwrite``.
        sources_dir: folder holding ``<package>/<path>`` for every manifest source (as
            :func:`fetch_sources` leaves it).
        manifest_path: the manifest JSON.
        seed: non-negative integer; same seed, manifest and sources give the same bytes.
        train, validate, test: labelled clips per split (train >= 1).
        unlabeled: clips in the unlabelled pool (train sources only).
        clip_seconds: clip length.
        crowd: the crowd-error model of the crowd rows.
        overwrite: replace an existing non-empty ``out_dir``.
        progress: show a progress bar.

    Raises:
        ConfigError: a count, the seed or the clip length is out of range.
        DataError: the manifest is malformed, a source is missing, fails its sha256 or cannot
            be decoded, a class has no source in a split, or ``out_dir`` is in the way.
    """
    counts = {"train": train, "validate": validate, "test": test, "unlabeled": unlabeled}
    _check_counts(counts, clip_seconds, seed)
    out = Path(os.path.abspath(out_dir))
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DataError(f"{out}: output folder exists and is not empty "
                        "(pass overwrite=True to replace it)")
    manifest = load_manifest(manifest_path)
    sources = _load_sources(manifest, Path(sources_dir))
    pools = {split: _pools(sources, split) for split in ("train", "validate")}
    pools["test"], pools["unlabeled"] = pools["validate"], pools["train"]
    clip_n = int(round(clip_seconds * _RATE))
    layout = _layout(seed, counts)
    layout += [{"split": "unlabeled", "index": j, "stem": f"u_{j:06d}"}
               for j in range(unlabeled)]
    annotator_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(12,)))
    pool = np.sort(annotator_rng.choice(np.arange(1, 1001), size=40, replace=False))
    profiles = annotator_profiles(seed, pool.tolist(), crowd)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "audio").mkdir()
        (tmp / "unlabeled").mkdir()
        rows: list[list[str]] = []
        records: list[dict[str, Any]] = []
        for clip in _progress(layout, progress):
            split, j = clip["split"], clip["index"]
            audio_rng, format_rng, label_rng = (
                np.random.default_rng(np.random.SeedSequence(
                    seed, spawn_key=(_SPLIT_TAG[split], j, stream))) for stream in range(3))
            mono, events, distractors = _render(audio_rng, pools[split],
                                                _primary(seed, _SPLIT_TAG[split], j), clip_n)
            folder = tmp / ("unlabeled" if split == "unlabeled" else "audio")
            name, fmt = _write_audio(format_rng, folder / clip["stem"], mono)
            record = {"split": split, "audio_filename": name, **fmt, "events": events,
                      "distractors": distractors}
            if split != "unlabeled":
                clip = {**clip, "audio_filename": name}
                rows.extend(_rows(label_rng, clip, events, pool, profiles, crowd))
                record["sensor_id"] = clip["sensor_id"]
            records.append(record)
        with (tmp / "annotations.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            writer.writerows(rows)
        manifest_bytes = Path(manifest_path).read_bytes()
        config = {
            "builder": "keras_iusp.data.real_audio", "format": "SONYC-UST v2",
            "parameters": {"seed": seed, **counts, "clip_seconds": float(clip_seconds),
                           "crowd_errors": crowd.to_dict()},
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "packages": {k: v["version"] for k, v in sorted(manifest["packages"].items())},
            "clips": records,
        }
        (tmp / "real_audio_config.json").write_text(
            json.dumps(config, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            else:
                old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
                os.rename(out, old)
                os.rename(tmp, out)
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
                return out
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _progress(items: list, enabled: bool) -> Iterable:
    from tqdm import tqdm

    return tqdm(items, desc="mixing clips", unit="clip", disable=not enabled)
