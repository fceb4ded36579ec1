"""The report's figures: micro-AUPRC vs student size, precision-recall curves, teacher vs
student self-similarity on a repetitive clip, and the per-class gain of IUSP over SP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_iusp.distill.methods import label
from keras_iusp.experiments.archive import has_weights
from keras_iusp.experiments.statistics import BUILTIN, base_methods, method_order
from keras_iusp.utils.atomic import atomic_path

# TensorFlow (models, losses, run loading) and matplotlib are imported inside the functions that
# use them: the report imports this module, and tabulating results must not load TensorFlow.


def save_figure(fig, path: Path) -> Path:
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


def report_figures(out: Path, rows: list[dict], table: list[dict], cache, teacher, split: str,
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
    figures["auprc_vs_params"] = save_figure(fig, out / "auprc_vs_params.png")

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
    figures["pr_curves"] = save_figure(fig, out / "pr_curves.png")

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
        figures["per_class_gain"] = save_figure(fig, out / "per_class_gain.png")
    return figures
