"""The Cortex-M4F instruction budget of an export folder, written into that folder.

:func:`budget_block` counts, on QEMU's emulated ``mps2-an386`` (``-icount shift=0``, SysTick
around each call; :mod:`keras_iusp.export.cortex_m4`), the instructions of one ``Invoke()``, of
one hop of the front end and of one second of audio at the runner's schedule, and links the
board image (``deploy/stream_runner/device_main.cc``, -Os, newlib-nano) for its flash and static
RAM. These are instruction counts, not cycle counts: QEMU models no pipeline, wait states or
memory timing. :func:`write_into_assets` puts the block into ``export_report.json``
(``cortex_m4_budget``) and a comment block into ``model_settings.h``; :func:`write_target_budget`
does both, or records why it could not (toolchain missing). Used by ``keras-iusp export`` and
``benchmarks/target_budget.py``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from keras_iusp.export.cortex_m4 import (
    M4Builder,
    TargetError,
    image_size,
    measure_budget,
    missing_tools,
)
from keras_iusp.utils.atomic import atomic_write_text

BEGIN = "// --- Cortex-M4F instruction budget"
END = "// --- end of instruction budget"
#: Debian packages the budget needs (besides TFLite-Micro's Cortex-M4 library).
PACKAGES = ("gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib "
            "qemu-system-arm")


def budget_block(assets: str | Path, builder: M4Builder, timeout: float = 900) -> dict:
    """The ``cortex_m4_budget`` entry of one export folder (instructions and whole image)."""
    assets = Path(assets)
    report = json.loads((assets / "export_report.json").read_text())
    budget = measure_budget(builder, assets, timeout=timeout).to_dict()
    size = image_size(builder.board_image(assets))
    per_second = budget["stream_instructions_per_second"]
    return {
        "machine": "QEMU mps2-an386 (Cortex-M4F), -icount shift=0, SysTick around each call",
        "kernels": "TFLite-Micro with CMSIS-NN, arm-none-eabi-g++ -Os",
        "note": "instruction counts, not cycle counts: no pipeline, wait states or memory timing",
        **budget,
        "arena_bytes_on_target": builder.arena_bytes(assets),
        "invokes_per_second": report["runner"]["invokes_per_second"],
        "mhz_needed_at_1_instruction_per_cycle": per_second / 1e6,
        "firmware_flash_bytes": size["flash"],
        "firmware_static_ram_bytes": size["ram_static"],
    }


def settings_comment(block: dict) -> str:
    """The comment block written into ``model_settings.h`` (between BEGIN and END)."""
    return (f"{BEGIN} (keras-iusp export / benchmarks/target_budget.py, QEMU\n"
            "// mps2-an386, -icount shift=0, CMSIS-NN kernels): instructions, not cycles (no\n"
            "// pipeline or wait states modelled).\n"
            f"//   Invoke():                 {block['invoke_instructions']:,} instructions\n"
            f"//   front end, per hop:       {block['frontend_hop_instructions']:,} instructions\n"
            f"//   per second of audio:      {block['stream_instructions_per_second']:,} "
            f"instructions ({block['invokes_per_second']:.2f} invokes/s)\n"
            f"//   MHz at 1 instruction/cycle: "
            f"{block['mhz_needed_at_1_instruction_per_cycle']:.1f}\n"
            f"//   whole image (device_main.cc, -Os, newlib-nano): flash "
            f"{block['firmware_flash_bytes']:,} B, static RAM "
            f"{block['firmware_static_ram_bytes']:,} B\n{END}\n")


def write_into_assets(assets: str | Path, block: dict) -> None:
    """Add the budget to an export folder's report and ``model_settings.h`` (idempotent; each
    file is written under a temporary name and renamed). A block without
    ``invoke_instructions`` (nothing measured) goes into the report only."""
    assets = Path(assets)
    report_path = assets / "export_report.json"
    report = json.loads(report_path.read_text())
    report["cortex_m4_budget"] = block
    settings_path = assets / "model_settings.h"
    settings = settings_path.read_text()
    if BEGIN in settings:
        settings = settings[:settings.index(BEGIN)] + settings[settings.index(END) + len(END) + 2:]
    if "invoke_instructions" in block:
        anchor = "}  // namespace keras_iusp"
        settings = settings.replace(anchor, settings_comment(block) + "\n" + anchor, 1)
    atomic_write_text(report_path, json.dumps(report, indent=1))
    atomic_write_text(settings_path, settings)


def write_target_budget(assets: str | Path) -> dict:
    """Measure the budget of ``assets`` and write it in (:func:`write_into_assets`); without the
    Arm toolchain, the emulator or the Cortex-M4 library (or when the emulated run fails),
    write a ``cortex_m4_budget`` block whose ``not_measured`` says why instead. Returns the
    block written."""
    lacking = missing_tools()
    if lacking:
        block = {"not_measured": "missing: " + ", ".join(lacking),
                 "how": f"apt-get install {PACKAGES}, then benchmarks/target_budget.py --assets "
                        "FOLDER (or export again)"}
    else:
        try:
            with tempfile.TemporaryDirectory() as build:
                block = budget_block(assets, M4Builder(build))
        except TargetError as exc:  # recorded, not raised: the export itself is complete
            block = {"not_measured": "the emulated build or run failed: "
                                     + str(exc).splitlines()[-1][:300]}
    write_into_assets(assets, block)
    return block
