"""Build the project's C++ for a Cortex-M4F and run it on QEMU's ``mps2-an386`` machine.

The one place that knows how an image for the emulated target is compiled, linked and run;
``keras-iusp export`` (its instruction budget, :mod:`keras_iusp.export.target_budget`), the tests
(``tests/test_cortex_m4.py``) and the benchmarks (``benchmarks/target_budget.py``,
``benchmarks/firmware_size.py``) use it. Needs the repository's ``deploy/`` sources and a
TFLite-Micro build (both found by :mod:`keras_iusp.export.locations`). Images are built with
Debian's ``arm-none-eabi-g++`` against TFLite-Micro's Cortex-M4 CMSIS-NN library and the
project's bare-metal start-up in ``deploy/targets/mps2_an386``
(vector table at 0, FPU on before any float instruction, ``.data``/``.bss`` linked in RAM,
``--specs=rdimon.specs`` for ``printf`` and file reads over semihosting).

Programs (:data:`PROGRAMS`): ``golden`` (``deploy/tflm_app/main.cc``: the golden vectors),
``frontend_check`` (``deploy/stream_runner/frontend_check.cc``), ``stream_runner``
(``deploy/stream_runner/main.cc``: PCM file in, clip scores out) and ``budget``
(``deploy/targets/mps2_an386/budget_main.cc``: SysTick counts under ``-icount shift=0``), and
``device`` (``deploy/stream_runner/device_main.cc``, the on-device loop linked for a board with
newlib-nano: what ``benchmarks/firmware_size.py`` sizes; it does not run on the emulator).

A :class:`M4Builder` compiles each object once per build folder: the start-up object is shared by
every export, the assets' objects by every program of one export.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_iusp.export.host_build import parse_runner_output
from keras_iusp.export.locations import (
    HARNESS_DIR,
    RUNNER_DIR,
    TARGET_DIR,
    TFLM_INCLUDE,
    TFLM_M4_LIBRARY,
    missing,
)

CPU_FLAGS = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"]
#: What TFLite-Micro's Cortex-M4 library was built with, plus size-oriented code generation.
CXX_FLAGS = [*CPU_FLAGS, "-Os", "-std=c++17", "-DTF_LITE_STATIC_MEMORY", "-DCMSIS_NN",
             "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-ffunction-sections",
             "-fdata-sections"]
C_FLAGS = [*CPU_FLAGS, "-Os", "-std=c11", "-ffunction-sections", "-fdata-sections", "-Wall",
           "-Werror"]
#: Link for the emulator: the project's memory map and semihosting C library.
QEMU_LINK_FLAGS = [*CPU_FLAGS, "-T", str(TARGET_DIR / "mps2_an386.ld"), "--specs=rdimon.specs",
                   "-Wl,--gc-sections"]
#: Link for a board (what ``benchmarks/firmware_size.py`` measures): newlib-nano, no I/O.
BOARD_LINK_FLAGS = [*CPU_FLAGS, "-Wl,--gc-sections", "-specs=nano.specs", "-specs=nosys.specs"]

QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic"]
#: The tools an emulated run needs (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi
#: libstdc++-arm-none-eabi-newlib qemu-system-arm).
TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-gcc", "qemu-system-arm")


@dataclass(frozen=True)
class Program:
    """One image: its project sources, the asset sources it links and whether it needs TFLM."""

    sources: tuple[Path, ...]
    asset_sources: tuple[str, ...]
    tflm: bool = True


PROGRAMS = {
    "golden": Program((HARNESS_DIR / "main.cc",), ("model_data.cc", "golden_vectors.cc")),
    "frontend_check": Program((RUNNER_DIR / "frontend_check.cc",),
                              ("frontend.cc", "frontend_golden.cc"), tflm=False),
    "stream_runner": Program((RUNNER_DIR / "main.cc", RUNNER_DIR / "stream_runner.cc"),
                             ("frontend.cc", "model_data.cc", "detector.cc")),
    "device": Program((RUNNER_DIR / "device_main.cc", RUNNER_DIR / "stream_runner.cc"),
                      ("frontend.cc", "model_data.cc", "detector.cc")),
    "budget": Program((TARGET_DIR / "budget_main.cc", RUNNER_DIR / "stream_runner.cc"),
                      ("frontend.cc", "model_data.cc")),
}


#: Arena of the probe image that measures what an export's interpreter uses on the target.
PROBE_ARENA_BYTES = 1 << 21
#: Added to the arena measured on the target (the arena's tail alignment depends on its size).
ARENA_MARGIN = 256
#: What the host-measured arena gets when nothing is measured (``arena_size.h``).
HOST_ARENA_HEADROOM = 1024


class TargetError(RuntimeError):
    """A build or emulated run failed; the message holds the command and its output tail."""


def missing_tools() -> list[str]:
    """What an emulated build and run lacks here (empty when everything is installed)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None] + missing(m4=True)


def _run(args: list[str], timeout: float = 600) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise TargetError(" ".join(args) + "\n" + (result.stdout + result.stderr)[-4000:])
    return result.stdout


class M4Builder:
    """Compiles and links images for the emulated Cortex-M4F in ``build_dir``; each object is
    compiled once per (source, include path) and reused by every image that links it."""

    def __init__(self, build_dir: str | Path) -> None:
        self.build_dir = Path(build_dir)
        self.build_dir.mkdir(parents=True, exist_ok=True)
        self._objects: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Path] = {}
        self._arenas: dict[Path, int] = {}

    def object(self, source: Path, includes: tuple[Path, ...] = (),
               defines: tuple[str, ...] = ()) -> Path:
        """The object file of ``source`` compiled with ``includes`` on the include path and the
        preprocessor ``defines`` (``NAME=VALUE``)."""
        key = (str(source), tuple(str(i) for i in includes), defines)
        if key not in self._objects:
            tag = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
            obj = self.build_dir / f"{source.stem}-{tag}.o"
            tmp = obj.with_name(f".{obj.stem}.{os.getpid()}.o")  # renamed into place when whole
            if source.suffix == ".c":
                _run(["arm-none-eabi-gcc", *C_FLAGS, "-c", str(source), "-o", str(tmp)])
            else:
                _run(["arm-none-eabi-g++", *CXX_FLAGS, *(f"-D{d}" for d in defines),
                      *(f"-I{i}" for i in includes), "-c", str(source), "-o", str(tmp)])
            os.replace(tmp, obj)
            self._objects[key] = obj
        return self._objects[key]

    def objects(self, program: str, assets: Path) -> list[Path]:
        """Every object of ``program`` for the export folder ``assets`` (start-up excluded);
        a program with an interpreter gets the arena :meth:`arena_bytes` measured."""
        spec = PROGRAMS[program]
        includes = (TFLM_INCLUDE, assets, RUNNER_DIR, TARGET_DIR)
        defines = (f"KERAS_IUSP_ARENA_BYTES={self.arena_bytes(assets)}",) if spec.tflm else ()
        return [self.object(s, includes, defines) for s in spec.sources] + [
            self.object(assets / name, (assets,)) for name in spec.asset_sources]

    def arena_bytes(self, assets: str | Path) -> int:
        """The tensor arena the images of ``assets`` get on this target: what the interpreter
        uses on the emulated core (the golden program built with a
        :data:`PROBE_ARENA_BYTES` arena prints ``arena_used_bytes()``) plus
        :data:`ARENA_MARGIN`, and never less than the host default (the export's
        ``kTensorArenaSize`` + :data:`HOST_ARENA_HEADROOM`). Measured once per folder."""
        assets = Path(assets).resolve()
        if assets not in self._arenas:
            includes = (TFLM_INCLUDE, assets, RUNNER_DIR, TARGET_DIR)
            probe = [self.object(HARNESS_DIR / "main.cc", includes,
                                 (f"KERAS_IUSP_ARENA_BYTES={PROBE_ARENA_BYTES}",)),
                     *(self.object(assets / name, (assets,))
                       for name in PROGRAMS["golden"].asset_sources)]
            tag = hashlib.sha1(str(assets).encode()).hexdigest()[:10]
            elf = self.build_dir / f"arena_probe-{tag}.elf"
            _run(["arm-none-eabi-g++", *QEMU_LINK_FLAGS,
                  str(self.object(TARGET_DIR / "startup.c")), *map(str, probe),
                  str(TFLM_M4_LIBRARY), "-lm", "-o", str(elf)])
            _, out = run_qemu(elf, timeout=300)
            used = re.search(r"^arena used: (\d+) of", out, re.M)
            if used is None:
                raise TargetError(f"{elf}: no arena line in its output:\n{out[-2000:]}")
            host = int(re.search(r"kTensorArenaSize = (\d+)",
                                 (assets / "model_settings.h").read_text()).group(1))
            target = -(-(int(used.group(1)) + ARENA_MARGIN) // 16) * 16
            self._arenas[assets] = max(host + HOST_ARENA_HEADROOM, target)
        return self._arenas[assets]

    def image(self, program: str, assets: str | Path, name: str | None = None) -> Path:
        """Link ``program`` for ``assets`` into an ELF for QEMU's mps2-an386; returns its path."""
        assets = Path(assets).resolve()
        spec = PROGRAMS[program]
        tag = hashlib.sha1(str(assets).encode()).hexdigest()[:10]
        elf = self.build_dir / f"{name or program}-{tag}.elf"
        libs = [str(TFLM_M4_LIBRARY)] if spec.tflm else []
        _run(["arm-none-eabi-g++", *QEMU_LINK_FLAGS,
              str(self.object(TARGET_DIR / "startup.c")),
              *map(str, self.objects(program, assets)), *libs, "-lm", "-o", str(elf)])
        return elf


    def board_image(self, assets: str | Path, map_file: Path | None = None) -> Path:
        """The ``device`` program for ``assets`` linked as for a board (vendor start-up and
        memory map left to the board: newlib-nano, ``nosys``), the image whose size a board
        pays; ``map_file`` gets the linker map."""
        assets = Path(assets).resolve()
        tag = hashlib.sha1(str(assets).encode()).hexdigest()[:10]
        elf = self.build_dir / f"device-{tag}.elf"
        map_flag = [f"-Wl,-Map={map_file}"] if map_file is not None else []
        _run(["arm-none-eabi-g++", *BOARD_LINK_FLAGS, *map_flag,
              *map(str, self.objects("device", assets)), str(TFLM_M4_LIBRARY), "-lm", "-o",
              str(elf)])
        return elf


def image_size(elf: str | Path) -> dict[str, int]:
    """``arm-none-eabi-size`` of an image: text, data, bss, flash (text + data) and static RAM
    (data + bss), in bytes."""
    text, data, bss = (int(v) for v in _run(["arm-none-eabi-size", str(elf)])
                       .splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data,
            "ram_static": data + bss}


def object_stem(name: str) -> str:
    """``model_data.o`` for ``model_data-1a2b3c4d5e.o`` (the objects :class:`M4Builder` names)."""
    stem = Path(name).stem
    return (stem.rsplit("-", 1)[0] if "-" in stem else stem) + ".o"


def run_qemu(elf: str | Path, args: list[str] | None = None, *, icount: bool = False,
             timeout: float = 300) -> tuple[int, str]:
    """Run ``elf`` on the emulated Cortex-M4F; ``args`` become its ``argv[1:]`` (semihosting).
    Returns (exit status, stdout). ``icount`` runs with ``-icount shift=0`` (1 ns of virtual
    time per instruction) for instruction counting. A run past ``timeout`` raises TargetError."""
    semihosting = "enable=on,target=native"
    for arg in [Path(elf).stem, *(args or [])]:
        if "," in arg or " " in arg:
            raise ValueError(f"{arg!r}: semihosting arguments cannot hold commas or spaces")
        semihosting += f",arg={arg}"
    command = [*QEMU, *(["-icount", "shift=0"] if icount else []), "-semihosting-config",
               semihosting, "-kernel", str(elf)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"{' '.join(command)}: no exit after {timeout} s") from exc
    return result.returncode, result.stdout + result.stderr


def run_stream_runner(elf: str | Path, pcm_clips: np.ndarray, work: str | Path) -> dict:
    """Stream ``[N, samples]`` int16 clips through the runner on the emulated core (the PCM file
    is read over semihosting); the same parsed result as the host runner's
    (``keras_iusp.export.host_build.run_stream_runner``)."""

    clips = np.ascontiguousarray(pcm_clips, np.int16)
    raw = Path(work).resolve() / "clips_m4.pcm"
    raw.write_bytes(clips.astype("<i2").tobytes())
    status, out = run_qemu(elf, [str(raw), str(clips.shape[1])])
    if status != 0:
        raise TargetError(f"{elf} exited {status}: {out[-2000:]}")
    return parse_runner_output(out)


@dataclass
class Budget:
    """Instruction counts of the on-device loop of one export (``budget_main.cc``)."""

    instructions_per_tick: float
    invoke_instructions: int
    frontend_hop_instructions: int
    stream_instructions_per_second: int
    hops_measured: int
    windows_measured: int
    arena_used_bytes: int

    def to_dict(self) -> dict:
        return dict(vars(self))


def parse_budget(stdout: str, hops_per_second: float) -> Budget:
    """Turn ``budget_main.cc``'s tick counts into instructions (per invoke, per hop of front end,
    per second of audio at the runner's schedule)."""
    values: dict[str, list[int]] = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] in ("calibration", "frontend_hop", "stream", "invoke", "arena"):
            values[words[0]] = [int(w) for w in words[1:] if w.isdigit()]
    if "budget done" not in stdout or len(values) != 5:
        raise TargetError("budget program output incomplete:\n" + stdout[-2000:])
    loop_instructions, loop_ticks = values["calibration"]
    per_tick = loop_instructions / loop_ticks
    fe_ticks, fe_count = values["frontend_hop"]
    hops, windows, stream_ticks = values["stream"]
    invoke_ticks, invokes = values["invoke"]
    return Budget(
        instructions_per_tick=per_tick,
        invoke_instructions=int(round(invoke_ticks * per_tick / invokes)),
        frontend_hop_instructions=int(round(fe_ticks * per_tick / fe_count)),
        stream_instructions_per_second=int(round(stream_ticks * per_tick * hops_per_second
                                                 / hops)),
        hops_measured=hops, windows_measured=windows, arena_used_bytes=values["arena"][0])


def measure_budget(builder: M4Builder, assets: str | Path, timeout: float = 600) -> Budget:
    """Build ``budget_main.cc`` for ``assets`` and count its instructions on the emulated core."""
    import json

    assets = Path(assets)
    report = json.loads((assets / "export_report.json").read_text())
    config = report["feature_config"]
    hops_per_second = 1000.0 / config["hop_ms"]
    status, out = run_qemu(builder.image("budget", assets), icount=True, timeout=timeout)
    if status != 0:
        raise TargetError(f"budget program for {assets} exited {status}: {out[-2000:]}")
    return parse_budget(out, hops_per_second)
