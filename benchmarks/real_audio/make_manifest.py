"""Write ``manifest.json``: the reviewed map of source recordings to classes, splits and licences.

Run once by a maintainer on the extracted packages (``keras-iusp build-real-audio --fetch`` puts
them in ``SOURCES/<package>/``); the JSON it writes is committed and is what the builder reads
and verifies (sha256 of every source). The class of each file was chosen from its name, its
package's description and (OpenSFX) its embedded credit line; see docs/real_audio.md.

    python benchmarks/real_audio/make_manifest.py SOURCES benchmarks/real_audio/manifest.json
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from keras_iusp.data.sound_archives import cat_members, read_member  # noqa: E402

PACKAGES = {
    "openttd-opensfx": {"version": "1.0.3-2", "licence": "CC-BY-SA-3.0 (sound compilation); "
                        "each sound's original licence and author in its credit line",
                        "copyright": "usr/share/doc/openttd-opensfx/copyright"},
    "gcompris-qt-data": {"version": "3.1-2", "licence": "per file (debian/copyright)",
                         "copyright": "usr/share/doc/gcompris-qt-data/copyright"},
    "tuxpaint-stamps-default": {"version": "2022.06.04-1", "licence": "GPL-2+",
                                "copyright": "usr/share/doc/tuxpaint-stamps-default/copyright"},
    "tuxpaint-data": {"version": "1:0.9.28-sdl2-1", "licence": "GPL-2+",
                      "copyright": "usr/share/doc/tuxpaint-data/copyright"},
    "lincity-ng-data": {"version": "2.9~git20150314-5", "licence": "GPL-2+",
                        "copyright": "usr/share/doc/lincity-ng-data/copyright"},
    "extremetuxracer-data": {"version": "0.8.2-1", "licence": "GPL-2+",
                             "copyright": "usr/share/doc/extremetuxracer-data/copyright"},
    "asterisk-core-sounds-en-wav": {"version": "1.6.1-1", "licence": "CC-BY-SA-3.0 "
                                    "(Allison Smith)", "copyright":
                                    "usr/share/doc/asterisk-core-sounds-en-wav/copyright"},
    "asterisk-moh-opsound-wav": {"version": "2.03-1.1", "licence": "CC-BY-SA-3.0",
                                 "copyright": "usr/share/doc/asterisk-moh-opsound-wav/copyright"},
    "sound-theme-freedesktop": {"version": "0.8-2", "licence": "per file: CC-BY-SA-3.0, "
                                "CC-BY-3.0, GPL-2+", "copyright":
                                "usr/share/doc/sound-theme-freedesktop/copyright"},
    "pingus-data": {"version": "0.7.6-5.1", "licence": "GPL-2+",
                    "copyright": "usr/share/doc/pingus-data/copyright"},
    "bucklespring-data": {"version": "1.4.0-2", "licence": "GPL-2+",
                          "copyright": "usr/share/doc/bucklespring-data/copyright"},
}

SFX_CAT = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
# OpenSFX index -> (class, origin group, split). Entries edited from one original recording
# share an origin and therefore a split. Classes joined by "+" are labelled with both.
OPENSFX = {
    25: ("engine", "saphix-file0375", "train"), 26: ("engine+alert-signal", "saphix-file0375", "train"),  # noqa: E501
    27: ("engine", "icmusic-bus", "eval"), 28: ("engine", "roscoetoon-t_start", "train"),
    24: ("engine", "lorenzosu-helicopter", "eval"), 8: ("engine", "cessna", "train"),
    9: ("engine", "digifish-jet", "train"), 59: ("engine", "bigpickle-jet", "eval"),
    61: ("engine", "ibisradio-jets", "train"), 69: ("engine", "mrvasluk-propeller", "eval"),
    65: ("engine", "marec-metro", "train"), 71: ("engine", "metzik-train", "eval"),
    33: ("machinery-impact", "bluesy-airhammer", "eval"),
    17: ("non-machinery-impact", "sagetyrtle-crash", "train"),
    19: ("non-machinery-impact", "sagetyrtle-crash", "train"),
    15: ("non-machinery-impact", "leady-gun-drop", "eval"),
    16: ("non-machinery-impact", "1sticky8-dumpster", "train"),
    54: ("non-machinery-impact", "ecfike-tree", "eval"),
    39: ("non-machinery-impact", "l0calh05t-smithy", "train"),
    56: ("powered-saw", "jfbsauve-chainsaw", "train"), 55: ("powered-saw", "fkurz-tree", "train"),
    40: ("powered-saw", "benboncan-circular", "eval"),
    35: ("alert-signal", "han1-claxon", "eval"), 14: ("alert-signal", "markian-rrcrossing", "train"),  # noqa: E501
    6: ("alert-signal", "milo-ship", "train"), 7: ("alert-signal", "milo-ferry", "eval"),
    3: ("alert-signal", "lukss-whistle", "train"), 4: ("alert-signal", "eliash-steam", "train"),
    10: ("alert-signal", "patchen-loco", "eval"),
    30: ("human-voice", "lukss-oooh", "train"), 29: ("distractor", "lonemonk-applause", "eval"),
    36: ("distractor", "barnes-sheep", "train"), 37: ("distractor", "gibb-cow", "eval"),
    38: ("distractor", "dobroide-horse", "train"), 66: ("distractor", "spacejoe-bird", "train"),
    72: ("distractor", "spacejoe-bird", "train"), 67: ("distractor", "miller-growl", "eval"),
    68: ("distractor", "bidone-monkeys", "train"), 12: ("distractor", "halleck-sparks", "eval"),
    13: ("distractor", "lukss-steam", "train"), 11: ("distractor", "aldor-elevator", "eval"),
    20: ("distractor", "lukss-till", "train"), 22: ("distractor", "lukss-morse", "eval"),
    52: ("background", "anton-wind", "train"), 57: ("background", "anton-wind", "train"),
}

GC = "usr/share/gcompris-qt/rcc/"
GC_MEMBERS = {  # rcc file -> {member (under gcompris/src/activities/): (class, origin, split)}
    "memory-sound.rcc": {
        "memory-sound/resource/LRStartAndStopCarEngine1LACut.ogg": ("engine", "gc-car", "eval"),
        "memory-sound/resource/LRTrain_slowing_down_01_LA_cut.ogg": ("engine", "gc-train", "train"),
        **{f"memory-sound/resource/LRFactory_noise_0{i}_LA.ogg":
           ("machinery-impact", f"gc-factory{i}", "eval" if i in (2, 5) else "train")
           for i in range(1, 7)},
        "memory-sound/resource/LRObject_falling_01_LA.ogg": ("non-machinery-impact", "gc-fall1", "train"),  # noqa: E501
        "memory-sound/resource/LRObject_falling_02_LA.ogg": ("non-machinery-impact", "gc-fall2", "eval"),  # noqa: E501
        "memory-sound/resource/LRHits_01_LA.ogg": ("non-machinery-impact", "gc-hits", "train"),
        "memory-sound/resource/LRDoor_Open_2_LA.ogg": ("non-machinery-impact", "gc-door", "eval"),
        "memory-sound/resource/LRRing_01_LA.ogg": ("alert-signal", "gc-ring", "train"),
        "memory-sound/resource/guitar_melody.ogg": ("music", "gc-guitar", "eval"),
        **{f"memory-sound/resource/guitar_son{i}.ogg": ("music", "gc-guitar-notes", "train")
           for i in range(1, 5)},
        "memory-sound/resource/LRBark_1_LA_cut.ogg": ("dog", "gc-bark1", "train"),
        "memory-sound/resource/LRBark_3_LA_cut.ogg": ("dog", "gc-bark3", "eval"),
        "memory-sound/resource/LRApplauses_1_LA_cut.ogg": ("distractor", "gc-applause", "train"),
        "memory-sound/resource/LRHeart_beat_01_LA.ogg": ("distractor", "gc-heart", "eval"),
        "memory-sound/resource/LRBuddhist_gong_05_LA.ogg": ("distractor", "gc-gong", "train"),
        "memory-sound/resource/LRRain_in_garden_01_LA_cut.ogg": ("background", "gc-rain", "eval"),
        "memory-sound/resource/LRFrogsInPondDuringStormLACut.ogg": ("background", "gc-frogs", "train"),  # noqa: E501
    },
    "explore_farm_animals.rcc": {
        "explore_farm_animals/resource/animals/dog.ogg": ("dog", "gc-farm-dog", "eval"),
        **{f"explore_farm_animals/resource/animals/{a}.ogg": ("distractor", f"gc-{a}", s)
           for a, s in (("owl", "train"), ("pig", "eval"), ("chickens", "train"), ("cat", "eval"),
                        ("cow", "train"), ("duck", "eval"), ("sheep", "train"), ("horse", "eval"))},
    },
    "explore_world_music.rcc": {
        f"explore_world_music/resource/music/{m}.ogg": ("music", f"gc-world-{m}", s)
        for m, s in (("australia", "train"), ("japan", "eval"), ("middleeast", "train"),
                     ("italy", "train"), ("ireland", "eval"), ("beethoven", "train"),
                     ("america", "eval"), ("africa", "train"), ("mexico", "eval"))
    },
    "canal_lock.rcc": {
        "canal_lock/resource/door_open.wav": ("non-machinery-impact", "gc-lock-door", "train"),
        "canal_lock/resource/door_close.wav": ("non-machinery-impact", "gc-lock-door", "train"),
        "canal_lock/resource/water_fill.wav": ("background", "gc-water-fill", "train"),
    },
    "traffic.rcc": {"traffic/resource/car.wav": ("engine", "gc-traffic-car", "train")},
    "railroad.rcc": {"railroad/resource/sounds/train.wav": ("engine", "gc-railroad", "eval")},
    "guessnumber.rcc": {"guessnumber/resource/helicopter.wav": ("engine", "gc-heli", "train")},
    "mining.rcc": {"mining/resource/pickaxe.wav": ("non-machinery-impact", "gc-pickaxe", "eval")},
    "melody.rcc": {"melody/resource/knock.wav": ("non-machinery-impact", "gc-knock", "train")},
    "scalesboard.rcc": {"scalesboard/resource/metal_hit.wav": ("non-machinery-impact", "gc-metal", "eval")},  # noqa: E501
}

TPS = "usr/share/tuxpaint/stamps/"
TUXPAINT_STAMPS = {
    "animals/mammals/dogs/dog.ogg": ("dog", "tp-dog", "train"),
    "animals/mammals/dogs/fox.ogg": ("distractor", "tp-fox", "eval"),
    "vehicles/emergency/firetruck.ogg": ("alert-signal", "tp-firetruck", "eval"),
    "household/tools/hammer.ogg": ("non-machinery-impact", "tp-hammer", "train"),
    "household/tools/mallet_metal.ogg": ("non-machinery-impact", "tp-mallet", "eval"),
    "household/dishes/bottle.ogg": ("non-machinery-impact", "tp-bottle", "train"),
    "household/dishes/glass.ogg": ("non-machinery-impact", "tp-glass", "eval"),
    "household/tools/saw.ogg": ("distractor", "tp-handsaw", "train"),
    "household/vacuum_cleaner.ogg": ("distractor", "tp-vacuum", "eval"),
    "household/Washing-machine.ogg": ("distractor", "tp-washer", "train"),
    "household/kettle.ogg": ("distractor", "tp-kettle", "eval"),
    "hobbies/music/string/cello.ogg": ("music", "tp-cello", "train"),
    "hobbies/music/string/violin.ogg": ("music", "tp-violin", "eval"),
    "hobbies/music/wind/bassoon.ogg": ("music", "tp-bassoon", "train"),
    "hobbies/music/percussion/drumkit.ogg": ("music", "tp-drumkit", "eval"),
    "animals/birds/crow.ogg": ("distractor", "tp-crow", "train"),
    "animals/birds/seagull.ogg": ("distractor", "tp-seagull", "eval"),
    "animals/birds/rooster.ogg": ("distractor", "tp-rooster", "train"),
    "animals/insects/bee.ogg": ("distractor", "tp-bee", "eval"),
}
# Spoken stamp descriptions: one origin per language (a proxy for the speaker).
VOICE_LANGUAGES = {"": "train", "es": "train", "fr": "train", "ca": "train",
                   "ru": "eval", "el": "eval", "ro": "eval", "nl": "eval"}
VOICE_PER_LANGUAGE = 30

LINCITY = "usr/share/games/lincity-ng/sounds/"
LINCITY_FILES = {  # stem (without the trailing digit) -> (class, split)
    "TraficHigh": ("engine", "train"), "TraficLow": ("engine", "eval"),
    "RailTrain": ("engine", "train"),
    "MonumentConstruction": ("machinery-impact", "train"), "Build": ("machinery-impact", "eval"),
    "Raze": ("machinery-impact", "train"), "CoalMine": ("machinery-impact", "train"),
    "OreMine": ("machinery-impact", "eval"),
    "Blacksmith": ("non-machinery-impact", "eval"),
    "FireStation": ("alert-signal", "train"),
    "SportsCroud": ("human-voice", "eval"),
    "Green": ("background", "train"), "ParklandLake": ("background", "eval"),
    "Water": ("background", "train"), "Farm": ("background", "eval"),
}


def dep5_licences(copyright_file: Path) -> list[tuple[list[str], str, str]]:
    """``(patterns, licence, copyright)`` of each ``Files:`` stanza of a DEP-5 copyright file."""
    stanzas, current = [], {}
    key = None
    for line in copyright_file.read_text(encoding="utf-8", errors="replace").splitlines() + [""]:
        if not line.strip():
            if "files" in current:
                stanzas.append((current["files"].split(), current.get("license", "").strip(),
                                " ".join(current.get("copyright", "").split())))
            current, key = {}, None
        elif line[0].isspace() and key:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.lower()
            current[key] = value.strip()
    return stanzas


def dep5_lookup(stanzas: list[tuple[list[str], str, str]], path: str) -> tuple[str, str]:
    """Licence and copyright holder of ``path``: the last matching stanza wins (DEP-5)."""
    found = ("", "")
    for patterns, licence, holder in stanzas:
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns):
            found = (licence.splitlines()[0] if licence else "", holder)
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(sources: Path, out: Path) -> None:
    rows = []

    def add(package: str, path: str, member: str | None, cls: str, origin: str, split: str,
            attribution: str, licence: str | None = None) -> None:
        data = read_member(sources / package / path, member)
        rows.append({"package": package, "path": path, "member": member,
                     "sha256": sha256(data), "class": cls, "origin": origin, "split": split,
                     "licence": licence or PACKAGES[package]["licence"],
                     "attribution": attribution})

    entries = cat_members((sources / "openttd-opensfx" / SFX_CAT).read_bytes())
    for index, (cls, origin, split) in sorted(OPENSFX.items()):
        credit = entries[index][0]
        match = re.search(r"License: (.+?)\.(?:\s|$)", credit)
        add("openttd-opensfx", SFX_CAT, str(index), cls, origin, split, credit,
            match.group(1).strip() if match else None)
    gc_stanzas = dep5_licences(sources / "gcompris-qt-data" /
                               PACKAGES["gcompris-qt-data"]["copyright"])
    for rcc, members in sorted(GC_MEMBERS.items()):
        for member, (cls, origin, split) in sorted(members.items()):
            licence, holder = dep5_lookup(gc_stanzas, "src/activities/" + member)
            add("gcompris-qt-data", GC + rcc, "gcompris/src/activities/" + member, cls, origin,
                split, f"{holder or 'GCompris developers'} (GCompris, gcompris-qt-data)",
                licence or None)
    for path, (cls, origin, split) in sorted(TUXPAINT_STAMPS.items()):
        add("tuxpaint-stamps-default", TPS + path, None, cls, origin, split,
            "Tux Paint stamps, Bill Kendrick and contributors")
    descs = sorted(p.relative_to(sources / "tuxpaint-stamps-default").as_posix()
                   for p in (sources / "tuxpaint-stamps-default" / TPS).rglob("*_desc*.ogg"))
    for language, split in VOICE_LANGUAGES.items():
        suffix = f"_desc_{language}.ogg" if language else "_desc.ogg"
        chosen = [d for d in descs if d.endswith(suffix)]
        step = max(1, len(chosen) // VOICE_PER_LANGUAGE)
        for path in chosen[::step][:VOICE_PER_LANGUAGE]:
            add("tuxpaint-stamps-default", path, None, "human-voice",
                f"tp-voice-{language or 'en'}", split,
                "Tux Paint stamp description (spoken), Tux Paint translators")
    asterisk = sorted((sources / "asterisk-core-sounds-en-wav").rglob("*.wav"))
    for p in asterisk[:: max(1, len(asterisk) // 40)][:40]:
        add("asterisk-core-sounds-en-wav",
            p.relative_to(sources / "asterisk-core-sounds-en-wav").as_posix(), None,
            "human-voice", "asterisk-allison", "train", "Allison Smith, Asterisk core sounds")
    for name, split in (("letsgo", "eval"), ("yipee", "eval"), ("ohno", "eval"),
                        ("goodidea", "eval")):
        add("pingus-data", f"usr/share/games/pingus/data/sounds/{name}.wav", None, "human-voice",
            "pingus-voices", split, "Pingus developers")
    for name in ("giggle", "areyousure", "youcannot", "tuxok"):
        add("tuxpaint-data", f"usr/share/tuxpaint/sounds/{name}.wav", None, "human-voice",
            "tuxpaint-voice", "train", "Tux Paint, Bill Kendrick and contributors")
    add("tuxpaint-data", "usr/share/tuxpaint/sounds/harp.wav", None, "music", "tp-harp", "eval",
        "Tux Paint, Bill Kendrick and contributors")
    for p in sorted((sources / "lincity-ng-data" / LINCITY).glob("*.wav")):
        stem = re.sub(r"\d+$", "", p.stem)
        if stem in LINCITY_FILES:
            cls, split = LINCITY_FILES[stem]
            add("lincity-ng-data", LINCITY + p.name, None, cls, f"lincity-{stem}", split,
                "LinCity-NG developers")
    for p in sorted((sources / "lincity-ng-data").rglob("*.ogg")):
        add("lincity-ng-data", p.relative_to(sources / "lincity-ng-data").as_posix(), None,
            "music", f"lincity-music-{p.stem[:2]}", "eval" if p.stem.startswith("02") else "train",
            p.stem)
    for i, p in enumerate(sorted((sources / "extremetuxracer-data").rglob("*.ogg"))):
        add("extremetuxracer-data", p.relative_to(sources / "extremetuxracer-data").as_posix(),
            None, "music", f"etr-{p.stem}", "eval" if i % 3 == 1 else "train",
            "Extreme Tux Racer music (" + p.stem.rsplit("-", 1)[-1] + ")")
    etr_tree = next((sources / "extremetuxracer-data").rglob("tree_hit.wav"))
    add("extremetuxracer-data", etr_tree.relative_to(sources / "extremetuxracer-data").as_posix(),
        None, "non-machinery-impact", "etr-tree-hit", "train", "Extreme Tux Racer developers")
    for p in sorted((sources / "asterisk-moh-opsound-wav").rglob("*.wav")):
        add("asterisk-moh-opsound-wav", p.relative_to(sources / "asterisk-moh-opsound-wav")
            .as_posix(), None, "music", f"moh-{p.stem.split('-')[0]}",
            "eval" if p.stem.startswith("manolo") else "train",
            "opsound.org artist " + p.stem.split("-")[0])
    theme = "usr/share/sounds/freedesktop/stereo/"
    for name, cls, split, lic, who in (
            ("alarm-clock-elapsed", "alert-signal", "train", "CC-BY-SA-3.0", "Tim/corsica_s"),
            ("phone-incoming-call", "alert-signal", "eval", "GPL-2+", "Damien Sandras"),
            ("bell", "alert-signal", "eval", "CC-BY-3.0", "Dr. Richard Boulanger et al")):
        add("sound-theme-freedesktop", theme + name + ".oga", None, cls, f"fd-{name}", split,
            who, lic)
    keys = sorted((sources / "bucklespring-data").rglob("*.wav"))
    for p in keys[::15]:
        add("bucklespring-data", p.relative_to(sources / "bucklespring-data").as_posix(), None,
            "non-machinery-impact", "bucklespring-keys", "train",
            "Ico Doornekamp, bucklespring (IBM Model M recordings)")
    origins: dict[str, set[str]] = {}
    for row in rows:
        origins.setdefault(row["origin"], set()).add(row["split"])
    mixed = sorted(o for o, s in origins.items() if len(s) > 1)
    if mixed:
        raise SystemExit(f"origins in both splits: {mixed}")
    manifest = {"format": 1, "packages": PACKAGES, "sources": rows}
    out.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{out}: {len(rows)} sources")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
