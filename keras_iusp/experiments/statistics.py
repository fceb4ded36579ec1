"""Statistics of an experiment's result rows: per-method means, paired differences with
Student-t intervals, the share of the teacher - baseline gap, per-class gains and label fit.

Because a seed fixes the student's initial weights, the data order and the augmentation draws
identically for every method, runs with the same seed are *paired*. Rows of a variant (an
ablation arm, see :class:`keras_iusp.experiments.config.ExperimentConfig`) carry the variant's
name as ``method`` and its training method as ``base_method``. Imports no TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_iusp.distill.methods import METHODS

#: The built-in methods in the report's default order (``keras_iusp.distill.methods.METHODS``,
#: spelled out so that reading results does not import TensorFlow).
BUILTIN = METHODS


def method_order(rows: list[dict], methods: list[str] | None = None) -> list[str]:
    """The methods a report shows, in order: ``methods`` (the grid's ``methods``) when given,
    else the built-in ones present followed by any other names in the order the rows hold them."""
    if methods is not None:
        return list(methods)
    present = list(dict.fromkeys(r["method"] for r in rows))
    return [m for m in BUILTIN if m in present] + [m for m in present if m not in BUILTIN]


def base_methods(rows: list[dict]) -> dict[str, str]:
    """Method name -> training method, from the rows (rows written before variants existed have
    no ``base_method``: their method is their own base)."""
    return {r["method"]: r.get("base_method", r["method"]) for r in rows}


def summarize(rows: list[dict], methods: list[str] | None = None) -> list[dict]:
    """One entry per student size: mean/std per method, gains over baseline, IUSP vs SP."""
    students = sorted({r["student"] for r in rows},
                      key=lambda s: next(r["params"] for r in rows if r["student"] == s))
    table = []
    for student in students:
        mine = [r for r in rows if r["student"] == student]
        entry = {"student": student, "params": mine[0]["params"], "methods": {}}
        for method in method_order(rows, methods):
            values = np.array([r["micro_auprc"] for r in mine if r["method"] == method])
            if values.size:
                entry["methods"][method] = {"mean": float(values.mean()),
                                            "std": float(values.std(ddof=1)) if values.size > 1
                                            else 0.0, "n": int(values.size)}
        m = entry["methods"]
        if "baseline" in m:
            base = m["baseline"]["mean"]
            entry["gain_over_baseline"] = {k: v["mean"] - base for k, v in m.items()
                                           if k != "baseline"}
            if "iusp" in m and "sp" in m and abs(m["sp"]["mean"] - base) > 1e-12:
                entry["iusp_relative_to_sp"] = ((m["iusp"]["mean"] - base)
                                                / (m["sp"]["mean"] - base) - 1.0)
        table.append(entry)
    return table


#: The paired comparisons the report makes among the built-in methods: (method, reference).
PAIRS = (("kd", "baseline"), ("sp", "baseline"), ("iusp", "baseline"), ("iusp", "sp"))


def comparison_pairs(methods: list[str], bases: dict[str, str]) -> list[tuple[str, str]]:
    """``(method, reference)`` comparisons among ``methods``: the :data:`PAIRS` whose methods
    are present, then for each variant (in order): variant - baseline, variant - its base method,
    and for an IUSP variant, variant - SP (each only when the reference is in ``methods``)."""
    present = set(methods)
    out = [(m, r) for m, r in PAIRS if m in present and r in present]
    for variant in methods:
        if variant in BUILTIN:
            continue
        base = bases.get(variant, variant)
        refs = ["baseline", base] + (["sp"] if base == "iusp" else [])
        out += [(variant, r) for r in dict.fromkeys(refs) if r in present and r != variant]
    return out


def paired_difference(rows: list[dict], student: str, method: str, reference: str,
                      key: str = "micro_auprc", confidence: float = 0.95) -> dict | None:
    """Mean of ``method - reference`` over the seeds both finished, with a t-interval.

    The interval is ``mean ± t_{n-1, (1+confidence)/2} · sd / sqrt(n)`` of the per-seed
    differences (paired t); with one seed it is undefined (NaN bounds). None when no seed pairs.
    """
    from scipy import stats

    a = {r["seed"]: r[key] for r in rows if r["student"] == student and r["method"] == method}
    b = {r["seed"]: r[key] for r in rows if r["student"] == student and r["method"] == reference}
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d = np.array([a[x] - b[x] for x in seeds], dtype=np.float64)
    mean = float(d.mean())
    if d.size > 1:
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1) * sd / np.sqrt(d.size))
    else:
        sd, half = float("nan"), float("nan")
    return {"method": method, "reference": reference, "n": int(d.size), "seeds": seeds,
            "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half,
            "confidence": confidence,
            "reference_mean": float(np.mean([b[x] for x in seeds]))}


def teacher_gap_share(diff: dict, teacher_score: float) -> dict | None:
    """The share of the teacher - reference gap that a paired difference closes.

    ``gap = teacher_score - diff["reference_mean"]`` (the reference's mean over the paired seeds
    only); the share is ``diff["mean"] / gap`` and its interval the paired interval's bounds
    divided by the same gap (the teacher is one fixed run, so the gap carries no seed
    variation). 1.0 means the method reaches the teacher; None when the reference is not below
    the teacher (no gap to close).
    """
    gap = float(teacher_score) - diff["reference_mean"]
    if not gap > 0:
        return None
    return {"gap": gap, "share": diff["mean"] / gap,
            "share_low": diff["ci_low"] / gap, "share_high": diff["ci_high"] / gap}


def paired_table(rows: list[dict], students: list[str],
                 methods: list[str] | None = None,
                 teacher_score: float | None = None) -> list[dict]:
    """Every :func:`comparison_pairs` comparison for every student that has both methods.

    With ``teacher_score`` (the teacher's score on the same split), each comparison against the
    baseline also carries :func:`teacher_gap_share`'s keys (``gap``, ``share``, ``share_low``,
    ``share_high``).
    """
    pairs = comparison_pairs(method_order(rows, methods), base_methods(rows))
    out = []
    for student in students:
        for method, reference in pairs:
            diff = paired_difference(rows, student, method, reference)
            if diff is None:
                continue
            share = (teacher_gap_share(diff, teacher_score)
                     if teacher_score is not None and reference == "baseline" else None)
            out.append({"student": student, **diff, **(share or {})})
    return out


def per_class_gains(rows: list[dict], class_names, method: str,
                    reference: str = "baseline",
                    student: str | None = None) -> dict[str, float] | None:
    """Mean paired per-class AP gain of ``method`` over ``reference``, over the seeds of
    ``student`` or, when it is None, over every student and seed (a pooled mean that weighs a
    size by how many of its pairs are finished, hence the per-student form in reports)."""
    if student is not None:
        rows = [r for r in rows if r["student"] == student]
    ref = {(r["student"], r["seed"]): r for r in rows if r["method"] == reference}
    diffs = [[(r["per_class_ap"][c] or 0.0) - (ref[(r["student"], r["seed"])]["per_class_ap"][c]
                                              or 0.0) for c in class_names]
             for r in rows if r["method"] == method and (r["student"], r["seed"]) in ref]
    if not diffs:
        return None
    return dict(zip(class_names, np.mean(diffs, axis=0).tolist()))


def kept_epoch(history: dict) -> int | None:
    """0-based index of the epoch a run kept, read from its ``history.json`` contents.

    The rule of :class:`keras_iusp.train.resume.BestWeights`: the first finite maximum of
    ``val_auprc``. None when the history has no finite ``val_auprc``.
    """
    scores = np.array(history.get("val_auprc", []), np.float64)
    scores[~np.isfinite(scores)] = -np.inf
    if not scores.size or not np.isfinite(scores.max()):
        return None
    return int(np.argmax(scores))


def label_fit(rows: list[dict], methods: list[str] | None = None) -> list[dict]:
    """What each method's extra loss terms did to the student's fit of the labels.

    Read from every run's ``history.json``, averaged over seeds per (student, method): the
    validation micro-AUPRC of the kept (best-validation) epoch, that epoch, the label BCE on
    the training batches at the last epoch, and the label BCE on validation at the kept epoch.
    A distilling student whose training label BCE sits above the baseline's has traded label fit
    for the teacher's terms; whether that pays shows in the validation columns. (A method that
    trains on augmented batches reports its training BCE on those batches, so that column is not
    comparable across augmentation settings.) Runs without a history are skipped.
    """
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        path = Path(r["run"]) / "history.json"
        if not path.is_file():
            continue
        h = json.loads(path.read_text())
        best = kept_epoch(h)
        if best is None or not h.get("student_loss"):
            continue
        cells.setdefault((r["student"], r["method"]), []).append({
            "val_auprc": float(h["val_auprc"][best]), "best_epoch": best + 1,
            "epochs": len(h["val_auprc"]), "train_label_bce": float(h["student_loss"][-1]),
            "val_label_bce": float(h["val_student_loss"][best])
            if h.get("val_student_loss") else float("nan")})
    students = list(dict.fromkeys(r["student"] for r in rows))
    out = []
    for student in students:
        for method in method_order(rows, methods):
            runs = cells.get((student, method))
            if not runs:
                continue
            out.append({"student": student, "method": method, "n": len(runs),
                        **{k: float(np.mean([x[k] for x in runs]))
                           for k in ("val_auprc", "best_epoch", "epochs", "train_label_bce",
                                     "val_label_bce")}})
    return out
