"""User-facing errors.

Every error a user can cause (bad config, bad data file, broken run directory) is a :class:`RepbenchError`
with a message that says *what* is wrong, *where* (file, line, key path) and *how to fix it*.  The CLI
prints it as one line and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations


class RepbenchError(Exception):
    """Base class: an error caused by input the user can fix."""

    exit_code = 2

    def __init__(self, message: str, where: str = "", hint: str = ""):
        self.message = message
        self.where = str(where) if where else ""
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" ({self.hint})")
        return "".join(parts)


class ConfigError(RepbenchError):
    """A config file is malformed, has an unknown key, a wrong type or a value out of range."""


class DataError(RepbenchError):
    """A dataset file is missing, truncated, or holds a value that cannot be read."""


class RunDirError(RepbenchError):
    """A run directory is missing, from another version, locked by another process, or corrupt."""


class ResourceError(RepbenchError):
    """A computation would need more memory or disk than is available."""
