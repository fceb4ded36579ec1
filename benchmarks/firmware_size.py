"""What the whole firmware costs on a Cortex-M4: flash and RAM by section and by part.

Builds the bare-metal on-device loop (``deploy/stream_runner/device_main.cc``: audio hop ->
generated log-mel front end -> int8 frame ring -> TFLite-Micro with Arm's CMSIS-NN kernels ->
running max) for an export folder with Debian's ``arm-none-eabi-g++`` (-Os, gc-sections,
newlib-nano), as an embedded team would, and splits the linked image by input section and
object file into parts: model data, front end, event detector, runner + application, TFLM
runtime, TFLM kernels (CMSIS-NN included), C/C++ libraries, and static RAM buffers (arena,
front-end state, frame ring, detector state). Needs ``gcc-arm-none-eabi
libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib`` and the Cortex-M4 TFLM library in
``../shared/tflm-host``.

Usage::

    python benchmarks/firmware_size.py [--assets firmware_assets/reference]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from keras_iusp.export.cortex_m4 import (  # noqa: E402  (the one place that builds for M4)
    BOARD_LINK_FLAGS,
    CXX_FLAGS,
    M4Builder,
    missing_tools,
    object_stem,
)
from keras_iusp.export.locations import TFLM_M4_LIBRARY as LIBRARY  # noqa: E402

OWN = {"model_data.o": "model", "frontend.o": "front end", "detector.o": "event detector",
       "stream_runner.o": "runner + app", "device_main.o": "runner + app"}


def _run(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)}\n{result.stderr[-3000:]}")
    return result.stdout


def kernel_members(library: Path) -> set[str]:
    """Archive members that are kernels: TFLM lists its kernels (from activations.o on), the
    signal library and CMSIS-NN after its runtime, so archive order separates them."""
    members = _run(["arm-none-eabi-ar", "t", str(library)]).split()
    first_kernel = members.index("activations.o")
    runtime = set(members[:first_kernel])
    return {m for m in members[first_kernel:] if m not in runtime}


def parse_map(text: str) -> list[tuple[str, int, str]]:
    """(input section, size, object file) of every section kept in the image."""
    text = text[text.index("Linker script and memory map"):]
    rows, pending = [], None
    full = re.compile(r"^ (\.\S+|COMMON)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
    cont = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
    for line in text.splitlines():
        match = full.match(line)
        if match:
            rows.append((match.group(1), int(match.group(3), 16), match.group(4)))
            pending = None
            continue
        if pending is not None:
            match = cont.match(line)
            if match:
                rows.append((pending, int(match.group(2), 16), match.group(3)))
            pending = None
            continue
        name = re.match(r"^ (\.\S+|COMMON)$", line)
        pending = name.group(1) if name else None
    return [r for r in rows if r[1] > 0]


def section_kind(section: str) -> str | None:
    for prefix, kind in ((".text", "text"), (".rodata", "rodata"), (".data", "data"),
                         (".bss", "bss"), ("COMMON", "bss"), (".init", "text"),
                         (".fini", "text"), (".ARM.exidx", "rodata"), (".ARM.extab", "rodata"),
                         (".init_array", "data"), (".fini_array", "data")):
        if section.startswith(prefix):
            return kind
    return None


def classify(obj: str, kind: str, kernels: set[str]) -> str:
    name = Path(obj.split("(")[-1].rstrip(")")).name if "(" in obj else object_stem(obj)
    if "libtensorflow-microlite.a" in obj:
        return "TFLM kernels (CMSIS-NN)" if name in kernels else "TFLM runtime"
    if name in OWN:
        return "RAM buffers" if kind == "bss" else OWN[name]
    return "C/C++ libraries + startup"


def measure(assets: Path, builder: M4Builder | None = None) -> dict:
    """Whole-image size of ``device_main.cc`` for the export folder ``assets``, by part."""
    assets = Path(assets).resolve()
    lacking = missing_tools()
    if lacking:
        raise SystemExit("missing: " + ", ".join(lacking) + " (apt-get install gcc-arm-none-eabi "
                         "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        builder = builder or M4Builder(tmp)
        map_file = tmp / "firmware.map"
        elf = builder.board_image(assets, map_file)
        size_line = _run(["arm-none-eabi-size", str(elf)]).splitlines()[1].split()
        text, data, bss = (int(v) for v in size_line[:3])
        rows = parse_map(map_file.read_text())
        symbols = _run(["arm-none-eabi-nm", "-C", "-S", str(elf)])
    kernels = kernel_members(LIBRARY)
    parts: dict[str, dict[str, int]] = {}
    for section, size, obj in rows:
        kind = section_kind(section)
        if kind is None:
            continue
        part = parts.setdefault(classify(obj, kind, kernels),
                                {"text": 0, "rodata": 0, "data": 0, "bss": 0})
        part[kind] += size
    for part in parts.values():
        part["flash"] = part["text"] + part["rodata"] + part["data"]
        part["ram"] = part["data"] + part["bss"]

    def symbol_size(pattern: str) -> int:
        for line in symbols.splitlines():
            fields = line.split(maxsplit=3)
            if len(fields) == 4 and re.fullmatch(pattern, fields[3]):
                return int(fields[1], 16)
        return 0

    report = json.loads((assets / "export_report.json").read_text())
    result = {
        "assets": str(assets.relative_to(ROOT) if assets.is_relative_to(ROOT) else assets),
        "model": report["model"],
        "window_frames": report["window_frames"],
        "toolchain": _run(["arm-none-eabi-g++", "--version"]).splitlines()[0],
        "flags": " ".join(CXX_FLAGS) + " | link: " + " ".join(BOARD_LINK_FLAGS),
        "library": str(LIBRARY.relative_to(ROOT.parent) if LIBRARY.is_relative_to(ROOT.parent)
                       else LIBRARY),
        "size": {"text": text, "data": data, "bss": bss, "flash": text + data,
                 "ram_static": data + bss},
        "parts": dict(sorted(parts.items())),
        "ram_buffers": {
            "tensor_arena_with_1k_headroom": symbol_size(r"\(anonymous namespace\)::g_arena"),
            "stream_runner_object": symbol_size(r"main::runner"),
            "frontend_state_bytes": report["runner"]["frontend_state_bytes"],
            "frame_ring_bytes": report["runner"]["frame_ring_bytes"],
        },
        "not_counted": "stack and heap (TFLM needs no heap; size the stack for the kernels, "
                       "a few KB) and the application",
    }
    totals = {k: sum(p[k] for p in parts.values()) for k in ("flash", "ram")}
    result["parts_total"] = totals
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default=str(ROOT / "firmware_assets" / "reference"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "firmware_size.json"))
    args = parser.parse_args()
    result = measure(Path(args.assets))
    text, data, bss = (result["size"][k] for k in ("text", "data", "bss"))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['model']}: flash {text + data:,} B, static RAM {data + bss:,} B")
    print(f"  {'part':28s} {'flash':>8s} {'RAM':>8s}")
    for name, part in result["parts"].items():
        print(f"  {name:28s} {part['flash']:8,} {part['ram']:8,}")


if __name__ == "__main__":
    main()
