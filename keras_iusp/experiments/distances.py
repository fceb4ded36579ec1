"""The IUSP distance of trained students to their teacher: how closely a student's own
frame-by-frame self-similarity follows the teacher's (model inference: loads TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_iusp.distill.losses import DEFAULT_IUSP_FORM, IUSP_FORMS, iusp_loss
from keras_iusp.distill.teacher_targets import weights_fingerprint
from keras_iusp.experiments.archive import has_weights
from keras_iusp.models import MODEL_SPECS
from keras_iusp.models.probe import layer_probe
from keras_iusp.train.recipe import DEFAULT_STUDENT_LAYER, DEFAULT_TEACHER_LAYER
from keras_iusp.train.saved_runs import load_run
from keras_iusp.utils.atomic import atomic_write_text


def layer_output_batches(model, layer: str, features, batch_size: int = 16) -> list:
    """``layer``'s outputs on ``features``, batch by batch (inference mode)."""

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
