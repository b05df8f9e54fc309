"""The Dask path of `repbench curve --scheduler`: the same files as a local run (all but wall times)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from repbench.cli import main

pytest.importorskip("distributed", reason="dask.distributed is an optional extra: pip install 'repbench[dask]'")

CONFIG = {
    "name": "dask", "seed": 0,
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 160},
    "splits": {"test": 40, "train_sizes": [30, 60], "draws": 2, "inner_folds": 2},
    "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
    "kernel": {"atom_kernel": "gaussian"},
    "time": {"repeats": 1, "n_structures": 10},
}


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "seconds"}


def test_dask_curve_writes_what_a_local_curve_writes(tmp_path):
    cfg = tmp_path / "dask.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    local, remote = tmp_path / "local", tmp_path / "remote"
    r = CliRunner().invoke(main, ["prepare", str(cfg), "--run-dir", str(local)])
    assert r.exit_code == 0, r.output
    shutil.copytree(local, remote)
    r = CliRunner().invoke(main, ["curve", str(local), "--no-plot"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["curve", str(remote), "--no-plot", "--scheduler", "local:2"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (local / "curve").iterdir())
    assert names == sorted(p.name for p in (remote / "curve").iterdir()) and len(names) == 8
    for name in names:
        a, b = local / "curve" / name, remote / "curve" / name
        if name.endswith(".yaml"):
            assert _strip(yaml.safe_load(a.read_text())) == _strip(yaml.safe_load(b.read_text())), name
        else:
            with np.load(a) as za, np.load(b) as zb:
                for k in za.files:
                    assert np.array_equal(za[k], zb[k]), (name, k)
    assert (local / "curve.yaml").read_text() == (remote / "curve.yaml").read_text()


def test_unreachable_scheduler_is_one_clear_error(tmp_path):
    cfg = tmp_path / "dask.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "run"
    assert CliRunner().invoke(main, ["prepare", str(cfg), "--run-dir", str(run)]).exit_code == 0
    r = CliRunner().invoke(main, ["curve", str(run), "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 2 and "cannot reach the Dask scheduler" in r.output
    assert not list((run / "curve").glob("*.yaml")) if (run / "curve").exists() else True
