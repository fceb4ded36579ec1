"""``benchmarks/target_budget.py --assets`` writes its budget into an export folder once."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "firmware_assets" / "reference"


def _module():
    spec = importlib.util.spec_from_file_location("target_budget",
                                                  ROOT / "benchmarks" / "target_budget.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("target_budget", module)
    spec.loader.exec_module(module)
    return module


def test_budget_written_into_assets_is_idempotent(tmp_path):
    budget = _module()
    for name in ("model_settings.h", "export_report.json"):
        shutil.copy(REFERENCE / name, tmp_path / name)
    block = {"invoke_instructions": 123456, "frontend_hop_instructions": 789,
             "stream_instructions_per_second": 4567890, "invokes_per_second": 2.04,
             "mhz_needed_at_1_instruction_per_cycle": 4.56789, "firmware_flash_bytes": 1000,
             "firmware_static_ram_bytes": 2000}
    budget.write_into_assets(tmp_path, block)
    once = (tmp_path / "model_settings.h").read_text()
    budget.write_into_assets(tmp_path, {**block, "invoke_instructions": 654321})
    twice = (tmp_path / "model_settings.h").read_text()
    assert twice == once.replace("123,456", "654,321")
    assert once.count(budget.BEGIN) == 1 and "123,456 instructions" in once
    assert once.rstrip().endswith("#endif  // KERAS_IUSP_MODEL_SETTINGS_H_")
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["cortex_m4_budget"]["invoke_instructions"] == 654321


def test_budget_without_the_toolchain_is_a_note_not_an_error(tmp_path, monkeypatch):
    """No Arm toolchain: the report says what is missing, model_settings.h gets no numbers."""
    from keras_iusp.export import target_budget

    for name in ("model_settings.h", "export_report.json"):
        shutil.copy(REFERENCE / name, tmp_path / name)
    monkeypatch.setattr(target_budget, "missing_tools", lambda: ["qemu-system-arm"])
    block = target_budget.write_target_budget(tmp_path)
    assert block["not_measured"] == "missing: qemu-system-arm" and "apt-get" in block["how"]
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["cortex_m4_budget"] == block
    assert target_budget.BEGIN not in (tmp_path / "model_settings.h").read_text()
