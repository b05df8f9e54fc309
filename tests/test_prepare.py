"""`repbench prepare`: run directory contents, no-op re-run, refusal on a changed config, clean errors."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from repbench.cli import main
from repbench.rundir import RunDir

CFG = {
    "name": "prep",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 400},
    "splits": {"test": 100, "train_sizes": [20, 50], "draws": 2, "tune_train": 40, "tune_val": 10},
    "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
}


def _cfg(tmp_path, data=CFG, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_prepare_creates_run_dir_and_is_idempotent(tmp_path, monkeypatch):
    r = CliRunner()
    cfg = _cfg(tmp_path)
    rd = tmp_path / "run"
    res = r.invoke(main, ["prepare", str(cfg), "--run-dir", str(rd)])
    assert res.exit_code == 0, res.output
    meta = yaml.safe_load((rd / "run.yaml").read_text())
    assert meta["dataset"]["structures"] == 400 and meta["seed"] == 0
    assert {"repbench", "dscribe", "numpy", "optuna"} <= set(meta["versions"])
    s, sp, _ = RunDir(rd).read_data()
    assert len(s) == 400 and len(sp.test) == 100
    assert set(sp.test).isdisjoint(sp.all_training_indices())
    mtimes = {p.name: p.stat().st_mtime_ns for p in rd.iterdir()}
    # the re-run reads neither the dataset nor draws splits (how fast it is belongs to benchmarks/)
    import repbench.prepare as prep

    with monkeypatch.context() as mp:
        def no_rebuild(*a, **k):
            raise AssertionError("an up-to-date run directory was rebuilt")

        mp.setattr(prep, "build", no_rebuild)
        mp.setattr(prep, "load_structures", no_rebuild)
        res = r.invoke(main, ["prepare", str(cfg), "--run-dir", str(rd)])
    assert res.exit_code == 0 and "up to date" in res.output, res.output
    assert {p.name: p.stat().st_mtime_ns for p in rd.iterdir()} == mtimes  # nothing rewritten or added
    # changed config: refused without --force, accepted with it
    changed = _cfg(tmp_path, {**CFG, "seed": 1}, "d.yaml")
    res = r.invoke(main, ["prepare", str(changed), "--run-dir", str(rd)])
    assert res.exit_code == 2, res.output
    assert "prepared for other data" in res.output and "seed changed" in res.output, res.output
    res = r.invoke(main, ["prepare", str(changed), "--run-dir", str(rd), "--force"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((rd / "run.yaml").read_text())["seed"] == 1


def test_same_config_gives_identical_data(tmp_path):
    r = CliRunner()
    cfg = _cfg(tmp_path)
    for d in ("a", "b"):
        assert r.invoke(main, ["prepare", str(cfg), "--run-dir", str(tmp_path / d)]).exit_code == 0
    with h5py.File(tmp_path / "a" / "data.h5") as fa, h5py.File(tmp_path / "b" / "data.h5") as fb:
        for k in ("splits/test", "splits/train/50/1", "splits/tune/0/val", "structures/positions"):
            assert np.array_equal(fa[k][()], fb[k][()])


@pytest.mark.parametrize("kill_before", ["run.yaml", "data.h5"])
def test_force_interrupted_leaves_a_consistent_run_that_prepare_completes(tmp_path, monkeypatch, kill_before):
    """`prepare --force` interrupted before it writes the new run.yaml (or the new data.h5) never leaves a
    data.h5 beside the run.yaml of other data: the run directory is the old run (or the new one) without its
    data.h5, with the old results gone, and the next `prepare` completes it."""
    import repbench.prepare as prep

    r = CliRunner()
    cfg, changed = _cfg(tmp_path), _cfg(tmp_path, {**CFG, "seed": 1}, "d.yaml")
    rd = tmp_path / "run"
    assert r.invoke(main, ["prepare", str(cfg), "--run-dir", str(rd)]).exit_code == 0
    (rd / "curve.yaml").write_text("sizes: []\n")  # a result of the old data
    old_hash = yaml.safe_load((rd / "run.yaml").read_text())["data_hash"]

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        if kill_before == "run.yaml":
            mp.setattr(prep, "write_yaml", killed)
        else:
            mp.setattr(RunDir, "write_data", killed)
        res = r.invoke(main, ["prepare", str(changed), "--run-dir", str(rd), "--force"])
    assert res.exit_code != 0
    meta = yaml.safe_load((rd / "run.yaml").read_text())
    assert not (rd / "data.h5").exists() and not (rd / "curve.yaml").exists()
    assert (meta["data_hash"] == old_hash) == (kill_before == "run.yaml")
    # the next prepare completes the run the run.yaml names; --force then replaces it as asked
    again = cfg if kill_before == "run.yaml" else changed
    res = r.invoke(main, ["prepare", str(again), "--run-dir", str(rd)])
    assert res.exit_code == 0, res.output
    RunDir(rd).read_data()
    res = r.invoke(main, ["prepare", str(changed), "--run-dir", str(rd), "--force"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((rd / "run.yaml").read_text())["seed"] == 1 and RunDir(rd).read_data()


def test_missing_data_h5_is_rebuilt_and_results_kept(tmp_path):
    """A run directory copied or cloned without its data.h5 (results/ commits none) is restored by prepare:
    the same data (every split and structure array equal), finished results kept; if the dataset read now
    differs from the recorded one, nothing is written and the error names both content hashes."""
    r = CliRunner()
    cfg = _cfg(tmp_path)
    rd = tmp_path / "run"
    assert r.invoke(main, ["prepare", str(cfg), "--run-dir", str(rd)]).exit_code == 0
    with h5py.File(rd / "data.h5") as f:
        want = {k: f[k][()] for k in ("splits/test", "splits/train/50/1", "structures/positions")}
    (rd / "data.h5").unlink()
    (rd / "curve").mkdir()
    (rd / "curve" / "20-0.yaml").write_text("finished: yes\n")
    res = r.invoke(main, ["prepare", str(cfg), "--run-dir", str(rd)])
    assert res.exit_code == 0 and "data.h5 rebuilt (results kept)" in res.output, res.output
    with h5py.File(rd / "data.h5") as f:
        for k, v in want.items():
            assert np.array_equal(f[k][()], v), k
    assert (rd / "curve" / "20-0.yaml").read_text() == "finished: yes\n"
    # recorded content hash differs from the data read now: refused, nothing written
    (rd / "data.h5").unlink()
    meta = yaml.safe_load((rd / "run.yaml").read_text())
    meta["dataset"]["content_hash"] = "0123456789abcdef"
    (rd / "run.yaml").write_text(yaml.safe_dump(meta))
    res = r.invoke(main, ["prepare", str(cfg), "--run-dir", str(rd)])
    assert res.exit_code == 2 and "0123456789abcdef" in res.output and "Traceback" not in res.output, res.output
    assert not (rd / "data.h5").exists() and (rd / "curve" / "20-0.yaml").exists()


@pytest.mark.parametrize("bad,expect", [
    ({**CFG, "colour": 1}, "colour: unknown key"),
    ({**CFG, "splits": {**CFG["splits"], "draws": "x"}}, "splits.draws: wrong type"),
    ({**CFG, "splits": {**CFG["splits"], "draws": -2}}, "out of range"),
    ({**CFG, "dataset": {"name": "nmd18", "path": "/nonexistent/nmd18", "target": "formation_energy"}},
     "/nonexistent/nmd18"),
    ({**CFG, "dataset": {**CFG["dataset"], "target": "nonsense"}}, "nonsense"),
])
def test_bad_input_exit_2_no_traceback_no_run_dir(tmp_path, bad, expect):
    cfg = _cfg(tmp_path, bad)
    rd = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "repbench", "prepare", str(cfg), "--run-dir", str(rd)],
                       capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert expect in p.stderr, p.stderr
    assert len([line for line in p.stderr.strip().splitlines() if line.strip()]) <= 3
    assert not rd.exists()
    assert not list(tmp_path.glob(".run.*"))
