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

from keras_iusp.distill.methods import label
from keras_iusp.experiments.report_figures import report_figures
from keras_iusp.experiments.report_tables import (
    format_class_gains,
    format_distances,
    format_distances_by_form,
    format_label_fit,
    format_paired,
    format_table,
)
from keras_iusp.experiments.statistics import (
    BUILTIN,
    label_fit,
    paired_table,
    per_class_gains,
    summarize,
)
from keras_iusp.utils.atomic import atomic_write_text

# Modules that load TensorFlow (models, losses, training) are imported inside the functions that
# run models: tabulating results (`experiment --report-only`) must not load TensorFlow.


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
    figures = report_figures(out, rows, table, cache, teacher, split, teacher_eval, methods)
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
    from keras_iusp.experiments.distances import iusp_distances  # runs the models: TensorFlow

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
