"""The bad-input corpus (tests/bad_inputs/): every case ends in ONE clear error line, exit status 2, no
traceback, and leaves every file as it was (no file created, changed or half-written, no ``*.tmp``).

A damaged *cache* entry is the one exception: it is reported (a warning), deleted and recomputed, and the
results equal those computed with a clean cache.

The ~100 command lines run through ``bad_inputs/forkrun.py`` (imports once, one forked process per command
line, real exit status and stderr); ``test_forkrun_matches_python_m_repbench`` checks on a sample that it
gives exactly what ``python -m repbench`` gives.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

HERE = Path(__file__).parent / "bad_inputs"
CASES = yaml.safe_load((HERE / "cases.yaml").read_text())
GOOD = HERE / "good.yaml"

_spec = importlib.util.spec_from_file_location("bad_inputs_builders", HERE / "builders.py")
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)

ERROR_LINE = re.compile(r"^error: \S.*: .+ \(.+\)$")  # "error: WHERE: WHAT (HOW TO FIX)"


# --------------------------------------------------------------------------- running commands
class ForkRunner:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "forkrun.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def __call__(self, args: list[str], cwd: Path, logs: Path) -> tuple[int, str, str]:
        logs.mkdir(parents=True, exist_ok=True)
        out, err = logs / "stdout", logs / "stderr"
        job = {"args": args, "cwd": str(cwd), "out": str(out), "err": str(err)}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)["rc"], out.read_text(), err.read_text()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def run_cmd():
    r = ForkRunner()
    yield r
    r.close()


def python_m_repbench(args: list[str], cwd: Path) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "repbench", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------- file-tree snapshots
def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file (hidden ones too) and folder under ``roots``: size, mtime and content hash."""
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            out[dirpath] = ("dir",)
            for f in filenames:
                p = Path(dirpath) / f
                st = p.lstat()
                out[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def assert_unchanged(before: dict, after: dict) -> None:
    """Nothing removed, changed or added, except empty ``.lock-<stage>`` files (the stage locks, which a
    command may create or take; they never hold data)."""
    before, after = dict(before), dict(after)
    for d in (before, after):
        for k in [k for k in d if Path(k).name.startswith(".lock-") and d[k][0] == 0]:
            d.pop(k)
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    added = sorted(set(after) - set(before))
    assert not removed and not changed and not added, f"removed {removed}, changed {changed}, added {added}"
    tmp = [k for k in after if k.endswith(".tmp") or ".tmp" in Path(k).name]
    assert not tmp, f"temporary files left: {tmp}"


def check_error(rc: int, out: str, err: str, expect: list[str]) -> str:
    """ONE clear error line: exit status 2, no traceback, what + where + how to fix."""
    assert "Traceback" not in out + err, err
    assert rc == 2, f"exit status {rc}\nstdout: {out}\nstderr: {err}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    line = lines[0]
    assert ERROR_LINE.match(line), f"not 'error: WHERE: WHAT (HOW TO FIX)': {line}"
    for e in expect:
        assert e in line, f"{e!r} not in {line!r}"
    return line


# --------------------------------------------------------------------------- the good run directory
@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A prepared run directory of tests/bad_inputs/good.yaml (the cases damage copies of it)."""
    from repbench.prepare import prepare

    rd, _ = prepare(GOOD, run_dir=tmp_path_factory.mktemp("good") / "run")
    return rd.path


def _subst(x, mapping: dict[str, str]):
    if isinstance(x, str):
        for k, v in mapping.items():
            x = x.replace("{" + k + "}", v)
        return x
    if isinstance(x, list):
        return [_subst(v, mapping) for v in x]
    if isinstance(x, dict):
        return {k: _subst(v, mapping) for k, v in x.items()}
    return x


def setup_case(case: dict, tmp_path: Path, request) -> tuple[list[str], Path, dict]:
    """Build what the case needs under tmp_path; returns (args, the run dir path, placeholder values)."""
    work = tmp_path / "work"
    work.mkdir()
    run = work / "run"
    mapping = {"configs": str(HERE / "configs"), "data": str(HERE / "data"), "run": str(run),
               "good": str(GOOD)}
    kind = case["kind"]
    if kind == "shared":
        shared = request.getfixturevalue("shared_data").resolve()
        built = tmp_path / "built"
        built.mkdir()
        mapping["built"] = str(builders.SHARED[case["build"]](shared, built))
    if kind == "rundir" and "break" in case:
        shutil.copytree(request.getfixturevalue("good_run"), run)
        builders.BREAKERS[case["break"]](run)
    if "args" in case:
        args = _subst(case["args"], mapping)
    elif kind == "config":
        args = ["prepare", str(HERE / "configs" / case["config"]), "--run-dir", str(run)]
    else:  # data, shared: the good config with this dataset section
        cfg = yaml.safe_load(GOOD.read_text())
        cfg["dataset"] = _subst(case["dataset"], mapping)
        cfg["name"] = case["id"]
        p = work / "case.yaml"
        p.write_text(yaml.safe_dump(cfg, sort_keys=False))
        args = ["prepare", str(p), "--run-dir", str(run)]
    return args, run, mapping


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case, tmp_path, request, run_cmd):
    args, run, _ = setup_case(case, tmp_path, request)
    existed = run.exists()
    before = snapshot(tmp_path, HERE)
    rc, out, err = run_cmd(args, tmp_path / "work", tmp_path / "logs")
    check_error(rc, out, err, case["expect"])
    after = snapshot(tmp_path, HERE)
    for d in (before, after):  # the command's own stdout/stderr files
        for k in [k for k in d if k.startswith(str(tmp_path / "logs"))]:
            d.pop(k)
    assert_unchanged(before, after)
    if not existed:
        assert not run.exists(), "a run directory was created for a failing command"


def test_corpus_size():
    kinds = {k: sum(1 for c in CASES if c["kind"] == k) for k in ("config", "data", "shared", "rundir")}
    assert len(CASES) >= 30 and len({c["id"] for c in CASES}) == len(CASES)
    assert all(v >= 5 for v in kinds.values()), kinds


SAMPLE = ["config-unknown-target", "file-nan-target", "rundir-data-truncated-tune"]


@pytest.mark.parametrize("case_id", SAMPLE)
def test_forkrun_matches_python_m_repbench(case_id, tmp_path, request, run_cmd):
    """The fork server gives exactly what `python -m repbench` gives (status, stdout, stderr)."""
    case = next(c for c in CASES if c["id"] == case_id)
    args, run, _ = setup_case(case, tmp_path, request)
    if run.exists():
        shutil.copytree(run, tmp_path / "copy")
    a = run_cmd(args, tmp_path / "work", tmp_path / "logs")
    if (tmp_path / "copy").exists():
        shutil.rmtree(run)
        shutil.copytree(tmp_path / "copy", run)
    b = python_m_repbench(args, tmp_path / "work")
    assert a == b


# --------------------------------------------------------------------------- damaged cache entries
FIXED = {
    "name": "cached",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 120},
    "splits": {"test": 30, "train_sizes": [15, 30], "draws": 2, "inner_folds": 2},
    "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
}


@pytest.fixture(scope="module")
def clean_curve(tmp_path_factory, run_cmd):
    """A run whose curve was computed with an empty cache: (run dir, curve.yaml)."""
    tmp = tmp_path_factory.mktemp("cached")
    cfg = tmp / "cached.yaml"
    cfg.write_text(yaml.safe_dump(FIXED))
    run = tmp / "run"
    for args in (["prepare", str(cfg), "--run-dir", str(run)], ["curve", str(run), "--no-plot"]):
        rc, out, err = run_cmd(args, tmp, tmp / "logs")
        assert rc == 0, err
    return run, yaml.safe_load((run / "curve.yaml").read_text())


def _entries(run: Path, which: str) -> list[Path]:
    return sorted((run / "cache" / which).glob("*.h5"))


def _recompute_and_compare(run: Path, reference: dict, damaged: list[Path], run_cmd, tmp_path: Path) -> None:
    rc, out, err = run_cmd(["curve", str(run), "--no-plot"], tmp_path, tmp_path / "logs")
    assert rc == 0 and "Traceback" not in err, err
    # reported: a warning per damaged entry, naming it (rich may wrap long lines: compare without spaces)
    flat = "".join(err.split())
    for p in damaged:
        assert p.stem in flat, f"no warning names {p.name}:\n{err}"
    assert "damaged" in err and "recomputing" in err
    # recomputed, not trusted: identical results, and every entry now reads back cleanly
    doc = yaml.safe_load((run / "curve.yaml").read_text())
    assert doc["sizes"] == reference["sizes"]
    for p in _entries(run, "representations") + _entries(run, "kernels"):
        with h5py.File(p, "r") as f:
            for k in f:
                f[k][()]  # Fletcher-32 verified on read
    assert not list(run.rglob("*.tmp"))


def _fresh_copy(src: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(src, run)
    shutil.rmtree(run / "curve")
    (run / "curve.yaml").unlink()
    return run


@pytest.mark.parametrize("damage", sorted(builders.CACHE_DAMAGE))
def test_damaged_representation_entry_is_recomputed(damage, clean_curve, tmp_path, run_cmd):
    src, reference = clean_curve
    run = _fresh_copy(src, tmp_path)
    entries = _entries(run, "representations")
    assert entries
    for p in entries:
        builders.CACHE_DAMAGE[damage](p)
    _recompute_and_compare(run, reference, entries, run_cmd, tmp_path)


def test_damaged_kernel_entries_are_recomputed(clean_curve, tmp_path, run_cmd):
    """Every kind of damage at once, each on other kernel entries, intact entries beside them."""
    src, reference = clean_curve
    run = _fresh_copy(src, tmp_path)
    entries = _entries(run, "kernels")
    kinds = sorted(builders.CACHE_DAMAGE)
    assert len(entries) >= 2 * len(kinds)
    damaged = entries[::2][: 2 * len(kinds)]
    for i, p in enumerate(damaged):
        builders.CACHE_DAMAGE[kinds[i % len(kinds)]](p)
    _recompute_and_compare(run, reference, damaged, run_cmd, tmp_path)


def test_damaged_curve_points_are_recomputed(clean_curve, tmp_path, run_cmd):
    """A damaged or incomplete finished point (curve/<size>-<draw>.yaml) is recomputed, not trusted."""
    src, reference = clean_curve
    run = tmp_path / "run"
    shutil.copytree(src, run)
    (run / "curve.yaml").unlink()
    pts = sorted((run / "curve").glob("*.yaml"))
    pts[0].write_text("model_hash: [unclosed\n")
    doc = yaml.safe_load(pts[1].read_text())
    del doc["metrics"]["mae"]
    pts[1].write_text(yaml.safe_dump(doc))
    pts[2].write_bytes(pts[2].read_bytes()[: 40])
    rc, out, err = run_cmd(["curve", str(run), "--no-plot"], tmp_path, tmp_path / "logs")
    assert rc == 0 and "Traceback" not in err, err
    flat = "".join(err.split())
    assert all(p.name in flat for p in pts[:2]), err
    assert yaml.safe_load((run / "curve.yaml").read_text())["sizes"] == reference["sizes"]


# --------------------------------------------------------------------------- resources: memory and disk
def _cli(args: list[str]):
    from click.testing import CliRunner

    from repbench.cli import main

    return CliRunner().invoke(main, args)


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), res.stderr
    return lines[0]


def test_check_memory_refuses_what_does_not_fit(monkeypatch):
    from repbench import workspace
    from repbench.errors import ResourceError

    monkeypatch.setattr(workspace, "available_memory", lambda: 2**30)
    workspace.check_memory(2**29, "half a GiB")  # fits
    with pytest.raises(ResourceError) as e:
        workspace.check_memory(workspace.estimate_kernel_bytes(20000, 20000, 3), "the 20000 x 20000 kernel")
    msg = e.value.format()
    assert "the 20000 x 20000 kernel needs 8.9 GiB but only 1.0 GiB of memory is available" in msg
    assert e.value.hint and e.value.exit_code == 2
    monkeypatch.setattr(workspace, "available_memory", lambda: None)  # unknown: never refuses
    workspace.check_memory(2**60, "anything")


@pytest.mark.parametrize("stage", ["curve", "time"])
def test_representation_that_does_not_fit_is_refused_before_computing(
        stage, clean_curve, tmp_path, monkeypatch):
    """`curve`/`time` on a run with an empty cache and (simulated) 64 KiB of free memory: exit 2 with one
    clear line, before any representation or kernel is computed, and nothing written."""
    from repbench import kernels, timing, workspace

    src, _ = clean_curve
    run = _fresh_copy(src, tmp_path)
    shutil.rmtree(run / "cache")
    before = snapshot(run)
    monkeypatch.setattr(workspace, "available_memory", lambda: 64 * 2**10)

    def must_not_run(*a, **k):
        raise AssertionError("computed although it does not fit")

    for mod in (workspace, timing):
        monkeypatch.setattr(mod, "compute", must_not_run)
    monkeypatch.setattr(kernels, "local_kernel", must_not_run)
    line = _one_error_line(_cli([stage, str(run)] + (["--no-plot"] if stage == "curve" else [])))
    assert "representation of" in line and "memory is available" in line and str(run) in line
    assert_unchanged(before, snapshot(run))


def test_kernel_that_does_not_fit_is_refused(clean_curve, tmp_path, monkeypatch):
    """Features fit (served by the cache), the kernel does not: refused before computing it."""
    from repbench import kernels, workspace
    from repbench.errors import ResourceError
    from repbench.rundir import RunDir

    src, _ = clean_curve
    ws = workspace.Workspace(RunDir(src), progress=False)
    rep = {"soap": dict(FIXED["representation"]["soap"])}
    pool = ws.splits.pool
    feats = ws.features(rep, pool)  # from the cache
    need = workspace.estimate_kernel_bytes(len(pool), len(pool), 2)
    monkeypatch.setattr(workspace, "available_memory", lambda: need // 2)
    monkeypatch.setattr(kernels, "local_kernel", lambda *a, **k: pytest.fail("kernel computed"))
    bank = ws.bank(rep, ws.cfg.kernel, pool, features=feats, features_index=pool)
    with pytest.raises(ResourceError, match=rf"the {len(pool)} x {len(pool)} kernel \(2 length scale"):
        bank.get([1.0, 2.0])


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_during_a_yaml_write_keeps_the_previous_file(where, tmp_path, monkeypatch):
    from repbench import rundir
    from repbench.errors import ResourceError

    p = tmp_path / "run" / "curve.yaml"
    rundir.write_yaml(p, {"previous": [1.0, 2.0]})
    before = p.read_bytes()
    if where == "write":
        real = Path.write_text

        def half_then_full(self, text, *a, **k):  # the disk fills up half-way through the file
            real(self, text[: len(text) // 2])
            _enospc()

        monkeypatch.setattr(Path, "write_text", half_then_full)
    else:
        monkeypatch.setattr(rundir.os, "fsync", _enospc)
    with pytest.raises(ResourceError) as e:
        rundir.write_yaml(p, {"new": list(range(1000))})
    monkeypatch.undo()
    assert p.read_bytes() == before  # the previous file is intact
    assert sorted(x.name for x in p.parent.iterdir()) == ["curve.yaml"]  # no temporary file left
    msg = e.value.format()
    assert "disk full while writing curve.yaml; the previous file is intact" in msg and e.value.hint


def test_full_disk_before_an_hdf5_write_keeps_the_previous_entry(tmp_path, monkeypatch):
    """HDF5 cannot recover from a full disk in mid-write, so an HDF5 file is only started when it fits."""
    import numpy as np

    from repbench import rundir
    from repbench.cache import ArrayCache
    from repbench.errors import ResourceError

    cache = ArrayCache(tmp_path / "cache", "kernels")
    cache.put({"k": 1}, {"K": np.ones((50, 50))})
    entry = cache.path({"k": 1})
    before = entry.read_bytes()

    class Usage:
        free = 100 * 2**10

    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: Usage)
    with pytest.raises(ResourceError, match="disk full: writing the kernels cache entry"):
        cache.put({"k": 1}, {"K": np.zeros((500, 500))})
    s_, sp_ = _tiny_structures_and_splits()
    with pytest.raises(ResourceError, match="disk full: writing data.h5"):
        rundir.RunDir(tmp_path / "newrun").write_data(s_, sp_, {})
    monkeypatch.undo()
    assert entry.read_bytes() == before
    assert sorted(x.name for x in (tmp_path / "cache").iterdir()) == [entry.name]
    assert not (tmp_path / "newrun" / "data.h5").exists()
    assert cache.get({"k": 1}, {"K": (50, 50)})["K"].sum() == 2500


def _tiny_structures_and_splits():
    import numpy as np

    from repbench.splits import Splits
    from repbench.structures import StructureSet, TargetInfo

    n = 4000
    s = StructureSet(name="t", z=np.ones(n * 3, int), positions=np.random.default_rng(0).random((n * 3, 3)),
                     offsets=np.arange(0, 3 * n + 1, 3), cells=np.zeros((n, 3, 3)),
                     pbc=np.zeros((n, 3), bool),
                     ids=np.arange(n).astype(str), targets={"e": np.zeros(n)},
                     target_info={"e": TargetInfo("eV", True)})
    sp = Splits(test=np.arange(10), pool=np.arange(10, n), train={}, tune_folds=[])
    return s, sp


def test_full_disk_in_a_command_is_one_clear_error(clean_curve, tmp_path, monkeypatch):
    from repbench import rundir

    src, _ = clean_curve
    run = _fresh_copy(src, tmp_path)
    shutil.rmtree(run / "cache")
    before = snapshot(run)

    class Usage:
        free = 10 * 2**10

    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: Usage)
    line = _one_error_line(_cli(["curve", str(run), "--no-plot"]))
    assert "disk full" in line and "nothing was written" in line
    after = snapshot(run)
    for d in (before, after):  # the (empty) cache folders the command created are fine
        for k in [k for k in d if d[k] == ("dir",)]:
            d.pop(k)
    assert_unchanged(before, after)
