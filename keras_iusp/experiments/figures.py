"""Figures: frame-by-frame self-similarity matrices of teacher and students.

The IUSP loss asks the student to reproduce the teacher's self-similarity matrix; repetitive
sounds (siren sweeps, alarm beeps, barks) show as off-diagonal stripes. Seeing the matrices side
by side is the quickest check that a student learned that structure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_iusp.utils.atomic import atomic_path

# TensorFlow-backed modules are imported inside the figures that run a model, so that importing
# this module (the report does) does not load TensorFlow.

#: Classes whose events repeat within a clip, in order of preference for the figure.
REPETITIVE_CLASSES = ("alert-signal", "dog", "machinery-impact", "music")


def layer_similarity(model, layer_name: str, features: np.ndarray,
                     form: str | None = None) -> np.ndarray:
    """Self-similarity ``[T, T]`` of one layer's output for one clip ``[T, n_mels]``.

    Uses :func:`keras_iusp.distill.losses.self_similarity`, the same function the loss uses, in the
    IUSP ``form`` (default: the loss's default form), so the figure shows what the loss compares.
    """
    from keras_iusp.distill.losses import DEFAULT_IUSP_FORM, self_similarity
    from keras_iusp.models.probe import layer_probe

    probe = layer_probe(model, layer_name)
    output = probe(np.asarray(features, np.float32)[None], training=False)
    return self_similarity(output, form=form or DEFAULT_IUSP_FORM).numpy()[0]


def pick_repetitive_clip(labels: np.ndarray, class_names: tuple[str, ...]) -> int:
    """Index of a clip labelled with a repetitive class and as few other classes as possible."""
    for name in REPETITIVE_CLASSES:
        if name not in class_names:
            continue
        column = class_names.index(name)
        candidates = np.flatnonzero(labels[:, column] > 0)
        if candidates.size:
            return int(candidates[np.argmin(labels[candidates].sum(axis=1))])
    return 0


def plot_similarity_panels(panels: list[tuple[str, np.ndarray]], out_png: str | os.PathLike,
                           title: str = "") -> Path:
    """Draw ``[(title, G), ...]`` side by side and save a PNG (written atomically)."""
    # A bare Figure renders with Agg without touching pyplot's global backend (which would
    # switch a notebook away from inline display).
    from matplotlib.figure import Figure

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(3.3 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], panels):
        image = ax.imshow(matrix, origin="lower", cmap="magma", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame")
        ax.set_ylabel("frame")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110)
    return out_png


def plot_teacher_student_similarity(
    teacher, teacher_layer: str, students: list[tuple], features: np.ndarray,
    out_png: str | os.PathLike, title: str = "", form: str | None = None,
) -> tuple[Path, dict[str, float]]:
    """Teacher vs students on one clip; returns the PNG and each student's IUSP distance.

    ``students`` is ``[(label, model, layer_name), ...]`` (e.g. before and after IUSP training),
    or ``(label, model, layer_name, teacher_layer)`` for a student trained against another
    teacher layer than ``teacher_layer`` (e.g. a grid where SP used other layers): each teacher
    layer gets its own panel, and each student is compared with its own one.
    The distance is the per-clip IUSP loss in ``form`` (student matrix resized to the teacher's
    size; mean squared difference of the map entries, i.e. ``||G_t - G_s||²_F / T²``).
    """
    import tensorflow as tf

    from keras_iusp.distill.losses import resize_similarity

    pairs = [(entry[0], entry[1], entry[2], entry[3] if len(entry) > 3 else teacher_layer)
             for entry in students]
    teacher_maps, panels = {}, []
    for layer in dict.fromkeys([teacher_layer] if not pairs else [t for *_, t in pairs]):
        teacher_maps[layer] = layer_similarity(teacher, layer, features, form)
        panels.append((f"teacher: {layer} (T={teacher_maps[layer].shape[0]})",
                       teacher_maps[layer]))
    distances = {}
    for label, model, layer, t_layer in pairs:
        g_t = teacher_maps[t_layer]
        g_s = layer_similarity(model, layer, features, form)
        resized = resize_similarity(tf.constant(g_s[None]), g_t.shape[0]).numpy()[0]
        distances[label] = float(np.sum((g_t - resized) ** 2) / g_t.shape[0] ** 2)
        against = f" (vs {t_layer})" if len(teacher_maps) > 1 else ""
        panels.append((f"{label}: {layer}{against}\nIUSP distance {distances[label]:.2e}", g_s))
    return plot_similarity_panels(panels, out_png, title), distances
