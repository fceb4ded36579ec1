"""The project's own exception types.

Every error caused by what a user handed us (a file, a CSV row, a config value) is raised as a
:class:`KerasIuspError` subclass, so the CLI can print it as one line without a traceback and
library users can catch one type.
"""

from __future__ import annotations


class KerasIuspError(Exception):
    """Base class for user-facing errors: the message names the file/field and what was expected."""


class DataError(KerasIuspError):
    """An annotations file, CSV row or dataset folder is not what the loader expects."""


class AudioError(DataError):
    """An audio file cannot be decoded, is empty, or holds non-finite samples."""


class ConfigError(KerasIuspError):
    """A configuration value does not exist, has the wrong type, or is out of range."""
