"""Every export on an emulated Cortex-M4F: QEMU's ``mps2-an386`` running images built with
``arm-none-eabi-g++`` and TFLite-Micro's CMSIS-NN kernels (``keras_iusp/export/cortex_m4.py``).

For the committed reference assets and fresh exports of both student families at 0.5 and 1 s
windows: the golden vectors bit-exact, the front-end golden check passing, and the streaming
runner fed 16-bit PCM files over semihosting giving the host runner's clip scores (and so
``keras-iusp evaluate``'s within one int8 step); on a continuous stream, the generated detector's
events on the core equal the host runner's and ``keras_iusp.detect``'s. Images get the arena
measured on the core (``M4Builder.arena_bytes``). Fails, not skips, under ``CI=true`` when the
toolchain or the emulator is missing (``tests/toolchain.py``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from toolchain import CORTEX_M4, require

from keras_iusp.evaluate import clip_probabilities
from keras_iusp.export.cortex_m4 import M4Builder, measure_budget, run_qemu, run_stream_runner
from keras_iusp.export.verify import io_details

REFERENCE = Path(__file__).resolve().parents[1] / "firmware_assets" / "reference"
#: (student, window seconds) of the fresh exports; cnn_lstm_xs at 0.5 s is the session's
#: trained and compressed ``lstm_export``, the others are one-epoch baseline runs.
FRESH = [("cnn_lstm_xs", 0.5), ("cnn_lstm_xs", 1.0), ("dscnn_xs", 0.5), ("dscnn_xs", 1.0)]
ASSETS = ["reference", *(f"{name}@{window:g}s" for name, window in FRESH)]
#: Clips each streaming-runner comparison plays on the emulated core (several, so the runner's
#: reset between clips is exercised; the host-only tests play every clip).
STREAM_CLIPS = 4


@pytest.fixture(scope="session")
def m4(tmp_path_factory) -> M4Builder:
    """One build folder for the session: the start-up object is compiled once."""
    require(*CORTEX_M4)
    return M4Builder(tmp_path_factory.mktemp("cortex_m4"))


@pytest.fixture(scope="session")
def fresh_runs(tiny_data, tmp_path_factory):
    """One-epoch baseline runs of the smallest student of each family (no teacher needed)."""
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    _, _, cache = tiny_data
    root = tmp_path_factory.mktemp("m4_runs")
    return {name: distill(cache, None, name, root / name,
                          DistillConfig(method="baseline", epochs=1, batch_size=8),
                          verbose=0).path
            for name in ("cnn_lstm_xs", "dscnn_xs")}


@pytest.fixture(scope="session")
def export_folder(request, tiny_data, tmp_path_factory):
    """``folder(key)``: the asset folder of :data:`ASSETS` entry ``key``, exported once."""
    from keras_iusp.export import export_model

    folders: dict[str, Path] = {"reference": REFERENCE}

    def folder(key: str) -> Path:
        if key not in folders:
            name, window = key.split("@")
            seconds = float(window.rstrip("s"))
            if (name, seconds) == ("cnn_lstm_xs", 0.5):
                folders[key] = request.getfixturevalue("lstm_export")[0]
            else:
                run = request.getfixturevalue("fresh_runs")[name]
                out = tmp_path_factory.mktemp("m4_exports") / key.replace("@", "_")
                export_model(run, tiny_data[2], out, window_seconds=seconds, golden_vectors=3,
                             representative_windows=20)
                folders[key] = out
        return folders[key]

    return folder


@pytest.fixture(scope="session")
def clips_pcm(tiny_data):
    """(int16 PCM ``[N, samples]`` of the tiny data set in cache order, its feature cache)."""
    _, data_dir, cache = tiny_data
    by_name = {p.name: p for p in Path(data_dir).rglob("*.wav")}
    pcm = np.stack([soundfile.read(by_name[Path(f).name], dtype="int16")[0]
                    for f in cache.filenames])
    return pcm, cache


@pytest.mark.parametrize("key", ASSETS)
def test_golden_vectors_bit_exact_under_cmsis_nn(key, m4, export_folder):
    folder = export_folder(key)
    status, out = run_qemu(m4.image("golden", folder), timeout=120)
    vectors = int(re.search(r"kNumGoldenVectors = (\d+)",
                            (folder / "golden_vectors.h").read_text()).group(1))
    classes = len(json.loads((folder / "export_report.json").read_text())["class_names"])
    assert re.search(rf"^{vectors * classes} passed, 0 failed$", out, re.M), out[-1500:]
    assert status == 0, out[-1500:]


@pytest.mark.parametrize("key", ASSETS)
def test_frontend_golden_check_on_the_core(key, m4, export_folder):
    status, out = run_qemu(m4.image("frontend_check", export_folder(key)), timeout=120)
    assert status == 0, out
    frames = re.search(r"frames (\d+) of (\d+)", out)
    assert frames and frames.group(1) == frames.group(2), out


@pytest.mark.parametrize("key", ASSETS)
def test_stream_runner_on_the_core_equals_the_host_runner(key, m4, export_folder, clips_pcm,
                                                          tmp_path):
    require("g++", "tflm-host")
    from keras_iusp.export.host_build import build_stream_runner
    from keras_iusp.export.host_build import run_stream_runner as run_on_host

    folder = export_folder(key)
    report = json.loads((folder / "export_report.json").read_text())
    pcm, cache = clips_pcm
    if report["feature_config"] != {**cache.config.to_dict(),
                                    "clip_seconds": report["feature_config"]["clip_seconds"]}:
        pytest.fail(f"{folder}: front end differs from the test clips' features")
    pcm = pcm[:STREAM_CLIPS]
    device = run_stream_runner(m4.image("stream_runner", folder), pcm, tmp_path)
    host = run_on_host(build_stream_runner(folder, tmp_path / "host_runner"), pcm, tmp_path)
    assert device["windows"] == host["windows"] and len(device["windows"]) == len(pcm)
    np.testing.assert_array_equal(device["max_logits"], host["max_logits"])
    # the same buffers; TFLM's own bookkeeping in the arena is smaller with 32-bit pointers
    same = ("frontend_state", "frame_ring", "arena")
    assert {k: device["ram"][k] for k in same} == {k: host["ram"][k] for k in same}
    assert device["ram"]["arena_used"] <= device["ram"]["arena"]
    # ... and so `keras-iusp evaluate` on the .tflite within one int8 step
    model = folder / "model.tflite"
    _, out = io_details(model.read_bytes())
    features = np.asarray(cache.features)[:STREAM_CLIPS]
    p = np.clip(clip_probabilities(model, features).astype(np.float64), 1e-7, 1 - 1e-7)
    expected = np.round(np.log(p / (1 - p)) / out.scale + out.zero_point)
    assert np.abs(device["max_logits"] - expected).max() <= 1


def test_a_clip_shorter_than_one_window_is_refused_on_the_core(m4, export_folder, clips_pcm,
                                                                tmp_path):
    """Half a window of audio: the device runner and `evaluate` both refuse with a message."""
    from keras_iusp.utils.errors import KerasIuspError

    folder = export_folder("cnn_lstm_xs@1s")
    pcm, cache = clips_pcm
    short = pcm[:1, : pcm.shape[1] // 2]
    short = short[:, : short.shape[1] // 160 * 160]
    raw = tmp_path / "short.pcm"
    raw.write_bytes(short.astype("<i2").tobytes())
    status, out = run_qemu(m4.image("stream_runner", folder), [str(raw), str(short.shape[1])])
    assert status == 2 and "shorter than the model's window" in out, out
    with pytest.raises(KerasIuspError, match="shorter than the model's window"):
        clip_probabilities(folder / "model.tflite", np.asarray(cache.features)[:1, :40])


def test_instruction_counter_is_calibrated_and_counts_a_model(m4, export_folder):
    """SysTick under -icount shift=0 ticks once per 40 instructions (measured on a loop of
    known length), and a window of the reference model costs millions of instructions."""
    budget = measure_budget(m4, export_folder("reference"), timeout=300)
    assert budget.instructions_per_tick == pytest.approx(40.0, abs=1e-9)
    assert budget.windows_measured == 4
    assert 1e6 < budget.invoke_instructions < 1e8
    assert 1e4 < budget.frontend_hop_instructions < budget.invoke_instructions
    # per second: 100 hops of front end + the invokes at the runner's schedule
    report = json.loads((REFERENCE / "export_report.json").read_text())
    per_second = (100 * budget.frontend_hop_instructions
                  + report["runner"]["invokes_per_second"] * budget.invoke_instructions)
    assert budget.stream_instructions_per_second == pytest.approx(per_second, rel=0.05)


def _with_detector_settings(folder: Path, out: Path, settings) -> Path:
    """A copy of the export ``folder`` whose ``model_settings.h`` carries ``settings``."""
    import shutil

    from keras_iusp.export.detector_files import detector_settings_block

    shutil.copytree(folder, out)
    header = (out / "model_settings.h").read_text()
    start = header.index("// Always-on event detector")
    end = header.index("\n", header.index("kDetectorHoldOffWindows")) + 1
    (out / "model_settings.h").write_text(
        header[:start] + detector_settings_block(settings, "changed by a test") + header[end:])
    return out


def test_detector_events_on_the_core_equal_the_host_runners(m4, export_folder, clips_pcm,
                                                             tmp_path):
    """The clips of a fresh export's data end to end as one stream: the emulated core's runner
    (CMSIS-NN kernels, arm-none-eabi-g++) prints the events of the generated detector, and they
    are the host runner's events and keras_iusp.detect's decisions on the same window outputs.
    A device build whose detector settings differ (a hold-off, a threshold) gives other events."""
    require("g++", "tflm-host")
    import dataclasses

    from keras_iusp.detect import DetectorSettings, detect_events
    from keras_iusp.export.host_build import build_stream_runner
    from keras_iusp.export.host_build import run_stream_runner as run_on_host

    folder = export_folder("cnn_lstm_xs@0.5s")
    report = json.loads((folder / "export_report.json").read_text())
    settings = DetectorSettings.from_dict(report["detector"]["settings"])
    pcm, _ = clips_pcm
    stream = pcm.reshape(1, -1)
    host = run_on_host(build_stream_runner(folder, tmp_path / "host_runner"), stream, tmp_path)
    events = host["events"]
    assert events, "the calibrated detector fires nowhere on the stream: nothing to compare"
    device = run_stream_runner(m4.image("stream_runner", folder), stream, tmp_path)
    np.testing.assert_array_equal(device["window_logits"], host["window_logits"])
    python = [(0, e.class_index, e.onset_window, e.offset_window)
              for e in detect_events(device["window_logits"], settings)]
    assert device["events"] == events == python
    # the comparison sees a device build whose detector differs from the host's: a class with
    # two events loses the second to a longer hold-off, and all of them to a raised threshold
    first, count = Counter(e[1] for e in events).most_common(1)[0]
    assert count >= 2, events
    held = dataclasses.replace(settings, hold_off_windows=tuple(
        h + 1000 if c == first else h for c, h in enumerate(settings.hold_off_windows)))
    raised = dataclasses.replace(settings, on_threshold=tuple(
        128 if c == first else t for c, t in enumerate(settings.on_threshold)))
    for name, changed in (("hold_off", held), ("threshold", raised)):
        other = _with_detector_settings(folder, tmp_path / name, changed)
        assert run_stream_runner(m4.image("stream_runner", other), stream,
                                 tmp_path)["events"] != events, name


def test_export_writes_the_instruction_budget(m4, tiny_data, lstm_compressed, tmp_path,
                                              capsys):
    """``keras-iusp export`` (no --no-target-budget, toolchain installed) counts the export's
    instructions on the emulated core and writes them into the report and model_settings.h."""
    from keras_iusp.cli.main import main
    from keras_iusp.export.target_budget import BEGIN

    _, data, _ = tiny_data
    fw = tmp_path / "fw"
    assert main(["export", str(lstm_compressed), "--data", str(data), "--out", str(fw),
                 "--window-seconds", "0.5", "--golden", "1"]) == 0
    block = json.loads((fw / "export_report.json").read_text())["cortex_m4_budget"]
    assert "not_measured" not in block, block
    assert 1e5 < block["invoke_instructions"] < 1e8
    assert block["mhz_needed_at_1_instruction_per_cycle"] == pytest.approx(
        block["stream_instructions_per_second"] / 1e6)
    assert block["arena_bytes_on_target"] >= block["arena_used_bytes"]
    settings = (fw / "model_settings.h").read_text()
    assert settings.count(BEGIN) == 1
    assert f"{block['invoke_instructions']:,} instructions" in settings
    assert "MHz at 1 instruction/cycle" in capsys.readouterr().out
