"""Long stages report progress when the output is not a terminal (batch jobs, `> log`)."""

from __future__ import annotations

import io

from repbench.progress import ProgressLines


def test_lines_say_what_is_done_and_what_is_left(monkeypatch):
    t = [0.0]
    monkeypatch.setattr("repbench.progress.time.monotonic", lambda: t[0])
    out = io.StringIO()
    p = ProgressLines("curve", 4, "points", interval=60, stream=out)
    t[0] = 30
    p.advance()                      # too soon for a line
    assert out.getvalue() == ""
    t[0] = 120
    p.advance()                      # 2 of 4 in 120 s: ~120 s left
    assert out.getvalue().strip() == "curve: 2/4 points done, 2m00s elapsed, ~2m00s left"
    t[0] = 130
    p.advance()
    p.advance()
    p.close()
    assert out.getvalue().strip().splitlines()[-1] == "curve: 4/4 points done, 2m10s elapsed"


def test_silent_on_a_terminal():
    p = ProgressLines("tune", 3, "trials", interval=0, stream=None)
    p.advance()
    p.close()


def test_heartbeat_prints_while_nothing_finishes():
    """One draw's kernels can take many minutes before its points arrive together: the heartbeat keeps the
    batch log alive meanwhile, and close() stops it."""
    import time

    out = io.StringIO()
    p = ProgressLines("curve", 2, "points", interval=0.5, stream=out).start_heartbeat()
    time.sleep(1.6)
    p.close()
    lines = out.getvalue().strip().splitlines()
    assert lines and lines[0].startswith("curve: 0/2 points done, 0m0") and "left" not in lines[0]
    n = len(out.getvalue())
    time.sleep(1.2)
    assert len(out.getvalue()) == n, "a closed ticker prints nothing more"
