"""Augmentations drawn inside the training step (keras_iusp.distill.augment)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_iusp.distill.augment import AugmentConfig, augment_batch, default_augmentation
from keras_iusp.utils.errors import ConfigError


def _batch(b=6, t=40, f=16, c=None, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, t, f)).astype(np.float32), \
        (rng.random((b, c or 8)) < 0.4).astype(np.float32)


def test_off_by_default_and_identity():
    config = AugmentConfig()
    assert not config.active
    x, y = _batch()
    xa, ya = augment_batch(x, y, config, step=3)
    np.testing.assert_array_equal(xa.numpy(), x)
    np.testing.assert_array_equal(ya.numpy(), y)


def test_mixup_mixes_inputs_and_labels_with_one_lambda():
    # Clip i is the constant i and its label one-hot e_i: the mixed label then reveals lambda and
    # the partner, and the mixed input must be exactly the same convex combination.
    b, t, f = 8, 10, 4
    x = np.stack([np.full((t, f), float(i)) for i in range(b)]).astype(np.float32)
    y = np.eye(b, dtype=np.float32)
    xa, ya = augment_batch(x, y, AugmentConfig(mixup_alpha=0.4, seed=1), step=5)
    xa, ya = xa.numpy(), ya.numpy()
    np.testing.assert_allclose(ya.sum(1), 1.0, atol=1e-6)
    assert np.all(ya >= -1e-7)
    mixed = 0
    for i in range(b):
        lam = ya[i, i] if ya[i, i] < 1 - 1e-6 else 1.0
        others = [j for j in range(b) if j != i and ya[i, j] > 1e-6]
        assert len(others) <= 1
        partner = others[0] if others else i
        expected = ya[i, i] * i + (1 - ya[i, i]) * partner if others else float(i)
        np.testing.assert_allclose(xa[i], expected, rtol=1e-5, atol=1e-5)
        mixed += bool(others) and 0 < lam < 1
    assert mixed >= b // 2  # Beta(0.4, 0.4) rarely gives exactly 0 or 1


def test_masks_fill_with_band_mean_and_respect_widths():
    x, y = _batch(b=4, t=50, f=20)
    config = AugmentConfig(time_masks=2, time_mask_frames=5, freq_masks=1, freq_mask_bins=3,
                           seed=2)
    xa = augment_batch(x, y, config, step=0)[0].numpy()
    fill = x.mean(axis=(0, 1))
    changed = ~np.isclose(xa, x)
    assert changed.any()
    # every changed value equals its band's batch mean
    bands = np.broadcast_to(np.arange(x.shape[2]), x.shape)
    np.testing.assert_allclose(xa[changed], fill[bands[changed]], rtol=1e-4, atol=1e-6)
    for clip in range(x.shape[0]):
        hidden = np.isclose(xa[clip], fill[None, :], atol=1e-6) & changed[clip]
        full_frames = np.flatnonzero(hidden.all(axis=1))
        full_bands = np.flatnonzero(hidden.all(axis=0))
        assert len(full_frames) <= 2 * 5
        assert len(full_bands) <= 3


def test_crop_returns_contiguous_slices():
    x, y = _batch(b=5, t=30, f=3)
    xa = augment_batch(x, y, AugmentConfig(crop_fraction=0.5, seed=0), step=1)[0].numpy()
    assert xa.shape == (5, 15, 3)
    for clip in range(5):
        starts = [s for s in range(16) if np.array_equal(x[clip, s:s + 15], xa[clip])]
        assert len(starts) == 1


def test_draws_are_a_function_of_seed_and_step():
    x, y = _batch()
    config = default_augmentation(40, seed=3)
    a = augment_batch(x, y, config, step=7)[0].numpy()
    b = augment_batch(x, y, config, step=7)[0].numpy()
    c = augment_batch(x, y, config, step=8)[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kwargs,field", [
    ({"mixup_alpha": -1.0}, "mixup_alpha"),
    ({"time_masks": 1.5}, "time_masks"),
    ({"crop_fraction": 0.0}, "crop_fraction"),
    ({"crop_fraction": 1.5}, "crop_fraction"),
])
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        AugmentConfig(**kwargs)


def test_unknown_key_in_dict_is_named():
    with pytest.raises(ConfigError, match="mixup"):
        AugmentConfig.from_dict({"mixup": 0.2})
