"""Names fixed by the SONYC-UST v2 annotation format (DCASE 2019 Task 5).

The coarse-level columns are the eight classes the paper reports micro-AUPRC on. Kept in one
place so the loader, the synthetic generator and the exporters cannot drift apart.
"""

from __future__ import annotations

#: Coarse class names in SONYC-UST order (column prefix is ``{index}_``).
COARSE_CLASSES: tuple[str, ...] = (
    "engine",
    "machinery-impact",
    "non-machinery-impact",
    "powered-saw",
    "alert-signal",
    "music",
    "human-voice",
    "dog",
)

#: ``annotations.csv`` columns holding the coarse labels, e.g. ``5_alert-signal_presence``.
COARSE_COLUMNS: tuple[str, ...] = tuple(
    f"{i}_{name}_presence" for i, name in enumerate(COARSE_CLASSES, start=1)
)

#: Columns every SONYC-UST ``annotations.csv`` must carry besides the coarse labels.
ID_COLUMNS: tuple[str, ...] = ("split", "sensor_id", "audio_filename", "annotator_id")

#: Split names used by SONYC-UST.
SPLITS: tuple[str, ...] = ("train", "validate", "test")

#: Fine-level classes of SONYC-UST v2, written by the synthetic generator so its CSV has the same
#: shape as the real one (the loader ignores them). ``X`` entries are "of uncertain type".
FINE_CLASSES: dict[int, tuple[str, ...]] = {
    1: ("1-1_small-sounding-engine", "1-2_medium-sounding-engine", "1-3_large-sounding-engine",
        "1-X_engine-of-uncertain-size"),
    2: ("2-1_rock-drill", "2-2_jackhammer", "2-3_hoe-ram", "2-4_pile-driver",
        "2-X_other-unknown-impact-machinery"),
    3: ("3-1_non-machinery-impact",),
    4: ("4-1_chainsaw", "4-2_small-medium-rotating-saw", "4-3_large-rotating-saw",
        "4-X_other-unknown-powered-saw"),
    5: ("5-1_car-horn", "5-2_car-alarm", "5-3_siren", "5-4_reverse-beeper",
        "5-X_other-unknown-alert-signal"),
    6: ("6-1_stationary-music", "6-2_mobile-music", "6-3_ice-cream-truck",
        "6-X_music-from-uncertain-source"),
    7: ("7-1_person-or-small-group-talking", "7-2_person-or-small-group-shouting",
        "7-3_large-crowd", "7-4_amplified-speech", "7-X_other-unknown-human-voice"),
    8: ("8-1_dog-barking-whining",),
}

#: Annotator id of the row agreed on by the SONYC team (the verified label).
VERIFIED_ANNOTATOR = 0
