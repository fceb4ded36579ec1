"""Build and run ``deploy/stream_runner/block_main.cc`` (the block streaming runner) on the host
(g++ against ``../shared/tflm-host``) and on the emulated Cortex-M4F (CMSIS-NN kernels, QEMU
``mps2-an386``, through :mod:`keras_iusp.export.cortex_m4`), and the Python reference it must equal.

An export folder made with ``keras-iusp export --streaming`` holds everything the program needs:
the window export's ``frontend.cc``/``model_settings.h`` and ``stream_settings.h`` /
``stream_model_data.cc``. Used by ``tests/test_stream_block_runner.py`` and
``benchmarks/streaming_sizing.py``.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np

import keras_iusp.export.cortex_m4 as m4
from keras_iusp.export.locations import (
    RUNNER_DIR,
    TARGET_DIR,
    TFLM_HOST_LIBRARY,
    TFLM_INCLUDE,
    TFLM_M4_LIBRARY,
)

SOURCES = (RUNNER_DIR / "block_main.cc", RUNNER_DIR / "block_runner.cc")
ASSET_SOURCES = ("frontend.cc", "detector.cc", "stream_model_data.cc")


def build_host(assets: str | Path, out: str | Path) -> Path:
    """The block runner for the host, linked with TFLite-Micro's reference kernels."""
    assets, out = Path(assets), Path(out)
    args = ["g++", "-std=c++17", "-O2", "-Wall", "-Werror", "-DTF_LITE_STATIC_MEMORY",
            f"-I{TFLM_INCLUDE}", f"-I{assets}", f"-I{RUNNER_DIR}", *map(str, SOURCES),
            *(str(assets / s) for s in ASSET_SOURCES),
            str(TFLM_HOST_LIBRARY), "-o", str(out)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise m4.TargetError(" ".join(args) + "\n" + result.stderr[-4000:])
    return out


def build_m4(builder: m4.M4Builder, assets: str | Path, count_instructions: bool = False) -> Path:
    """The block runner for the emulated Cortex-M4F (CMSIS-NN kernels, semihosting I/O);
    ``count_instructions`` adds the SysTick counts (run it with ``icount=True``)."""
    assets = Path(assets).resolve()
    includes = (TFLM_INCLUDE, assets, RUNNER_DIR, TARGET_DIR)
    if count_instructions:
        # a separate copy of the driver, so its object (with the define) gets its own cache key
        counting = builder.build_dir / "block_main_counting.cc"
        counting.write_text("#define KERAS_IUSP_COUNT_INSTRUCTIONS 1\n"
                            f'#include "{RUNNER_DIR / "block_main.cc"}"\n')
        sources = (counting, SOURCES[1])
    else:
        sources = SOURCES
    objects = [builder.object(s, includes) for s in sources]
    objects += [builder.object(assets / s, (assets,)) for s in ASSET_SOURCES]
    tag = hashlib.sha1(f"{assets}{count_instructions}".encode()).hexdigest()[:10]
    elf = builder.build_dir / f"block_runner-{tag}.elf"
    args = ["arm-none-eabi-g++", *m4.QEMU_LINK_FLAGS,
            str(builder.object(TARGET_DIR / "startup.c")), *map(str, objects),
            str(TFLM_M4_LIBRARY), "-lm", "-o", str(elf)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise m4.TargetError(" ".join(args) + "\n" + result.stderr[-4000:])
    return elf


def parse(stdout: str) -> dict:
    """The program's output: ``ram`` (name -> bytes), ``frames`` (per clip, int8 ``[O, C]``),
    ``windows`` (per clip, int8 window scores ``[W, C]``), ``onsets`` (per clip, ``(class,
    window)`` in order), ``events`` (per clip, ``(class, onset, offset)`` in the order they
    ended), ``max_logits`` ``[N, C]``, ``mean_logits`` ``[N, C]``, ``outputs`` per clip and,
    when counted, ``calibration`` and ``pushaudio`` tick counts."""
    ram: dict[str, int] = {}
    frames: dict[int, list[list[int]]] = {}
    windows: dict[int, list[list[int]]] = {}
    onsets: dict[int, list[tuple[int, int]]] = {}
    events: dict[int, list[tuple[int, int, int]]] = {}
    indices: dict[str, dict[int, list[int]]] = {"frame": {}, "window": {}}
    maxes, means, outputs, extra = [], [], [], {}
    for line in stdout.splitlines():
        words = line.split()
        if words[:1] == ["ram"]:
            ram = {k: int(v) for k, v in zip(words[1::2], words[2::2])}
        elif words[:1] == ["frame"]:
            frames.setdefault(int(words[1]), []).append([int(v) for v in words[4:]])
            indices["frame"].setdefault(int(words[1]), []).append(int(words[2]))
        elif words[:1] == ["window"]:
            windows.setdefault(int(words[1]), []).append([int(v) for v in words[4:]])
            indices["window"].setdefault(int(words[1]), []).append(int(words[2]))
        elif words[:1] == ["onset"]:
            onsets.setdefault(int(words[1]), []).append((int(words[2]), int(words[3])))
        elif words[:1] == ["event"]:
            events.setdefault(int(words[1]), []).append(tuple(int(v) for v in words[2:5]))
        elif words[:1] == ["clip"]:
            at_max, at_mean = words.index("max"), words.index("mean")
            outputs.append(int(words[words.index("outputs") + 1]))
            maxes.append([int(v) for v in words[at_max + 1:at_mean]])
            means.append([float(v) for v in words[at_mean + 1:]])
        elif words[:1] == ["calibration"]:
            extra["calibration"] = (int(words[2]), int(words[4]))
        elif words[:1] == ["pushaudio"]:
            extra["pushaudio"] = (int(words[2]), int(words[4]))
    if "done" not in stdout.split():
        raise m4.TargetError("block runner output incomplete:\n" + stdout[-2000:])
    clips = range(len(outputs))
    for per_clip, kind in ((frames, "frame"), (windows, "window")):
        for clip, rows in per_clip.items():  # the printed indices count 0, 1, 2, ... per clip
            if indices[kind].get(clip, []) != list(range(len(rows))):
                raise m4.TargetError(f"{kind} indices of clip {clip} do not count up from 0")
    return {"ram": ram, "frames": [np.asarray(frames.get(i, []), np.int8) for i in clips],
            "windows": [np.asarray(windows.get(i, []), np.int8).reshape(-1, len(maxes[i]))
                        for i in clips],
            "onsets": [onsets.get(i, []) for i in clips],
            "events": [events.get(i, []) for i in clips],
            "max_logits": np.asarray(maxes, np.int8), "mean_logits": np.asarray(means),
            "outputs": outputs, **extra}


def write_pcm(pcm_clips: np.ndarray, path: Path) -> tuple[Path, int]:
    clips = np.ascontiguousarray(pcm_clips, np.int16)
    path.write_bytes(clips.astype("<i2").tobytes())
    return path, int(clips.shape[1])


def write_settings(settings, path: Path) -> Path:
    """A :class:`keras_iusp.detect.DetectorSettings` in the runner's SETTINGS_FILE format."""
    values = [settings.smoothing_windows, *settings.on_threshold, *settings.off_threshold,
              *settings.hold_off_windows]
    path.write_text(" ".join(str(int(v)) for v in values) + "\n")
    return path


def run_host(binary: str | Path, pcm_clips: np.ndarray, work: str | Path,
             settings=None) -> dict:
    """``settings``: detector settings instead of the calibrated ones of stream_settings.h."""
    raw, samples = write_pcm(pcm_clips, Path(work) / "block_clips.pcm")
    extra = [] if settings is None else [str(write_settings(settings,
                                                            Path(work) / "detector.txt"))]
    result = subprocess.run([str(binary), str(raw), str(samples), *extra], capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise m4.TargetError(f"{binary} exited {result.returncode}: {result.stderr[-2000:]}")
    return parse(result.stdout)


def run_m4(elf: str | Path, pcm_clips: np.ndarray, work: str | Path, icount: bool = False,
           timeout: float = 600, settings=None) -> dict:
    work = Path(work).resolve()
    raw, samples = write_pcm(pcm_clips, work / "block_clips_m4.pcm")
    extra = [] if settings is None else [str(write_settings(settings, work / "detector_m4.txt"))]
    status, out = m4.run_qemu(elf, [str(raw), str(samples), *extra], icount=icount,
                              timeout=timeout)
    if status != 0:
        raise m4.TargetError(f"{elf} exited {status}: {out[-2000:]}")
    return parse(out)


def instructions_per_second(result: dict, hop_seconds: float) -> float:
    """Instructions per second of audio from a counted run (front end + model)."""
    loop_instructions, loop_ticks = result["calibration"]
    hops, ticks = result["pushaudio"]
    return ticks * loop_instructions / loop_ticks / (hops * hop_seconds)


def python_reference(streaming, model_bytes: bytes, arena: int, log_mel: np.ndarray,
                     carry_state: bool = True) -> np.ndarray:
    """int8 frame logits ``[O, C]`` the block runner must print for one clip of front-end
    frames ``log_mel`` (float, before quantisation): the Python TFLite-Micro stream
    (:func:`keras_iusp.export.streaming.run_stream` with ``tflm_invoke``) over the clip's whole
    blocks, cut where the runner stops (its last complete block)."""
    from keras_iusp.export.streaming import run_stream
    from keras_iusp.export.streaming_export import stream_io, tflm_invoke

    usable = len(log_mel) // streaming.block_frames * streaming.block_frames
    logits = run_stream(streaming, np.asarray(log_mel[:usable], np.float32),
                        tflm_invoke(streaming, model_bytes, arena), carry_state=carry_state)
    count = usable // streaming.frame_stride - streaming.warmup_frames
    return stream_io(model_bytes).output_quant["frame_logits"].quantize(logits[:count])
