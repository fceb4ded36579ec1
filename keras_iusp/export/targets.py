"""Microcontroller target profiles (``deploy/targets/*.toml``) and the export's budget check.

A profile states how much flash the model data and how much RAM the tensor arena may take on a
class of device. The export prints a pass/fail table against every profile, so a model that
cannot ship is noticed before anyone flashes it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from keras_iusp.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Folder of the profiles shipped with the repository.
DEFAULT_TARGETS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "targets"


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    flash_bytes: int
    ram_bytes: int

    def check(self, flash: int, arena: int) -> dict:
        return {"target": self.name, "flash_budget": self.flash_bytes, "flash": flash,
                "flash_ok": flash <= self.flash_bytes, "arena_budget": self.ram_bytes,
                "arena": arena, "arena_ok": arena <= self.ram_bytes,
                "fits": flash <= self.flash_bytes and arena <= self.ram_bytes}


def load_profile(path: str | os.PathLike) -> TargetProfile:
    """Read one TOML profile; missing or mistyped keys are named in the error."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read target profile ({exc})") from exc
    expected = {"name": str, "description": str, "flash_bytes": int, "ram_bytes": int}
    unknown = sorted(set(data) - set(expected))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid keys are {sorted(expected)}")
    for key, kind in expected.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise ConfigError(f"{path}: {key} must be a {kind.__name__}, got {data.get(key)!r}")
        if kind is int and data[key] <= 0:
            raise ConfigError(f"{path}: {key} must be > 0")
    return TargetProfile(**data)


def load_profiles(folder: str | os.PathLike | None = None) -> list[TargetProfile]:
    folder = Path(folder) if folder else DEFAULT_TARGETS_DIR
    return [load_profile(p) for p in sorted(folder.glob("*.toml"))]


def format_target_table(rows: list[dict]) -> str:
    lines = ["| target | flash (model) | budget | arena | budget | result |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['flash']:,} | {r['flash_budget']:,} | "
                     f"{r['arena']:,} | {r['arena_budget']:,} | "
                     f"{'PASS' if r['fits'] else 'FAIL'} |")
    return "\n".join(lines)
