"""Reusable ``argparse`` ``type=`` validators for the command line.

Each validator turns one command-line string into a value or raises
:class:`argparse.ArgumentTypeError` with a message that says what was expected, so a bad flag
fails while the arguments are parsed: before TensorFlow loads, before any data is read and before
any output folder is created. ``argparse`` prefixes the message with the flag's name
(``argument --epochs: expected an integer >= 1, got '-3'``).

The validators are small frozen dataclasses, so their bounds can be read back (the CLI's fuzz
test generates out-of-range values from them). The module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

#: Largest seed: ``keras.utils.set_random_seed`` seeds NumPy's legacy generator, which takes
#: 32-bit seeds only.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class IntRange:
    """An integer ``low <= n`` (and ``n <= high`` when ``high`` is given)."""

    low: int
    high: int | None = None

    def __call__(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.expected()}, got {text!r}") from None
        if value < self.low or (self.high is not None and value > self.high):
            raise argparse.ArgumentTypeError(f"expected {self.expected()}, got {text!r}")
        return value

    def expected(self) -> str:
        """What a valid value is, in words."""
        if self.high is None:
            return f"an integer >= {self.low}"
        return f"an integer in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class FloatRange:
    """A finite number between ``low`` and ``high`` (no upper end when ``high`` is None)."""

    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.expected()}, got {text!r}") from None
        if not self.contains(value):
            raise argparse.ArgumentTypeError(f"expected {self.expected()}, got {text!r}")
        return value

    def contains(self, value: float) -> bool:
        """True when ``value`` is finite and inside the range."""
        if not math.isfinite(value) or value < self.low or (self.low_open and value == self.low):
            return False
        return self.high is None or value < self.high or (value == self.high
                                                          and not self.high_open)

    def expected(self) -> str:
        """What a valid value is, in words."""
        if self.high is None:
            return f"a number {'>' if self.low_open else '>='} {self.low:g}"
        left, right = ("(" if self.low_open else "["), (")" if self.high_open else "]")
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class ExistingPath:
    """A path that exists: a ``"file"``, a ``"folder"`` or either (``"file or folder"``).

    Returned as given (a string), so messages further on show the path the user typed.
    """

    kind: str = "file or folder"

    def __call__(self, text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"empty path; expected an existing {self.kind}")
        path = Path(text)
        ok = {"file": path.is_file, "folder": path.is_dir}.get(self.kind, path.exists)()
        if not ok:
            what = f"is not a {self.kind}" if os.path.lexists(path) else "does not exist"
            raise argparse.ArgumentTypeError(f"{text!r} {what}; expected an existing {self.kind}")
        return text


#: ``n >= 1``: epochs, batch sizes, clip counts, trials, jobs.
positive_int = IntRange(1)
#: ``n >= 0``: warm-up epochs, pruning/QAT epochs, "0 means never" counts.
non_negative_int = IntRange(0)
#: A random seed, ``0 <= seed <= 2**32 - 1``.
seed = IntRange(0, MAX_SEED)
#: ``x > 0``: learning rates, temperatures, durations in seconds.
positive_float = FloatRange(0.0, low_open=True)
#: ``x >= 0``: loss weights.
non_negative_float = FloatRange(0.0)
#: ``0 <= p <= 1``: probabilities and label-loss shares.
probability = FloatRange(0.0, 1.0)
#: ``0 <= s < 1``: target sparsity (1 would remove every weight).
sparsity = FloatRange(0.0, 1.0, high_open=True)
#: An existing file or folder.
existing_path = ExistingPath()
#: An existing folder.
existing_dir = ExistingPath("folder")
#: An existing file.
existing_file = ExistingPath("file")
