"""Hostile and unlucky runtime conditions (issue 15, classes 4, 5, 6 and 7): the README's guarantees hold when
the file system refuses writes, the disk fills up, processes race or are signalled, a storage cannot be
reached, a run directory holds planted symbolic links, or a storage URL carries a password.

* **Filesystems** (class 4): a read-only run directory or plots folder, and a full disk while `prepare`,
  `curve` or `tune` write, end in ONE error line (`error: WHERE: WHAT (HOW TO FIX)`, exit 2) that names
  what could not be written and how to fix it; finished work is kept and the study can be resumed.
  A read-only file system and a full disk are simulated in-process (these tests also run as root, where
  chmod does not stop writes): an audit hook makes Python's write operations below one folder fail with
  EROFS or ENOSPC, and SQLite failures are injected into optuna's storage.
* **Concurrency and signals** (class 5): racing `prepare`s, `prepare --force` against a running stage,
  SIGTERM to `tune --jobs 2`, a killed `report --plots`, `tune --show`, Ctrl-C or SIGTERM during an HDF5
  write.
* **Recovery** (class 7): failures that have nothing to do with the trial parameters (a full disk, an
  invalid timeout) never use up a study; a storage that cannot be reached is never called damaged.
* **Links and secrets** (class 6): a planted `.lock-*` or `tune/study.db` symbolic link never has its
  target touched; a PostgreSQL password appears in no output and no file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import yaml
from click.testing import CliRunner

ERROR_LINE = re.compile(r"^error: \S.*: .+ \(.+\)$")  # "error: WHERE: WHAT (HOW TO FIX)"

FIXED = {
    "name": "hostile",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 60},
    "splits": {"test": 15, "train_sizes": [10, 20], "draws": 1, "inner_folds": 2},
    "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
    "time": {"repeats": 1, "n_structures": 10, "sizes": [20]},
}
TUNE = {
    "name": "hostiletune",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 60},
    "splits": {"test": 15, "train_sizes": [10, 20], "draws": 1, "tune_train": 20, "tune_val": 10,
               "inner_folds": 2},
    "representation": {"soap": {"r_cut": {"choice": [3.0, 3.5]}, "n_max": {"int": [2, 3]}, "l_max": 1,
                                "sigma": {"loggrid": [-2, 0, 3]}}},
    "tune": {"trials": 3, "n_startup_trials": 2},
}
SECRET = "s3cret"


# --------------------------------------------------------------------------- simulated file-system faults
_FAULT: dict = {}  # {"root": absolute folder, "errno": int} while a fault is active
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_WRITE_EVENTS = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.chmod", "os.truncate", "os.link",
                 "os.symlink", "os.utime", "shutil.rmtree")


def _under(p, root: str) -> bool:
    if isinstance(p, int) or p is None:
        return False
    try:
        p = os.path.abspath(os.fsdecode(p))
    except TypeError:
        return False
    return p == root or p.startswith(root + os.sep)


def _audit(event: str, args: tuple) -> None:
    """Make Python's write operations below ``_FAULT["root"]`` fail as on a read-only or full file system
    (reads, and writes elsewhere, go through).  Operations relative to a directory descriptor are judged by
    the operation that opened it (``shutil.rmtree`` is one event for the whole tree)."""
    if not _FAULT:
        return
    root, code = _FAULT["root"], _FAULT["errno"]
    if event == "open":
        path, mode, flags = args
        write = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        paths = [path] if write else []
    elif event in _WRITE_EVENTS:
        if event in ("os.remove", "os.rmdir") and args[-1] not in (-1, None):
            return
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        if event == "os.mkdir" and paths and os.path.exists(paths[0]):
            return  # mkdir of an existing folder fails with EEXIST on a read-only file system too
    else:
        return
    for p in paths:
        if _under(p, root):
            raise OSError(code, os.strerror(code), os.fsdecode(p))


sys.addaudithook(_audit)  # inert while _FAULT is empty (audit hooks cannot be removed)


@contextlib.contextmanager
def fs_fault(root: Path, code: int):
    _FAULT.update(root=str(Path(root).absolute()), errno=code)
    try:
        yield
    finally:
        _FAULT.clear()


# --------------------------------------------------------------------------- helpers
def cli(args: list[str]):
    from repbench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(res) -> str:
    """Exit status 2, no traceback, ONE line `error: WHERE: WHAT (HOW TO FIX)` on stderr."""
    assert not (res.exception and not isinstance(res.exception, SystemExit)), \
        f"uncaught {res.exception!r}\n{res.output}"
    assert res.exit_code == 2, f"exit status {res.exit_code}\n{res.output}"
    assert "Traceback" not in res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), res.stderr
    return lines[0]


def ok(res):
    assert res.exit_code == 0 and not (res.exception and not isinstance(res.exception, SystemExit)), \
        f"{res.exception!r}\n{res.output}"
    return res


def cmd(*args) -> list[str]:
    return [sys.executable, "-m", "repbench", *[str(a) for a in args]]


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            p = Path(dirpath) / f
            if p.name.startswith(".lock-") and p.lstat().st_size == 0:
                continue  # empty stage locks may be created
            out[str(p)] = (p.lstat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def study_of(run: Path):
    import optuna

    from repbench import tuning
    from repbench.rundir import RunDir

    rd = RunDir(run)
    return optuna.load_study(study_name=rd.study_name(rd.config()), storage=tuning.default_storage(rd))


def counted(trials) -> int:
    return sum(t.state.name == "COMPLETE" or "error" in t.user_attrs for t in trials)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Prepared run directories: ``fixed`` (no search space), ``done`` (``fixed`` with its curve) and
    ``tune`` (a search space)."""
    from repbench.curve import run_curve
    from repbench.prepare import prepare
    from repbench.rundir import RunDir

    w = tmp_path_factory.mktemp("hostile")
    for name, cfg in (("fixed", FIXED), ("tune", TUNE)):
        (w / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        prepare(w / f"{name}.yaml", run_dir=w / name)
    shutil.copytree(w / "fixed", w / "done")
    run_curve(RunDir(w / "done"), progress=False)
    return w


@pytest.fixture
def copy(base, tmp_path):
    def make(which: str) -> Path:
        shutil.copytree(base / which, tmp_path / which)
        return tmp_path / which
    return make


# =========================================================================== class 4: filesystems
@pytest.mark.parametrize("args", [["curve", "{run}", "--no-plot"], ["time", "{run}"]], ids=["curve", "time"])
def test_read_only_run_directory_is_one_error_line(args, copy):
    run = copy("fixed")
    before = snapshot(run)
    with fs_fault(run, errno.EROFS):
        line = one_error_line(cli([a.replace("{run}", str(run)) for a in args]))
    assert "read-only" in line and str(run) in line and "writable" in line, line
    assert snapshot(run) == before


def test_read_only_run_directory_tune_is_one_error_line(copy):
    run = copy("tune")
    with fs_fault(run, errno.EROFS):
        line = one_error_line(cli(["tune", run]))
    assert "read-only" in line and "writable" in line, line
    assert not (run / "tune").exists()


def test_read_only_plots_folder_of_curve_keeps_the_curve(copy):
    """The curve is computed and kept; drawing into a read-only plots folder is one clear error."""
    run = copy("fixed")
    (run / "plots").mkdir()
    with fs_fault(run / "plots", errno.EROFS):
        line = one_error_line(cli(["curve", run]))
    assert "read-only" in line and "plots" in line and "--no-plot" in line, line
    assert (run / "curve.yaml").exists() and not list((run / "plots").iterdir())
    assert not tmp_files(run)


@pytest.mark.parametrize("sub", ["", "new/sub"], ids=["folder", "missing-subfolder"])
def test_report_into_a_read_only_plots_folder(sub, copy, tmp_path):
    run = copy("done")
    out = tmp_path / "figures"
    out.mkdir()
    with fs_fault(out, errno.EROFS):
        line = one_error_line(cli(["report", run, "--format", "csv", "--plots", out / sub]))
    assert "read-only" in line and str(out) in line, line
    assert not list(out.iterdir())


def test_full_disk_while_curve_writes_its_points(copy):
    """ENOSPC when a finished point is written: one line, nothing half-written, and the re-run completes."""
    run = copy("fixed")
    (run / "curve").mkdir()
    with fs_fault(run / "curve", errno.ENOSPC):
        line = one_error_line(cli(["curve", run, "--no-plot"]))
    assert "disk full" in line and "free some disk space" in line, line
    assert not tmp_files(run) and not list((run / "curve").iterdir())
    ok(cli(["curve", run, "--no-plot"]))
    assert len(list((run / "curve").glob("*.yaml"))) == 2


def test_full_disk_while_prepare_creates_the_run_directory(base, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with fs_fault(runs, errno.ENOSPC):
        line = one_error_line(cli(["prepare", base / "fixed.yaml", "--run-dir", runs / "new"]))
    assert "disk full" in line and "free some disk space" in line, line
    assert not list(runs.iterdir())
    ok(cli(["prepare", base / "fixed.yaml", "--run-dir", runs / "new"]))


def _sqlite_error(message: str):
    import sqlalchemy.exc

    return sqlalchemy.exc.OperationalError("UPDATE trials SET state=?", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize("message,expect", [("database or disk is full", "disk full"),
                                            ("attempt to write a readonly database", "read-only")])
def test_study_that_cannot_be_written_is_one_error_line_and_resumes(message, expect, copy, monkeypatch):
    """SQLite fails when a trial's result is stored (a full disk, a read-only file): one clear line; the
    study is intact, the trial that could not be stored is not counted, and the re-run completes."""
    from optuna.storages import RDBStorage

    run = copy("tune")
    real = RDBStorage.set_trial_state_values

    def failing(self, trial_id, state, values=None):
        if state.name == "COMPLETE":
            raise _sqlite_error(message)
        return real(self, trial_id, state, values)

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", failing)
    line = one_error_line(cli(["tune", run]))
    assert expect in line and "study.db" in line and "re-run" in line, line
    assert "damaged" not in line and "lost" not in line
    monkeypatch.undo()
    ok(cli(["tune", run]))
    ts = study_of(run).get_trials(deepcopy=False)
    assert counted(ts) == 3 and not [t for t in ts if t.state.name == "RUNNING"]


# =========================================================================== class 5: concurrency, signals
def _race_inside_build(monkeypatch, winner_args):
    """While the loser's prepare reads its dataset, the winner's prepare creates the run directory."""
    from repbench import prepare as P

    real = P.build

    def build(cfg):
        out = real(cfg)
        monkeypatch.setattr(P, "build", real)
        ok(cli(winner_args))
        return out

    monkeypatch.setattr(P, "build", build)


def _data_matches_run_yaml(run: Path) -> str:
    meta = yaml.safe_load((run / "run.yaml").read_text())
    with h5py.File(run / "data.h5", "r") as f:
        assert f.attrs["data_hash"] == meta["data_hash"]
    return meta["config"]["name"]


def test_prepare_race_of_different_configs_loser_gets_one_error_line(base, tmp_path, monkeypatch):
    other = {**FIXED, "name": "other", "seed": 7}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    run = tmp_path / "run"
    _race_inside_build(monkeypatch, ["prepare", tmp_path / "other.yaml", "--run-dir", run])
    line = one_error_line(cli(["prepare", base / "fixed.yaml", "--run-dir", run]))
    assert "at the same time" in line and str(run) in line, line
    assert _data_matches_run_yaml(run) == "other"
    assert not tmp_files(tmp_path)


def test_prepare_race_of_identical_configs_both_succeed(base, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _race_inside_build(monkeypatch, ["prepare", base / "fixed.yaml", "--run-dir", run])
    res = ok(cli(["prepare", base / "fixed.yaml", "--run-dir", run]))
    assert "up to date" in res.stdout
    assert _data_matches_run_yaml(run) == "hostile"
    assert not tmp_files(tmp_path)


def test_two_prepare_processes_race_into_one_new_run_directory(base, tmp_path):
    """Real processes started together, different configs: exactly one wins; the other gives one line."""
    other = {**FIXED, "name": "other", "seed": 7}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    run = tmp_path / "run"
    ps = [subprocess.Popen(cmd("prepare", c, "--run-dir", run), cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
          for c in (base / "fixed.yaml", tmp_path / "other.yaml")]
    res = [(p.wait(timeout=300), *p.communicate()) for p in ps]
    codes = sorted(r[0] for r in res)
    assert codes == [0, 2], res
    loser = next(r for r in res if r[0] == 2)
    assert "Traceback" not in loser[2]
    lines = [x for x in loser[2].splitlines() if x.strip()]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), loser[2]
    winner = "hostile" if res[0][0] == 0 else "other"
    assert _data_matches_run_yaml(run) == winner
    assert not tmp_files(tmp_path)


def _wait_for_lock(run: Path, stage: str, p: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while True:
        with contextlib.suppress(OSError):
            if (run / f".lock-{stage}").read_text().startswith(f"pid {p.pid} "):
                return
        assert p.poll() is None, p.communicate()[1]
        assert time.time() - t0 < timeout
        time.sleep(0.03)


def test_prepare_force_is_refused_while_curve_runs(base, copy, tmp_path):
    """`prepare --force` must not pull the files away under a running `curve`: it refuses, changes nothing,
    and the curve completes."""
    run = copy("fixed")
    other = {**FIXED, "seed": 7}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    a = subprocess.Popen(cmd("curve", run, "--no-plot"), cwd=tmp_path, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(run, "curve", a)
        os.kill(a.pid, signal.SIGSTOP)
        before = snapshot(run)
        line = one_error_line(cli(["prepare", tmp_path / "other.yaml", "--run-dir", run, "--force"]))
        after = snapshot(run)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    err = a.communicate(timeout=300)[1]
    assert a.returncode == 0 and "Traceback" not in err, err
    assert "already running" in line and "curve" in line and f"pid {a.pid}" in line, line
    assert before == after
    _data_matches_run_yaml(run)
    assert (run / "curve.yaml").exists()


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _running_trials(run: Path) -> int:
    db = run / "tune" / "study.db"
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)) as c:
            return c.execute("SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
    except sqlite3.Error:
        return 0


_SLOW_TRIALS = """
import time

import repbench.tuning as tuning

_real = tuning.objective_values


def objective_values(*a, **k):  # long enough that the SIGTERM surely lands inside a running trial
    time.sleep(3)
    return _real(*a, **k)


tuning.objective_values = objective_values
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigterm_to_tune_jobs_2_stops_the_workers_and_leaves_the_study_consistent(copy, tmp_path):
    """SIGTERM to `tune --jobs 2` while both workers run a trial: the workers stop (none is left running),
    the command exits 143 without a traceback, both running trials are failed as interrupted (not counted),
    nothing is left RUNNING, and the re-run continues the study.  (The trials are slowed down through a
    sitecustomize module that the workers inherit.)"""
    run = copy("tune")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SLOW_TRIALS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.Popen(cmd("tune", run, "--jobs", "2", "--trials", "60"), cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        t0 = time.time()
        while _running_trials(run) < 2 and time.time() - t0 < 120:
            assert p.poll() is None, p.communicate()[1]
            time.sleep(0.05)
        kids = _children(p.pid)
        assert len(kids) == 2, kids
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
        err = p.stderr.read()
        t0 = time.time()
        while any(_alive(k) for k in kids) and time.time() - t0 < 10:
            time.sleep(0.05)
        assert not [k for k in kids if _alive(k)], "tune workers still running after SIGTERM"
        assert rc == 143, (rc, err)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert err.count("interrupted") == 1, err  # reported once, by the command (not by each worker)
    finally:
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        if p.poll() is None:
            p.kill()
    ts = study_of(run).get_trials(deepcopy=False)
    assert not [t for t in ts if t.state.name == "RUNNING"]
    interrupted = [t for t in ts if t.user_attrs.get("interrupted")]
    assert len(interrupted) == 2 and all(t.state.name == "FAIL" and "error" not in t.user_attrs
                                         for t in interrupted), [(t.state, t.user_attrs) for t in ts]
    n = counted(ts)
    assert n == 0
    ok(cli(["tune", run, "--trials", 2]))
    assert counted(study_of(run).get_trials(deepcopy=False)) == 2


def test_report_plots_removes_the_temporary_files_of_a_killed_report(copy, tmp_path):
    """A SIGKILLed `report --plots DIR` leaves its temporary figure in DIR; the next report removes it
    (and leaves the files of a live process and other files alone)."""
    from repbench.rundir import tmp_prefix

    run = copy("done")
    out = tmp_path / "figures"
    out.mkdir()
    host = tmp_prefix("x")[len(".x."):].rsplit("-", 1)[0]
    stale = [out / f".learning_curves.png.{host}-{dead_pid()}.k2j4.tmp",
             out / f".error_vs_cost.svg.{host}-{dead_pid()}.zz.tmp"]
    keep = [out / f".learning_curves.svg.{host}-{os.getpid()}.live.tmp", out / "notes.tmp"]
    for p in stale + keep:
        p.write_bytes(b"partial")
    ok(cli(["report", run, "--format", "csv", "--plots", out]))
    assert not [p for p in stale if p.exists()]
    assert all(p.exists() for p in keep)
    assert (out / "learning_curves.png").exists()


def test_tune_show_without_a_study_creates_nothing(copy):
    run = copy("tune")
    before = snapshot(run)
    line = one_error_line(cli(["tune", run, "--show"]))
    assert "no tuning study" in line and "repbench tune" in line, line
    assert not (run / "tune").exists() and snapshot(run) == before


_INTERRUPT_DURING_WRITE = """
import os, signal, sys
from repbench import rundir
from repbench.cli import main

real = rundir.write_splits

class Finaliser:  # the signal arrives while a finaliser runs, as when h5py closes its objects
    def __del__(self):
        os.kill(os.getpid(), signal.{sig})

def write_splits(g, sp):
    real(g, sp)
    f = Finaliser()
    del f

rundir.write_splits = write_splits
main(sys.argv[1:], prog_name="repbench")
"""


@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_during_the_hdf5_write_of_prepare_is_never_swallowed(sig, code, base, tmp_path):
    run = tmp_path / "runs" / "new"
    p = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_WRITE.replace("{sig}", sig),
                        "prepare", str(base / "fixed.yaml"), "--run-dir", str(run)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Exception ignored" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert "interrupted" in p.stderr
    assert not run.exists() and not tmp_files(tmp_path)


# =========================================================================== class 7: recovery
def test_full_disk_during_trials_does_not_use_up_the_study(copy, monkeypatch):
    """Trials that fail because the disk is full are not counted: the re-run after freeing space completes
    the study (instead of "no trial completed" forever)."""
    from repbench import rundir

    class Usage:
        free = 10 * 2**10

    run = copy("tune")
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: Usage)
    line = one_error_line(cli(["tune", run]))
    assert "disk full" in line and "not counted" in line and "repbench tune" in line, line
    monkeypatch.undo()
    ok(cli(["tune", run]))
    ts = study_of(run).get_trials(deepcopy=False)
    assert sum(t.state.name == "COMPLETE" for t in ts) == 3 and counted(ts) == 3


@pytest.mark.parametrize("option,value", [("--trial-timeout", "-1"), ("--trial-timeout", "nan"),
                                          ("--trial-timeout", "inf"), ("--timeout", "-5"),
                                          ("--timeout", "nan")])
def test_invalid_timeouts_are_refused_before_the_study_starts(option, value, copy):
    run = copy("tune")
    line = one_error_line(cli(["tune", run, option, value]))
    assert option in line, line
    assert not (run / "tune" / "study.db").exists()


def test_a_study_whose_trials_all_failed_says_how_to_continue(copy, monkeypatch):
    from repbench import tuning

    run = copy("tune")

    def broken(*a, **k):
        raise ValueError("a bug that is fixed later")

    monkeypatch.setattr(tuning, "objective_values", broken)
    line = one_error_line(cli(["tune", run]))
    assert "no trial completed" in line and "--trials 6" in line, line
    monkeypatch.undo()
    line = one_error_line(cli(["tune", run]))  # the study is complete (3 failed): the same advice
    assert "--trials 6" in line, line
    ok(cli(["tune", run, "--trials", "6"]))
    assert (run / "tune" / "best.yaml").exists()


def test_storage_in_a_missing_folder_is_not_called_damaged(copy, tmp_path):
    run = copy("tune")
    line = one_error_line(cli(["tune", run, "--storage", f"sqlite:///{tmp_path}/missing/study.db"]))
    assert "does not exist" in line and str(tmp_path / "missing") in line, line
    assert "damaged" not in line and "lost" not in line and "move it away" not in line


def test_intact_study_on_a_full_disk_is_not_called_damaged(copy, monkeypatch):
    import optuna.storages

    run = copy("tune")
    ok(cli(["tune", run, "--trials", "1"]))
    before = (run / "tune" / "study.db").read_bytes()

    def full(*a, **k):
        raise _sqlite_error("database or disk is full")

    monkeypatch.setattr(optuna.storages, "RDBStorage", full)
    line = one_error_line(cli(["tune", run]))
    assert "disk full" in line and "free some disk space" in line, line
    assert "damaged" not in line and "lost" not in line and "move it away" not in line
    assert (run / "tune" / "study.db").read_bytes() == before


def test_damaged_study_is_still_called_damaged(copy):
    run = copy("tune")
    (run / "tune").mkdir()
    (run / "tune" / "study.db").write_bytes(b"this is not a database" * 100)
    line = one_error_line(cli(["tune", run]))
    assert "damaged" in line or "not an SQLite" in line, line


# =========================================================================== class 6: links and secrets
@pytest.mark.parametrize("lock,args", [
    (".lock-curve", ["curve", "{run}", "--no-plot"]),
    (".lock-run-yaml", ["curve", "{run}", "--no-plot"]),
    (".lock-time", ["time", "{run}"]),
    (".lock-prepare", ["prepare", "{cfg}", "--run-dir", "{run}", "--force"]),
], ids=["curve", "run-yaml", "time", "prepare"])
def test_a_lock_file_symlinked_outside_is_never_followed(lock, args, base, copy, tmp_path):
    run = copy("fixed")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / lock).symlink_to(victim)
    other = {**FIXED, "seed": 7}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    mapping = {"{run}": str(run), "{cfg}": str(tmp_path / "other.yaml")}
    line = one_error_line(cli([mapping.get(a, a) for a in args]))
    assert "symbolic link" in line and lock in line, line
    assert victim.read_text() == "precious\n"


def test_a_study_file_symlinked_outside_is_never_opened(copy, tmp_path):
    run = copy("tune")
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"")
    (run / "tune").mkdir()
    (run / "tune" / "study.db").symlink_to(victim)
    for args in (["tune", run], ["tune", run, "--show"]):
        line = one_error_line(cli(args))
        assert "symbolic link" in line, line
    assert victim.read_bytes() == b""


def test_prepare_force_removes_a_symlinked_result_folder_not_its_target(base, copy, tmp_path):
    run = copy("done")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.yaml").write_text("mine: 1\n")
    shutil.rmtree(run / "curve")
    (run / "curve").symlink_to(outside, target_is_directory=True)
    other = {**FIXED, "seed": 7}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    ok(cli(["prepare", tmp_path / "other.yaml", "--run-dir", run, "--force"]))
    assert (outside / "keep.yaml").read_text() == "mine: 1\n"
    assert not (run / "curve").exists() and not (run / "curve").is_symlink()


def test_stale_temporary_files_are_never_removed_through_a_symlinked_folder(copy, tmp_path):
    from repbench.rundir import tmp_prefix

    run = copy("fixed")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    host = tmp_prefix("x")[len(".x."):].rsplit("-", 1)[0]
    victim = outside / f".entry.h5.{host}-{dead_pid()}.abc.tmp"
    victim.write_bytes(b"not repbench's")
    (run / "linked").symlink_to(outside, target_is_directory=True)
    ok(cli(["curve", run, "--no-plot"]))
    assert victim.exists()


@pytest.mark.parametrize("url", [f"postgresql://user:{SECRET}@127.0.0.1:1/db",
                                 f"postgresql+psycopg2://user:{SECRET}@127.0.0.1:1/db",
                                 f"postgresql://user@127.0.0.1:1/db?password={SECRET}&sslmode=bogus"],
                         ids=["psycopg", "missing-driver", "query-password"])
def test_a_storage_password_appears_in_no_output_or_file(url, copy, tmp_path):
    run = copy("tune")
    for args in (["tune", run, "--storage", url], ["-v", "tune", run, "--storage", url, "--jobs", "2"],
                 ["tune", run, "--show", "--storage", url]):
        res = cli(args)
        line = one_error_line(res)
        assert SECRET not in res.output and SECRET not in res.stderr, res.stderr
        assert "***" in line, line
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p
