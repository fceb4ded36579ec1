"""Teacher outputs cached once per clip: exact, keyed on the teacher's weights, never stale."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_iusp.utils.errors import ConfigError


@pytest.mark.parametrize("method", ["kd", "sp", "iusp"])
def test_identical_losses_with_and_without_the_cache(tiny_data, tiny_teacher, method):
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    root, _, cache = tiny_data
    histories = {}
    for use_cache in (True, False):
        out = root / f"cache_check_{method}_{use_cache}"
        distill(cache, tiny_teacher, "cnn_lstm_xs", out,
                DistillConfig(method=method, epochs=2, batch_size=8, teacher_cache=use_cache),
                verbose=0, overwrite=True)
        histories[use_cache] = json.loads((out / "history.json").read_text())
    assert method in histories[True] and f"val_{method}" in histories[True]
    for key, values in histories[False].items():
        np.testing.assert_allclose(histories[True][key], values, rtol=1e-5, atol=1e-7,
                                   err_msg=key)


def test_outputs_match_the_teacher_and_are_reused(tiny_data, tiny_teacher, capsys):
    from keras_iusp.distill.teacher_targets import teacher_outputs

    _, _, cache = tiny_data
    first = teacher_outputs(tiny_teacher.model, ["block3", "embedding"], cache)
    assert "computed once" in capsys.readouterr().out
    again = teacher_outputs(tiny_teacher.model, ["block3", "embedding"], cache)
    assert "reused" in capsys.readouterr().out and again.path == first.path
    logits = tiny_teacher.model.predict(np.asarray(cache.features), verbose=0)
    np.testing.assert_allclose(first.arrays[0], logits, rtol=1e-5, atol=1e-5)
    x_val, _ = cache.split("validate")
    val_logits = first.split(cache, "validate")[0]
    assert val_logits.shape[0] == x_val.shape[0]
    assert first.arrays[2].shape[1:] == tuple(
        tiny_teacher.model.get_layer("embedding").output.shape[1:])


def test_a_changed_teacher_gets_new_outputs(tiny_data, tiny_teacher):
    import tf_keras as keras

    from keras_iusp.distill.teacher_targets import teacher_outputs

    _, _, cache = tiny_data
    original = teacher_outputs(tiny_teacher.model, ["embedding"], cache, verbose=False)
    changed = keras.models.clone_model(tiny_teacher.model)
    weights = tiny_teacher.model.get_weights()
    weights[-1] = weights[-1] + 1.0  # shift the logits' bias
    changed.set_weights(weights)
    other = teacher_outputs(changed, ["embedding"], cache, verbose=False)
    assert other.path != original.path
    np.testing.assert_allclose(other.arrays[0], np.asarray(original.arrays[0]) + 1.0,
                               rtol=1e-4, atol=1e-4)
    layers = teacher_outputs(tiny_teacher.model, ["embedding", "block4"], cache, verbose=False)
    assert layers.path not in (original.path, other.path)


def test_unknown_layer_is_named(tiny_data, tiny_teacher):
    from keras_iusp.distill.teacher_targets import teacher_outputs

    with pytest.raises(ConfigError, match="no layer 'nope'"):
        teacher_outputs(tiny_teacher.model, ["nope"], tiny_data[2])


def test_cached_outputs_refused_with_augmentation(tiny_data, tiny_teacher):
    from keras_iusp.distill.augment import AugmentConfig
    from keras_iusp.distill.distillation import LogitsDistillation
    from keras_iusp.distill.distiller import Distiller
    from keras_iusp.distill.teacher_targets import teacher_outputs
    from keras_iusp.features import make_dataset
    from keras_iusp.models import build_model

    _, _, cache = tiny_data
    x, y = cache.split("train")
    outs = teacher_outputs(tiny_teacher.model, [], cache, verbose=False).split(cache, "train")
    student = build_model("cnn_lstm_xs", x.shape[1:], stats=cache.stats)
    d = Distiller(tiny_teacher.model, student, [LogitsDistillation(2.0)],
                  augmentation=AugmentConfig(mixup_alpha=0.4))
    d.compile()
    with pytest.raises(ConfigError, match="un-augmented"):
        d.fit(make_dataset(x, y, 8, extras=outs), epochs=1, verbose=0)
