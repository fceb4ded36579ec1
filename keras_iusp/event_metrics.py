"""Event-based metrics of detected events against reference events on one audio stream.

Matching is sed_eval's event-based evaluation (the DCASE library): a detection matches a
reference event of its class when its onset lies within ``collar`` seconds of the reference
onset (and, for the onset+offset variant, its offset within ``max(collar, half the reference
length)``). A detection that matches nothing is a false alarm (sed_eval's insertion, ``Nfp``).
Events are ``(class name, onset seconds, offset seconds)`` tuples.
"""

from __future__ import annotations

from typing import Any

Events = list[tuple[str, float, float]]


def _container(events: Events):
    import dcase_util

    return dcase_util.containers.MetaDataContainer(
        [{"event_label": name, "onset": float(a), "offset": float(b), "filename": "stream"}
         for name, a, b in events])


def event_counts(reference: Events, estimated: Events, class_names: list[str], collar: float,
                 *, evaluate_offset: bool = False) -> dict[str, dict[str, float]]:
    """Per class: ``Nref``, ``Nsys``, ``Ntp``, ``Nfp``, ``Nfn`` and ``precision``, ``recall``,
    ``f1`` (0 where undefined) of sed_eval's event-based matching."""
    import sed_eval

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(class_names), t_collar=float(collar), percentage_of_length=0.5,
        evaluate_onset=True, evaluate_offset=evaluate_offset)
    metrics.evaluate(reference_event_list=_container(reference),
                     estimated_event_list=_container(estimated))
    out = {}
    for name in class_names:
        counts = {k: float(metrics.class_wise[name][k]) for k in ("Nref", "Nsys", "Ntp", "Nfp",
                                                                  "Nfn")}
        tp = counts["Ntp"]
        counts["precision"] = tp / counts["Nsys"] if counts["Nsys"] else 0.0
        counts["recall"] = tp / counts["Nref"] if counts["Nref"] else 0.0
        total = counts["Nsys"] + counts["Nref"]
        counts["f1"] = 2 * tp / total if total else 0.0
        out[name] = counts
    return out


def detection_latencies(reference: Events, detections: list[tuple[str, float, float, float]]
                        ) -> list[float | None]:
    """Per reference event: seconds from its onset to the decision time of the first detection
    of its class whose span overlaps the reference event (0 when that detection was already on
    at the onset), or ``None`` when no detection overlaps it. ``detections`` are ``(class name,
    onset s, offset s, decision time s)`` with the decision time the end of the onset window."""
    latencies: list[float | None] = []
    ordered = sorted(detections, key=lambda d: d[3])
    for name, onset, offset in reference:
        hit = next((d for d in ordered if d[0] == name and d[1] < offset and d[2] > onset), None)
        latencies.append(None if hit is None else max(0.0, hit[3] - onset))
    return latencies


def summarise(reference: Events, estimated: Events, decision_times: list[float],
              class_names: list[str], collar: float, hours: float) -> dict[str, Any]:
    """Per-class and overall event F1 (onset, and onset + offset), false alarms per hour and
    detection latency on a stream of ``hours`` hours. ``decision_times[i]`` belongs to
    ``estimated[i]``."""
    import numpy as np

    onset = event_counts(reference, estimated, class_names, collar)
    both = event_counts(reference, estimated, class_names, collar, evaluate_offset=True)
    latencies = detection_latencies(reference, [(*e, t) for e, t in zip(estimated,
                                                                         decision_times)])
    per_class = {}
    for name in class_names:
        mine = [v for (n, _, _), v in zip(reference, latencies) if n == name]
        found = [v for v in mine if v is not None]
        per_class[name] = {
            "references": int(onset[name]["Nref"]), "detections": int(onset[name]["Nsys"]),
            "precision": onset[name]["precision"], "recall": onset[name]["recall"],
            "f1": onset[name]["f1"], "f1_onset_offset": both[name]["f1"],
            "false_alarms": int(onset[name]["Nfp"]),
            "false_alarms_per_hour": onset[name]["Nfp"] / hours,
            "detected_fraction": len(found) / len(mine) if mine else None,
            "latency_median_s": float(np.median(found)) if found else None,
            "latency_mean_s": float(np.mean(found)) if found else None,
        }
    tp = sum(onset[n]["Ntp"] for n in class_names)
    nsys = sum(onset[n]["Nsys"] for n in class_names)
    nref = sum(onset[n]["Nref"] for n in class_names)
    found = [v for v in latencies if v is not None]
    overall = {
        "references": int(nref), "detections": int(nsys),
        "micro_f1": 2 * tp / (nsys + nref) if nsys + nref else 0.0,
        "macro_f1": float(np.mean([per_class[n]["f1"] for n in class_names])),
        "false_alarms_per_hour": sum(onset[n]["Nfp"] for n in class_names) / hours,
        "latency_median_s": float(np.median(found)) if found else None,
    }
    return {"per_class": per_class, "overall": overall}
