"""User-facing errors.

Every error a user can cause (bad config, bad data file, broken run directory) is a :class:`RepbenchError`
with a message that says *what* is wrong, *where* (file, line, key path) and *how to fix it*.  The CLI
prints it as one line and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations

import reprlib

#: Longest message, where and hint of an error (characters).  Values quoted from user input (a YAML alias
#: bomb, a megabyte-long key, a binary file) must never turn one error line into megabytes.
MAX_MESSAGE = 600
MAX_WHERE = 400
MAX_HINT = 400


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (the cut marked with ``...``), control characters escaped, so
    that an error always stays one short line."""
    text = str(text)
    if any(c < " " and c != "\t" for c in text) or "\x7f" in text:
        text = "".join(c if c >= " " and c != "\x7f" else repr(c)[1:-1] for c in text)
    if len(text) > limit:
        head = max(limit * 2 // 3, 1)
        tail = max(limit - head - 5, 0)
        text = text[:head] + " ... " + (text[len(text) - tail:] if tail else "")
    return text


_SHORT = reprlib.Repr()
_SHORT.maxstring = 80
_SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxdict = 6
_SHORT.maxlevel = 3


def short(value) -> str:
    """A short ``repr`` of a user-given value for an error message (nested and long values abbreviated)."""
    try:
        return clip(_SHORT.repr(value), 120)
    except Exception:  # noqa: BLE001 - a value whose repr fails (recursive, exotic): its type will do
        return f"<{type(value).__name__}>"


class RepbenchError(Exception):
    """Base class: an error caused by input the user can fix.

    The message, where and hint are cut to :data:`MAX_MESSAGE`, :data:`MAX_WHERE` and :data:`MAX_HINT`
    characters (and control characters escaped), so that every error is one line of bounded length.
    """

    exit_code = 2

    def __init__(self, message: str, where: str = "", hint: str = ""):
        self.message = clip(message, MAX_MESSAGE)
        self.where = clip(where, MAX_WHERE) if where else ""
        self.hint = clip(hint, MAX_HINT) if hint else ""
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
