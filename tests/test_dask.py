"""The Dask path of `repbench curve --scheduler`: the same files as a local run (all but wall times);
kernels as row blocks on a cluster equal the local kernel; a worker killed mid-task changes no result."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

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


# --------------------------------------------------------------------------- kernel blocks, killed workers
SOAP = {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}}


@pytest.fixture(scope="module")
def qm9_soap():
    """Local SOAP features of 48 (rows) and 12 (columns) small QM9 molecules."""
    from repbench import api
    from repbench.datasets import load_dataset

    s = load_dataset("qm9")
    a = api.representation(s.to_ase(np.arange(48)), SOAP, species=s.elements)
    b = api.representation(s.to_ase(np.arange(48, 60)), SOAP, species=s.elements)
    return a, b


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes (one thread each) on this machine, each restarted by its nanny when killed."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def _kill_a_busy_worker(client, killed: list, after: float = 0.3, timeout: float = 25.0) -> threading.Thread:
    """In the background: wait until a task is executing on a worker, let it run ``after`` seconds, then
    SIGKILL that worker's process (its nanny starts a new one); the pid goes into ``killed``."""
    pids = client.run(os.getpid)  # worker address -> worker process id

    def watch() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if busy:
                time.sleep(after)
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
                return
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_kernel_blocks_on_a_cluster_equal_the_local_kernel(qm9_soap, cluster):
    from distributed import Client

    from repbench.execution import kernel_blocks
    from repbench.models.kernel import kernel_matrices, row_blocks

    a, b = qm9_soap
    params, ls = {"atom_kernel": "gaussian"}, [5.0, 10.0]
    with Client(cluster) as client:
        for cols in (None, b):  # train x train (symmetric), test x train
            n_cols = None if cols is None else cols.n_structures
            assert len(row_blocks(a.n_structures, n_cols, 12)) >= 4  # several blocks, several tasks
            ref = kernel_matrices(a, cols, params, ls)
            got = kernel_blocks(a, cols, params, ls, scheduler=client, block_structures=12)
            for r, g in zip(ref, got):
                assert g.shape == r.shape
                np.testing.assert_allclose(g, r, rtol=1e-12, atol=0)
                if cols is None:
                    assert np.array_equal(g, g.T)  # exactly symmetric, as the local kernel
    # an address works as well (a client of its own, closed afterwards)
    got = kernel_blocks(a, None, params, ls[:1], scheduler=cluster.scheduler_address, block_structures=20)
    np.testing.assert_allclose(got[0], kernel_matrices(a, None, params, ls[:1])[0], rtol=1e-12, atol=0)


def test_a_worker_killed_during_a_kernel_block_is_retried(qm9_soap, cluster):
    from distributed import Client

    from repbench.execution import kernel_blocks
    from repbench.models.kernel import kernel_matrices

    a, _ = qm9_soap
    params, ls = {"atom_kernel": "gaussian"}, [5.0]

    def slow_block(*args):  # a closure: pickled by value, so the workers need not import this module
        import time

        from repbench.execution import kernel_block_task

        time.sleep(1.0)  # long enough to be caught executing
        return kernel_block_task(*args)

    killed: list = []
    with Client(cluster) as client:
        watcher = _kill_a_busy_worker(client, killed)
        got = kernel_blocks(a, None, params, ls, scheduler=client, block_structures=20, task=slow_block)
        watcher.join()
        assert killed, "no worker was killed: the test would prove nothing"
        assert killed[0] not in client.run(os.getpid).values()  # that process is gone (a new one serves)
    np.testing.assert_allclose(got[0], kernel_matrices(a, None, params, ls)[0], rtol=1e-12, atol=0)


def test_a_worker_killed_during_a_curve_draw_changes_no_result(tmp_path, cluster, monkeypatch):
    from distributed import Client

    import repbench.curve as curve_mod

    cfg = tmp_path / "dask.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert CliRunner().invoke(main, ["prepare", str(cfg), "--run-dir", str(local)]).exit_code == 0
    shutil.copytree(local, remote)
    r = CliRunner().invoke(main, ["curve", str(local), "--no-plot"])
    assert r.exit_code == 0, r.output

    def slow_draw_task(*args):  # pickled by value; on the worker it calls the real draw_task
        import time

        import repbench.curve

        time.sleep(1.5)  # long enough to be caught executing
        return repbench.curve.draw_task(*args)

    monkeypatch.setattr(curve_mod, "draw_task", slow_draw_task)
    killed: list = []
    with Client(cluster) as client:
        watcher = _kill_a_busy_worker(client, killed)
        r = CliRunner().invoke(main, ["curve", str(remote), "--no-plot",
                                      "--scheduler", cluster.scheduler_address])
        watcher.join()
    assert r.exit_code == 0, r.output
    assert killed, "no worker was killed: the test would prove nothing"
    a, b = (yaml.safe_load((d / "curve.yaml").read_text()) for d in (local, remote))
    assert a == b
    for name in sorted(p.name for p in (local / "curve").glob("*.yaml")):
        assert _strip(yaml.safe_load((local / "curve" / name).read_text())) == \
            _strip(yaml.safe_load((remote / "curve" / name).read_text())), name


def test_curve_kernels_as_blocks_on_the_cluster_agree_with_a_local_curve(tmp_path, cluster):
    from distributed import Client, get_task_stream

    cfg = tmp_path / "dask.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert CliRunner().invoke(main, ["prepare", str(cfg), "--run-dir", str(local)]).exit_code == 0
    shutil.copytree(local, remote)
    assert CliRunner().invoke(main, ["curve", str(local), "--no-plot"]).exit_code == 0
    with Client(cluster) as client, get_task_stream(client) as stream:
        r = CliRunner().invoke(main, ["curve", str(remote), "--no-plot",
                                      "--scheduler", cluster.scheduler_address, "--block-structures", "20"])
    assert r.exit_code == 0, r.output
    names = [t["key"] for t in stream.data]
    # 2 draws; per draw train x train (60: 5 blocks) and test x train (40 x 60: 6 blocks), per length
    # scale request
    assert sum("draw_task" in str(k) for k in names) == 2
    assert sum("kernel_block_task" in str(k) for k in names) >= 2 * (5 + 6)
    a, b = (yaml.safe_load((d / "curve.yaml").read_text()) for d in (local, remote))
    for sa, sb in zip(a.pop("sizes"), b.pop("sizes")):
        for da, db in zip(sa["draws"], sb["draws"]):
            assert da.keys() == db.keys()
            for k in da:
                assert da[k] == pytest.approx(db[k], rel=1e-9), (sa["size"], da["draw"], k)
    assert a == b  # everything else (model, hashes, test set, warnings) is identical
