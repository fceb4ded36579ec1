"""The experiment's synthetic data: made from [data], reused only when [data] still says so."""

from __future__ import annotations

import json

import pytest

from keras_iusp.utils.errors import ConfigError


def _config(tmp_path, extra: str = "", clips: int = 20):
    from keras_iusp.experiments.config import load_config

    path = tmp_path / "c.toml"
    path.write_text(f"[data]\nsynthetic_clips = {clips}\nclip_seconds = 1.0\n{extra}")
    return load_config(path)


def test_synthetic_data_follows_data_and_refuses_a_changed_section(tmp_path):
    from keras_iusp.experiments.preparation import prepare_data

    out = tmp_path / "grid"
    cache = prepare_data(_config(tmp_path, "label_noise = 0.3\n"), out)
    saved = json.loads((out / "data" / "synth_config.json").read_text())["parameters"]
    assert saved["label_noise"] == 0.3 and saved["clips"] == 20
    assert prepare_data(_config(tmp_path, "label_noise = 0.3\n"), out).path == cache.path
    for extra, named in [("", "label_noise 0.3 (configured 0.1)"),
                         ("label_noise = 0.3\ndata_seed = 4\n", "data_seed 0 (configured 4)")]:
        with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
            prepare_data(_config(tmp_path, extra), out)
    with pytest.raises(ConfigError, match=r"synthetic_clips 20 \(configured 21\)"):
        prepare_data(_config(tmp_path, "label_noise = 0.3\n", clips=21), out)
    (out / "data" / "synth_config.json").unlink()
    with pytest.raises(ConfigError, match="missing or unreadable"):
        prepare_data(_config(tmp_path, "label_noise = 0.3\n"), out)


def test_a_record_without_label_noise_reads_as_the_generator_default(tmp_path):
    from keras_iusp.experiments.preparation import prepare_data

    out = tmp_path / "grid"
    prepare_data(_config(tmp_path), out)
    path = out / "data" / "synth_config.json"
    record = json.loads(path.read_text())
    del record["parameters"]["label_noise"]  # as data written before the setting existed
    path.write_text(json.dumps(record))
    prepare_data(_config(tmp_path, "label_noise = 0.1\n"), out)
    with pytest.raises(ConfigError, match="label_noise"):
        prepare_data(_config(tmp_path, "label_noise = 0.2\n"), out)
