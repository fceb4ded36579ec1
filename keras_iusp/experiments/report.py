"""Experiment report: the paper-style table, paired statistics and four figures.

Table: micro-AUPRC mean ± std per (student size, method), the gain over the baseline student,
and IUSP's gain relative to SP's, ``(IUSP - base) / (SP - base) - 1``. Because a seed fixes the
student's initial weights, the data order and the augmentation draws identically for every
method, runs with the same seed are *paired*: the report gives the paired differences KD-base,
SP-base, IUSP-base and IUSP-SP with 95 % Student-t confidence intervals, and per-class paired
gains. Figures: micro-AUPRC vs parameters per method, precision-recall curves, teacher vs student
self-similarity matrices on a repetitive clip, and the per-class gain of IUSP over SP.

A grid may also hold *variants* (ablation arms such as ``iusp_paper``: IUSP with another setting;
see :class:`keras_iusp.experiments.config.ExperimentConfig`). Rows then carry the variant's name as
``method`` and its training method as ``base_method``; every table follows the configured methods,
and each variant is compared, seed by seed, with the baseline, with its base method and, for an
IUSP variant, with SP.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_iusp.distill.methods import (
    METHODS,
    label,  # how tables name a method (re-exported)
)
from keras_iusp.experiments.archive import has_weights
from keras_iusp.utils.atomic import atomic_path, atomic_write_text

# Modules that load TensorFlow (models, losses, training) are imported inside the functions that
# run models: tabulating results (`experiment --report-only`) must not load TensorFlow.

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


def layer_output_batches(model, layer: str, features, batch_size: int = 16) -> list:
    """``layer``'s outputs on ``features``, batch by batch (inference mode)."""
    from keras_iusp.models.probe import layer_probe  # TensorFlow: the report's tables need none

    probe = layer_probe(model, layer)
    return [probe(np.asarray(features[i:i + batch_size]), training=False)
            for i in range(0, len(features), batch_size)]


def mean_iusp_distances(teacher_model, student_model, student_layer: str, features,
                        batch_size: int = 16, teacher_batches: list | None = None
                        ) -> dict[str, float]:
    """Mean per-clip IUSP distance of ``student_model`` to the teacher over ``features``, in
    every form: teacher layer ``embedding`` against ``student_layer``.

    A mean over a whole split, not one clip: a single clip's distance moves with that clip's
    content, so only the mean says whether training brought the student's frame structure
    closer to the teacher's. ``teacher_batches`` reuses the teacher's layer outputs.
    """
    from keras_iusp.distill.losses import IUSP_FORMS, iusp_loss
    from keras_iusp.train.recipe import DEFAULT_TEACHER_LAYER

    t_out = teacher_batches if teacher_batches is not None else layer_output_batches(
        teacher_model, DEFAULT_TEACHER_LAYER, features, batch_size)
    s_out = layer_output_batches(student_model, student_layer, features, batch_size)
    return {form: float(np.mean(np.concatenate(
        [iusp_loss(t, s, form=form).numpy() for t, s in zip(t_out, s_out)])))
        for form in IUSP_FORMS}


def iusp_distances(rows: list[dict], cache, teacher, split: str,
                   batch_size: int = 16) -> list[dict]:
    """Mean IUSP distance of every finished run to the teacher on ``split``, in every form.

    Teacher layer ``embedding`` against each student family's default layer, whatever layer a
    method trained, so all methods are measured on the same pair: does the student's own frame
    structure resemble the teacher's? Per row: student, method, seed, ``distance`` (the default
    form) and ``distances`` (``{form: value}`` for every form, so an ablation of the forms can
    show each arm in its own form and in the others: a form that only lowers its own distance
    has learned the form, not the teacher's structure).
    """
    from keras_iusp.distill.losses import DEFAULT_IUSP_FORM
    from keras_iusp.distill.teacher_targets import weights_fingerprint
    from keras_iusp.models import MODEL_SPECS
    from keras_iusp.train.recipe import DEFAULT_STUDENT_LAYER, DEFAULT_TEACHER_LAYER
    from keras_iusp.train.saved_runs import load_run

    features, _ = cache.split(split)
    fingerprint = weights_fingerprint(teacher.model)
    t_out = None
    out = []
    for row in rows:
        layer = DEFAULT_STUDENT_LAYER.get(MODEL_SPECS[row["student"]].family)
        if layer is None:
            continue
        per_form = _recorded_distances(Path(row["run"]), split, fingerprint, layer,
                                       len(features))
        if per_form is None:
            if not has_weights(row["run"]):
                continue  # an archived record without its distance: nothing to measure with
            if t_out is None:
                t_out = layer_output_batches(teacher.model, DEFAULT_TEACHER_LAYER, features,
                                             batch_size)
            per_form = mean_iusp_distances(teacher.model, load_run(row["run"]).model, layer,
                                           features, batch_size, teacher_batches=t_out)
            atomic_write_text(Path(row["run"]) / f"iusp_distance_{split}.json", json.dumps(
                {"teacher_weights_sha256": fingerprint, "teacher_layer": DEFAULT_TEACHER_LAYER,
                 "student_layer": layer, "clips": len(features), "distances": per_form},
                indent=1))
        out.append({"student": row["student"], "method": row["method"], "seed": row["seed"],
                    "distance": per_form[DEFAULT_IUSP_FORM], "distances": per_form})
    return out


def _recorded_distances(run_dir: Path, split: str, fingerprint: str, student_layer: str,
                        clips: int) -> dict[str, float] | None:
    """A run's IUSP distances kept by an earlier report, when measured against this teacher at
    the same layers over as many clips, with every form known today; else None (measure
    again). The record is dropped whenever the grid retrains the run's folder."""
    from keras_iusp.distill.losses import IUSP_FORMS
    from keras_iusp.train.recipe import DEFAULT_TEACHER_LAYER

    path = run_dir / f"iusp_distance_{split}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None
    distances = record.get("distances") or {}
    if (record.get("teacher_weights_sha256") != fingerprint
            or record.get("teacher_layer") != DEFAULT_TEACHER_LAYER
            or record.get("student_layer") != student_layer
            or record.get("clips") != clips
            or not set(IUSP_FORMS) <= set(distances)):
        return None
    return {form: float(distances[form]) for form in IUSP_FORMS}


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
        # the kept epoch as keras_iusp.train.resume.BestWeights picks it: the first finite maximum
        scores = np.array(h.get("val_auprc", []), np.float64)
        scores[~np.isfinite(scores)] = -np.inf
        if not scores.size or not np.isfinite(scores.max()) or not h.get("student_loss"):
            continue
        best = int(np.argmax(scores))
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


def _savefig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


#: Figure colours of the built-in methods; variants take :data:`VARIANT_COLORS` in turn.
COLORS = {"baseline": "tab:gray", "kd": "tab:blue", "sp": "tab:orange", "iusp": "tab:green"}
VARIANT_COLORS = ("tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def method_colors(methods: list[str]) -> dict[str, str]:
    """A colour per method, in ``methods`` order: fixed for the built-in ones, so figures of
    different grids agree, and a distinct one per variant."""
    variants = [m for m in methods if m not in COLORS]
    return {m: COLORS.get(m) or VARIANT_COLORS[variants.index(m) % len(VARIANT_COLORS)]
            for m in methods}


def run_layers(run: str | Path, student: str) -> tuple[str, str | None]:
    """``(teacher_layer, student_layer)`` that a run's settings name (its ``model_info.json``
    hyper-parameters), each falling back to the default layer when unset or unrecorded."""
    from keras_iusp.models import MODEL_SPECS
    from keras_iusp.train.recipe import DEFAULT_STUDENT_LAYER, DEFAULT_TEACHER_LAYER

    path = Path(run) / "model_info.json"
    hyper = {}
    if path.is_file():
        hyper = json.loads(path.read_text()).get("hyperparameters") or {}
    default = DEFAULT_STUDENT_LAYER.get(MODEL_SPECS[student].family)
    return (hyper.get("teacher_layer") or DEFAULT_TEACHER_LAYER,
            hyper.get("student_layer") or default)


def similarity_students(rows: list[dict], student: str, seed: int,
                        methods: list[str] | None = None) -> list[tuple[str, str, str, str]]:
    """The runs of one student and seed that the similarity figure shows, as ``(method, run,
    teacher_layer, student_layer)``: baseline, SP, IUSP, then the SP/IUSP variants, each at the
    layers its own run trained (or would have, for the baseline). Empty unless an IUSP run (or
    IUSP variant) is among them: the figure is about what IUSP transfers."""
    mine = {r["method"]: r for r in rows if r["student"] == student and r["seed"] == seed}
    bases = base_methods(rows)
    variants = [m for m in method_order(rows, methods)
                if m not in BUILTIN and bases.get(m) in ("sp", "iusp")]
    # a restored record has no weights to draw its frames from
    shown = [m for m in ("baseline", "sp", "iusp", *variants)
             if m in mine and has_weights(mine[m]["run"])]
    if not any(bases.get(m, m) == "iusp" for m in shown):
        return []
    return [(m, mine[m]["run"], *run_layers(mine[m]["run"], student)) for m in shown]


def _figures(out: Path, rows: list[dict], table: list[dict], cache, teacher, split: str,
             teacher_eval: dict, methods: list[str] | None = None) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    figures = {}
    colors = method_colors(method_order(rows, methods))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, color in colors.items():
        points = [(e["params"], e["methods"][method]) for e in table if method in e["methods"]]
        if points:
            ax.errorbar([p for p, _ in points], [v["mean"] for _, v in points],
                        yerr=[v["std"] for _, v in points], marker="o", capsize=3,
                        color=color, label=label(method))
    ax.axhline(teacher_eval["micro_auprc"], color="k", linestyle="--", linewidth=1,
               label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("student parameters")
    ax.set_ylabel(f"micro-AUPRC ({split})")
    ax.legend(fontsize=8)
    figures["auprc_vs_params"] = _savefig(fig, out / "auprc_vs_params.png")

    _, labels = cache.split(split)
    smallest = table[0]["student"]
    seed = min(r["seed"] for r in rows)
    fig, ax = plt.subplots(figsize=(5, 4))
    for method, color in colors.items():
        match = [r for r in rows if r["student"] == smallest and r["method"] == method
                 and r["seed"] == seed]
        if match:
            scores = np.load(Path(match[0]["run"]) / f"scores_{split}.npy")
            precision, recall, _ = precision_recall_curve(labels.ravel(), scores.ravel())
            ax.plot(recall, precision, color=color,
                    label=f"{method} (AP {match[0]['micro_auprc']:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{smallest}, seed {seed}, micro-averaged", fontsize=9)
    ax.legend(fontsize=8)
    figures["pr_curves"] = _savefig(fig, out / "pr_curves.png")

    shown = similarity_students(rows, smallest, seed, methods)
    if shown:
        from keras_iusp.experiments.figures import (
            pick_repetitive_clip,
            plot_teacher_student_similarity,
        )
        from keras_iusp.train.saved_runs import load_run

        features, _ = cache.split(split)
        clip = pick_repetitive_clip(labels, cache.class_names)
        students = [(f"{smallest} {m}", load_run(run).model, s_layer, t_layer)
                    for m, run, t_layer, s_layer in shown]
        names = ", ".join(n for n, v in zip(cache.class_names, labels[clip]) if v)
        figures["similarity"], _ = plot_teacher_student_similarity(
            teacher.model, shown[0][2], students, np.asarray(features[clip]),
            out / "similarity.png",
            title=f"{cache.split_filenames(split)[clip]} ({names or 'no event'})")

    iusp = [r for r in rows if r["method"] == "iusp"]
    sp = {(r["student"], r["seed"]): r for r in rows if r["method"] == "sp"}
    gains = [[(r["per_class_ap"][c] or 0.0) - (sp[(r["student"], r["seed"])]["per_class_ap"][c]
                                                or 0.0) for c in cache.class_names]
             for r in iusp if (r["student"], r["seed"]) in sp]
    if gains:
        gains = np.array(gains)
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.bar(range(len(cache.class_names)), gains.mean(0),
               yerr=gains.std(0) if len(gains) > 1 else None, color="tab:green", capsize=3)
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_xticks(range(len(cache.class_names)))
        ax.set_xticklabels(cache.class_names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("AP(IUSP) - AP(SP)")
        ax.set_title("per-class gain of IUSP over SP (mean over sizes and seeds)", fontsize=9)
        figures["per_class_gain"] = _savefig(fig, out / "per_class_gain.png")
    return figures


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


def variant_lines(config, methods: list[str]) -> list[str]:
    """Report lines saying what each variant in the grid is: its base method and the settings
    its own ``[method.NAME]`` table changes (on top of the base method's). None without one."""
    variants = {m: config.method[m] for m in methods if m not in BUILTIN}
    if not variants:
        return []
    lines = ["Variants (each runs its base method with that method's settings, except as noted):",
             ""]
    for name, table in variants.items():
        changes = ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in table.items() if k != "method")
        lines.append(f"- `{name}`: {label(table['method'])}"
                     + (f" with {changes}" if changes else " (same settings)"))
    return lines + [""]


def write_report(out: Path, config, rows: list[dict], cache, teacher, teacher_eval: dict,
                 extra: dict | None = None) -> Path:
    """Write ``report.md`` and the figures into ``out``; returns the report path.

    ``extra`` may carry ``teacher_validate`` (the teacher's validation metrics), ``machine`` and
    ``wall_seconds`` (summed over the runs), ``command`` and ``cells_total`` (grid size), which
    the report states.
    """
    extra = extra or {}
    split = config.grid.eval_split
    methods = list(config.grid.methods)
    table = summarize(rows, methods)
    figures = _figures(out, rows, table, cache, teacher, split, teacher_eval, methods)
    seeds = sorted({r["seed"] for r in rows})
    pairs = paired_table(rows, [e["student"] for e in table], methods,
                         teacher_score=teacher_eval["micro_auprc"])
    best_base = max((e["methods"]["baseline"]["mean"] for e in table
                     if "baseline" in e["methods"]), default=None)
    teacher_lines = [f"Teacher `{config.teacher.model}`: {split} micro-AUPRC "
                     f"{teacher_eval['micro_auprc']:.3f}, macro-AUPRC "
                     f"{teacher_eval['macro_auprc']:.3f}"
                     + (f", validation micro-AUPRC {extra['teacher_validate']['micro_auprc']:.3f}"
                        if extra.get("teacher_validate") else "")
                     + (f"; {teacher_eval['micro_auprc'] - best_base:+.3f} over the best "
                        f"baseline student's mean" if best_base is not None else "") + "."]
    run_lines = []
    if extra.get("command"):
        run_lines.append(f"Command: `{extra['command']}`.")
    if extra.get("machine"):
        run_lines.append(f"Machine: {extra['machine']}.")
    if extra.get("wall_seconds") is not None:
        run_lines.append("Wall time summed over the finished runs (teacher and any "
                         "cross-fitting fold teachers included; runs "
                         f"trained in parallel overlap): {extra['wall_seconds'] / 3600:.2f} h.")
    if extra.get("cells_total") and extra["cells_total"] > len(rows):
        run_lines.append(f"**Partial grid: {len(rows)} of {extra['cells_total']} runs finished**; "
                         "the same command continues it.")
    # a method's own table (tuning, a variant) may train for another number of epochs
    other_epochs = {m: config.settings(m)["epochs"] for m in methods
                    if config.settings(m)["epochs"] != config.grid.epochs}
    epochs_text = f"{config.grid.epochs}" + (
        " (" + ", ".join(f"{m}: {e}" for m, e in other_epochs.items()) + ")"
        if other_epochs else "")
    lines = [
        f"# Experiment `{config.name}`",
        "",
        f"micro-AUPRC on the `{split}` split ({teacher_eval['clips']} clips) of "
        f"{'`' + config.data.path + '`' if config.data.path else 'the built-in synthetic data'}"
        f" ({len(cache.filenames)} clips of {config.data.clip_seconds:g} s), mean ± std over "
        f"seeds {seeds}. Teacher `{config.teacher.model}`: micro-AUPRC "
        f"{teacher_eval['micro_auprc']:.3f}. Student epochs: {epochs_text}. "
        "SP and IUSP are added beside KD (BCE + KD + SP / IUSP).",
        "",
        *teacher_lines,
        "",
        *run_lines,
        "",
        format_table(table, methods),
        "",
        *(["`IUSP rel. to SP` is `(IUSP - base) / (SP - base) - 1`: positive when IUSP's gain "
           "over the baseline is larger than SP's (meaningless when SP's gain is near zero).",
           ""] if "sp" in methods and "iusp" in methods else []),
        *variant_lines(config, methods),
        "## Paired differences",
        "",
        "Runs with the same seed share the student's initial weights, the data order and the "
        "augmentation draws, so each difference is computed seed by seed; the interval is a "
        "95 % paired Student-t interval over seeds. The share of the teacher - baseline gap is "
        "the mean difference divided by (teacher - the baseline's mean over the same seeds) on "
        "this split, its interval the CI's bounds divided by the same gap: 100 % would match "
        "the teacher.",
        "",
        format_paired(pairs),
        "",
    ]
    distances = iusp_distances(rows, cache, teacher, split)
    if distances:
        lines += ["## Temporal structure: IUSP distance to the teacher",
                  "",
                  f"Mean over the `{split}` clips of the cosine-form IUSP distance between the "
                  "teacher's `embedding` frames and each student's default time-axis layer "
                  "(`lstm`), whatever layer a method trained: how closely the student's own "
                  "frame-by-frame self-similarity follows the teacher's.",
                  "",
                  format_distances(distances, methods),
                  ""]
        from keras_iusp.distill.losses import DEFAULT_IUSP_FORM

        trained_forms = {config.settings(m)["iusp_form"] or DEFAULT_IUSP_FORM
                         for m in methods if config.base_method(m) == "iusp"}
        if len(trained_forms) > 1:
            lines += ["The methods train different IUSP forms, whose distances differ in scale, "
                      "so here is every run's distance in every form (mean over seeds; in "
                      "brackets the ratio to the baseline student in that form):",
                      "",
                      format_distances_by_form(distances, methods),
                      ""]
    fit = label_fit(rows, methods)
    if fit:
        lines += ["## Label fit and validation (diagnostics)",
                  "",
                  "Means over seeds, from each run's training history. The validation split "
                  "chose each run's kept epoch (and the methods' settings); the test numbers "
                  "above were computed once, after training. A training label BCE above the "
                  "baseline's is label fit given up for the teacher's terms (on augmented "
                  "batches for methods that augment).",
                  "",
                  format_label_fit(fit),
                  ""]
    class_gains = format_class_gains(rows, cache.class_names, methods)
    if class_gains:
        lines += ["## Per-class gains over the baseline",
                  "",
                  "Mean paired difference of per-class average precision over the seeds of "
                  "each student (n/a: that student has no paired run of the method). The "
                  "paper expects IUSP to help most on repetitive sounds (alert-signal, dog, "
                  "machinery-impact).",
                  "",
                  class_gains,
                  ""]
    for key, title in (("auprc_vs_params", "micro-AUPRC vs student size"),
                       ("pr_curves", "Precision-recall curves (smallest student)"),
                       ("similarity", "Self-similarity matrices, repetitive clip"),
                       ("per_class_gain", "Per-class gain of IUSP over SP")):
        if key in figures:
            lines += [f"## {title}", "", f"![{title}]({figures[key].name})", ""]
    lines += ["## Configuration", "", "```json", json.dumps(config.to_dict(), indent=1), "```",
              ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    atomic_write_text(out / "summary.json",
                      json.dumps({"teacher": teacher_eval, "table": table, "paired": pairs,
                                  "per_class_gain": {m: per_class_gains(rows, cache.class_names,
                                                                        m)
                                                     for m in dict.fromkeys(
                                                         ["kd", "sp", "iusp"]
                                                         + [x for x in methods
                                                            if x != "baseline"])},
                                  "per_class_gain_by_student": {
                                      s: {m: per_class_gains(rows, cache.class_names, m,
                                                             student=s)
                                          for m in methods if m != "baseline"}
                                      for s in dict.fromkeys(r["student"] for r in rows)},
                                  "iusp_distances": distances,
                                  "label_fit": fit,
                                  **{k: v for k, v in extra.items() if k != "teacher_validate"},
                                  "teacher_validate": extra.get("teacher_validate")},
                                 indent=1))
    return path
