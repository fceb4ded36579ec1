"""The report's markdown tables (each from the rows or statistics it is given)."""

from __future__ import annotations

import numpy as np

from keras_iusp.distill.methods import label
from keras_iusp.experiments.statistics import BUILTIN, method_order, per_class_gains


def format_table(table: list[dict], methods: list[str] | None = None) -> str:
    """Mean ± std per method (columns in ``methods`` order; default: the built-in four, then
    any other method in the table), each method's gain over the baseline, and IUSP relative
    to SP when the grid has both."""
    if methods is None:
        others = [m for e in table for m in e["methods"] if m not in BUILTIN]
        methods = [*BUILTIN, *dict.fromkeys(others)]
    gained = [m for m in methods if m != "baseline"]
    relative = "sp" in methods and "iusp" in methods
    lines = ["| student | params | " + " | ".join(label(m) for m in methods)
             + "".join(f" | {label(m)} - base" for m in gained)
             + (" | IUSP rel. to SP" if relative else "") + " |",
             "| --- | ---: |" + " ---: |" * (len(methods) + len(gained) + relative)]
    for e in table:
        cells = []
        for m in methods:
            v = e["methods"].get(m)
            # one seed has no spread to show; "± 0.000" would claim one
            cells.append("–" if not v else f"{v['mean']:.3f} (1 seed)" if v.get("n") == 1
                         else f"{v['mean']:.3f} ± {v['std']:.3f}")
        gains = e.get("gain_over_baseline", {})
        cells += [f"{gains[m]:+.3f}" if m in gains else "–" for m in gained]
        if relative:
            rel = e.get("iusp_relative_to_sp")
            cells.append(f"{rel:+.0%}" if rel is not None else "–")
        lines.append(f"| {e['student']} | {e['params']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_paired(pairs: list[dict]) -> str:
    if not pairs:  # e.g. a partial grid with one method finished: no table without rows
        return "No two methods of one student have finished runs of the same seed yet."
    shares = any("share" in p for p in pairs)
    lines = ["| student | comparison | seeds | mean difference | 95 % CI | above 0 |"
             + (" share of teacher - baseline gap (95 % CI) |" if shares else ""),
             "| --- | --- | ---: | ---: | --- | --- |" + (" ---: |" if shares else "")]
    for p in pairs:
        name = f"{label(p['method'])} - {label(p['reference'])}"
        if p["n"] > 1:
            ci = f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]"
            above = "yes" if p["ci_low"] > 0 else ("below" if p["ci_high"] < 0 else "no")
        else:
            ci, above = "n/a (1 seed)", "n/a"
        line = f"| {p['student']} | {name} | {p['n']} | {p['mean']:+.4f} | {ci} | {above} |"
        if shares:
            if "share" not in p:
                line += " |"
            elif p["n"] > 1:
                line += (f" {p['share']:+.0%} [{p['share_low']:+.0%}, "
                         f"{p['share_high']:+.0%}] |")
            else:
                line += f" {p['share']:+.0%} |"
        lines.append(line)
    return "\n".join(lines)


def format_class_gains(rows: list[dict], class_names, methods: list[str] | None = None) -> str:
    """Per-class paired gain over the baseline of every other method, one column each and one
    block of rows per student: sizes are not pooled, because a grid in progress has more pairs
    of some sizes than of others and the sizes need not agree."""
    present = {r["method"] for r in rows}
    methods = [m for m in method_order(rows, methods) if m != "baseline" and m in present]
    students = list(dict.fromkeys(r["student"] for r in rows))
    gains = {s: {m: per_class_gains(rows, class_names, m, student=s) for m in methods}
             for s in students}
    methods = [m for m in methods if any(gains[s][m] is not None for s in students)]
    students = [s for s in students if any(gains[s][m] is not None for m in methods)]
    if not methods:
        return ""
    lines = ["| student | class | " + " | ".join(f"{label(m)} - base" for m in methods) + " |",
             "| --- | --- |" + " ---: |" * len(methods)]
    for s in students:
        for c in class_names:
            cells = [f"{gains[s][m][c]:+.3f}" if gains[s][m] is not None else "n/a"
                     for m in methods]
            lines.append(f"| {s} | {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_label_fit(fit: list[dict]) -> str:
    """Markdown table of :func:`label_fit`."""
    lines = ["| student | method | runs | validation micro-AUPRC | kept epoch / epochs "
             "| training label BCE (last epoch) | validation label BCE (kept epoch) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for e in fit:
        lines.append(f"| {e['student']} | {label(e['method'])} | {e['n']} | "
                     f"{e['val_auprc']:.3f} | {e['best_epoch']:.1f} / {e['epochs']:.0f} | "
                     f"{e['train_label_bce']:.3f} | {e['val_label_bce']:.3f} |")
    return "\n".join(lines)


def format_distances(distances: list[dict], methods: list[str] | None = None) -> str:
    """Mean ± std over seeds per (student, method), and each method's ratio to the baseline."""
    lines = ["| student | method | seeds | IUSP distance to the teacher | ÷ baseline |",
             "| --- | --- | ---: | ---: | ---: |"]
    students = list(dict.fromkeys(d["student"] for d in distances))
    for student in students:
        mine = [d for d in distances if d["student"] == student]
        base = [d["distance"] for d in mine if d["method"] == "baseline"]
        for method in method_order(distances, methods):
            v = np.array([d["distance"] for d in mine if d["method"] == method])
            if v.size == 0:
                continue
            ratio = f"{v.mean() / np.mean(base):.2f}" if base else "–"
            sd = f" ± {v.std(ddof=1):.4f}" if v.size > 1 else ""
            lines.append(f"| {student} | {method} | {v.size} | {v.mean():.4f}{sd} | {ratio} |")
    return "\n".join(lines)


def format_distances_by_form(distances: list[dict], methods: list[str] | None = None) -> str:
    """Mean distance per (student, method) in every IUSP form, each as a ratio to the baseline.

    Empty when the rows carry no per-form values. Used when the grid's methods train more than
    one form (an ablation of the forms), where each arm's own-form distance alone would compare
    numbers of different scales (the forms differ by up to 100x on the same maps).
    """
    rows = [d for d in distances if d.get("distances")]
    if not rows:
        return ""
    forms = list(rows[0]["distances"])
    lines = ["| student | method | seeds | " + " | ".join(f"{f} (÷ baseline)" for f in forms)
             + " |", "| --- | --- | ---: | " + " | ".join("---:" for _ in forms) + " |"]
    for student in dict.fromkeys(d["student"] for d in rows):
        mine = [d for d in rows if d["student"] == student]
        base = {f: [d["distances"][f] for d in mine if d["method"] == "baseline"] for f in forms}
        for method in method_order(rows, methods):
            got = [d for d in mine if d["method"] == method]
            if not got:
                continue
            cells = []
            for f in forms:
                mean = float(np.mean([d["distances"][f] for d in got]))
                ratio = f" ({mean / np.mean(base[f]):.2f})" if base[f] else ""
                cells.append(f"{mean:.3g}{ratio}")
            lines.append(f"| {student} | {method} | {len(got)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
