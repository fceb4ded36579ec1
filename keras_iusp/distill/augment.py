"""Log-mel augmentations applied inside the training step: mixup, SpecAugment masks, time crops.

Why inside the step and not in ``tf.data``: for *consistent teaching* (Beyer et al., CVPR 2022,
"Knowledge distillation: A good teacher is patient and consistent") the teacher must score the
very input the student sees. The :class:`~keras_iusp.Distiller` draws one augmentation per batch
and feeds the same augmented batch to both models, so the soft targets match the student's input
(a crop that cuts an event out, a mask that hides it, a mix of two clips).

Every random draw is *stateless*, a function of ``(seed, step)``: a run resumed after a kill sees
the same augmentations as an uninterrupted one, and runs of different methods with the same seed
see the same draws, so their differences are paired.

Inputs are raw log-mel batches ``[B, T, F]`` (models standardise inside their first layer), so a
masked region is set to the batch's per-band mean log-mel rather than zero (zero would be a loud
value on a log scale).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keras_iusp.utils.errors import ConfigError

if TYPE_CHECKING:  # TensorFlow is imported where it is used: the config is read by the CLI
    import tensorflow as tf  # before TensorFlow may load (quiet start-up)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to draw per training batch; all off by default.

    Attributes:
        mixup_alpha: mixup (Zhang et al., ICLR 2018) with ``λ ~ Beta(α, α)`` per clip, mixing each
            clip with another clip of the batch; labels are mixed with the same ``λ``
            (``0`` = off). Common values 0.2-0.5.
        time_masks / time_mask_frames: SpecAugment (Park et al., Interspeech 2019) time masks per
            clip, each of a width drawn uniformly from ``[0, time_mask_frames]``.
        freq_masks / freq_mask_bins: frequency masks per clip, each up to ``freq_mask_bins`` bands.
        crop_fraction: random time crop: each clip is cut to ``round(crop_fraction · T)`` frames at
            a random offset (``1`` = off). Labels are kept (an event may fall outside the crop:
            only a teacher that sees the crop can say so, which is what consistent teaching buys).
        seed: base seed of the stateless draws.
    """

    mixup_alpha: float = 0.0
    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0
    crop_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(field: str, expected: str):
            value = getattr(self, field)
            return ConfigError(f"augmentation {field}={value!r}: expected {expected}")

        if not isinstance(self.mixup_alpha, (int, float)) or self.mixup_alpha < 0:
            raise bad("mixup_alpha", "a number >= 0")
        for name in ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(name, "an integer >= 0")
        if not isinstance(self.crop_fraction, (int, float)) or not 0 < self.crop_fraction <= 1:
            raise bad("crop_fraction", "a number in (0, 1]")

    @property
    def active(self) -> bool:
        """Whether any augmentation is switched on."""
        return (self.mixup_alpha > 0 or (self.time_masks > 0 and self.time_mask_frames > 0)
                or (self.freq_masks > 0 and self.freq_mask_bins > 0) or self.crop_fraction < 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AugmentConfig:
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"augmentation: unknown key(s) {unknown}; valid keys: "
                              f"{sorted(names)}")
        return cls(**values)


#: The recipe used for teachers and for consistent teaching unless a config says otherwise:
#: mixup α = 0.4 and two 10 %-wide time masks and two 8-band frequency masks.
def default_augmentation(frames: int, seed: int = 0) -> AugmentConfig:
    """Strong but label-preserving defaults scaled to the clip length (``frames``)."""
    return AugmentConfig(mixup_alpha=0.4, time_masks=2, time_mask_frames=max(1, frames // 10),
                         freq_masks=2, freq_mask_bins=8, seed=seed)


def _sample_beta(alpha: float, shape, seed) -> tf.Tensor:
    """``Beta(α, α)`` from two stateless gamma draws (``X / (X + Y)``)."""
    import tensorflow as tf

    s1 = tf.random.experimental.stateless_fold_in(seed, 1)
    s2 = tf.random.experimental.stateless_fold_in(seed, 2)
    x = tf.random.stateless_gamma(shape, s1, alpha=alpha)
    y = tf.random.stateless_gamma(shape, s2, alpha=alpha)
    return x / tf.maximum(x + y, 1e-12)


def _masks(batch: int, length: int, count: int, max_width: int, seed) -> tf.Tensor:
    """``[B, length]`` boolean: True where any of ``count`` random intervals covers a position."""
    import tensorflow as tf

    positions = tf.range(length)[tf.newaxis, :]
    covered = tf.zeros([batch, length], tf.bool)
    for i in range(count):
        s = tf.random.experimental.stateless_fold_in(seed, 10 + i)
        width = tf.random.stateless_uniform([batch, 1], s, 0, max_width + 1, dtype=tf.int32)
        s = tf.random.experimental.stateless_fold_in(seed, 100 + i)
        start = tf.cast(tf.random.stateless_uniform([batch, 1], s) *
                        tf.cast(tf.maximum(length - width, 0) + 1, tf.float32), tf.int32)
        covered |= (positions >= start) & (positions < start + width)
    return covered


def augment_batch(x: tf.Tensor, y: tf.Tensor, config: AugmentConfig, step) -> tuple:
    """One augmented batch ``(x', y')`` drawn from ``(config.seed, step)``.

    ``x`` is ``[B, T, F]`` log-mel, ``y`` ``[B, C]`` labels in ``[0, 1]``. Order: crop, mixup,
    masks (masks after mixup, so a masked region is hidden in both mixed clips).
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.cast(y, tf.float32)
    seed = tf.stack([tf.constant(config.seed, tf.int64), tf.cast(step, tf.int64)])
    batch, frames, bands = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    if config.crop_fraction < 1:
        length = max(1, int(round(config.crop_fraction * x.shape[1]))) if x.shape[1] else None
        if length is None:
            raise ConfigError("random crop needs a known number of frames")
        s = tf.random.experimental.stateless_fold_in(seed, 3)
        start = tf.cast(tf.random.stateless_uniform([batch], s) *
                        tf.cast(frames - length + 1, tf.float32), tf.int32)
        index = start[:, tf.newaxis] + tf.range(length)[tf.newaxis, :]
        x = tf.gather(x, index, batch_dims=1)
        frames = tf.shape(x)[1]
    if config.mixup_alpha > 0:
        lam = _sample_beta(config.mixup_alpha, [batch], tf.random.experimental.stateless_fold_in(
            seed, 4))
        s = tf.random.experimental.stateless_fold_in(seed, 5)
        partner = tf.random.experimental.stateless_shuffle(tf.range(batch), s)
        lx = lam[:, tf.newaxis, tf.newaxis]
        x = lx * x + (1.0 - lx) * tf.gather(x, partner)
        ly = lam[:, tf.newaxis]
        y = ly * y + (1.0 - ly) * tf.gather(y, partner)
    time_on = config.time_masks > 0 and config.time_mask_frames > 0
    freq_on = config.freq_masks > 0 and config.freq_mask_bins > 0
    if time_on or freq_on:
        fill = tf.reduce_mean(x, axis=[0, 1], keepdims=True)  # [1, 1, F] per-band mean
        hidden = tf.zeros([batch, frames, bands], tf.bool)
        if time_on:
            t = _masks(batch, frames, config.time_masks, config.time_mask_frames,
                       tf.random.experimental.stateless_fold_in(seed, 6))
            hidden |= t[:, :, tf.newaxis]
        if freq_on:
            f = _masks(batch, bands, config.freq_masks, config.freq_mask_bins,
                       tf.random.experimental.stateless_fold_in(seed, 7))
            hidden |= f[:, tf.newaxis, :]
        x = tf.where(hidden, fill, x)
    return x, y
