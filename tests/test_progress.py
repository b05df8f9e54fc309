"""Long stages report progress when the output is not a terminal (batch jobs, `> log`)."""

from __future__ import annotations

import io

from repbench.progress import ProgressLines


def test_lines_say_what_is_done_and_what_is_left():
    t = [0.0]
    out = io.StringIO()
    p = ProgressLines("curve", 4, "points", interval=60, stream=out, clock=lambda: t[0])
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


def test_detail_and_deadline():
    """The line carries the stage's detail, and the estimate is capped by a --timeout deadline."""
    t = [0.0]
    out = io.StringIO()
    p = ProgressLines("tune", 10, "trials", interval=60, stream=out, clock=lambda: t[0])
    p.deadline = 300.0
    p.detail = "study 3/12: 1 pruned, 0 failed, 1 running; best 0.029"
    t[0] = 100
    p.advance()                      # 1 of 10 in 100 s would be ~15m left; the deadline says 3m20s
    assert out.getvalue().strip() == ("tune: 1/10 trials done (study 3/12: 1 pruned, 0 failed, 1 running; "
                                      "best 0.029), 1m40s elapsed, ~3m20s left")


def test_tune_prints_lines_into_a_batch_log(tmp_path):
    """`repbench tune RUN > log 2>&1`: rich draws nothing there, so plain lines report the trials."""
    import os
    import subprocess
    import sys

    import yaml

    cfg = {"name": "tlog", "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 80},
           "splits": {"test": 20, "train_sizes": [20, 40], "draws": 1, "tune_train": 20, "tune_val": 10,
                      "inner_folds": 2},
           "representation": {"soap": {"r_cut": {"choice": [3.0, 3.5]}, "n_max": 2, "l_max": 1,
                                       "sigma": 0.5}},
           "tune": {"trials": 4, "n_startup_trials": 2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "REPBENCH_PROGRESS_S": "0.2"}
    run = [sys.executable, "-m", "repbench"]
    subprocess.run([*run, "prepare", "c.yaml", "--run-dir", "r"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    p = subprocess.run([*run, "tune", "r"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("tune: ")]
    assert lines, p.stdout + p.stderr
    assert lines[-1].startswith("tune: 4/4 trials done (study 4/4: 0 pruned, 0 failed, 0 running; best ")
    # each stage command records its own wall time in run.yaml, as `repbench run` does
    subprocess.run([*run, "curve", "r", "--no-plot"], cwd=tmp_path, env=env, check=True, capture_output=True)
    status = yaml.safe_load((tmp_path / "r" / "run.yaml").read_text())["status"]
    assert status["tune"]["state"] == "done" and status["tune"]["seconds"] > 0
    assert status["curve"]["state"] == "done" and status["curve"]["seconds"] > 0
