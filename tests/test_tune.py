"""`repbench tune`: seeded, resumable after SIGKILL, failures recorded, never sees the outer test set."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
import yaml
from click.testing import CliRunner

from repbench import tuning
from repbench.cli import main
from repbench.prepare import prepare
from repbench.rundir import RunDir

TUNE = {
    "name": "tune",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 250},
    "splits": {"test": 50, "train_sizes": [20, 40], "draws": 1, "tune_train": 40, "tune_val": 20,
               "inner_folds": 2},
    "representation": {"soap": {"r_cut": {"choice": [3.0, 4.0]}, "n_max": {"int": [2, 3]},
                                "l_max": {"int": [1, 2]}, "sigma": {"loggrid": [-2, 0, 3]}}},
    "tune": {"trials": 6, "n_startup_trials": 3},
}


def _prepare(tmp_path, cfg=TUNE, name="run"):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    rd, _ = prepare(p, run_dir=tmp_path / name)
    return rd


def _trials(rd):
    st = optuna.load_study(study_name=rd.study_name(rd.config()), storage=tuning.default_storage(rd))
    return st.get_trials(deepcopy=False)


def test_tune_writes_best_and_trials_and_is_seeded(tmp_path):
    a = _prepare(tmp_path, name="a")
    b = _prepare(tmp_path, name="b")
    for rd in (a, b):
        best = tuning.run_tune(rd, show_progress=False)
        assert best["loss"] > 0 and best["krr"]["regularization"] > 0
        assert set(best["representation"]["soap"]) >= {"r_cut", "n_max", "l_max", "sigma"}
    pa = [t.params for t in _trials(a)]
    pb = [t.params for t in _trials(b)]
    assert len(pa) == 6 and pa == pb
    best = yaml.safe_load((a.tune_dir / "best.yaml").read_text())
    assert best["study_hash"] == a.config().study_hash()
    rows = (a.tune_dir / "trials.csv").read_text().splitlines()
    assert len(rows) == 7 and "param.representation.soap.n_max" in rows[0]
    # the leaderboard prints
    res = CliRunner().invoke(main, ["tune", str(a.path), "--show"])
    assert res.exit_code == 0 and "COMPLETE" in res.output
    # re-running with the count reached starts no trial
    tuning.run_tune(a, show_progress=False)
    assert len(_trials(a)) == 6


def test_tuning_never_touches_the_outer_test_set(tmp_path, monkeypatch):
    from repbench import workspace

    rd = _prepare(tmp_path)
    seen = []
    orig_features = workspace.Workspace.features

    def spy(self, rep_spec, index):
        seen.append(np.asarray(index).copy())
        return orig_features(self, rep_spec, index)

    monkeypatch.setattr(workspace.Workspace, "features", spy)
    tuning.run_tune(rd, 3, show_progress=False)
    _, sp, _ = rd.read_data()
    assert seen
    test = set(sp.test.tolist())
    for idx in seen:
        assert test.isdisjoint(idx.tolist())
        assert set(idx.tolist()) <= set(sp.pool.tolist())


def test_failed_trials_are_recorded_and_the_study_goes_on(tmp_path):
    # a periodic dataset: MBTR with 'unity' weighting is impossible for it, which is only known once
    # the dataset is (config validation cannot know), so those trials fail with the reason recorded
    from ase.build import bulk
    from ase.io import write

    rng = np.random.default_rng(0)
    frames = []
    for i in range(80):
        a = bulk("Cu", "fcc", a=3.6 + 0.1 * rng.random()) * (1, 1, 2)
        a.numbers[rng.random(len(a)) < 0.5] = 79
        a.info["energy"] = float(-3.5 * len(a) + rng.normal())
        frames.append(a)
    data = tmp_path / "alloys.extxyz"
    write(data, frames, format="extxyz")
    cfg = {
        "name": "mb", "dataset": {"name": "file", "path": str(data), "target": "energy", "per": "atom"},
        "splits": {"test": 20, "train_sizes": [20, 40], "draws": 1, "tune_train": 30, "tune_val": 10},
        "representation": {"mbtr": {"k": [2], "k2": {
            "weighting": {"choice": [{"function": "unity"}, {"function": "exp", "scale": 0.5,
                                                            "threshold": 0.001}]}}}},
        "tune": {"trials": 6, "n_startup_trials": 6},
    }
    rd = _prepare(tmp_path, cfg)
    tuning.run_tune(rd, show_progress=False)
    ts = _trials(rd)
    failed = [t for t in ts if t.state.name == "FAIL"]
    done = [t for t in ts if t.state.name == "COMPLETE"]
    assert failed and done and len(failed) + len(done) == 6
    assert all("periodic" in t.user_attrs["error"] for t in failed)
    csv_text = (rd.tune_dir / "trials.csv").read_text()
    assert "periodic" in csv_text


def test_sigkill_and_restart_keeps_finished_trials(tmp_path):
    cfg = {**TUNE, "tune": {"trials": 8, "n_startup_trials": 3}}
    rd = _prepare(tmp_path, cfg)
    cmd = [sys.executable, "-m", "repbench", "tune", str(rd.path)]
    kept = set()
    for delay in (4.0, 6.0):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if (rd.tune_dir / "study.db").exists():
            try:
                now = {t.number for t in _trials(rd) if t.state.name == "COMPLETE"}
            except KeyError:  # killed between creating study.db and creating the study in it
                continue
            assert kept <= now  # nothing finished is ever lost
            kept = now
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    ts = _trials(rd)
    numbers = [t.number for t in ts]
    assert len(numbers) == len(set(numbers))
    complete = {t.number for t in ts if t.state.name == "COMPLETE"}
    assert kept <= complete
    finished = [t for t in ts if t.state.name == "COMPLETE" or "error" in t.user_attrs]
    assert len(finished) == 8
    assert (rd.tune_dir / "best.yaml").exists()


def test_tune_without_search_space_is_a_clear_error(tmp_path):
    cfg = {**TUNE, "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1}}}
    rd = _prepare(tmp_path, cfg)
    p = subprocess.run([sys.executable, "-m", "repbench", "tune", str(rd.path)], capture_output=True, text=True)
    assert p.returncode == 2 and "no search space" in p.stderr and "Traceback" not in p.stderr


def test_tune_workers_report_a_shared_problem_once(capfd):
    """`tune --jobs N`: a problem line that several workers print (the same error met by each, trial numbers
    aside) reaches the user once; other lines (distinct warnings, a traceback's repeated lines) all arrive."""
    import subprocess
    import sys
    import threading

    from repbench.tuning import _forward_unique

    code = ("import sys; print('error: disk full in /x; trial {0} was stopped and is not counted', file=sys.stderr);"
            "print('warning: {0}', file=sys.stderr); print('  same frame', file=sys.stderr)")
    procs = [subprocess.Popen([sys.executable, "-c", code.format(i)], stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    seen, lock = {}, threading.Lock()
    threads = [threading.Thread(target=_forward_unique, args=(p.stderr, seen, lock, i))
               for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    for p, t in zip(procs, threads):
        p.wait()
        t.join()
    err = capfd.readouterr().err.splitlines()
    assert len([ln for ln in err if ln.startswith("error: disk full in /x; trial ")]) == 1, err
    assert sorted(ln for ln in err if ln.startswith("warning")) == ["warning: 0", "warning: 1", "warning: 2"]
    assert err.count("  same frame") == 3


def test_a_failing_stderr_does_not_block_the_workers(monkeypatch):
    """Our stderr closed (`2>&1 | head`) or full: the worker's pipe is still drained to its end."""
    import io
    import sys

    from repbench.tuning import _forward_unique

    class Broken(io.StringIO):
        def write(self, s):
            raise BrokenPipeError

    monkeypatch.setattr(sys, "stderr", Broken())
    stream = io.StringIO("error: x\n" + "line\n" * 100000)
    _forward_unique(stream, {}, __import__("threading").Lock(), 0)
    assert stream.closed
