"""Microcontroller target profiles (``deploy/targets/*.toml``) and the export's budget check.

A profile states how much flash the model data may take on a class of device, and how much RAM
the whole keras-iusp audio path may take: the log-mel front end's state, the ring of int8 frames
of the streaming runner and the TFLite-Micro tensor arena (the arena alone would understate what
a board pays by the frame ring, 6 KB at a 1 s window). The export prints a pass/fail table
against every profile, so a model that cannot ship is noticed before anyone flashes it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from keras_iusp.export.locations import DEPLOY_DIR
from keras_iusp.utils.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Folder of the profiles shipped with the repository (``KERAS_IUSP_DEPLOY`` moves it).
DEFAULT_TARGETS_DIR = DEPLOY_DIR / "targets"


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    flash_bytes: int
    ram_bytes: int

    def check(self, flash: int, arena: int, ram: int | None = None) -> dict:
        """Budget check; ``ram`` is the total RAM (front end + frame ring + arena), which the
        profile's ``ram_bytes`` budgets (``arena`` alone when no total is known)."""
        ram = arena if ram is None else ram
        return {"target": self.name, "flash_budget": self.flash_bytes, "flash": flash,
                "flash_ok": flash <= self.flash_bytes, "ram_budget": self.ram_bytes,
                "arena": arena, "ram": ram, "ram_ok": ram <= self.ram_bytes,
                "fits": flash <= self.flash_bytes and ram <= self.ram_bytes}


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
    lines = ["| target | flash (model) | budget | RAM (front end + frame ring + arena) | budget "
             "| result |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        ram = r.get("ram", r["arena"])
        budget = r.get("ram_budget", r.get("arena_budget"))
        lines.append(f"| {r['target']} | {r['flash']:,} | {r['flash_budget']:,} | "
                     f"{ram:,} (arena {r['arena']:,}) | {budget:,} | "
                     f"{'PASS' if r['fits'] else 'FAIL'} |")
    return "\n".join(lines)
