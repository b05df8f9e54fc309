"""Representations: equality with plain dscribe, SF schemes and stratification, workers, validation."""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from repbench.errors import ConfigError, DataError
from repbench.representations import (REPRESENTATIONS, Features, Representation, compute,
                                      make_representation, radial_parameters, representation_class,
                                      validate_spec)
from repbench.structures import StructureSet, TargetInfo

dscribe = pytest.importorskip("dscribe")
from dscribe.descriptors import ACSF, MBTR, SOAP  # noqa: E402

TOL = 1e-10


# ---------------------------------------------------------------------------------------------- data
def _structure_set(name, atoms_list):
    n = len(atoms_list)
    return StructureSet.from_ase(name, atoms_list, {"e": np.zeros(n)}, {"e": TargetInfo("eV", True)})


@pytest.fixture(scope="module")
def qm9():
    """~45 real QM9 molecules: every 50th of the first 2,000 rows of qm9pack's part 1, and those with F."""
    import qm9pack

    path = os.path.join(os.path.dirname(qm9pack.__file__), "data", "qm9_part1.csv")
    atoms = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= 2000:
                break
            if i % 50 == 0 or "'F'" in row["Elements"]:   # fluorine is rare early in QM9
                atoms.append(Atoms(symbols=ast.literal_eval(row["Elements"]),
                                   positions=ast.literal_eval(row["XYZ_Ang"])))
    ss = _structure_set("qm9", atoms)
    assert len(ss) >= 40
    return ss


@pytest.fixture(scope="module")
def crystals():
    """Small periodic structures (rock salt NaCl and KCl, rattled supercells)."""
    out = []
    for i, (formula, a) in enumerate([("NaCl", 5.64), ("KCl", 6.29), ("NaCl", 5.5), ("KCl", 6.1)]):
        at = bulk(formula, "rocksalt", a=a)
        if i >= 2:
            at = at * (2, 1, 1)
            at.rattle(0.05, seed=i)
        out.append(at)
    return _structure_set("rocksalt", out)


def _dscribe_local(desc, atoms_list):
    return np.concatenate([np.atleast_2d(desc.create(a)) for a in atoms_list], axis=0)


# ---------------------------------------------------------------------------------------------- SOAP
SOAP_PARAMS = {"r_cut": 4.0, "n_max": 4, "l_max": 3, "sigma": 0.5}


def test_soap_equals_dscribe(qm9):
    rep = make_representation({"soap": SOAP_PARAMS}, qm9.elements, periodic=False)
    feats = compute(rep, qm9, n_workers=1, progress=False)
    ref = SOAP(species=qm9.elements, periodic=False, **SOAP_PARAMS)
    expected = np.concatenate(ref.create(qm9.to_ase()), axis=0)
    assert isinstance(feats, Features) and feats.local
    assert feats.values.shape == expected.shape == (qm9.n_atoms.sum(), rep.dim)
    assert feats.values.dtype == np.float64
    assert np.abs(feats.values - expected).max() <= TOL
    np.testing.assert_array_equal(feats.offsets, np.concatenate([[0], np.cumsum(qm9.n_atoms)]))
    assert feats.offsets.dtype == np.int64
    for i in (0, 7, len(qm9) - 1):
        np.testing.assert_array_equal(feats.structure(i), rep.compute_atoms([qm9.atoms(i)]))


def test_soap_periodic_and_averaged(crystals):
    params = {**SOAP_PARAMS, "weighting": {"function": "pow", "r0": 2, "c": 1, "d": 1, "m": 4}}
    rep = make_representation({"soap": params}, crystals.elements, periodic=True)
    got = compute(rep, crystals, n_workers=1, progress=False).values
    ref = SOAP(species=crystals.elements, periodic=True, **{**params, "weighting": dict(params["weighting"])})
    assert np.abs(got - _dscribe_local(ref, crystals.to_ase())).max() <= TOL

    rep = make_representation({"soap": {**SOAP_PARAMS, "average": "inner"}}, crystals.elements, periodic=True)
    assert not rep.local
    feats = compute(rep, crystals, n_workers=1, progress=False)
    assert not feats.local and feats.offsets is None and feats.values.shape == (len(crystals), rep.dim)
    ref = SOAP(species=crystals.elements, periodic=True, average="inner", **SOAP_PARAMS)
    assert np.abs(feats.values - ref.create(crystals.to_ase())).max() <= TOL


@pytest.mark.parametrize("extra", [{}, {"average": "outer"}, {"average": "inner"}, {"rbf": "polynomial"},
                                   {"compression": "mu1nu1"},
                                   {"weighting": {"function": "pow", "r0": 2, "c": 1, "d": 1, "m": 4}}])
def test_soap_writes_dscribe_create_single_into_the_rows(crystals, qm9, extra):
    """compute_into calls dscribe's C++ extension into the output rows (built once, no temporary): the
    bytes equal dscribe's own create_single structure by structure, also for rows that held garbage, for
    averaged SOAP (which accumulates), periodic structures and the polynomial basis."""
    import repbench.representations.base as base

    for data, periodic in ((qm9, False), (crystals, True)):
        rep = make_representation({"soap": {**SOAP_PARAMS, **extra}}, data.elements, periodic)
        atoms = base.wrap_into_cell(data.to_ase(list(range(min(len(data), 6)))))
        expected = [rep._soap.create_single(a) for a in atoms]
        expected = np.concatenate(expected) if rep.local else np.stack(expected)
        out = np.full_like(expected, np.nan)
        rep.compute_into(atoms, out)
        assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize("average", ["off", "outer"])
def test_soap_empty_structure_rows_are_dscribes(qm9, average):
    """A structure without atoms gets dscribe's own answer (no rows; NaN when averaged), not whatever
    the output held."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # numpy's mean of an empty slice in dscribe
        rep = make_representation({"soap": {**SOAP_PARAMS, "average": average}}, qm9.elements, periodic=False)
        atoms = [Atoms(), molecule("H2O"), Atoms()]
        expected = [rep._soap.create_single(a) for a in atoms]
        expected = np.concatenate(expected) if rep.local else np.stack(expected)
        out = np.full_like(expected, 7.0)
        rep.compute_into(atoms, out)
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------------------------------------- SF
def test_sf_radial_schemes_by_hand():
    # n = 3, cutoff 5.5: r0 = 0.5, r_n = 4.5, Delta = 2 -> radii 0.5, 2.5, 4.5
    c = radial_parameters("rad_centered", 3, 5.5)
    np.testing.assert_allclose(c[:, 0], [0.5 / 0.25, 0.5 / 6.25, 0.5 / 20.25], rtol=1e-14)
    np.testing.assert_array_equal(c[:, 1], [0.0, 0.0, 0.0])
    s = radial_parameters("rad_shifted", 3, 5.5)
    np.testing.assert_allclose(s[:, 0], [0.125, 0.125, 0.125], rtol=1e-14)
    np.testing.assert_allclose(s[:, 1], [0.5, 2.5, 4.5], rtol=1e-14)


def test_sf_g2_by_hand():
    """dscribe's G2 with our (eta, mu) columns is exp(-eta (r - mu)^2) fc(r): checks the column order."""
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    spec = {"sf": {"radial": {"scheme": "rad_shifted", "n": 3, "cutoff": 5.5}}}
    rep = make_representation(spec, [1, 8], False)
    x = rep.compute_atoms([water])
    d = rep.acsf_dim                                     # per species block: G1, G2 x 3 per neighbour element
    assert d == 2 * (1 + 3) and rep.dim == 2 * d
    eta, mu = radial_parameters("rad_shifted", 3, 5.5).T
    r = np.linalg.norm(water.positions[1:] - water.positions[0], axis=1)   # O-H distances
    fc = 0.5 * (np.cos(np.pi * r / 5.5) + 1)
    g2_oh = [(np.exp(-e * (r - m) ** 2) * fc).sum() for e, m in zip(eta, mu)]
    o_row = x[0]
    o_block = o_row[d:2 * d]                              # O is species index 1 of [H, O]
    assert np.all(o_row[:d] == 0)
    np.testing.assert_allclose(o_block[0], fc.sum(), rtol=1e-12)          # G1 of H neighbours
    np.testing.assert_allclose(o_block[1:4], g2_oh, rtol=1e-12)            # G2 of H neighbours
    assert np.all(o_block[4:] == 0)                                        # no O neighbours


SF_ANGULAR = {"eta": [0.005, 0.1], "zeta": [1, 4], "lambda": [-1, 1]}


@pytest.mark.parametrize("k", [[2], [2, 3]])
@pytest.mark.parametrize("scheme", ["rad_centered", "rad_shifted"])
def test_sf_equals_dscribe_stratified(qm9, k, scheme):
    radial = {"scheme": scheme, "n": 5, "cutoff": 5.0}
    params = {"k": k, "radial": radial, **({"angular": SF_ANGULAR} if 3 in k else {})}
    rep = make_representation({"sf": params}, qm9.elements, periodic=False)
    feats = compute(rep, qm9, n_workers=1, progress=False)
    g4 = [[e, z, lam] for e in SF_ANGULAR["eta"] for z in SF_ANGULAR["zeta"] for lam in SF_ANGULAR["lambda"]]
    ref = ACSF(r_cut=5.0, g2_params=radial_parameters(scheme, 5, 5.0), g4_params=g4 if 3 in k else None,
               species=qm9.elements)
    expected = _dscribe_local(ref, qm9.to_ase())
    d = ref.get_number_of_features()
    n_sp = len(qm9.elements)
    assert rep.acsf_dim == d and rep.dim == n_sp * d == feats.values.shape[1]
    blocks = feats.values.reshape(len(qm9.z), n_sp, d)
    own = np.searchsorted(qm9.elements, qm9.z)
    rows = np.arange(len(qm9.z))
    assert np.abs(blocks[rows, own] - expected).max() <= TOL
    others = np.ones(blocks.shape[:2], dtype=bool)
    others[rows, own] = False
    assert np.all(blocks[others] == 0)


def test_sf_periodic(crystals):
    params = {"k": [2, 3], "radial": {"n": 4, "cutoff": 5.0}, "angular": SF_ANGULAR}
    rep = make_representation({"sf": params}, crystals.elements, periodic=True)
    got = compute(rep, crystals, n_workers=1, progress=False).values
    g4 = [[e, z, lam] for e in SF_ANGULAR["eta"] for z in SF_ANGULAR["zeta"] for lam in SF_ANGULAR["lambda"]]
    ref = ACSF(r_cut=5.0, g2_params=radial_parameters("rad_shifted", 4, 5.0), g4_params=g4,
               species=crystals.elements, periodic=True)
    expected = _dscribe_local(ref, crystals.to_ase())
    own = np.searchsorted(crystals.elements, crystals.z)
    d = rep.acsf_dim
    got_own = np.stack([got[i, o * d:(o + 1) * d] for i, o in enumerate(own)])
    assert np.abs(got_own - expected).max() <= TOL


# ---------------------------------------------------------------------------------------------- MBTR
MBTR_PARAMS = {
    "k": [2, 3],
    "k2": {"grid": {"min": 0, "max": 1.25, "n": 30, "sigma": 0.05},
           "weighting": {"function": "exp", "scale": 0.5, "threshold": 1e-3}, "normalization": "l2"},
    "k3": {"geometry": "angle", "grid": {"min": 0, "max": 180, "n": 30, "sigma": 5},
           "weighting": {"function": "exp", "scale": 0.5, "threshold": 1e-3}, "normalize_gaussians": False},
}


def _dscribe_mbtr(params, species, periodic):
    out = []
    for k in params["k"]:
        t = params[f"k{k}"]
        out.append(MBTR(geometry={"function": t["geometry"]}, grid=dict(t["grid"]),
                        weighting=dict(t["weighting"]),
                        normalize_gaussians=t["normalize_gaussians"], normalization=t["normalization"],
                        species=species, periodic=periodic))
    return out


def test_mbtr_equals_concatenated_dscribe_terms(qm9):
    rep = make_representation({"mbtr": MBTR_PARAMS}, qm9.elements, periodic=False)
    feats = compute(rep, qm9, n_workers=1, progress=False)
    assert not feats.local and feats.offsets is None
    k2, k3 = _dscribe_mbtr(rep.params, qm9.elements, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected = np.hstack([k2.create(qm9.to_ase()), k3.create(qm9.to_ase())])
    assert feats.values.shape == expected.shape == (len(qm9), rep.dim)
    assert np.abs(feats.values - expected).max() <= TOL
    np.testing.assert_allclose(np.linalg.norm(feats.values[:, :k2.get_number_of_features()], axis=1), 1.0)


def test_mbtr_periodic(crystals):
    params = {"k": [2, 3], "k2": {"normalization": "n_atoms"}, "k3": {"normalization": "valle_oganov"}}
    rep = make_representation({"mbtr": params}, crystals.elements, periodic=True)
    got = compute(rep, crystals, n_workers=1, progress=False).values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected = np.hstack([t.create(crystals.to_ase())
                              for t in _dscribe_mbtr(rep.params, crystals.elements, True)])
    assert np.abs(got - expected).max() <= TOL and np.all(np.isfinite(got))


def test_mbtr_runs_with_installed_ase():
    """dscribe 2.1.2's MBTR breaks with ase >= 3.27 (TypeError about momenta/velocities, dscribe #165)."""
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    rep = make_representation({"mbtr": {"k": [2, 3]}}, [1, 8], periodic=False)
    x = rep.compute_atoms([water])
    assert x.shape == (1, rep.dim) and np.all(np.isfinite(x)) and x.sum() > 0


# ---------------------------------------------------------------------------------------------- driver
@pytest.mark.parametrize("spec", [
    {"soap": SOAP_PARAMS},
    {"sf": {"k": [2, 3], "radial": {"n": 4, "cutoff": 5.0}, "angular": SF_ANGULAR}},
    {"mbtr": MBTR_PARAMS},
], ids=["soap", "sf23", "mbtr23"])
def test_two_workers_bit_identical(qm9, spec):
    rep = make_representation(spec, qm9.elements, periodic=False)
    one = compute(rep, qm9, n_workers=1, progress=False)
    two = compute(rep, qm9, n_workers=2, chunk_size=3, progress=False)
    assert np.array_equal(one.values, two.values)
    if rep.local:
        np.testing.assert_array_equal(one.offsets, two.offsets)
    single = np.concatenate([rep.compute_atoms([a]) for a in qm9.to_ase()[:5]])
    rows = one.offsets[5] if rep.local else 5
    assert np.array_equal(one.values[:rows], single)
    f32 = compute(rep, qm9, n_workers=2, chunk_size=7, progress=False, dtype=np.float32)
    assert f32.values.dtype == np.float32 and np.array_equal(f32.values, one.values.astype(np.float32))


def test_parallel_pays_counts_pool_start_and_shared_memory():
    """Workers only when they finish sooner (the calibration measured on 2 cores, see base.py): not for
    0.05 s of work, not when the shared output's page faults eat the gain (SOAP of 200 molecules: 0.14 s,
    165 MB), yes where 2 workers were measured faster (SF k=2 of 4,000 molecules, MBTR k=2 of 800)."""
    from repbench.representations.base import parallel_pays

    assert not parallel_pays(0.05, 2, 1_000_000)
    assert not parallel_pays(0.14, 2, 165_000_000)
    assert parallel_pays(0.34, 2, 188_000_000)            # SF k=2, 4,000 molecules
    assert parallel_pays(0.24, 2, 10_000_000)             # MBTR k=2, 800 molecules
    assert parallel_pays(1.0, 2, 30_000_000)
    assert parallel_pays(2.0, 2, 830_000_000)


def _compute_in_daemon(rep, structures, queue):
    try:
        queue.put(("ok", compute(rep, structures, n_workers=2, progress=False).values))
    except BaseException as e:  # noqa: BLE001 - reported to the test
        queue.put(("error", repr(e)))


def test_a_daemonic_process_computes_without_workers(qm9):
    """A Dask worker under its nanny is a daemonic process, which may not start processes: asked for
    workers there, compute() computes in the process instead of failing (seen on a loaded LocalCluster)."""
    import multiprocessing

    rep = make_representation({"soap": SOAP_PARAMS}, qm9.elements, periodic=False)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_compute_in_daemon, args=(rep, qm9, queue), daemon=True)
    proc.start()
    status, value = queue.get(timeout=120)
    proc.join(timeout=30)
    assert status == "ok", value
    assert np.array_equal(value, compute(rep, qm9, n_workers=1, progress=False).values)


def test_automatic_workers(qm9, monkeypatch):
    """n_workers=None times the first chunk and forks only when the rest would finish sooner; a serial
    computation makes no shared mapping, a parallel one gives the workers the other chunks (this process
    computes some itself) and copies their rows from one shared scratch mapping."""
    import repbench.representations.base as base

    rep = make_representation({"soap": SOAP_PARAMS}, qm9.elements, periodic=False)
    one = compute(rep, qm9, n_workers=1, progress=False)
    shared = []
    make_shared = base._shared_array
    monkeypatch.setattr(base, "_shared_array", lambda *a: shared.append(a) or make_shared(*a))
    monkeypatch.setattr(base, "parallel_pays", lambda *a: False)
    assert np.array_equal(compute(rep, qm9, progress=False).values, one.values)        # stays serial
    assert shared == [], "a serial computation must not pay for a shared mapping"
    monkeypatch.setattr(base, "parallel_pays", lambda *a: True)
    monkeypatch.setattr(base, "available_cpus", lambda: 2)
    assert base.default_workers(len(qm9)) == 2 and base.default_workers(20) == 1
    pools = []
    run_pool = base._run_pool
    monkeypatch.setattr(base, "_run_pool", lambda *a: pools.append((list(a[1]), a[2])) or run_pool(*a))
    assert np.array_equal(compute(rep, qm9, chunk_size=4, progress=False).values, one.values)
    n_chunks = -(-len(qm9) // 4)
    assert pools == [(list(range(1, n_chunks)), 2)]    # chunk 0 was the timed one
    assert [a for a in shared if len(a[0]) == 2] == [((len(one.values), rep.dim), np.float64)]  # one scratch


def _chunks_by_worker(monkeypatch, fail=None):
    """Patch the driver so that forked workers record the chunks they compute (in a shared array the
    workers inherit) and this process waits (up to 10 s) until a worker has started two chunks, so that
    the workers get chunks however slowly they start; ``fail``: what a worker does instead of its second
    chunk ("error", "die" or "die holding the lock")."""
    import time as _time

    import repbench.representations.base as base

    by_worker = base._shared_array((1000,), np.int8)
    count = base._shared_array((1,), np.int64)
    compute_chunk = base._compute_chunk

    def patched(job, c, out):
        if os.getpid() == job.get("parent", os.getpid()):     # the process that called compute()
            deadline = _time.monotonic() + 10
            while count[0] < 2 and _time.monotonic() < deadline:
                _time.sleep(0.002)
        else:
            count[0] += 1
            if fail and count[0] == 2:
                if fail == "die holding the lock":
                    job["lock"].acquire()
                    os._exit(3)
                if fail == "die":
                    os._exit(3)
                raise DataError("this structure cannot be computed", where="representation.test")
            by_worker[c] = 1
        return compute_chunk(job, c, out)

    monkeypatch.setattr(base, "_compute_chunk", patched)
    return by_worker


@pytest.mark.parametrize("spec, dtype", [
    ({"soap": SOAP_PARAMS}, np.float64),
    ({"soap": SOAP_PARAMS}, np.float32),
    ({"soap": {**SOAP_PARAMS, "average": "inner"}}, np.float64),
    ({"mbtr": MBTR_PARAMS}, np.float64),
], ids=["soap", "soap-float32", "soap-averaged", "mbtr23"])
def test_this_process_and_the_workers_share_the_chunks(qm9, monkeypatch, spec, dtype):
    """With 2 workers, this process and one forked worker each compute some of the chunks (taken from one
    counter); the rows, local or global, float64 or float32, are the single-process ones bit for bit."""
    rep = make_representation(spec, qm9.elements, periodic=False)
    one = compute(rep, qm9, n_workers=1, progress=False, dtype=dtype)
    by_worker = _chunks_by_worker(monkeypatch)
    two = compute(rep, qm9, n_workers=2, chunk_size=1, progress=False, dtype=dtype)
    assert two.values.dtype == dtype and two.values.tobytes() == one.values.tobytes()
    n_worker = int(by_worker[:len(qm9)].sum())
    assert 2 <= n_worker < len(qm9), n_worker


@pytest.mark.parametrize("fail", ["error", "die"])
def test_a_failing_worker_fails_the_computation(qm9, monkeypatch, fail):
    """A worker's error reaches the caller as that error; a worker that dies (killed, out of memory)
    ends the computation with BrokenProcessPool instead of a hang."""
    from concurrent.futures.process import BrokenProcessPool

    rep = make_representation({"soap": SOAP_PARAMS}, qm9.elements, periodic=False)
    _chunks_by_worker(monkeypatch, fail=fail)
    expected = DataError if fail == "error" else BrokenProcessPool
    with pytest.raises(expected):
        compute(rep, qm9, n_workers=2, chunk_size=1, progress=False)


def _compute_in_child(rep, structures, queue):
    try:
        compute(rep, structures, n_workers=2, chunk_size=1, progress=False)
        queue.put("no error")
    except BaseException as e:  # noqa: BLE001 - reported to the test
        queue.put(type(e).__name__)


def test_a_worker_dying_with_the_lock_held_fails_instead_of_hanging(qm9, monkeypatch):
    """A worker killed while it holds the chunk counter's lock (a lock no one will release) must not block
    this process for ever: it raises the pool's BrokenProcessPool.  Run in a forked child with a time
    limit, so that a regression fails instead of hanging the suite."""
    import multiprocessing

    rep = make_representation({"soap": SOAP_PARAMS}, qm9.elements, periodic=False)
    _chunks_by_worker(monkeypatch, fail="die holding the lock")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_compute_in_child, args=(rep, qm9, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("compute() hung after a worker died holding the lock")
    assert queue.get(timeout=5) == "BrokenProcessPool"


_ORPHAN_SCRIPT = """
import os, sys, time
from ase.build import molecule
import repbench.representations.base as base
from repbench.api import structures_from_ase
from repbench.representations import compute, make_representation

idle = sys.argv[2] == "idle"
mols = structures_from_ase([molecule("H2O") for _ in range(40 if idle else 400)])
rep = make_representation({"sf": {"radial": {"n": 2, "cutoff": 4.0}}}, mols.elements, periodic=False)
pids = open(sys.argv[1], "a")
compute_chunk = base._compute_chunk

def slow(job, c, out):
    worker = os.getpid() != job["parent"]
    if worker:
        print(os.getpid(), file=pids, flush=True)
    if not idle:
        time.sleep(0.05)      # 400 chunks x 0.05 s: both processes compute for ~10 s
    elif not worker:
        time.sleep(60)        # this process's one chunk: the worker meanwhile takes all others, then idles
    return compute_chunk(job, c, out)

base._compute_chunk = slow
compute(rep, mols, n_workers=2, chunk_size=1, progress=False)
"""


@pytest.mark.parametrize("worker", ["computing", "idle"])
def test_workers_stop_when_their_parent_is_killed(tmp_path, worker):
    """A computation killed with SIGKILL (no clean-up runs) leaves no worker behind, neither one computing
    the remaining chunks for nobody (a worker checks after each chunk that its parent lives) nor one that
    has finished its chunks and waits on the pool's task pipe, which its siblings keep open (Linux:
    ``PR_SET_PDEATHSIG``)."""
    import signal
    import subprocess
    import sys
    import time as _time

    if worker == "idle" and not sys.platform.startswith("linux"):
        pytest.skip("an idle worker is ended by PR_SET_PDEATHSIG, which only Linux has")
    pids = tmp_path / "pids"
    pids.touch()
    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(pids), worker])
    try:
        deadline = _time.monotonic() + 60
        while not pids.read_text().split() and _time.monotonic() < deadline and proc.poll() is None:
            _time.sleep(0.05)
        if worker == "idle":
            while len(pids.read_text().split()) < 39 and _time.monotonic() < deadline:
                _time.sleep(0.05)        # the worker has taken every other chunk and waits for tasks
            _time.sleep(0.3)
        pid = int(pids.read_text().split()[0])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:        # an exited worker may linger as a zombie
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
        except OSError:                                    # pragma: no cover - no /proc
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            return True

    deadline = _time.monotonic() + 5
    while _time.monotonic() < deadline:
        if not alive(pid):
            break
        _time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the {worker} worker outlived its killed parent")


def test_released_shared_rows_give_their_pages_back():
    """The scratch rows of a worker chunk are released once copied (MADV_REMOVE: a page wholly inside
    the rows reads back as zeros, rows sharing a page with a neighbouring chunk keep their values)."""
    import mmap as _mmap

    import repbench.representations.base as base

    if not hasattr(_mmap, "MADV_REMOVE"):
        pytest.skip("this platform has no MADV_REMOVE; released rows stay until the mapping is freed")
    page_rows = _mmap.PAGESIZE // (8 * 8)             # rows of 8 float64 per page
    a = base._shared_array((10 * page_rows, 8), np.float64)
    a[:] = 1.0
    r0, r1 = page_rows // 2, 4 * page_rows + 3        # from mid page 0 to just into page 4
    base._release_rows(a, r0, r1)
    assert (a[page_rows:4 * page_rows] == 0).all()     # pages 1-3: given back
    assert (a[:page_rows] == 1).all() and (a[4 * page_rows:] == 1).all()   # partly covered pages kept


def test_index_subset_and_progress(qm9):
    rep = make_representation({"sf": {"radial": {"n": 4, "cutoff": 5.0}}}, qm9.elements, periodic=False)
    full = compute(rep, qm9, n_workers=1, progress=False)
    idx = [5, 2, 30, 2]
    sub = compute(rep, qm9, idx, n_workers=1, progress=True)
    assert sub.n_structures == 4
    for j, i in enumerate(idx):
        np.testing.assert_array_equal(sub.structure(j), full.structure(i))


def test_unknown_element_is_a_data_error(qm9):
    rep = make_representation({"sf": {"radial": {"n": 4, "cutoff": 5.0}}}, [1, 6, 7, 8], periodic=False)
    fluorine = [i for i in range(len(qm9)) if 9 in qm9.atoms(i).numbers]
    assert fluorine
    with pytest.raises(DataError, match="F"):
        compute(rep, qm9, n_workers=1, progress=False)
    others = [i for i in range(len(qm9)) if i not in fluorine]
    assert compute(rep, qm9, others, n_workers=1, progress=False).n_structures == len(others)


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kind", ["soap", "sf", "mbtr"])
def test_defaults_canonical_and_idempotent(kind):
    spec = {kind: {"k": [2, 3], "angular": SF_ANGULAR} if kind == "sf" else None}
    valid = validate_spec(spec)[kind]
    assert validate_spec({kind: valid})[kind] == valid
    assert json.loads(json.dumps(valid)) == valid
    rep = make_representation(spec, ["H", "C", 8], periodic=False)
    assert rep.species == [1, 6, 8] and rep.params_canonical() == valid and rep.dim > 0
    assert rep.describe()["kind"] == kind


def test_yaml_off_is_off():
    # PyYAML reads a bare `off` as False
    valid = validate_spec({"soap": {"average": False, "compression": False}})["soap"]
    assert valid["average"] == "off" and valid["compression"] == {"mode": "off", "species_weighting": None}


BAD = [
    ({"soap": {"n_maxx": 8}}, "representation.soap.n_maxx", "allowed keys"),
    ({"soap": {"n_max": "8"}}, "representation.soap.n_max", "integer"),
    ({"soap": {"n_max": 8.5}}, "representation.soap.n_max", "integer"),
    ({"soap": {"sigma": True}}, "representation.soap.sigma", "number"),
    ({"soap": {"l_max": 21}}, "representation.soap.l_max", "0..20"),
    ({"soap": {"l_max": -1}}, "representation.soap.l_max", "0..20"),
    ({"soap": {"rbf": "polynomial", "l_max": 10}}, "representation.soap.l_max", "0..9"),
    ({"soap": {"n_max": 1}}, "representation.soap.n_max", "2..20"),
    ({"soap": {"rbf": "polynomial", "n_max": 0}}, "representation.soap.n_max", "1..20"),
    ({"soap": {"r_cut": 1.0}}, "representation.soap.r_cut", "> 1"),
    ({"soap": {"rbf": "spline"}}, "representation.soap.rbf", "gto, polynomial"),
    ({"soap": {"n_max": 16, "r_cut": 5}}, "representation.soap.n_max", "at most n_max 15"),  # dscribe check
    ({"soap": {"rbf": "polynomial", "n_max": 18}}, "representation.soap.n_max", "lower n_max"),  # at compute
    ({"soap": {"weighting": {"function": "pow", "r0": 1}}}, "representation.soap.weighting.c", "r0, c, d, m"),
    ({"soap": {"weighting": {"function": "poly", "r0": 1, "c": 1, "m": 2, "d": 1}}},
     "representation.soap.weighting.d", "keys for"),
    ({"soap": {"compression": "mu3"}}, "representation.soap.compression.mode", "mu2"),
    ({"soap": {"average": "mean"}}, "representation.soap.average", "inner"),
    ({"sf": {"k": [2, 3]}}, "representation.sf.angular", "eta"),
    ({"sf": {"k": [2, 3], "angular": {"eta": [0.1]}}}, "representation.sf.angular.zeta",
     "angular functions need 'zeta' (a list of numbers, e.g. [1, 2, 4])"),
    ({"sf": {"angular": SF_ANGULAR}}, "representation.sf.angular", "k: [2, 3]"),
    ({"sf": {"k": [3]}}, "representation.sf.k", "[2, 3]"),
    ({"sf": {"k": [2, 4]}}, "representation.sf.k[1]", "[2, 3]"),
    ({"sf": {"radial": {"n": 1}}}, "representation.sf.radial.n", ">= 2"),
    ({"sf": {"radial": {"cutoff": 1.5}}}, "representation.sf.radial.cutoff", "> 1.5"),
    ({"sf": {"radial": {"scheme": "rad_even"}}}, "representation.sf.radial.scheme",
     "rad_centered, rad_shifted"),
    ({"sf": {"radial": {"N": 4}}}, "representation.sf.radial.N", "scheme, n, cutoff"),
    ({"sf": {"k": [2, 3], "angular": {**SF_ANGULAR, "lambda": [0]}}}, "representation.sf.angular.lambda",
     "-1, 1"),
    ({"sf": {"k": [2, 3], "angular": {**SF_ANGULAR, "zeta": 1}}}, "representation.sf.angular.zeta", "[1]"),
    ({"sf": {"k": [2, 3], "angular": {**SF_ANGULAR, "eta": [0.1, 0.1]}}}, "representation.sf.angular.eta",
     "once"),
    ({"mbtr": {"k": [2], "k3": {}}}, "representation.mbtr.k3", "add 3 to k"),
    ({"mbtr": {"k": [1]}}, "representation.mbtr.k[0]", "[2, 3]"),
    ({"mbtr": {"k2": {"geometry": "cosine"}}}, "representation.mbtr.k2.geometry",
     "inverse_distance, distance"),
    # no hint to give: the message says all (asserted whole, see test_validation_errors)
    ({"mbtr": {"k2": {"grid": {"min": 1, "max": 0}}}}, "representation.mbtr.k2.grid.min",
     "representation.mbtr.k2.grid.min: min (1.0) must be smaller than max (0.0)"),
    ({"mbtr": {"k2": {"grid": {"n": 0}}}}, "representation.mbtr.k2.grid.n", ">= 1"),
    ({"mbtr": {"k2": {"weighting": {"function": "smooth_cutoff", "r_cut": 5}}}},
     "representation.mbtr.k2.weighting.function", "inverse_square"),
    ({"mbtr": {"k2": {"weighting": {"function": "exp", "scale": 0.5, "r_cut": 5}}}},
     "representation.mbtr.k2.weighting", "exactly one"),
    ({"mbtr": {"k2": {"normalization": "max"}}}, "representation.mbtr.k2.normalization", "l2"),
    ({"mbtr": {"k2": {"normalize_gaussians": "yes"}}}, "representation.mbtr.k2.normalize_gaussians", "true"),
    ({"soap": {}, "sf": {}}, "representation", "expected exactly one representation"),
    ({"no_such_rep": {}}, "representation.no_such_rep", "unknown representation 'no_such_rep'"),
    ({"soap": [1, 2]}, "representation.soap", "expected a mapping, got list [1, 2] (allowed keys: r_cut, "),
]


@pytest.mark.parametrize("spec,where,hint", BAD, ids=[b[1] + "-" + str(i) for i, b in enumerate(BAD)])
def test_validation_errors(spec, where, hint):
    assert hint, "every case names what the message must say"
    with pytest.raises(ConfigError) as info:
        make_representation(spec, [1, 6, 8], periodic=False)
    err = info.value
    assert err.where == where, str(err)
    assert str(err).startswith(where + ": ")
    assert hint in str(err)
    if not err.hint:  # no hint: the message alone must say what is wrong, so it is asserted whole
        assert str(err) == hint


# ---------------------------------------------------------------------------------------------- registry
def test_registry_has_the_paper_representations():
    assert {"soap", "sf", "mbtr"} <= set(REPRESENTATIONS)


@pytest.mark.parametrize("name", REPRESENTATIONS.names())
def test_every_registered_representation_loads(name):
    """Round trip through the registry: every name gives a Representation subclass of that kind, with a
    summary and defaults that validate to themselves (a plugin added later is checked the same way)."""
    cls = REPRESENTATIONS[name]
    assert isinstance(cls, type) and issubclass(cls, Representation)
    assert representation_class(name) is cls
    assert cls.kind == name
    assert cls.summary().strip()
    assert isinstance(cls.parameters(), dict) and cls.parameters()
    try:
        defaults = validate_spec({name: None})[name]
    except ConfigError as e:  # required parameters (e.g. `python: {function: ...}`): a clear error
        assert e.where.startswith(f"representation.{name}"), str(e)
        return
    # no required parameters: the defaults are what the listing shows, and validate to themselves
    assert cls.parameters() == defaults
    assert validate_spec({name: defaults})[name] == defaults


@pytest.mark.parametrize("spec,where", [
    ({"no_such_rep": {}}, "representation.no_such_rep"),
    ({"soap": {}, "sf": {}}, "representation"),
    ({}, "representation"),
])
def test_unknown_or_ambiguous_representation_lists_the_registry(spec, where):
    with pytest.raises(ConfigError) as info:
        make_representation(spec, [1, 6, 8], periodic=False)
    assert info.value.where == where
    assert info.value.hint == "allowed: " + ", ".join(REPRESENTATIONS.names())


def test_registered_plugin_is_listed_and_unregistered():
    """A name added to the registry shows up in the error listing (no other list of names exists)."""
    from repbench.representations.sf import SFRepresentation

    REPRESENTATIONS.register("sf_copy_for_test", SFRepresentation, source="tests")
    try:
        with pytest.raises(ConfigError) as info:
            make_representation({"nope": {}}, [1], periodic=False)
        assert "sf_copy_for_test" in info.value.hint.split("allowed: ")[1].split(", ")
    finally:
        REPRESENTATIONS.unregister("sf_copy_for_test")
    assert "sf_copy_for_test" not in REPRESENTATIONS


def test_errors_that_need_the_dataset():
    unity = {"mbtr": {"k2": {"weighting": {"function": "unity"}}}}
    make_representation(unity, [1, 8], periodic=False)
    with pytest.raises(ConfigError) as info:
        make_representation(unity, [11, 17], periodic=True)
    assert info.value.where == "representation.mbtr.k2.weighting"
    with pytest.raises(ConfigError) as info:
        make_representation({"mbtr": {"k2": {"normalization": "valle_oganov"}}}, [1, 8], periodic=False)
    assert info.value.where == "representation.mbtr.k2.normalization"
    sw = {"soap": {"compression": {"mode": "mu2", "species_weighting": {"H": 1.0, "C": 0.5}}}}
    with pytest.raises(ConfigError, match="missing: O") as info:
        make_representation(sw, [1, 6, 8], periodic=False)
    assert info.value.where == "representation.soap.compression.species_weighting"
    rep = make_representation(sw, [1, 6], periodic=False, where="configs/q.yaml: representation")
    assert rep.params["compression"]["species_weighting"] == {"C": 0.5, "H": 1.0}
    assert math.isfinite(rep.compute_atoms([molecule("CH4")]).sum())
