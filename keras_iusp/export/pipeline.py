"""``keras-iusp export``: window model -> int8 + float TFLite -> TFLM/LiteRT checks -> C assets.

Verification is part of every export, not an option: the int8 model runs in the TFLite-Micro
interpreter and in LiteRT on real validation windows, their outputs are compared, the smallest
arena is measured, and validation micro-AUPRC of the windowed int8 model is reported next to the
whole-clip float model. The asset folder is written under a temporary name and swapped in, so a
killed export leaves either the old assets or the new ones.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.data.cache import FeatureCache
from keras_iusp.errors import ConfigError, KerasIuspError
from keras_iusp.export import firmware
from keras_iusp.export.convert import random_windows, rebuild_for_window, to_tflite
from keras_iusp.export.targets import format_target_table, load_profiles
from keras_iusp.export.verify import (
    io_details,
    measure_arena,
    run_litert,
    run_tflm,
    windowed_clip_scores,
)
from keras_iusp.features import FeatureConfig
from keras_iusp.metrics import micro_auprc


def _load_models(run_dir: Path):
    """(int8 source model, float model, info): QAT model when the run was compressed."""
    from keras_iusp.compress import load_compressed
    from keras_iusp.training import load_run

    if (run_dir / "qat.weights.h5").is_file():
        return load_compressed(run_dir)
    run = load_run(run_dir)
    return run.model, run.model, run.info


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` with two renames; the old folder is deleted only afterwards."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(run_dir: str | os.PathLike, cache: FeatureCache, out: str | os.PathLike, *,
                 window_seconds: float = 1.0, golden_vectors: int = 4,
                 representative_windows: int = 200, targets_dir: str | os.PathLike | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """Export a trained (optionally compressed) student run to firmware assets in ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    qat_model, float_model, info = _load_models(run_dir)
    config = FeatureConfig.from_dict(info["feature_config"])
    if config != cache.config:
        raise ConfigError(f"{run_dir} was trained on features {config}, the data cache holds "
                          f"{cache.config}")
    frames = config.num_frames(int(round(window_seconds * config.sample_rate)))
    if frames < 4:
        raise ConfigError(f"window_seconds={window_seconds}: too short ({frames} frames)")
    frames = min(frames, cache.features.shape[1])
    x_train, _ = cache.split("train")
    x_val, y_val = cache.split("validate")
    if len(x_val) == 0:
        raise KerasIuspError(f"{cache.path}: export needs validation clips to verify the model")

    int8_bytes = to_tflite(rebuild_for_window(qat_model, frames),
                           random_windows(x_train, frames, representative_windows, seed))
    float_bytes = to_tflite(rebuild_for_window(float_model, frames))
    inp, outp = io_details(int8_bytes)

    golden_float = random_windows(x_val, frames, golden_vectors, seed + 1)
    golden_in = inp.quantize(golden_float)
    arena = measure_arena(int8_bytes, golden_in[0])
    tflm_out = run_tflm(int8_bytes, golden_in, arena)
    litert_out = run_litert(int8_bytes, golden_in)
    max_diff = int(np.abs(tflm_out.astype(np.int32) - litert_out.astype(np.int32)).max())

    hop = max(1, frames // 2)
    whole_clip = float_model.predict(np.asarray(x_val, np.float32), batch_size=16, verbose=0)
    metrics = {
        "float_whole_clip_auprc": micro_auprc(y_val, 1 / (1 + np.exp(-whole_clip))),
        "float_windowed_auprc": micro_auprc(y_val, windowed_clip_scores(float_bytes, x_val, hop)),
        "int8_windowed_auprc": micro_auprc(y_val, windowed_clip_scores(int8_bytes, x_val, hop)),
    }
    from keras_iusp.compress import overall_sparsity, sparsity_report

    ops = firmware.model_ops(int8_bytes)
    report = {
        "model": info["model_name"],
        "source_run": str(run_dir),
        "params": int(float_model.count_params()),
        "kernel_sparsity": overall_sparsity(float_model),
        "sparsity_per_layer": sparsity_report(float_model),
        "window_frames": frames,
        "window_seconds": frames * config.hop_ms / 1000 + (config.window_ms - config.hop_ms) / 1000,
        "flash_float_bytes": len(float_bytes),
        "flash_int8_bytes": len(int8_bytes),
        "flash_int8_gzip_bytes": len(gzip.compress(int8_bytes, 9)),
        "arena_bytes": arena,
        "tflm_vs_litert_max_diff": max_diff,
        "ops": ops,
        "input_quantization": {"scale": inp.scale, "zero_point": inp.zero_point},
        "output_quantization": {"scale": outp.scale, "zero_point": outp.zero_point},
        "validation_clips": int(len(x_val)),
        "feature_config": config.to_dict(),
        "class_names": list(info["class_names"]),
        **metrics,
    }
    report["targets"] = [p.check(report["flash_int8_bytes"], arena)
                         for p in load_profiles(targets_dir)]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "model.tflite").write_bytes(int8_bytes)
        (tmp / "model_float.tflite").write_bytes(float_bytes)
        files = {**firmware.model_data_files(int8_bytes),
                 "model_settings.h": firmware.model_settings_file(
                     config=config, class_names=info["class_names"], frames=frames,
                     input_quant=inp, output_quant=outp, arena_bytes=arena,
                     mean=np.asarray(info["stats"]["mean"]), std=np.asarray(info["stats"]["std"])),
                 "op_resolver.h": firmware.op_resolver_file(ops),
                 **firmware.golden_vector_files(golden_in, tflm_out),
                 "export_report.json": json.dumps(report, indent=1),
                 "README.md": format_report(report)}
        for name, text in files.items():
            (tmp / name).write_text(text)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["out"] = str(out)
    return report


def format_report(report: dict[str, Any]) -> str:
    """Markdown summary written next to the assets (and printed by the CLI)."""
    r = report
    lines = [
        f"# {r['model']} firmware assets",
        "",
        f"Generated by `keras-iusp export` from `{r['source_run']}`. Window: {r['window_frames']} "
        f"frames (~{r['window_seconds']:.2f} s); clip score = max over half-overlapping windows.",
        "",
        "| params | sparsity | flash float | flash int8 | int8 + gzip | arena | TFLM vs LiteRT "
        "max diff | float AUPRC (whole clip) | int8 AUPRC (windowed) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {r['params']:,} | {r['kernel_sparsity']:.0%} | {r['flash_float_bytes']:,} | "
        f"{r['flash_int8_bytes']:,} | {r['flash_int8_gzip_bytes']:,} | {r['arena_bytes']:,} | "
        f"{r['tflm_vs_litert_max_diff']} | {r['float_whole_clip_auprc']:.3f} | "
        f"{r['int8_windowed_auprc']:.3f} |",
        "",
        f"Float windowed AUPRC: {r['float_windowed_auprc']:.3f} (validation, "
        f"{r['validation_clips']} clips). Ops: {', '.join(r['ops'])}.",
        "",
        format_target_table(r["targets"]),
        "",
        "Files: `model.tflite` (int8), `model_float.tflite`, `model_data.h/.cc`, "
        "`model_settings.h`, `op_resolver.h`, `golden_vectors.h/.cc`, `export_report.json`.",
        "",
    ]
    return "\n".join(lines)
