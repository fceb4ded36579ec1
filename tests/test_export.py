"""Compression and export: pruning sparsity, TFLM vs LiteRT, arena, C assets compiled by g++."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from toolchain import require

from keras_iusp.compress import CompressConfig, compress, load_compressed, overall_sparsity
from keras_iusp.data import read_sonyc, synthesize
from keras_iusp.export import export_model
from keras_iusp.export.firmware import model_ops
from keras_iusp.export.targets import load_profile, load_profiles
from keras_iusp.export.verify import (
    _tflm_runs,
    io_details,
    run_litert,
    run_tflm,
    window_starts,
)
from keras_iusp.features import build_feature_cache
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.train.recipe import DistillConfig
from keras_iusp.train.saved_runs import load_run
from keras_iusp.train.training import distill
from keras_iusp.utils.console import silenced_stderr
from keras_iusp.utils.errors import ConfigError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    synthesize(root / "data", clips=24, seed=5, clip_seconds=1.5, sample_rate=16000,
               progress=False)
    cache = build_feature_cache(read_sonyc(root / "data"), FeatureConfig(clip_seconds=1.5),
                                progress=False)
    student = distill(cache, None, "dscnn_xs", root / "student",
                      DistillConfig(method="baseline", epochs=1, batch_size=8), verbose=0)
    compress(student, cache, root / "compressed",
             CompressConfig(target_sparsity=0.5, prune_epochs=2, qat_epochs=1, batch_size=8),
             verbose=0)
    report = export_model(root / "compressed", cache, root / "fw", window_seconds=0.5,
                          golden_vectors=3, representative_windows=20)
    return root, cache, report


def test_pruning_reaches_target_and_survives_qat(exported):
    root, _, report = exported
    _, float_model, _ = load_compressed(root / "compressed")
    qat_report = json.loads((root / "compressed" / "compress_report.json").read_text())
    for stage in ("pruning", "qat"):
        for name, value in qat_report[stage]["sparsity"].items():
            # TFMOT 0.8 does not prune depthwise kernels (its registry lists none for them)
            expected = 0.0 if "depthwise" in name else 0.5
            assert value == pytest.approx(expected, abs=0.05), (stage, name)
    assert 0.2 < overall_sparsity(float_model) < 0.5
    assert report["kernel_sparsity"] == pytest.approx(overall_sparsity(float_model))


def test_tflm_and_litert_agree_and_golden_vectors_reproduce(exported):
    root, cache, report = exported
    model = (root / "fw" / "model.tflite").read_bytes()
    inp, out = io_details(model)
    assert inp.dtype == np.int8 and out.dtype == np.int8 and inp.shape == (1, 48, 64)
    windows = inp.quantize(np.asarray(cache.split("validate")[0][:5, :48]))
    tflm = run_tflm(model, windows, report["arena_bytes"])
    litert = run_litert(model, windows)
    assert np.abs(tflm.astype(int) - litert.astype(int)).max() <= 1
    assert report["tflm_vs_litert_max_diff"] <= 1
    assert 0.0 <= report["int8_windowed_auprc"] <= 1.0


def test_arena_is_the_measured_minimum(exported):
    root, _, report = exported
    model = (root / "fw" / "model.tflite").read_bytes()
    inp, _ = io_details(model)
    sample = np.zeros(inp.shape[1:], np.int8)
    with silenced_stderr():
        assert _tflm_runs(model, report["arena_bytes"], sample)
        assert not _tflm_runs(model, report["arena_bytes"] - 16, sample)
    settings = (root / "fw" / "model_settings.h").read_text()
    assert f"constexpr int kTensorArenaSize = {report['arena_bytes']};" in settings


def test_op_resolver_registers_exactly_the_model_ops(exported):
    root, _, report = exported
    ops = model_ops((root / "fw" / "model.tflite").read_bytes())
    header = (root / "fw" / "op_resolver.h").read_text()
    registered = re.findall(r"resolver\.(\w+)\(\)", header)
    assert len(registered) == len(ops) == len(set(registered))
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(ops)
    assert "MicroMutableOpResolver<kNumOps>" in header and f"kNumOps = {len(ops)}" in header


def test_generated_sources_compile_and_hold_the_model_bytes(exported, tmp_path):
    require("g++")
    root, _, report = exported
    fw = root / "fw"
    main = tmp_path / "check.cc"
    main.write_text("""
#include <cstdio>
#include "model_data.h"
#include "model_settings.h"
#include "golden_vectors.h"
int main(int argc, char** argv) {
  FILE* f = std::fopen(argv[1], "wb");
  std::fwrite(g_model_data, 1, g_model_data_len, f);
  std::fclose(f);
  std::printf("%d %d %d %d %d\\n", keras_iusp::kInputSize, keras_iusp::kNumClasses,
              keras_iusp::kNumGoldenVectors, (int)sizeof(keras_iusp::kGoldenInputs),
              (int)(reinterpret_cast<unsigned long>(g_model_data) % 16));
  return 0;
}
""")
    binary = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(fw), str(main),
                    str(fw / "model_data.cc"), str(fw / "golden_vectors.cc"), "-o", str(binary)],
                   check=True, capture_output=True, text=True)
    dumped = tmp_path / "dumped.tflite"
    result = subprocess.run([str(binary), str(dumped)], check=True, capture_output=True,
                            text=True)
    assert dumped.read_bytes() == (fw / "model.tflite").read_bytes()
    size, classes, golden, golden_bytes, misalign = map(int, result.stdout.split())
    assert size == 48 * 64 and classes == 8 and golden == 3 and golden_bytes == 3 * size
    assert misalign == 0


def test_report_and_target_table(exported):
    root, _, report = exported
    saved = json.loads((root / "fw" / "export_report.json").read_text())
    for key in ("params", "kernel_sparsity", "flash_float_bytes", "flash_int8_bytes",
                "flash_int8_gzip_bytes", "arena_bytes", "tflm_vs_litert_max_diff",
                "float_whole_clip_auprc", "int8_windowed_auprc", "targets"):
        assert key in saved
    assert saved["flash_int8_gzip_bytes"] < saved["flash_int8_bytes"]  # pruned zeros compress
    names = {t["target"] for t in saved["targets"]}
    assert names == {p.name for p in load_profiles()}
    assert "| cortex-m4 |" in (root / "fw" / "README.md").read_text()
    assert not list(root.glob(".fw*"))  # no temporary or old folders left


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def fw_copy(exported, tmp_path) -> Path:
    """A private copy of the module's export, for tests that export over it (the module's own
    folder stays as the fixture made it, whatever order the tests run in)."""
    root, _, _ = exported
    copy = tmp_path / "fw"
    shutil.copytree(root / "fw", copy)
    return copy


def _export_over(exported, folder: Path, golden: int) -> dict:
    root, cache, _ = exported
    return export_model(root / "compressed", cache, folder, window_seconds=0.5,
                        golden_vectors=golden, representative_windows=20)


def test_export_replaces_assets(exported, fw_copy):
    before = (fw_copy / "model.tflite").read_bytes()
    _export_over(exported, fw_copy, golden=2)
    after = (fw_copy / "model.tflite").read_bytes()
    # calibration is not bit-reproducible across conversions, the structure is
    assert len(after) == len(before) and model_ops(after) == model_ops(before)
    assert "kNumGoldenVectors = 2" in (fw_copy / "golden_vectors.h").read_text()
    assert [p.name for p in fw_copy.parent.iterdir()] == ["fw"]  # no temporary or old folder


def test_failed_write_leaves_the_old_assets_intact(exported, fw_copy, monkeypatch):
    before = _snapshot(fw_copy)
    real_write = Path.write_text

    def disk_full_at_op_resolver(self, *args, **kwargs):
        if self.name == "op_resolver.h":
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full_at_op_resolver)
    with pytest.raises(OSError, match="No space left"):
        _export_over(exported, fw_copy, golden=2)
    assert _snapshot(fw_copy) == before
    assert [p.name for p in fw_copy.parent.iterdir()] == ["fw"]


def test_failed_final_rename_leaves_the_old_assets_intact(exported, fw_copy, monkeypatch):
    before = _snapshot(fw_copy)
    real_replace = os.replace

    def rename_into_place_fails(src, dst, *args, **kwargs):
        if Path(dst) == fw_copy and ".tmp-" in Path(src).name:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", rename_into_place_fails)
    with pytest.raises(OSError, match="Input/output error"):
        _export_over(exported, fw_copy, golden=2)
    assert fw_copy.is_dir(), "the old assets were moved away and not put back"
    assert _snapshot(fw_copy) == before
    assert [p.name for p in fw_copy.parent.iterdir()] == ["fw"]


def test_window_starts_cover_the_clip():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]
    assert window_starts(3, 4, 2) == [0]


def test_bad_target_profile_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ndescription = "y"\nflash_bytes = "64k"\nram_bytes = 1\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: flash_bytes must be a int"):
        load_profile(bad)
    bad.write_text('name = "x"\ndescription = "y"\nflash_bytes = 1\nram_bytes = 1\nram = 2\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['ram'\]"):
        load_profile(bad)


def test_loaded_student_still_loads(exported):
    root, _, _ = exported
    assert load_run(root / "student").info["model_name"] == "dscnn_xs"
