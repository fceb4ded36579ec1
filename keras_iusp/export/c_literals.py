"""C literals for the generated firmware sources: one formatter per kind of value.

Every generated ``.h`` / ``.cc`` (model array, settings, front-end tables, golden vectors) writes
its numbers through these, so a float is spelled the same way everywhere and always compiles.
"""

from __future__ import annotations

import numpy as np


def c_float(value: float) -> str:
    """A C float literal that round-trips float32: ``50`` becomes ``50.0f`` (``50f`` does not
    compile), ``1e-05`` stays ``1e-05f``."""
    text = f"{float(value):.9g}"
    if not any(c in text for c in ".eEn"):
        text += ".0"
    return text + "f"


def _rows(items: list[str], per_line: int, indent: str) -> str:
    return "\n".join(indent + ", ".join(items[i:i + per_line]) + ","
                     for i in range(0, len(items), per_line))


def c_floats(values, per_line: int = 6, indent: str = "    ") -> str:
    """Comma-terminated rows of :func:`c_float` literals (the body of a brace initialiser)."""
    return _rows([c_float(v) for v in np.asarray(values).ravel()], per_line, indent)


def c_ints(values, per_line: int = 16, indent: str = "    ") -> str:
    """Comma-terminated rows of integer literals."""
    return _rows([str(int(v)) for v in np.asarray(values).ravel()], per_line, indent)


def c_bytes(data: bytes, per_line: int = 12, indent: str = "    ") -> str:
    """Comma-terminated rows of ``0x..`` byte literals."""
    return _rows([f"0x{b:02x}" for b in data], per_line, indent)
