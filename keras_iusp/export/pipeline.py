"""``keras-iusp export``: window model -> int8 + float TFLite -> TFLM/LiteRT checks -> C assets.

Verification is part of every export, not an option: the int8 model runs in the TFLite-Micro
interpreter and in LiteRT on real validation windows, their outputs are compared, the smallest
arena is measured, and validation micro-AUPRC of the windowed int8 model is reported next to the
whole-clip float model. The asset folder is written under a temporary name and swapped in
(:func:`keras_iusp.utils.atomic.replace_dir`), so a killed export leaves either the old assets or
the new ones; one killed between the two renames of the swap is put right by the next export.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.compress import load_compressed, overall_sparsity, sparsity_report
from keras_iusp.detect import DetectorSettings
from keras_iusp.export import firmware, frontend
from keras_iusp.export.convert import random_windows, rebuild_for_window, to_tflite
from keras_iusp.export.detector_files import detector_files, detector_settings_block
from keras_iusp.export.stream_eval import calibrate_detector
from keras_iusp.export.streaming import check_block_frames
from keras_iusp.export.streaming_export import streaming_assets
from keras_iusp.export.targets import format_target_table, load_profiles
from keras_iusp.export.verify import (
    io_details,
    measure_arena,
    run_litert,
    run_tflm,
    tflm_ms_per_window,
    windowed_clip_scores,
)
from keras_iusp.features.cache import FeatureCache
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.metrics import micro_auprc
from keras_iusp.models.summary import model_summary
from keras_iusp.train.saved_runs import load_run
from keras_iusp.utils.atomic import atomic_write_text, recover_dir, replace_dir, staging_dir
from keras_iusp.utils.errors import ConfigError, KerasIuspError


def _load_models(run_dir: Path):
    """(int8 source model, float model, info): QAT model when the run was compressed."""

    if (run_dir / "qat.weights.h5").is_file():
        return load_compressed(run_dir)
    run = load_run(run_dir)
    return run.model, run.model, run.info


def _detector_block(block: dict[str, Any]) -> str:

    return detector_settings_block(DetectorSettings.from_dict(block["settings"]),
                                   f"{block['operating_point_text']}, event onsets matched "
                                   f"within {block['collar_seconds']:g} s")


def export_model(run_dir: str | os.PathLike, cache: FeatureCache, out: str | os.PathLike, *,
                 window_seconds: float = 1.0, golden_vectors: int = 4,
                 representative_windows: int = 200, targets_dir: str | os.PathLike | None = None,
                 seed: int = 0, streaming_block_frames: int | None = None,
                 operating_point=None) -> dict[str, Any]:
    """Export a trained (optionally compressed) run -- a student or a teacher -- to firmware
    assets in ``out``.

    ``streaming_block_frames``: also write the streaming model for blocks of that many frames
    (``stream_*`` files, :mod:`keras_iusp.export.streaming_export`); ``None`` writes only the
    window model. ``operating_point`` (a :class:`keras_iusp.detect.OperatingPoint`, default
    :data:`keras_iusp.detect.DEFAULT_OPERATING_POINT`) is what the event detector is calibrated
    for on the validation split as a stream (seeded by ``seed``).

    Raises :class:`~keras_iusp.utils.errors.KerasIuspError` when the converted model uses an op that
    TFLite-Micro has no kernel for, before anything is written.
    """
    run_dir, out = Path(run_dir), Path(out)
    recovered = recover_dir(out)  # an earlier export killed while it swapped folders
    if recovered:
        print(f"export: {recovered}")
    qat_model, float_model, info = _load_models(run_dir)
    if streaming_block_frames is not None:
        check_block_frames(float_model, streaming_block_frames)
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
    # before any verification: an op TFLite-Micro has no kernel for is one clear error
    ops = firmware.model_ops(int8_bytes)
    op_resolver_h = firmware.op_resolver_file(ops)
    float_bytes = to_tflite(rebuild_for_window(float_model, frames))
    inp, outp = io_details(int8_bytes)

    golden_float = random_windows(x_val, frames, golden_vectors, seed + 1)
    golden_in = inp.quantize(golden_float)
    arena = measure_arena(int8_bytes, golden_in[0])
    tflm_out = run_tflm(int8_bytes, golden_in, arena)
    tflm_ms = tflm_ms_per_window(int8_bytes, golden_in, arena)
    litert_out = run_litert(int8_bytes, golden_in)
    max_diff = int(np.abs(tflm_out.astype(np.int32) - litert_out.astype(np.int32)).max())

    hop = max(1, frames // 2)
    whole_clip = float_model.predict(np.asarray(x_val, np.float32), batch_size=16, verbose=0)
    metrics = {
        "float_whole_clip_auprc": micro_auprc(y_val, 1 / (1 + np.exp(-whole_clip))),
        "float_windowed_auprc": micro_auprc(y_val, windowed_clip_scores(float_bytes, x_val, hop)),
        "int8_windowed_auprc": micro_auprc(y_val, windowed_clip_scores(int8_bytes, x_val, hop)),
    }

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
    report["frontend"] = frontend.frontend_report(config)
    report["runner"] = runner_report(report, float_model, frames, hop, tflm_ms)
    report["detector"] = calibrate_detector(int8_bytes, cache, seed=seed,
                                            operating_point=operating_point)
    report["targets"] = [p.check(report["flash_int8_bytes"], arena,
                                 report["runner"]["total_ram_bytes"])
                         for p in load_profiles(targets_dir)]
    stream_texts, stream_binaries = {}, {}
    if streaming_block_frames is not None:
        stream_texts, stream_binaries, report["streaming"] = streaming_assets(
            float_model, streaming_block_frames, cache, frames, seed=seed,
            operating_point=operating_point)

    tmp = staging_dir(out)
    try:
        (tmp / "model.tflite").write_bytes(int8_bytes)
        (tmp / "model_float.tflite").write_bytes(float_bytes)
        files = {**firmware.model_data_files(int8_bytes),
                 "model_settings.h": firmware.model_settings_file(
                     config=config, class_names=info["class_names"], frames=frames,
                     input_quant=inp, output_quant=outp, arena_bytes=arena,
                     mean=np.asarray(info["stats"]["mean"]), std=np.asarray(info["stats"]["std"]),
                     detector_block=_detector_block(report["detector"])),
                 **detector_files(),
                 "op_resolver.h": op_resolver_h,
                 **firmware.golden_vector_files(golden_in, tflm_out),
                 **frontend.frontend_files(config),
                 **frontend.golden_frontend_files(config, inp.scale, inp.zero_point),
                 "export_report.json": json.dumps(report, indent=1),
                 "README.md": format_report(report)}
        for name, data in stream_binaries.items():
            (tmp / name).write_bytes(data)
        for name, text in {**files, **stream_texts}.items():
            (tmp / name).write_text(text)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["out"] = str(out)
    return report


def runner_report(report: dict[str, Any], float_model, frames: int, hop: int,
                  tflm_ms: float) -> dict[str, Any]:
    """Cost of the streaming runner (``deploy/stream_runner``) on the device, per window and in
    RAM: the front end's state, the int8 frame ring of one window and the measured arena."""

    config = FeatureConfig.from_dict(report["feature_config"])
    fe = report["frontend"]
    ring = frames * config.n_mels
    macs = model_summary(rebuild_for_window(float_model, frames))["macs"]
    invokes_per_second = config.sample_rate / (config.hop_length * hop)
    return {
        "window_hop_frames": hop,
        "invokes_per_second": invokes_per_second,
        "model_macs_per_window": int(macs),
        "model_macs_per_second": int(round(macs * invokes_per_second)),
        "frontend_ops_per_second": fe["ops_per_frame"] * fe["frames_per_second"],
        "tflm_host_ms_per_window": tflm_ms,
        "frontend_state_bytes": fe["state_bytes"],
        "frame_ring_bytes": ring,
        "arena_bytes": report["arena_bytes"],
        "total_ram_bytes": fe["state_bytes"] + ring + report["arena_bytes"],
    }


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
    ]
    if "runner" in r:
        run, fe = r["runner"], r["frontend"]
        lines += [
            "On the device (`deploy/stream_runner`): the front end turns every "
            f"{r['feature_config']['hop_ms']:g} ms of 16-bit PCM into a log-mel frame, the model "
            f"runs every {run['window_hop_frames']} frames ({run['invokes_per_second']:.2f} "
            "windows/s) on the last window of int8 frames, clip score = running max.",
            "",
            "| RAM: front end | frame ring | arena | total | front-end tables (flash) | "
            "model MACs / window | front end ops / s | TFLM host ms / window |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {run['frontend_state_bytes']:,} | {run['frame_ring_bytes']:,} | "
            f"{run['arena_bytes']:,} | {run['total_ram_bytes']:,} | {fe['table_bytes']:,} | "
            f"{run['model_macs_per_window']:,} | {run['frontend_ops_per_second']:,} | "
            f"{run['tflm_host_ms_per_window']:.2f} |",
            "",
        ]
    if "detector" in r:
        d, v = r["detector"], r["detector"]["validation"]["overall"]
        settings = d["settings"]
        enabled = sum(on != 128 for on in settings["on_threshold"])
        lines += [
            f"Always-on detector (`detector.h/.cc`, settings in `model_settings.h`): calibrated "
            f"for {d['operating_point_text']} on the validation stream "
            f"({d['validation_stream_seconds'] / 60:.1f} min), smoothing over "
            f"{settings['smoothing_windows']} window(s), {enabled} of "
            f"{len(settings['on_threshold'])} classes enabled; on that stream: event F1 "
            f"{v['micro_f1']:.3f} (onsets within {d['collar_seconds']:g} s), "
            f"{v['false_alarms_per_hour']:.1f} false alarms per hour.",
            "",
        ]
    lines += [
        format_target_table(r["targets"]),
        "",
        "Files: `model.tflite` (int8), `model_float.tflite`, `model_data.h/.cc`, "
        "`model_settings.h`, `op_resolver.h`, `golden_vectors.h/.cc`, `frontend.h/.cc` (log-mel "
        "front end), `frontend_golden.h/.cc` (audio -> log-mel -> int8 test vectors), "
        "`detector.h/.cc` (always-on event detector), `export_report.json`.",
        "",
    ]
    return "\n".join(lines)


def add_detector(folder: str | os.PathLike, cache: FeatureCache, *, seed: int = 0,
                 operating_point=None) -> dict[str, Any]:
    """Calibrate the event detector of an export folder made before it existed (or again, for
    another operating point) on ``cache``'s validation split, from the folder's own
    ``model.tflite``: writes ``detector.h/.cc``, the settings block of ``model_settings.h``, the
    report's ``detector`` block and ``README.md``. Nothing about the model changes. Files are
    written under temporary names and renamed into place."""
    import re


    folder = Path(folder)
    report_path, settings_path = folder / "export_report.json", folder / "model_settings.h"
    if not report_path.is_file() or not settings_path.is_file():
        raise KerasIuspError(f"{folder}: no export_report.json/model_settings.h (not a keras-iusp "
                             "export folder)")
    report = json.loads(report_path.read_text())
    if list(report.get("class_names", [])) != list(cache.class_names):
        raise KerasIuspError(f"{report_path}: classes {report.get('class_names')} differ from the "
                             f"data's {list(cache.class_names)}")
    report["detector"] = calibrate_detector((folder / "model.tflite").read_bytes(), cache,
                                            seed=seed, operating_point=operating_point)
    header = settings_path.read_text()
    header = re.sub(r"// Always-on event detector.*?kDetectorHoldOffWindows[^\n]*\n\n?", "",
                    header, flags=re.S)
    end = "}  // namespace keras_iusp"
    if end not in header:
        raise KerasIuspError(f"{settings_path}: no '{end}' line to insert the detector before")
    header = header.replace(end, _detector_block(report["detector"]) + "\n" + end, 1)
    files = {**detector_files(), "model_settings.h": header,
             "export_report.json": json.dumps(report, indent=1), "README.md": format_report(report)}
    for name, text in files.items():
        atomic_write_text(folder / name, text)
    return report
