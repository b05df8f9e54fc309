"""Two worker processes against one study in PostgreSQL: the union of their trials is the study.

Needs a server: `.ci/run` starts one and sets REPBENCH_TEST_POSTGRES_URL (see .ci/postgres.sh).
"""

import os
import subprocess
import sys
import uuid

import pytest
import yaml

URL = os.environ.get("REPBENCH_TEST_POSTGRES_URL")
pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not URL, reason="REPBENCH_TEST_POSTGRES_URL is not set (no PostgreSQL server; "
                                                 ".ci/run starts one)")]


def test_two_workers_share_one_study(tmp_path):
    import optuna

    from repbench import tuning
    from repbench.prepare import prepare

    cfg = {
        "name": f"pg-{uuid.uuid4().hex[:8]}",   # a fresh study name on a shared server
        "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 250},
        "splits": {"test": 50, "train_sizes": [20, 40], "draws": 1, "tune_train": 40, "tune_val": 20,
                   "inner_folds": 2},
        "representation": {"soap": {"r_cut": {"choice": [3.0, 4.0]}, "n_max": {"int": [2, 3]},
                                    "l_max": {"int": [1, 2]}, "sigma": {"loggrid": [-2, 0, 3]}}},
        "tune": {"trials": 10, "n_startup_trials": 4},
    }
    p = tmp_path / "pg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    rd, _ = prepare(p, run_dir=tmp_path / "run")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "repbench", "tune", str(rd.path), "--worker", "--storage", URL]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [pr.communicate(timeout=600) for pr in procs]
    for pr, (o, e) in zip(procs, outs):
        assert pr.returncode == 0, e
    study = optuna.load_study(study_name=rd.study_name(rd.config()), storage=URL)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))                      # no duplicates
    finished = [t for t in trials if t.state.name in ("COMPLETE", "FAIL")]
    assert 10 <= len(finished) <= 11                              # at most one overshoot per extra worker
    assert all(t.state.name != "RUNNING" for t in trials)         # none lost mid-way
    # both workers contributed (each records its hostname/pid in a user attribute)
    workers = {t.user_attrs.get("worker") for t in trials}
    assert len(workers) == 2, workers
    # the leaderboard and outputs work from the shared study
    best = tuning.write_outputs(rd, rd.config(), study)
    assert best["trials"]["total"] == len(trials)
