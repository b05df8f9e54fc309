"""Progress for long stages when the output is not a terminal (batch jobs, ``> log``).

rich's progress bars draw only on terminals; in a batch job a 50-minute stage would print nothing until it
ends.  :func:`progress_lines` prints one plain line to stderr about every minute (``REPBENCH_PROGRESS_S``
seconds) with what is done and an estimate of what is left, and nothing on a terminal (where the bar is).
"""

from __future__ import annotations

import os
import sys
import time


class ProgressLines:
    """Counts finished units and prints ``<stage>: 3/8 points done, 2m10s elapsed, ~3m20s left``."""

    def __init__(self, stage: str, total: int, unit: str, interval: float, stream) -> None:
        self.stage, self.total, self.unit = stage, int(total), unit
        self.interval, self.stream = interval, stream
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def _line(self) -> str:
        el = time.monotonic() - self.t0
        left = el / self.done * (self.total - self.done) if self.done else None
        est = f", ~{_fmt(left)} left" if left is not None and self.done < self.total else ""
        return f"{self.stage}: {self.done}/{self.total} {self.unit} done, {_fmt(el)} elapsed{est}"

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.stream is not None and now - self.last >= self.interval:
            self.last = now
            print(self._line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.stream is not None and self.done and time.monotonic() - self.t0 >= self.interval:
            print(self._line(), file=self.stream, flush=True)


def _fmt(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def progress_lines(stage: str, total: int, unit: str = "units") -> ProgressLines:
    """A line printer for ``stage`` that is silent on a terminal (see the module docstring)."""
    interval = float(os.environ.get("REPBENCH_PROGRESS_S", "60"))
    stream = None if sys.stderr.isatty() else sys.stderr
    return ProgressLines(stage, total, unit, interval, stream)
