"""Two (or more) processes on one run directory.

* `curve` twice at once: the second refuses at once with one clear "already running" line (exit 2) and
  changes nothing; the first completes normally.  The same for two `tune` on the run's own study.
* Two tune workers (`tune --jobs 2`, and two `tune --storage URL` processes) share one study: exactly the
  requested number of finished trials, no duplicate trial numbers, both workers contribute.
* Concurrent writers of the same and of different cache entries, with readers reading all the time:
  a reader only ever sees a complete entry or none; no entry is ever damaged.
* Concurrent updates of run.yaml (stage status) from many processes: no update lost, and a reader never
  sees a half-written or invalid file.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from repbench.rundir import RunDir

FIXED = {
    "name": "conc",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 150},
    "splits": {"test": 30, "train_sizes": [20, 40], "draws": 2, "inner_folds": 2},
    "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
}
TUNE = {
    "name": "conctune",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 150},
    "splits": {"test": 30, "train_sizes": [20, 40], "draws": 1, "tune_train": 30, "tune_val": 10,
               "inner_folds": 2},
    "representation": {"soap": {"r_cut": {"choice": [3.0, 3.5]}, "n_max": {"int": [2, 3]}, "l_max": 1,
                                "sigma": {"loggrid": [-2, 0, 3]}}},
    "tune": {"trials": 4, "n_startup_trials": 2},
}


def cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "repbench", *args]


def ok(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p


def tree(root: Path) -> dict[str, tuple]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def wait_for_lock(run: Path, stage: str, p: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not (run / f".lock-{stage}").exists() or \
            not (run / f".lock-{stage}").read_text().startswith(f"pid {p.pid} "):
        assert p.poll() is None, "the first process ended before taking its lock"
        assert time.time() - t0 < timeout
        time.sleep(0.03)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("conc")
    (w / "conc.yaml").write_text(yaml.safe_dump(FIXED))
    (w / "conctune.yaml").write_text(yaml.safe_dump(TUNE))
    ok("prepare", "conc.yaml", "--run-dir", str(w / "fixed"), cwd=w)
    ok("prepare", "conctune.yaml", "--run-dir", str(w / "tune"), cwd=w)
    return w


def copy_of(work: Path, which: str, name: str) -> Path:
    shutil.copytree(work / which, work / name)
    return work / name


def _second_is_refused(run: Path, work: Path, first: list[str], second: list[str], stage: str) -> str:
    """Start ``first``; while it holds the stage lock (stopped with SIGSTOP, so that the overlap is certain
    whatever the machine's speed) run ``second``: it must refuse and change nothing.  Then let the first
    finish.  Returns the second's error line."""
    a = subprocess.Popen(cmd(*first), cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lock(run, stage, a)
        os.kill(a.pid, signal.SIGSTOP)
        before = tree(run)
        b = subprocess.run(cmd(*second), cwd=work, capture_output=True, text=True, timeout=300)
        after = tree(run)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    err_a = a.communicate(timeout=600)[1]
    assert a.returncode == 0 and "Traceback" not in err_a, err_a
    assert b.returncode == 2 and "Traceback" not in b.stderr, b.stderr
    lines = [x for x in b.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "already running" in lines[0] and f"pid {a.pid}" in lines[0], b.stderr
    assert before == after, "the refused process changed files"
    return lines[0]


def test_curve_twice_at_once_second_refuses(work):
    run = copy_of(work, "fixed", "run_curve")
    _second_is_refused(run, work, ["curve", str(run), "--no-plot"], ["curve", str(run), "--no-plot"], "curve")
    doc = yaml.safe_load((run / "curve.yaml").read_text())
    assert [s["size"] for s in doc["sizes"]] == [20, 40] and all(len(s["draws"]) == 2 for s in doc["sizes"])
    assert not list(run.rglob("*.tmp"))


def test_tune_twice_at_once_second_refuses(work):
    run = copy_of(work, "tune", "run_tune_lock")
    args = ["tune", str(run), "--trials", "2"]
    _second_is_refused(run, work, args, args, "tune")
    assert (run / "tune" / "best.yaml").exists()


def _study(run: Path):
    import optuna

    from repbench import tuning

    rd = RunDir(run)
    return optuna.load_study(study_name=rd.study_name(rd.config()), storage=tuning.default_storage(rd))


def _check_shared_study(run: Path, n: int) -> set[str]:
    ts = _study(run).get_trials(deepcopy=False)
    numbers = [t.number for t in ts]
    assert len(numbers) == len(set(numbers)), "duplicate trial numbers"
    finished = [t for t in ts if t.state.name == "COMPLETE" or "error" in t.user_attrs]
    assert len(finished) == n, f"{len(finished)} finished trials, {n} requested"
    assert not [t for t in ts if t.state.name == "RUNNING"]
    return {t.user_attrs.get("worker") for t in finished}


def test_two_tune_workers_share_the_study(work):
    run = copy_of(work, "tune", "run_jobs")
    ok("tune", str(run), "--jobs", "2", cwd=work)
    workers = _check_shared_study(run, TUNE["tune"]["trials"])
    assert len(workers) == 2, workers
    best = yaml.safe_load((run / "tune" / "best.yaml").read_text())
    assert best["trials"]["complete"] >= 1


def test_two_tune_commands_on_one_storage(work):
    """Two independent `repbench tune --storage URL` processes (as on two machines) on one study."""
    from repbench import tuning

    run = copy_of(work, "tune", "run_storage")
    (run / "tune").mkdir()
    url = tuning.default_storage(RunDir(run))
    ps = [subprocess.Popen(cmd("tune", str(run), "--storage", url), cwd=work, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in ps]
    for p, e in zip(ps, errs):
        assert p.returncode == 0 and "Traceback" not in e, e
    workers = _check_shared_study(run, TUNE["tune"]["trials"])
    assert len(workers) == 2, workers
    assert not list(run.rglob("*.tmp"))


# --------------------------------------------------------------------------- cache writers and readers
def _cache_worker(folder: str, seed: int, seconds: float, q) -> None:
    from repbench.cache import STATS, ArrayCache

    cache = ArrayCache(folder, "stress")
    rng = np.random.default_rng(seed)
    bad = 0
    t0 = time.time()
    while time.time() - t0 < seconds:
        k = int(rng.integers(0, 4))  # 4 shared keys: every entry is written by every process
        spec = {"key": k}
        want = np.full((300, 300), float(k)) + np.arange(300)[None, :]
        if rng.random() < 0.5:
            cache.put(spec, {"K": want, "n": np.array([k])})
        got = cache.get(spec, {"K": (300, 300), "n": (1,)})
        if got is not None and not (np.array_equal(got["K"], want) and got["n"][0] == k):
            bad += 1
    q.put((bad, STATS["stress.corrupt"], STATS["stress.hit"], STATS["stress.put"]))


def test_concurrent_cache_writers_never_produce_a_damaged_entry(tmp_path):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_cache_worker, args=(str(tmp_path / "cache"), s, 4.0, q)) for s in range(4)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(bad == 0 and corrupt == 0 for bad, corrupt, _, _ in results), results
    assert sum(r[2] for r in results) > 20 and sum(r[3] for r in results) > 20, results  # it did overlap
    from repbench.cache import ArrayCache

    cache = ArrayCache(tmp_path / "cache", "final")
    for k in range(4):
        got = cache.get({"key": k}, {"K": (300, 300), "n": (1,)})
        assert got is not None and got["n"][0] == k
    assert not list((tmp_path / "cache").glob("*.tmp"))


# --------------------------------------------------------------------------- run.yaml updates
def _status_worker(run: str, w: int, n: int) -> None:
    rd = RunDir(Path(run))
    for i in range(n):
        rd.update_status(f"w{w}-{i}", "done", worker=w)


def _yaml_reader(path: str, seconds: float, q) -> None:
    bad, reads = 0, 0
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            doc = yaml.safe_load(Path(path).read_text())
            if not (isinstance(doc, dict) and "config" in doc and "status" in doc):
                bad += 1
        except yaml.YAMLError:
            bad += 1
        reads += 1
    q.put((bad, reads))


def test_concurrent_run_yaml_updates_lose_nothing(work):
    run = copy_of(work, "fixed", "run_status")
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    reader = ctx.Process(target=_yaml_reader, args=(str(run / "run.yaml"), 3.0, q))
    reader.start()
    writers = [ctx.Process(target=_status_worker, args=(str(run), w, 15)) for w in range(4)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0
    bad, reads = q.get(timeout=60)
    reader.join(timeout=30)
    assert bad == 0 and reads > 10, (bad, reads)
    status = RunDir(run).read_meta()["status"]
    assert {f"w{w}-{i}" for w in range(4) for i in range(15)} <= set(status)  # no update lost
    assert not list(run.glob("*.tmp"))
