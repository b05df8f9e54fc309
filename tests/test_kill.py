"""Kill harness: SIGKILL `prepare`, `curve`, `time` and `tune` at seeded random moments, re-run each until it
completes, and check that

* every run completes after the kills;
* nothing finished is lost: curve points and complete tune trials seen after one kill are still there
  (curve points byte for byte) after every later kill and at the end;
* after every kill, run.yaml and data.h5 read cleanly (never half-written) and, once the stage has
  completed, no temporary file is left;
* the final results equal those of an uninterrupted run: data.h5 arrays and run.yaml's config equal,
  curve.yaml equal (every metric exactly); the study holds exactly the requested number of finished trials
  with no duplicate trial numbers; timings.yaml is complete and valid.

The moments are random but aimed: `prepare` is killed after a random delay; `curve`, `time` and `tune` once
they hold their stage lock (past start-up) and, for `curve` and `tune`, once a random number of further
points / trials is finished, after a random extra delay, so that the kills land inside the work.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from repbench.rundir import RunDir

SEED = 20261124
KILLS: dict[str, int] = {}  # stage -> kills that landed (checked by test_at_least_20_kills)
PREPARE_S: list[float] = []  # wall time of the uninterrupted prepare (the kill delays scale with it)

FIXED = {
    "name": "kill",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 200},
    "splits": {"test": 40, "train_sizes": [20, 40, 80], "draws": 3, "inner_folds": 2},
    "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
    "time": {"repeats": 2, "n_structures": 40, "sizes": [40, 80]},
}
N_POINTS = 9
TUNE = {
    "name": "killtune",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 100},
    "splits": {"test": 20, "train_sizes": [20, 40], "draws": 1, "tune_train": 20, "tune_val": 10,
               "inner_folds": 2},
    "representation": {"soap": {"r_cut": {"choice": [3.0, 3.5]}, "n_max": {"int": [2, 3]}, "l_max": 1,
                                "sigma": {"loggrid": [-2, 0, 3]}}},
    "tune": {"trials": 8, "n_startup_trials": 3},
}


# --------------------------------------------------------------------------- helpers
def repbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "repbench", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "repbench", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _kill_or_check(p: subprocess.Popen) -> bool:
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True
    err = p.stderr.read()
    assert p.returncode == 0 and "Traceback" not in err, err  # finished before the kill: must have worked
    return False


def kill_at(args: list[str], delay: float, cwd: Path) -> bool:
    """Start `repbench ARGS`, SIGKILL it after ``delay`` s; True if killed, False if it completed first."""
    p = _start(args, cwd)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(timeout=delay)
    return _kill_or_check(p)


def kill_when(args: list[str], cwd: Path, ready, jitter: float, poll: float = 0.03) -> bool:
    """Start `repbench ARGS`; once ``ready(pid)`` holds (checked every ``poll`` s), wait ``jitter`` s more
    and SIGKILL it. True if killed, False if it completed first."""
    p = _start(args, cwd)
    while p.poll() is None and not ready(p.pid):
        time.sleep(poll)
    if p.poll() is None:
        time.sleep(jitter)
    return _kill_or_check(p)


def lock_held_by(run: Path, stage: str, pid: int) -> bool:
    """The stage lock of ``run`` is held by process ``pid`` (the holder writes its pid into the lock file)."""
    try:
        return (run / f".lock-{stage}").read_text().startswith(f"pid {pid} ")
    except OSError:
        return False


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def assert_readable(run: Path) -> None:
    """After any kill: run.yaml and data.h5 are complete (atomic writes), or absent."""
    rd = RunDir(run)
    if run.exists() and rd.run_yaml.exists():
        rd.read_meta()
        rd.read_data()


def data_arrays(run: Path) -> dict:
    out = {}
    with h5py.File(run / "data.h5", "r") as f:
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out


def points(run: Path) -> dict[str, bytes]:
    d = run / "curve"
    return {p.name: p.read_bytes() for p in d.glob("*.yaml")} if d.exists() else {}


def study_states(run: Path, pid: int) -> tuple[int, int]:
    """(complete trials, trials running in process ``pid``), read straight from the SQLite study (cheap
    enough to poll; each trial records its worker as "host:pid")."""
    import sqlite3

    db = run / "tune" / "study.db"
    if not db.exists():
        return 0, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)) as c:
            complete = c.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
            mine = c.execute("SELECT COUNT(*) FROM trials t JOIN trial_user_attributes a "
                             "ON a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'worker' "
                             "AND a.value_json LIKE ?", (f'%:{pid}"',)).fetchone()[0]
            return complete, mine
    except sqlite3.Error:
        return 0, 0


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("kill")
    (w / "kill.yaml").write_text(yaml.safe_dump(FIXED))
    (w / "killtune.yaml").write_text(yaml.safe_dump(TUNE))
    return w


@pytest.fixture(scope="module")
def reference(work) -> Path:
    """An uninterrupted prepare + curve of FIXED."""
    ref = work / "ref"
    t0 = time.perf_counter()
    repbench("prepare", "kill.yaml", "--run-dir", str(ref), cwd=work)
    PREPARE_S.append(time.perf_counter() - t0)
    shutil.copytree(ref, work / "prepared")  # a prepared run with an empty cache, for the curve kills
    repbench("curve", str(ref), "--no-plot", cwd=work)
    return ref


# --------------------------------------------------------------------------- the kills
def test_kill_prepare(work, reference):
    """Each kill hits a fresh prepare, alternately after a random delay and while it writes its temporary
    run directory (+ a random 0-10 ms); after it the run directory is complete or absent, never partial;
    re-running completes it, identical to the uninterrupted one, and removes the killed one's temporary
    directory."""
    rng = random.Random(SEED)
    runs = work / "runs"
    runs.mkdir()
    kills = left = 0
    for k in range(4):
        run = runs / f"prep{k}"
        args = ["prepare", "kill.yaml", "--run-dir", str(run)]
        jitter, delay = rng.uniform(0, 0.01), rng.uniform(0.3, 0.8) * PREPARE_S[0]
        for _attempt in range(4):  # a prepare that finished before its kill completed cleanly (checked);
            if k % 2:              # retried from scratch, sooner, so the kills land on slow and fast machines
                killed = kill_when(args, work, lambda pid: any(runs.glob(f".prep{k}.*.tmp")), jitter,
                                   poll=0.002)
                left += bool(list(runs.glob(f".prep{k}.*.tmp")))  # the killed writer's temporary directory
            else:
                killed = kill_at(args, delay, work)
            if killed:
                kills += 1
                break
            shutil.rmtree(run)
            jitter, delay = 0.0, delay / 2
        assert not run.exists() or (RunDir(run).read_meta() and RunDir(run).read_data())
        repbench("prepare", "kill.yaml", "--run-dir", str(run), cwd=work)
        a, b = data_arrays(run), data_arrays(reference)
        assert a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)
        ma, mb = (yaml.safe_load((r / "run.yaml").read_text()) for r in (run, reference))
        assert ma["config"] == mb["config"] and ma["config_hash"] == mb["config_hash"]
    KILLS["prepare"] = kills
    assert kills >= 3
    print(f"prepare: {kills} kills, {left} left a temporary run directory (removed by the re-run)")
    assert not tmp_files(runs), tmp_files(runs)


def test_kill_curve(work, reference):
    """Kill `curve` again and again on one run directory: each time once it holds the curve lock and has
    written a random number (0-1) of further points, after a random 0-0.15 s; then let it complete.
    (Should one chain complete before 7 kills, another starts on a fresh copy.)"""
    rng = random.Random(SEED + 1)
    want = yaml.safe_load((reference / "curve.yaml").read_text())
    kills = partial = chains = 0
    while kills < 7 and chains < 3:
        chains += 1
        run = work / f"curve_run{chains}"
        shutil.copytree(work / "prepared", run)
        seen: dict[str, bytes] = {}
        for _ in range(12):
            target = len(seen) + rng.choice([0, 0, 1])
            killed = kill_when(["curve", str(run), "--no-plot"], work,
                               lambda pid: lock_held_by(run, "curve", pid) and len(points(run)) >= target,
                               rng.uniform(0.0, 0.15))
            assert_readable(run)
            now = points(run)
            for name, content in seen.items():  # a finished point is never lost nor rewritten
                assert now.get(name) == content, f"finished point {name} lost or changed"
            for content in now.values():
                assert "rmse" in yaml.safe_load(content)["metrics"]  # complete files only
            seen = now
            if not killed:
                break
            kills += 1
            partial += 0 < len(now) < N_POINTS
            if kills == 7:
                break
        repbench("curve", str(run), "--no-plot", cwd=work)  # re-run until it completes
        for name, content in seen.items():
            assert (run / "curve" / name).read_bytes() == content
        got = yaml.safe_load((run / "curve.yaml").read_text())
        assert got["sizes"] == want["sizes"]  # every metric of every draw, exactly
        assert {k: v for k, v in got.items() if k != "run"} == {k: v for k, v in want.items() if k != "run"}
        assert not tmp_files(run), tmp_files(run)
    KILLS["curve"] = kills
    assert kills >= 7 and partial >= 3, (kills, partial)


def test_kill_time(work, reference):
    """Kill `time` once it holds the time lock, after a random 0-1 s; then let it complete."""
    rng = random.Random(SEED + 2)
    run = work / "time_run"
    shutil.copytree(reference, run)
    kills = 0
    for _ in range(5):
        kills += kill_when(["time", str(run)], work, lambda pid: lock_held_by(run, "time", pid),
                           rng.uniform(0.0, 1.0))
        assert_readable(run)
        if (run / "timings.yaml").exists():
            assert yaml.safe_load((run / "timings.yaml").read_text())["sizes"]
    repbench("time", str(run), cwd=work)
    KILLS["time"] = kills
    assert kills >= 4
    doc = yaml.safe_load((run / "timings.yaml").read_text())
    assert doc["format"] == 2
    assert doc["config_hash"] == yaml.safe_load((run / "run.yaml").read_text())["config_hash"]
    r = doc["representation_timing"]
    assert r["structures"] == 40 and 0 < r["min_s"] <= r["median_s"] and r["dim"] > 0
    assert [s["train_size"] for s in doc["sizes"]] == [40, 80]
    for s in doc["sizes"]:
        for k in ("kernel_train_train", "kernel_test_train", "krr_fit", "krr_predict"):
            assert 0 < s[k]["min_s"] <= s[k]["median_s"] and s[k]["repeats"] == 2
    assert yaml.safe_load((run / "run.yaml").read_text())["status"]["time"]["state"] == "done"
    assert not tmp_files(run), tmp_files(run)


def test_kill_tune(work):
    """Kill `tune` again and again on one study: each time once a random number (0-1) of further trials
    completed and the next one runs (or, should the trials be too quick to catch running, once more than
    that many completed), after a random 0-0.4 s, so that most kills hit a running trial.
    (Should one chain complete before 6 kills, as on a fast machine, another starts on a fresh copy.)"""
    import optuna

    from repbench import tuning

    n = TUNE["tune"]["trials"]
    rng = random.Random(SEED + 3)
    prepared = work / "tune_prepared"
    repbench("prepare", "killtune.yaml", "--run-dir", str(prepared), cwd=work)
    kills = partial = chains = 0
    while kills < 6 and chains < 4:
        chains += 1
        run = work / f"tune_run{chains}"
        shutil.copytree(prepared, run)
        rd = RunDir(run)

        def trials(run=run, rd=rd):
            if not (run / "tune" / "study.db").exists():
                return []
            try:
                st = optuna.load_study(study_name=rd.study_name(rd.config()),
                                       storage=tuning.default_storage(rd))
            except KeyError:  # killed before the study was created
                return []
            return st.get_trials(deepcopy=False)

        complete: set[int] = set()
        for _ in range(10):
            target = len(complete) + rng.choice([0, 1])

            def ready(pid, run=run, target=target):
                if not lock_held_by(run, "tune", pid):
                    return False
                done, running_here = study_states(run, pid)
                return (done >= target and running_here > 0) or done > target

            killed = kill_when(["tune", str(run)], work, ready, rng.uniform(0.0, 0.4))
            assert_readable(run)
            now = {t.number for t in trials() if t.state.name == "COMPLETE"}
            assert complete <= now, "a complete trial was lost"
            complete = now
            if not killed:
                break
            kills += 1
            partial += 0 < len(now) < n
            if kills == 6:
                break
        repbench("tune", str(run), cwd=work)  # re-run until it completes
        ts = trials()
        numbers = [t.number for t in ts]
        assert len(numbers) == len(set(numbers)), "duplicate trial numbers"
        finished = [t for t in ts if t.state.name == "COMPLETE" or "error" in t.user_attrs]
        assert len(finished) == n
        assert complete <= {t.number for t in ts if t.state.name == "COMPLETE"}
        assert not [t for t in ts if t.state.name == "RUNNING"]
        best = yaml.safe_load((run / "tune" / "best.yaml").read_text())
        assert best["study_hash"] == rd.config().study_hash() and best["trials"]["total"] == len(ts)
        assert len((run / "tune" / "trials.csv").read_text().splitlines()) == len(ts) + 1
        assert not tmp_files(run), tmp_files(run)
    KILLS["tune"] = kills
    print(f"tune: {kills} kills in {chains} chain(s), {partial} with some but not all trials complete")
    assert kills >= 6 and partial >= 2, (kills, partial, chains)


def test_stale_temporary_files_of_killed_writers_are_removed(work, reference):
    """A temporary file a killed writer left (its pid is gone) is removed by the next stage; one of a live
    process, one of another host and any other file are left alone."""
    from repbench.rundir import tmp_prefix

    run = work / "stale_run"
    shutil.copytree(reference, run)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host_pid = tmp_prefix("x")[len(".x."):-1]  # <host>-<this pid>
    host = host_pid.rsplit("-", 1)[0]
    stale = [run / "cache" / "kernels" / f".abc.h5.{host}-{dead.pid}.k2j4.tmp",
             run / "curve" / f".20-0.yaml.{host}-{dead.pid}.zz9.tmp",
             run / f".run.yaml.{host}-{dead.pid}.q1.tmp"]
    keep = [run / "cache" / "kernels" / f".abc.h5.{host_pid}.live.tmp",          # a live process (this one)
            run / "cache" / "kernels" / f".abc.h5.otherhost-{dead.pid}.x.tmp",  # another machine's
            run / "cache" / "kernels" / "user-notes.tmp"]                        # not repbench's
    for p in stale + keep:
        p.write_bytes(b"partial")
    repbench("curve", str(run), "--no-plot", cwd=work)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    # prepare: the temporary run directory a killed prepare left beside the run
    tmp_run = work / "runs" / f".prepX.{host}-{dead.pid}.abc.tmp"
    tmp_run.mkdir(parents=True)
    (tmp_run / "data.h5").write_bytes(b"partial")
    repbench("prepare", "kill.yaml", "--run-dir", str(work / "runs" / "prepX"), cwd=work)
    assert not tmp_run.exists()


def test_at_least_20_kills():
    if len(KILLS) < 4:
        pytest.skip("run the whole module to count the kills")
    assert sum(KILLS.values()) >= 20, KILLS
