"""Multi-fidelity tuning: trials evaluated at growing training sizes (rungs) and pruned by optuna's
successive-halving pruner; pruned trials count as finished; a study resumes; float32 trial kernels leave
the curve's model in float64."""

from __future__ import annotations

import csv

import numpy as np
import optuna
import pytest
import yaml
from click.testing import CliRunner

from repbench import config as C
from repbench.cli import main
from repbench.errors import ConfigError
from repbench.rundir import RunDir
from repbench.tuning import rungs

CONFIG = {
    "name": "fid", "seed": 0,
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 320},
    "splits": {"test": 60, "train_sizes": [40, 80], "draws": 1, "tune_train": 160, "tune_val": 40,
               "inner_folds": 2},
    "representation": {"soap": {"r_cut": {"choice": [2.5, 3.5]}, "n_max": {"int": [2, 4]}, "l_max": 1,
                                "sigma": 0.5}},
    "kernel": {"atom_kernel": "gaussian"},
    "tune": {"trials": 6, "n_startup_trials": 3, "fidelity": [20, 40, 80], "kernel_dtype": "float32"},
    "time": {"repeats": 1, "n_structures": 10},
}


def _rows(run):
    with open(run / "tune" / "trials.csv") as fh:
        return list(csv.DictReader(fh))


def test_rungs_and_config():
    cfg = C.from_dict(CONFIG)
    assert rungs(cfg, 160) == [20, 40, 80, 160] and rungs(cfg, 50) == [20, 40, 50]
    plain = {k: v for k, v in CONFIG["tune"].items() if k not in ("fidelity", "kernel_dtype")}
    assert "fidelity" not in C.from_dict({**CONFIG, "tune": plain}).to_dict()["tune"]
    assert C.from_dict({**CONFIG, "tune": plain}).study_hash() != cfg.study_hash()
    with pytest.raises(ConfigError, match="strictly increasing"):
        C.from_dict({**CONFIG, "tune": {**CONFIG["tune"], "fidelity": [40, 20]}})
    with pytest.raises(ConfigError, match="needs tune.fidelity"):
        C.from_dict({**CONFIG, "tune": {**plain, "pruner": "hyperband"}})


def test_trials_are_pruned_at_rungs_and_the_study_resumes(tmp_path):
    (tmp_path / "fid.yaml").write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["prepare", str(tmp_path / "fid.yaml"), "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["tune", str(run), "--trials", "4"])
    assert r.exit_code == 0, r.output
    first = _rows(run)
    r = CliRunner().invoke(main, ["tune", str(run), "--trials", "8"])
    assert r.exit_code == 0, r.output
    rows = _rows(run)
    assert all(b[k] == a[k] for a, b in zip(first, rows) for k in a)   # the first 4 trials are kept as they were
    states = [x["state"] for x in rows]
    assert len(rows) == 8 and set(states) <= {"COMPLETE", "PRUNED"}
    assert "PRUNED" in states, "with 8 trials over 4 rungs some trials must stop early"
    for x in rows:
        assert int(x["rung"]) == 160 if x["state"] == "COMPLETE" else int(x["rung"]) in (20, 40, 80)
    rd = RunDir(run)
    study = optuna.load_study(study_name=rd.study_name(rd.config()), storage=f"sqlite:///{rd.study_db}")
    pruned = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.PRUNED]
    assert all(t.intermediate_values for t in pruned)
    best = yaml.safe_load(rd.best_yaml.read_text())
    assert best["kernel"]["dtype"] == "float64"          # the curve keeps the config's precision
    assert best["trials"]["complete"] == states.count("COMPLETE")
    r = CliRunner().invoke(main, ["tune", str(run), "--show"])
    assert r.exit_code == 0 and "PRUNED" in r.output and "rung" in r.output


def test_pruned_study_resumes_after_sigkill(tmp_path):
    """SIGKILL `tune` once some trials (complete or pruned) are stored; the re-run finishes the study with
    exactly the requested number of finished trials, no duplicate numbers and none left RUNNING."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = {**CONFIG, "tune": {**CONFIG["tune"], "trials": 8}}
    (tmp_path / "fid.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert CliRunner().invoke(main, ["prepare", str(tmp_path / "fid.yaml"), "--run-dir", str(run)]).exit_code == 0
    rd = RunDir(run)
    name, url = rd.study_name(rd.config()), f"sqlite:///{rd.study_db}"

    def finished():
        try:
            st = optuna.load_study(study_name=name, storage=url)
        except Exception:  # noqa: BLE001 - not created yet
            return []
        return [t for t in st.get_trials() if t.state.is_finished()]

    proc = subprocess.Popen([sys.executable, "-m", "repbench", "tune", str(run)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    while len(finished()) < 3 and proc.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.2)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.state, t.params) for t in finished()}
    assert killed and 3 <= len(before) < 8, "the kill must land mid-study"
    r = subprocess.run([sys.executable, "-m", "repbench", "tune", str(run)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    st = optuna.load_study(study_name=name, storage=url)
    trials = st.get_trials()
    done = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(done) == 8 and len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert all((t.state, t.params) == before[t.number] for t in trials if t.number in before)


def test_low_rungs_are_cheap_and_each_structure_is_computed_once(tmp_path, monkeypatch):
    """Below the full size a rung evaluates the first fold only, with its training part subsampled to the
    rung and its validation part to the same fraction (at least 50, here all 40); the representation of a
    structure is computed once per trial, each rung adding only the structures it newly needs; every
    trial sees the same subsets at a rung; without fidelity the evaluation is what it always was."""
    from repbench.tuning import objective_values
    from repbench.workspace import Workspace

    (tmp_path / "fid.yaml").write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "run"
    assert CliRunner().invoke(main, ["prepare", str(tmp_path / "fid.yaml"), "--run-dir", str(run)]).exit_code == 0
    rd = RunDir(run)
    cfg = rd.config()
    ws = Workspace(rd, cfg, progress=False)
    computed: list[np.ndarray] = []
    orig = Workspace.features

    def spy(self, spec, index):
        computed.append(np.asarray(index).copy())
        return orig(self, spec, index)

    monkeypatch.setattr(Workspace, "features", spy)

    class Trial:  # never prunes; records the reported rungs
        def __init__(self):
            self.steps, self.attrs = [], {}

        def report(self, value, step):
            self.steps.append(step)

        def should_prune(self):
            return False

        def set_user_attr(self, k, v):
            self.attrs[k] = v

    params = {"representation": {"soap": {"r_cut": 2.5, "n_max": 2, "l_max": 1, "sigma": 0.5}},
              "kernel": {"atom_kernel": "gaussian"}}
    trial = Trial()
    rec = objective_values(ws, cfg, params, trial)
    assert trial.steps == [20, 40, 80] and trial.attrs["rung"] == 160 and np.isfinite(rec["loss"])
    (tr0, va0), folds = ws.splits.tune_folds[0], ws.splits.tune_folds
    assert len(computed[0]) == 20 + len(va0)            # rung 20: 20 training + the 40 validation structures
    assert set(computed[0]) <= set(tr0) | set(va0)
    allc = np.concatenate(computed)
    assert len(allc) == len(set(allc.tolist())), "a structure computed twice in one trial"
    assert set(allc) == set(np.concatenate([np.concatenate(f) for f in folds]))
    first = [c.copy() for c in computed]
    computed.clear()
    objective_values(ws, cfg, params, Trial())
    assert all(np.array_equal(a, b) for a, b in zip(first, computed)), "every trial sees the same rung subsets"
