"""Build and run the generated front end and the streaming runner on the host with g++.

Used by the tests and benchmarks to check the C++ that ships against the Python pipeline, the
way an embedded team compiles it: the front end alone into a shared library (called through
ctypes), and the runner against the TFLite-Micro host build (:mod:`keras_iusp.export.locations`).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from keras_iusp.export.locations import RUNNER_DIR, TFLM_DIR
from keras_iusp.utils.errors import KerasIuspError

_WRAPPER = """
#include "frontend.h"
extern "C" {
int kiusp_state_bytes() { return (int)sizeof(keras_iusp::FrontendState); }
int kiusp_num_mels() { return keras_iusp::kNumMelBins; }
int kiusp_hop() { return keras_iusp::kHopSamples; }
// Streams pcm (a multiple of kHopSamples) from a fresh state; writes every completed frame.
int kiusp_frames(const int16_t* pcm, int samples, float* log_mel, int8_t* rows, int max_frames) {
  static keras_iusp::FrontendState state;
  keras_iusp::FrontendInit(&state);
  int frames = 0;
  for (int s = 0; s + keras_iusp::kHopSamples <= samples && frames < max_frames;
       s += keras_iusp::kHopSamples) {
    float* out = log_mel + frames * keras_iusp::kNumMelBins;
    if (keras_iusp::FrontendPush(&state, pcm + s, out)) {
      keras_iusp::QuantizeFrame(out, rows + frames * keras_iusp::kNumMelBins);
      ++frames;
    }
  }
  return frames;
}
}
"""


def _gxx() -> str:
    gxx = shutil.which("g++")
    if gxx is None:
        raise KerasIuspError("g++ not found: install a C++ compiler to build the front end")
    return gxx


def _compile(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise KerasIuspError("g++ failed:\n" + " ".join(args) + "\n" + result.stderr[-4000:])


class FrontendLib:
    """The generated ``frontend.cc`` of an asset folder, compiled into a shared library."""

    def __init__(self, assets: str | os.PathLike, build_dir: str | os.PathLike,
                 extra_flags: tuple[str, ...] = ()) -> None:
        assets, build_dir = Path(assets), Path(build_dir)
        build_dir.mkdir(parents=True, exist_ok=True)
        wrapper = build_dir / "frontend_wrapper.cc"
        wrapper.write_text(_WRAPPER)
        self.path = build_dir / "libfrontend.so"
        _compile([_gxx(), "-std=c++11", "-O2", "-Wall", "-Werror", "-fno-exceptions",
                  "-shared", "-fPIC", *extra_flags, f"-I{assets}", str(assets / "frontend.cc"),
                  str(wrapper), "-o", str(self.path)])
        self._lib = ctypes.CDLL(str(self.path))
        self._lib.kiusp_frames.restype = ctypes.c_int
        self.state_bytes = int(self._lib.kiusp_state_bytes())
        self.num_mels = int(self._lib.kiusp_num_mels())
        self.hop = int(self._lib.kiusp_hop())

    def frames(self, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log-mel ``[F, n_mels]`` float32, int8 rows ``[F, n_mels]``) of int16 ``pcm``."""
        pcm = np.ascontiguousarray(pcm, np.int16)
        max_frames = len(pcm) // self.hop + 1
        mel = np.zeros((max_frames, self.num_mels), np.float32)
        rows = np.zeros((max_frames, self.num_mels), np.int8)
        count = self._lib.kiusp_frames(
            pcm.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(len(pcm)),
            mel.ctypes.data_as(ctypes.c_void_p), rows.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int(max_frames))
        return mel[:count], rows[:count]


def build_frontend_check(assets: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``deploy/stream_runner/frontend_check.cc`` with an asset folder's golden vectors."""
    assets, out = Path(assets), Path(out)
    _compile([_gxx(), "-std=c++11", "-O2", "-Wall", "-Werror", "-fno-exceptions", f"-I{assets}",
              str(RUNNER_DIR / "frontend_check.cc"), str(assets / "frontend.cc"),
              str(assets / "frontend_golden.cc"), "-o", str(out)])
    return out


def build_stream_runner(assets: str | os.PathLike, out: str | os.PathLike,
                        tflm: str | os.PathLike = TFLM_DIR) -> Path:
    """The streaming runner host program, linked with TFLite-Micro's host static library."""
    assets, out, tflm = Path(assets), Path(out), Path(tflm)
    library = tflm / "lib" / "libtensorflow-microlite.a"
    if not library.is_file():
        raise KerasIuspError(f"{library}: TFLite-Micro host build not found")
    _compile([_gxx(), "-std=c++17", "-O2", "-DTF_LITE_STATIC_MEMORY", f"-I{tflm / 'include'}",
              f"-I{assets}", f"-I{RUNNER_DIR}", str(RUNNER_DIR / "main.cc"),
              str(RUNNER_DIR / "stream_runner.cc"), str(assets / "frontend.cc"),
              str(assets / "detector.cc"), str(assets / "model_data.cc"), str(library), "-o",
              str(out)])
    return out


def build_detector_check(assets: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``deploy/stream_runner/detector_check.cc`` with an asset folder's ``detector.cc`` and
    calibrated ``model_settings.h`` (C++11, as strict as the front end's build)."""
    assets, out = Path(assets), Path(out)
    _compile([_gxx(), "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-exceptions",
              f"-I{assets}", str(RUNNER_DIR / "detector_check.cc"), str(assets / "detector.cc"),
              "-o", str(out)])
    return out


def run_detector_check(binary: str | os.PathLike, logits: np.ndarray, work: str | os.PathLike,
                       settings=None) -> list[tuple[int, int, int]]:
    """Events ``(class, onset window, offset window)`` the C++ detector reports for int8 window
    outputs ``[W, C]``, in its order; ``settings`` (a :class:`keras_iusp.detect.DetectorSettings`)
    replaces the calibrated ones of ``model_settings.h``."""
    work = Path(work)
    raw = work / "window_logits.bin"
    raw.write_bytes(np.ascontiguousarray(logits, np.int8).tobytes())
    args = [str(binary), str(raw)]
    if settings is not None:
        text = " ".join(str(int(v)) for v in (settings.smoothing_windows, *settings.on_threshold,
                                               *settings.off_threshold,
                                               *settings.hold_off_windows))
        (work / "detector_settings.txt").write_text(text + "\n")
        args.append(str(work / "detector_settings.txt"))
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise KerasIuspError(f"{binary} failed ({result.returncode}): {result.stderr[-2000:]}")
    events = [tuple(int(v) for v in line.split()[1:4]) for line in result.stdout.splitlines()
              if line.startswith("event ")]
    windows = [line for line in result.stdout.splitlines() if line.startswith("windows ")]
    if windows != [f"windows {len(logits)}"]:
        raise KerasIuspError(f"{binary}: read {windows} of {len(logits)} windows")
    return events


def run_stream_runner(binary: str | os.PathLike, pcm_clips: np.ndarray,
                      work: str | os.PathLike) -> dict:
    """Stream ``[N, samples]`` int16 clips through the runner; parse its per-clip output, every
    window's int8 outputs (``window_logits``, all clips in order) and the detector's events
    (``events``: ``(clip, class, onset window, offset window)``, windows counted per clip)."""
    clips = np.ascontiguousarray(pcm_clips, np.int16)
    raw = Path(work) / "clips.pcm"
    raw.write_bytes(clips.astype("<i2").tobytes())
    result = subprocess.run([str(binary), str(raw), str(clips.shape[1])], capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise KerasIuspError(f"{binary} failed ({result.returncode}): {result.stderr[-2000:]}")
    return parse_runner_output(result.stdout)


def parse_runner_output(stdout: str) -> dict:
    """The per-clip lines of ``deploy/stream_runner/main.cc`` (host or device build): max int8
    logits ``[N, classes]``, probabilities, windows per clip, the RAM line and the time line."""
    logits, probs, windows, ram, us = [], [], [], {}, None
    window_logits, events = [], []
    for line in stdout.splitlines():
        words = line.split()
        if words[:1] == ["window"]:
            window_logits.append([int(v) for v in words[words.index("logits") + 1:]])
        elif words[:1] == ["event"]:
            events.append(tuple(int(v) for v in words[1:5]))
        elif words[:1] == ["ram"]:
            ram = {words[i]: int(words[i + 1]) for i in range(1, len(words), 2)}
        elif words[:1] == ["clip"]:
            a, b = words.index("logits"), words.index("probs")
            windows.append(int(words[words.index("windows") + 1]))
            logits.append([int(v) for v in words[a + 1:b]])
            probs.append([float(v) for v in words[b + 1:]])
        elif words[:1] == ["us_per_window"]:
            us = float(words[1])
    return {"max_logits": np.asarray(logits, np.int32), "probs": np.asarray(probs, np.float32),
            "windows": windows, "ram": ram, "us_per_window": us, "stdout": stdout,
            "window_logits": np.asarray(window_logits, np.int8).reshape(-1, len(logits[0]) if
                                                                        logits else 0),
            "events": events}
