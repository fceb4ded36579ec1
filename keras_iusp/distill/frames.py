"""Frame views of feature maps, shared by the IUSP losses and their fast path.

A feature map ``[B, T, ...]`` is read as ``T`` frames of ``D`` features (the product of the
trailing axes); the forms of the self-similarity map (:data:`IUSP_FORMS`) are defined here
once, for :mod:`keras_iusp.distill.losses` and :mod:`keras_iusp.distill.iusp_fast`.
"""

from __future__ import annotations

import tensorflow as tf

# Guard for the L2 normalisation of similarity rows: rows whose squared norm is below it are
# divided by sqrt(eps) instead, so an all-zero row (a silent / dead frame) stays exactly 0.
NORM_EPS = 1e-12


#: Valid ``form`` values of :func:`~keras_iusp.distill.losses.self_similarity` and
#: :func:`~keras_iusp.distill.losses.iusp_loss`.
IUSP_FORMS = ("paper", "cosine", "centered")

#: The form :func:`~keras_iusp.distill.losses.iusp_loss` and :class:`keras_iusp.IUSPDistillation`
#: use unless told otherwise.
#: Chosen by measurement (``docs/iusp_diagnosis.md``): trained on the IUSP term alone, a
#: ``cnn_lstm_xs`` student lowered its validation distance by far more in this form than in the
#: paper's, whose map is mostly a constant for non-negative (ReLU) features.
DEFAULT_IUSP_FORM = "cosine"


def check_form(form: str, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``form`` is one of :data:`IUSP_FORMS`."""
    if form not in IUSP_FORMS:
        raise ValueError(f"{owner}: form={form!r}; expected one of {list(IUSP_FORMS)}")


def as_frames(q: tf.Tensor) -> tf.Tensor:
    """``[B, T, ...] -> [B, T, D]`` with ``D`` the product of the trailing axes."""
    shape = tf.shape(q)
    return tf.reshape(q, [shape[0], shape[1], feature_size(q)])


def unit_frames(q: tf.Tensor, center: bool) -> tf.Tensor:
    """Frames ``[B, T, D]`` scaled to unit L2 norm, optionally after removing the clip's mean frame.

    The scale is ``rsqrt(max(||q_i||², 1e-12))`` (``tf.math.l2_normalize``), so an all-zero frame
    stays exactly 0 (and, centred, so does every frame of a clip whose frames are all equal).
    """
    if center:
        q = q - tf.reduce_mean(q, axis=1, keepdims=True)
    return tf.math.l2_normalize(q, axis=-1, epsilon=NORM_EPS)


def dim(t: tf.Tensor, axis: int) -> int | tf.Tensor:
    """Static size of ``axis`` when known, else the runtime size."""
    static = t.shape[axis]
    return static if static is not None else tf.shape(t)[axis]


def feature_size(t: tf.Tensor) -> int | tf.Tensor:
    """``D``: product of the axes after ``[B, T]`` (static when all of them are known)."""
    static = t.shape[2:]
    if static.is_fully_defined():
        return int(static.num_elements())
    return tf.reduce_prod(tf.shape(t)[2:])
