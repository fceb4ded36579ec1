"""Summarise a built real-recordings benchmark into a JSON (counts, formats, crowd errors).

    python benchmarks/real_audio/stats.py DATASET RESULT_JSON [--build-wall-s S]
        [--features-wall-s S]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import platform
from pathlib import Path

import numpy as np

from keras_iusp.data.schema import COARSE_CLASSES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("result")
    parser.add_argument("--build-wall-s", type=float, default=None)
    parser.add_argument("--features-wall-s", type=float, default=None)
    args = parser.parse_args()
    root = Path(args.dataset)
    synthetic = not (root / "real_audio_config.json").exists()
    config = json.loads((root / ("synth_config.json" if synthetic else "real_audio_config.json"))
                        .read_text())
    for clip in config["clips"]:  # the synthetic generator names one class per event
        clip.setdefault("distractors", [])
        for event in clip["events"]:
            event.setdefault("classes", [event.get("class")])
        clip.setdefault("sample_rate", config.get("parameters", {}).get("sample_rate"))
        clip.setdefault("channels", 1)
        clip.setdefault("format", "WAV")
    votes: dict[str, list[set[str]]] = collections.defaultdict(list)
    with (root / "annotations.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["annotator_id"] != "0":
                votes[row["audio_filename"]].append(
                    {c for i, c in enumerate(COARSE_CLASSES, 1) if row[f"{i}_{c}_presence"] == "1"})
    splits = collections.Counter(c["split"] for c in config["clips"])
    formats = collections.Counter(f"{c['sample_rate']} Hz, {c['channels']} ch, {c['format']}"
                                  for c in config["clips"])
    positives: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    crowd = {"entries": 0, "missed": 0, "false": 0, "majority_wrong": 0, "majority_entries": 0}
    miss_by_snr = collections.defaultdict(lambda: [0, 0])
    for clip in config["clips"]:
        if clip["split"] == "unlabeled":
            continue
        truth = {c for e in clip["events"] for c in e["classes"]}
        for c in truth:
            positives[clip["split"]][c] += 1
        rows = votes[clip["audio_filename"]]
        for labels in rows:
            crowd["entries"] += len(COARSE_CLASSES)
            crowd["missed"] += len(truth - labels)
            crowd["false"] += len(labels - truth)
            for e in clip["events"]:
                for c in e["classes"]:
                    bucket = int(np.clip(np.floor(e["snr_db"] / 5.0) * 5, -10, 10))
                    miss_by_snr[bucket][0] += c not in labels
                    miss_by_snr[bucket][1] += 1
        count = collections.Counter(c for labels in rows for c in labels)
        majority = {c for c, v in count.items() if v * 2 > len(rows)}
        crowd["majority_entries"] += len(COARSE_CLASSES)
        crowd["majority_wrong"] += len(majority ^ truth)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    result = {
        "command": (f"python benchmarks/real_audio/stats.py {root} {args.result}" if synthetic
                    else f"keras-iusp build-real-audio {root} --sources SOURCES --fetch "
                    "(defaults: seed 0, 480/150/600 clips, 1920 unlabelled)"),
        "machine": f"{platform.machine()} shared 2-core host (nice 10)",
        "build_wall_s": args.build_wall_s,
        "features_wall_s": args.features_wall_s,
        "clips": dict(splits),
        "formats": dict(formats),
        "size_bytes": size,
        **({"parameters": config["parameters"]} if synthetic else {
            "sources": len(json.loads(Path("benchmarks/real_audio/manifest.json")
                                      .read_text())["sources"]),
            "manifest_sha256": config["manifest_sha256"],
            "packages": config["packages"]}),
        "positives_verified": {s: {c: positives[s][c] for c in COARSE_CLASSES}
                               for s in ("train", "validate", "test") if s in positives},
        "crowd_rows": {
            "annotator_entry_miss_rate": crowd["missed"] / max(1, crowd["entries"]),
            "annotator_entry_false_alarm_rate": crowd["false"] / max(1, crowd["entries"]),
            "majority_wrong_entry_rate":
                crowd["majority_wrong"] / max(1, crowd["majority_entries"]),
            "annotator_miss_rate_by_snr_db_bucket": {
                str(k): round(v[0] / v[1], 4) for k, v in sorted(miss_by_snr.items())},
        },
    }
    Path(args.result).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("clips", "size_bytes", "crowd_rows")}, indent=1))


if __name__ == "__main__":
    main()
