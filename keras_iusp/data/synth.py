"""Write a synthetic dataset in exactly the SONYC-UST v2 layout (``audio/`` + ``annotations.csv``).

Why a generator rather than a fixture: the real SONYC-UST download is ~10 GB and needs a manual
step, yet every part of the project (CSV reader, crowd-label aggregation, feature cache, teacher
training, IUSP distillation, int8 export) must be runnable in CI and in a quickstart. Writing the
*same file format* means the synthetic data goes through the production loader unchanged, so
the loader is tested by it rather than bypassed.

What is imitated, and why:

* **Row structure.** One row per (clip, annotator). Train clips have crowd rows only (positive
  ids), each annotator missing true events with probability ``label_noise`` and hallucinating
  absent ones at a quarter of that rate, so the train-label aggregation rules ("any" vs
  "majority") really differ. Validate/test clips add the verified row (``annotator_id == 0``)
  with the true labels, which is what SONYC evaluates against.
* **Sensor-disjoint splits.** Clips of one sensor share a location (and, in real data, its
  acoustic background), so SONYC never puts one sensor in two splits; neither does this.
* **Class structure.** Events come from :mod:`keras_iusp.data.synth_sounds` and keep the
  repetitive-vs-isolated nature of each class, which is what IUSP distillation exploits.
  Classes co-occur the way street sounds do (engines with sirens and voices, saws with
  jackhammers), and every coarse class is scheduled as the primary event of one clip in each
  block of eight clips (unless that clip is drawn background-only), so that even a 60-clip
  dataset has every class in >= 8 % of clips.

Everything is reproducible: each clip draws from its own :class:`numpy.random.SeedSequence`
child keyed by ``(seed, clip index)``, so the output is byte-identical for the same arguments and
independent of the order clips are rendered in. The folder is written next to the target and
renamed into place, so an interrupted run never leaves a half-written dataset behind.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.data.crowd import CrowdErrorModel, annotator_profiles, crowd_labels
from keras_iusp.data.schema import (
    COARSE_CLASSES,
    COARSE_COLUMNS,
    FINE_CLASSES,
    ID_COLUMNS,
    SPLITS,
    VERIFIED_ANNOTATOR,
)
from keras_iusp.data.synth_sounds import (
    REPETITIVE_SUBTYPES,
    render_background,
    render_labelled_event,
)
from keras_iusp.utils.errors import ConfigError, DataError

__all__ = ["CSV_COLUMNS", "SYNTH_PRESETS", "synthesize"]

#: Fine-level class names in SONYC order (``1-1_small-sounding-engine``, ...).
_FINE: tuple[str, ...] = tuple(name for key in sorted(FINE_CLASSES) for name in FINE_CLASSES[key])

#: The SONYC-UST v2 ``annotations.csv`` header, in order.
CSV_COLUMNS: tuple[str, ...] = (
    *ID_COLUMNS,
    "borough", "block", "latitude", "longitude", "year", "week", "day", "hour",
    *(f"{fine}_presence" for fine in _FINE),
    *COARSE_COLUMNS,
    *(f"{fine}_proximity" for fine in _FINE),
)

# Seed-sequence streams: one spawn key per purpose, so changing e.g. the annotator options
# leaves the audio untouched and the layout never shifts the per-clip randomness.
_LAYOUT, _SCHEDULE, _CLIP = 0, 1, 2
_AUDIO, _LABELS = 0, 1

_EMPTY_CLIP_PROB = 0.08
_EVENT_COUNTS, _EVENT_COUNT_PROBS = (1, 2, 3), (0.4, 0.35, 0.25)
_PARTNER_PROB = 0.6  # chance that a further event is a typical companion of one already there
_PARTNERS: dict[str, tuple[str, ...]] = {
    "engine": ("alert-signal", "human-voice", "music"),
    "machinery-impact": ("powered-saw", "engine"),
    "non-machinery-impact": ("human-voice", "engine"),
    "powered-saw": ("machinery-impact", "engine"),
    "alert-signal": ("engine",),
    "music": ("human-voice", "engine"),
    "human-voice": ("engine", "dog", "music"),
    "dog": ("human-voice",),
}
_SNR_DB = (-3.0, 20.0)  # event level over the background, measured on the event's active part
_BACKGROUND_DBFS = (-42.0, -28.0)
_NEAR_SNR_DB = 8.0  # louder than this over the background is labelled "near"
_CLIP_PEAK = 0.95
_CLIPS_PER_SENSOR = 5
#: SONYC-UST sensors are in Manhattan (1), Brooklyn (3) and Queens (4): borough code and a
#: rough centre used to scatter sensor coordinates.
_BOROUGHS = ((1, 40.7500, -73.9900), (3, 40.6900, -73.9500), (4, 40.7300, -73.8400))

#: Named regimes of the generator. ``default`` is today's generator (its output bytes do not
#: change); ``realistic`` aims at what real street recordings look like: events closer to (and
#: below) the background, faint unlabelled distractor events, and crowd rows with the
#: structured errors of :mod:`keras_iusp.data.crowd` (SNR-dependent misses, annotator habits,
#: confusions between similar classes) instead of independent flips. Keys: ``snr_db`` (range
#: of event SNRs), ``background_dbfs`` (range of background levels), ``distractors`` (max
#: number of faint events per clip that no row labels), ``distractor_snr_db`` (their SNR range)
#: and ``crowd_errors`` (a :class:`CrowdErrorModel`, or None for ``label_noise`` flips).
SYNTH_PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "snr_db": _SNR_DB, "background_dbfs": _BACKGROUND_DBFS, "distractors": 0,
        "distractor_snr_db": (-20.0, -12.0), "crowd_errors": None,
    },
    "realistic": {
        "snr_db": (-10.0, 12.0), "background_dbfs": (-40.0, -24.0), "distractors": 3,
        "distractor_snr_db": (-20.0, -8.0),
        "crowd_errors": CrowdErrorModel(threshold_snr_db=-1.0, slope_db=2.5, lapse=0.05,
                                        threshold_spread_db=3.0, confusion=0.12,
                                        confusion_adds=0.5, false_alarm=0.02,
                                        propensity_spread=0.6),
    },
}


def synthesize(
    out_dir: str | os.PathLike,
    clips: int,
    seed: int,
    *,
    clip_seconds: float = 10.0,
    sample_rate: int = 22050,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    crowd_annotators: int = 3,
    label_noise: float = 0.1,
    progress: bool = True,
    overwrite: bool = False,
    preset: str = "default",
    unlabeled: int = 0,
) -> Path:
    """Write ``clips`` synthetic clips as a SONYC-UST v2 dataset folder and return its path.

    Layout of ``out_dir``: ``audio/<sensor>_<clip>.wav`` (16-bit PCM mono), ``annotations.csv``
    (columns :data:`CSV_COLUMNS`, one row per clip and annotator) and ``synth_config.json``
    (the arguments plus every clip's true events: class, sub-type, fine label, onset, duration,
    SNR and whether the sub-type is repetitive, e.g. to pick a clip for an IUSP figure).

    Args:
        out_dir: folder to create; must not exist or be empty unless ``overwrite``.
        clips: number of clips (>= 1). With >= 3 clips every split with a positive fraction
            gets at least one clip.
        seed: non-negative integer; the same arguments give byte-identical files.
        clip_seconds: clip length in seconds.
        sample_rate: WAV sample rate in Hz (>= 8000).
        split_fractions: (train, validate, test) shares of the clips, summing to 1.
        crowd_annotators: crowd rows per clip (>= 1), in every split.
        label_noise: probability that a crowd annotator misses a present class; false alarms
            happen at a quarter of this rate.
        progress: show a tqdm progress bar.
        overwrite: replace an existing non-empty ``out_dir`` (the old folder is only deleted
            after the new one is in place).
        preset: a key of :data:`SYNTH_PRESETS`. With a preset whose ``crowd_errors`` is set,
            crowd rows follow that model and ``label_noise`` is not used.
        unlabeled: further clips from the same generator (clip indices ``clips`` onwards, so
            the labelled clips are unchanged) written without labels: ``unlabeled/*.wav`` and
            ``unlabeled.csv`` (one ``audio_filename`` column, paths relative to ``out_dir``), an
            unlabelled pool for ``keras-iusp distill --unlabeled`` (either path). Their events
            are recorded in ``synth_config.json`` under ``unlabeled_clips``.

    Raises:
        ConfigError: an argument is out of range (the message names it).
        DataError: ``out_dir`` exists, is not empty and ``overwrite`` is false.
    """
    fractions = _validate(clips, seed, clip_seconds, sample_rate, split_fractions,
                          crowd_annotators, label_noise)
    if not isinstance(preset, str) or preset not in SYNTH_PRESETS:
        raise ConfigError(f"preset={preset!r}: expected one of {sorted(SYNTH_PRESETS)}")
    regime = SYNTH_PRESETS[preset]
    if not _is_int(unlabeled) or unlabeled < 0:
        raise ConfigError(f"unlabeled={unlabeled!r}: expected an integer >= 0")
    clips, seed, sample_rate = int(clips), int(seed), int(sample_rate)
    clip_seconds, label_noise = float(clip_seconds), float(label_noise)
    # Absolute, so "." or "data/" still have a parent folder to build the temporary copy in.
    out = Path(os.path.abspath(out_dir))
    _check_target(out, overwrite)

    layout = _layout(clips, seed, fractions, crowd_annotators)
    crowd_model = regime["crowd_errors"]
    profiles = (annotator_profiles(seed, layout["annotators"].tolist(), crowd_model)
                if crowd_model is not None else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a dataset folder should not be
        (tmp / "audio").mkdir()
        rows: list[list[str]] = []
        records: list[dict[str, Any]] = []
        for index in _progress(range(clips), progress):
            clip = layout["clips"][index]
            audio_rng, label_rng = (
                np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CLIP, index, s)))
                for s in (_AUDIO, _LABELS)
            )
            primary = _primary_class(seed, index)
            waveform, events, background_dbfs, distractors = _render_clip(
                audio_rng, primary, clip_seconds, sample_rate, regime)
            _write_wav(tmp / "audio" / clip["audio_filename"], waveform, sample_rate)
            rows.extend(_annotation_rows(label_rng, clip, events, layout["annotators"],
                                         crowd_annotators, label_noise, crowd_model, profiles))
            record = {**clip, "background_dbfs": round(background_dbfs, 2), "events": events}
            if preset != "default":
                record["distractors"] = distractors
            records.append(record)
        _write_csv(tmp / "annotations.csv", rows)
        pool = _write_unlabeled(tmp, clips, int(unlabeled), seed, clip_seconds, sample_rate,
                                progress, regime) if unlabeled else None
        config = {
            "generator": "keras_iusp.data.synth",
            "format": "SONYC-UST v2",
            "parameters": {
                "clips": clips, "seed": seed, "clip_seconds": clip_seconds,
                "sample_rate": sample_rate, "split_fractions": list(fractions),
                "crowd_annotators": crowd_annotators, "label_noise": label_noise,
                **({"preset": preset,
                    "crowd_errors": crowd_model.to_dict() if crowd_model else None}
                   if preset != "default" else {}),
            },
            "clips": records,
        }
        if pool is not None:  # only then: datasets without a pool stay byte-identical
            config["parameters"]["unlabeled"] = int(unlabeled)
            config["unlabeled_clips"] = pool
        (tmp / "synth_config.json").write_text(
            json.dumps(config, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _move_into_place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# --------------------------------------------------------------------------------------------
# Arguments and target folder
# --------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _validate(clips: Any, seed: Any, clip_seconds: Any, sample_rate: Any, split_fractions: Any,
              crowd_annotators: Any, label_noise: Any) -> tuple[float, float, float]:
    """Check every argument up front, before anything is written; return the fractions."""
    if not _is_int(clips) or clips < 1:
        raise ConfigError(f"clips={clips!r}: expected an integer >= 1")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed={seed!r}: expected a non-negative integer")
    if not _is_int(sample_rate) or sample_rate < 8000:
        raise ConfigError(f"sample_rate={sample_rate!r}: expected an integer >= 8000 (Hz)")
    if not _is_real(clip_seconds) or clip_seconds <= 0:
        raise ConfigError(f"clip_seconds={clip_seconds!r}: expected a positive number of seconds")
    if int(float(clip_seconds) * int(sample_rate)) < 1:
        raise ConfigError(f"clip_seconds={clip_seconds!r}: shorter than one sample at "
                          f"{sample_rate} Hz")
    if not _is_int(crowd_annotators) or crowd_annotators < 1:
        raise ConfigError(f"crowd_annotators={crowd_annotators!r}: expected an integer >= 1")
    if not _is_real(label_noise) or not 0.0 <= label_noise <= 1.0:
        raise ConfigError(f"label_noise={label_noise!r}: expected a probability in [0, 1]")
    try:
        fractions = tuple(split_fractions)
    except TypeError:
        fractions = ()
    if (len(fractions) != len(SPLITS) or not all(_is_real(f) and f >= 0 for f in fractions)
            or abs(sum(float(f) for f in fractions) - 1.0) > 1e-6):
        raise ConfigError(
            f"split_fractions={split_fractions!r}: expected three non-negative numbers "
            f"({', '.join(SPLITS)}) summing to 1"
        )
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse early (before minutes of rendering) if ``out`` is in the way."""
    if overwrite or not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory (pass overwrite=True to replace it)")
    if any(out.iterdir()):
        raise DataError(f"{out}: output folder exists and is not empty "
                        "(pass overwrite=True to replace it)")


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder to ``out``; with ``overwrite`` swap the old one out first.

    A rename within one folder is atomic, so readers see either the old dataset or the new
    one. The old folder is moved aside (not deleted) until the new one is in place, and moved
    back if that fails.
    """
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        out.rmdir()  # an empty folder (e.g. made by a caller beforehand) is not in the way
    if not (out.exists() or out.is_symlink()):
        try:
            os.rename(tmp, out)
        except OSError as exc:  # someone created it meanwhile
            raise DataError(f"{out}: cannot move the new dataset into place ({exc})") from exc
        return
    if not overwrite:
        raise DataError(f"{out}: output folder exists and is not empty "
                        "(pass overwrite=True to replace it)")
    old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def _progress(items: range, enabled: bool) -> Iterable[int]:
    from tqdm import tqdm

    return tqdm(items, desc="synthesizing clips", unit="clip", disable=not enabled)


# --------------------------------------------------------------------------------------------
# Splits, sensors, annotators
# --------------------------------------------------------------------------------------------


def _split_counts(clips: int, fractions: tuple[float, ...]) -> list[int]:
    """Largest-remainder apportionment, then make sure each used split has a clip."""
    raw = [f * clips for f in fractions]
    counts = [int(math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: clips - sum(counts)]:
        counts[i] += 1
    for i, fraction in enumerate(fractions):
        if fraction > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _layout(clips: int, seed: int, fractions: tuple[float, ...],
            crowd_annotators: int) -> dict[str, Any]:
    """Assign clips to splits and sensors, and sensors to places; pick the annotator pool.

    Clips are shuffled before being dealt to splits so a clip's index says nothing about its
    split, and each split gets its own sensors (about five clips per sensor, every sensor
    used at least once).
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LAYOUT,)))
    counts = _split_counts(clips, fractions)
    order = rng.permutation(clips)
    sensors_per_split = [max(1, round(c / _CLIPS_PER_SENSOR)) if c else 0 for c in counts]
    sensor_ids = rng.permutation(sum(sensors_per_split))
    places = {}
    for sensor in sensor_ids:
        borough, lat, lon = _BOROUGHS[int(rng.integers(len(_BOROUGHS)))]
        places[int(sensor)] = (borough, int(rng.integers(1, 2000)),
                               lat + rng.uniform(-0.02, 0.02), lon + rng.uniform(-0.02, 0.02))
    layout_clips: list[dict[str, Any]] = [{} for _ in range(clips)]
    start = first_sensor = 0
    for split, count, n_sensors in zip(SPLITS, counts, sensors_per_split, strict=True):
        sensors = sensor_ids[first_sensor: first_sensor + n_sensors]
        for j, index in enumerate(order[start: start + count]):
            sensor = int(sensors[j % n_sensors])
            borough, block, lat, lon = places[sensor]
            layout_clips[int(index)] = {
                "audio_filename": f"{sensor:02d}_{int(index):06d}.wav",
                "split": split, "sensor_id": sensor, "borough": borough, "block": block,
                "latitude": f"{lat:.5f}", "longitude": f"{lon:.5f}",
            }
        start += count
        first_sensor += n_sensors
    pool = max(4 * crowd_annotators, 30)
    annotators = np.sort(rng.choice(np.arange(1, 10 * pool + 1), size=pool, replace=False))
    return {"clips": layout_clips, "annotators": annotators}


def _primary_class(seed: int, index: int) -> str:
    """The clip's main event class: every class once per block of 8 consecutive clips.

    A balanced schedule instead of independent draws guarantees coverage in small datasets;
    the order inside each block is shuffled per seed so class and index are not linked.
    """
    block, slot = divmod(index, len(COARSE_CLASSES))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SCHEDULE, block)))
    return COARSE_CLASSES[int(rng.permutation(len(COARSE_CLASSES))[slot])]


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    """RMS over the 20 ms frames within 30 dB of the loudest one.

    A dog bout is mostly silence between barks; measuring its SNR over the whole event would
    make sparse events far louder than sustained ones at the same nominal SNR.
    """
    frame = max(1, int(0.02 * sample_rate))
    usable = max(frame, x.size - x.size % frame)
    padded = np.zeros(usable)
    padded[: min(x.size, usable)] = x[:usable]
    energy = np.mean(padded.reshape(-1, frame) ** 2, axis=1)
    peak = float(energy.max())
    if peak <= 0.0:
        return 0.0
    return float(np.sqrt(np.mean(energy[energy >= peak * 1e-3])))


def _choose_classes(rng: np.random.Generator, primary: str) -> list[str]:
    count = int(rng.choice(_EVENT_COUNTS, p=_EVENT_COUNT_PROBS))
    chosen = [primary]
    while len(chosen) < count:
        partners = sorted({p for c in chosen for p in _PARTNERS[c]} - set(chosen),
                          key=COARSE_CLASSES.index)
        if partners and rng.random() < _PARTNER_PROB:
            pool = partners
        else:
            pool = [c for c in COARSE_CLASSES if c not in chosen]
        chosen.append(pool[int(rng.integers(len(pool)))])
    return chosen


def _render_clip(rng: np.random.Generator, primary: str, seconds: float, sample_rate: int,
                 regime: dict[str, Any]) -> tuple[np.ndarray, list[dict[str, Any]], float,
                                                  list[dict[str, Any]]]:
    """Background plus 0-3 events (and, by ``regime``, faint unlabelled distractors).

    Returns the waveform, the event records, the background level and the distractor records.
    """
    n = int(seconds * sample_rate)
    background_dbfs = float(rng.uniform(*regime["background_dbfs"]))
    bg_rms = 10.0 ** (background_dbfs / 20.0)
    mix = render_background(rng, sample_rate, n).astype(np.float64) * bg_rms
    events: list[dict[str, Any]] = []
    if rng.random() >= _EMPTY_CLIP_PROB:
        for cls in _choose_classes(rng, primary):
            event = render_labelled_event(cls, rng, sample_rate, seconds)
            audio = event.audio.astype(np.float64)
            onset = int(rng.integers(0, n - audio.size + 1))
            snr = float(rng.uniform(*regime["snr_db"]))
            level = _active_rms(audio, sample_rate)
            if level > 0.0:
                mix[onset: onset + audio.size] += audio * (bg_rms * 10.0 ** (snr / 20.0) / level)
            events.append({
                "class": cls, "subtype": event.subtype, "fine": event.fine,
                "onset": round(onset / sample_rate, 4),
                "duration": round(audio.size / sample_rate, 4),
                "snr_db": round(snr, 2),
                "repetitive": event.subtype in REPETITIVE_SUBTYPES,
            })
    distractors: list[dict[str, Any]] = []
    if regime["distractors"]:  # drawn last, so the default regime's stream is unchanged
        for _ in range(int(rng.integers(0, regime["distractors"] + 1))):
            cls = COARSE_CLASSES[int(rng.integers(len(COARSE_CLASSES)))]
            event = render_labelled_event(cls, rng, sample_rate, seconds)
            audio = event.audio.astype(np.float64)
            onset = int(rng.integers(0, n - audio.size + 1))
            snr = float(rng.uniform(*regime["distractor_snr_db"]))
            level = _active_rms(audio, sample_rate)
            if level > 0.0:
                mix[onset: onset + audio.size] += audio * (bg_rms * 10.0 ** (snr / 20.0) / level)
            distractors.append({"class": cls, "onset": round(onset / sample_rate, 4),
                                "duration": round(audio.size / sample_rate, 4),
                                "snr_db": round(snr, 2)})
    peak = float(np.max(np.abs(mix)))
    if peak > _CLIP_PEAK:  # scale the whole clip: keeps every SNR as drawn
        mix *= _CLIP_PEAK / peak
    return mix.astype(np.float32), events, background_dbfs, distractors


def _write_wav(path: Path, waveform: np.ndarray, sample_rate: int) -> None:
    import soundfile

    soundfile.write(str(path), waveform, sample_rate, subtype="PCM_16", format="WAV")


def _write_unlabeled(tmp: Path, clips: int, count: int, seed: int, clip_seconds: float,
                     sample_rate: int, progress: bool,
                     regime: dict[str, Any]) -> list[dict[str, Any]]:
    """Render clip indices ``clips .. clips + count - 1`` like labelled ones, without labels."""
    (tmp / "unlabeled").mkdir()
    records, names = [], []
    for index in _progress(range(clips, clips + count), progress):
        audio_rng = np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(_CLIP, index, _AUDIO)))
        waveform, events, background_dbfs, _ = _render_clip(
            audio_rng, _primary_class(seed, index), clip_seconds, sample_rate, regime)
        name = f"u_{index:06d}.wav"
        _write_wav(tmp / "unlabeled" / name, waveform, sample_rate)
        names.append(f"unlabeled/{name}")
        records.append({"audio_filename": name, "background_dbfs": round(background_dbfs, 2),
                        "events": events})
    with (tmp / "unlabeled.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["audio_filename"])
        writer.writerows([n] for n in names)
    return records


# --------------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------------


def _uncertain_fine(cls: str) -> str:
    """The class's "of uncertain type" fine label (``X``), or its only fine label."""
    names = FINE_CLASSES[COARSE_CLASSES.index(cls) + 1]
    return next((f for f in names if f.split("_", 1)[0].endswith("-X")), names[0])


def _annotation_rows(rng: np.random.Generator, clip: dict[str, Any], events: list[dict[str, Any]],
                     pool: np.ndarray, crowd: int, label_noise: float,
                     crowd_model: CrowdErrorModel | None = None,
                     profiles: dict[int, Any] | None = None) -> list[list[str]]:
    """Crowd rows (every split) plus the verified row (validate/test only) for one clip.

    Without ``crowd_model`` each annotator misses a present class with ``label_noise`` and
    ticks an absent one at a quarter of it; with it, :func:`crowd_labels` decides which classes
    each annotator (with their ``profiles`` entry) reports.
    """
    truth = {e["class"]: e for e in events}
    meta = [str(clip["borough"]), str(clip["block"]), clip["latitude"], clip["longitude"],
            str(int(rng.integers(2016, 2020))), str(int(rng.integers(1, 53))),
            str(int(rng.integers(0, 7))), str(int(rng.integers(0, 24)))]

    def row(annotator: int, fine: dict[str, str]) -> list[str]:
        coarse = {cls for cls in COARSE_CLASSES
                  if any(f in fine for f in FINE_CLASSES[COARSE_CLASSES.index(cls) + 1])}
        return [clip["split"], str(clip["sensor_id"]), clip["audio_filename"], str(annotator),
                *meta,
                *("1" if f in fine else "0" for f in _FINE),
                *("1" if c in coarse else "0" for c in COARSE_CLASSES),
                *(fine.get(f, "-1") for f in _FINE)]

    true_fine = {e["fine"]: ("near" if e["snr_db"] >= _NEAR_SNR_DB else "far")
                 for e in events}
    rows = []
    for annotator in np.sort(rng.choice(pool, size=min(crowd, pool.size), replace=False)):
        heard: dict[str, str] = {}
        reported = None
        if crowd_model is not None and profiles is not None:
            reported = crowd_labels(rng, [(e["class"], e["snr_db"]) for e in events],
                                    profiles[int(annotator)], crowd_model)
        for cls in COARSE_CLASSES:
            if reported is not None:
                if cls not in reported:
                    continue
                if cls in truth:
                    event = truth[cls]
                    fine = event["fine"] if rng.random() >= 0.2 else _uncertain_fine(cls)
                    proximity = true_fine[event["fine"]]
                else:
                    fine = _uncertain_fine(cls)
                    proximity = ("near", "far", "notsure")[int(rng.integers(3))]
                heard[fine] = proximity
                continue
            if cls in truth:
                if rng.random() < label_noise:
                    continue  # missed
                event = truth[cls]
                # Volunteers often cannot tell the sub-type and pick "other/unknown".
                fine = event["fine"] if rng.random() >= 0.2 else _uncertain_fine(cls)
                proximity = true_fine[event["fine"]]
                draw = rng.random()
                if draw < 0.2:
                    proximity = "notsure"
                elif draw < 0.3:
                    proximity = "far" if proximity == "near" else "near"
            elif rng.random() < label_noise / 4.0:  # false alarm
                fine = _uncertain_fine(cls)
                proximity = ("near", "far", "notsure")[int(rng.integers(3))]
            else:
                continue
            heard[fine] = proximity
        rows.append(row(int(annotator), heard))
    if clip["split"] != "train":
        rows.append(row(VERIFIED_ANNOTATOR, true_fine))
    return rows


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
