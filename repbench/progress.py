"""Progress for long stages when the output is not a terminal (batch jobs, ``> log``).

rich's progress bars draw only on terminals; in a batch job a 50-minute stage would print nothing until it
ends.  :func:`progress_lines` prints one plain line to stderr about every minute (``REPBENCH_PROGRESS_S``
seconds) with what is done and an estimate of what is left, and nothing on a terminal (where the bar is).
A heartbeat thread prints the line also while no unit finishes (one draw's kernels can take many minutes
before its points arrive together), so a batch log never goes silent for longer than the interval.
"""

from __future__ import annotations

import os
import sys
import threading
import time


class ProgressLines:
    """Counts finished units and prints ``<stage>: 3/8 points done, 2m10s elapsed, ~3m20s left``."""

    def __init__(self, stage: str, total: int, unit: str, interval: float, stream, clock=time.monotonic) -> None:
        self.stage, self.total, self.unit = stage, int(total), unit
        self.interval, self.stream = interval, stream
        self.clock = clock                    # () -> seconds (time.monotonic; a fake one in tests)
        self.done = 0
        self._printed = ""
        self.detail = ""                      # appended to the line, e.g. "best 0.029"
        self.deadline: float | None = None    # self.clock() after which the stage stops (--timeout)
        self.t0 = self.last = self.clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_heartbeat(self) -> "ProgressLines":
        """Print the line every ``interval`` seconds also when nothing finishes (a daemon thread, stopped
        by :meth:`close`)."""
        if self.stream is not None and self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._beat, name=f"repbench-progress-{self.stage}",
                                            daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(max(1.0, self.interval / 4)):
            self._emit_if_due()

    def _emit_if_due(self) -> None:
        with self._lock:
            now = self.clock()
            if self.stream is not None and now - self.last >= self.interval:
                self.last = now
                self._print(self._line())

    def _print(self, line: str) -> None:
        self._printed = line
        try:
            self.stream.write(line + "\n")  # one write: never spliced with another thread's output
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log must not stop the stage

    def _line(self) -> str:
        now = self.clock()
        el = now - self.t0
        left = el / self.done * (self.total - self.done) if self.done else None
        if self.deadline is not None:  # the stage stops starting work then (the running unit is finished)
            left = max(0.0, self.deadline - now) if left is None else min(left, max(0.0, self.deadline - now))
        est = f", ~{_fmt(left)} left" if left is not None and self.done < self.total else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.stage}: {self.done}/{self.total} {self.unit} done{detail}, {_fmt(el)} elapsed{est}"

    def tick(self) -> None:
        """Print the line if one is due (for callers that poll instead of running the heartbeat)."""
        self._emit_if_due()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
        self._emit_if_due()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.stream is not None and self.done and self.clock() - self.t0 >= self.interval:
            line = self._line()
            if _static(line) != _static(self._printed):  # the final count, unless the last line said it
                self._print(line)


def _static(line: str) -> str:
    """A progress line without its clock (elapsed / left), to tell whether it says anything new."""
    return line.split(" elapsed")[0].rsplit(", ", 1)[0]


def _fmt(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def progress_interval() -> float:
    """Seconds between progress lines: ``REPBENCH_PROGRESS_S`` (default 60)."""
    return float(os.environ.get("REPBENCH_PROGRESS_S", "60"))


def progress_lines(stage: str, total: int, unit: str = "units", heartbeat: bool = False) -> ProgressLines:
    """A line printer for ``stage`` that is silent on a terminal (see the module docstring).

    ``heartbeat``: also print while nothing finishes (a thread: never while the process forks workers, whose
    copy of a lock held at the fork would never be released); call ``close()`` when the stage ends."""
    stream = None if sys.stderr.isatty() else sys.stderr
    lines = ProgressLines(stage, total, unit, progress_interval(), stream)
    return lines.start_heartbeat() if heartbeat else lines
