"""The kernel cache (repbench.workspace.KernelBank) against kernels computed directly.

A tiny run directory (`repbench prepare` on an extended-XYZ file of 30 small molecules) is opened with
:class:`~repbench.workspace.Workspace`; every kernel it serves, freshly computed, from the cache, sliced by a
view or recomputed after damage, must equal :func:`repbench.kernels.local_kernel` /
:func:`~repbench.kernels.global_kernel` of features computed directly with
:func:`repbench.representations.compute` (no cache involved).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from repbench import kernels as K
from repbench.cache import STATS
from repbench.cli import main
from repbench.representations import compute, make_representation
from repbench.rundir import RunDir
from repbench.workspace import Workspace

RTOL = 1e-12

SOAP = {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}}
MBTR = {"mbtr": {"k": [2], "k2": {"grid": {"min": 0, "max": 1.25, "n": 20, "sigma": 0.05}}}}
LOCAL = {"atom_kernel": "gaussian", "zeta": 2.0, "normalize": False, "dtype": "float64", "block_mb": 256}
GLOBAL = {"kind": "gaussian", "dtype": "float64", "block_mb": 256}
CASES = {"soap": (SOAP, LOCAL), "mbtr": (MBTR, GLOBAL)}

# scattered, unordered dataset indices (a bank's rows/cols are index sets into the dataset)
ROWS = np.array([17, 3, 25, 8, 0, 12, 29, 5, 21, 14, 9, 26])
COLS = np.array([1, 28, 6, 19, 11, 23, 2])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    import ase.io
    from ase.build import molecule

    tmp = tmp_path_factory.mktemp("bank")
    rng = np.random.default_rng(0)
    names = ["H2O", "CH4", "NH3", "C2H6", "CH3OH", "HCN", "CO2", "C2H4", "H2CO", "CH3CN"]
    structs = []
    for k in range(30):
        a = molecule(names[k % len(names)])
        a.rattle(0.05, seed=k)
        a.info["energy"] = float(-a.numbers.sum() + 0.1 * rng.normal())
        a.info["name"] = f"m{k}"
        structs.append(a)
    ase.io.write(tmp / "mols.extxyz", structs, format="extxyz")
    cfg = {
        "name": "bank",
        "dataset": {"name": "file", "path": str(tmp / "mols.extxyz"), "target_key": "energy",
                    "target": "energy"},
        "splits": {"test": 6, "train_sizes": [8, 16], "draws": 1, "tune_train": 10, "tune_val": 4},
        "representation": SOAP,
        "kernel": {"atom_kernel": "gaussian"},
    }
    (tmp / "bank.yaml").write_text(yaml.safe_dump(cfg))
    rd = tmp / "run"
    res = CliRunner().invoke(main, ["prepare", str(tmp / "bank.yaml"), "--run-dir", str(rd)])
    assert res.exit_code == 0, res.output
    return rd


def _workspace(run_dir: Path) -> Workspace:
    return Workspace(RunDir(run_dir), progress=False)


def _features(ws: Workspace, rep_spec: dict, index: np.ndarray):
    """Features of dataset structures ``index`` computed directly (no cache)."""
    s = ws.structures
    rep = make_representation(rep_spec, s.elements, s.periodic)
    return compute(rep, s, np.asarray(index), n_workers=1, progress=False)


def _direct(ws: Workspace, rep_spec: dict, kernel: dict, rows, cols, ls_list) -> dict[float, np.ndarray]:
    """{ls: kernel rows x cols (cols None: rows x rows)} from directly computed features."""
    fa = _features(ws, rep_spec, rows)
    fb = None if cols is None else _features(ws, rep_spec, cols)
    if fa.offsets is not None:
        mats = K.local_kernel(fa.values, fa.offsets, None if fb is None else fb.values,
                              None if fb is None else fb.offsets, atom_kernel=kernel["atom_kernel"],
                              length_scales=ls_list, zeta=kernel["zeta"], normalize=kernel["normalize"])
    else:
        mats = K.global_kernel(fa.values, None if fb is None else fb.values, kind=kernel["kind"],
                               length_scales=ls_list)
    return {float(ls): m for ls, m in zip(ls_list, mats)}


def _length_scales(ws: Workspace, rep_spec: dict) -> list[float]:
    """Around the median feature distance; 1.5 is not a power-of-two ratio (no squaring shortcut)."""
    med = K.median_length_scale(_features(ws, rep_spec, ROWS).values)
    return [med, 2.0 * med, 1.5 * med]


def _assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.all(np.isfinite(got)) and np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)  # elementwise relative


def _counts() -> dict[str, int]:
    return {k: STATS[f"kernels.{k}"] for k in ("computed", "hit", "miss", "corrupt", "put")}


def _kernel_files(run_dir: Path) -> set[Path]:
    return set((run_dir / "cache").rglob("*.h5")) - set((run_dir / "cache").rglob("representations/**/*.h5"))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shape", ["symmetric", "rectangular"])
def test_bank_equals_direct_kernels_and_is_served_from_cache(run_dir, case, shape):
    rep_spec, kernel = CASES[case]
    cols = None if shape == "symmetric" else COLS
    ws = _workspace(run_dir)
    ls_list = _length_scales(ws, rep_spec)
    want = _direct(ws, rep_spec, kernel, ROWS, cols, ls_list)

    before = _counts()
    bank = ws.bank(rep_spec, kernel, ROWS, cols)
    got = bank.get(ls_list)
    assert sorted(got) == sorted(want)
    for ls in ls_list:
        _assert_close(got[ls], want[ls])
        if cols is None:
            np.testing.assert_array_equal(got[ls], got[ls].T)  # a symmetric bank is exactly symmetric
    computed = _counts()["computed"] - before["computed"]
    assert computed == len(ls_list)  # each test uses its own (case, shape): nothing cached before

    # the same bank again: served from memory, nothing computed
    again = bank.get(ls_list[:2])
    assert _counts()["computed"] == before["computed"] + computed
    for ls in ls_list[:2]:
        assert again[ls] is got[ls] or np.array_equal(again[ls], got[ls])

    # a second Workspace on the same run directory: everything from the cache files, same values
    mid = _counts()
    ws2 = _workspace(run_dir)
    got2 = ws2.bank(rep_spec, kernel, ROWS, cols).get(ls_list)
    after = _counts()
    assert after["computed"] == mid["computed"]
    assert after["hit"] - mid["hit"] == len(ls_list)
    for ls in ls_list:
        np.testing.assert_array_equal(got2[ls], got[ls])

    # the cache is keyed by the row (and column) index sets, in order: the same rows permuted (same
    # shape, so a shape check cannot tell) are not served the cached matrix
    perm = np.roll(np.arange(len(ROWS)), 3)
    mid = _counts()
    got3 = ws2.bank(rep_spec, kernel, ROWS[perm], cols).get(ls_list[:1])[ls_list[0]]
    assert _counts()["computed"] == mid["computed"] + 1
    _assert_close(got3, got[ls_list[0]][perm] if cols is not None else got[ls_list[0]][np.ix_(perm, perm)])


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_cache_entry_is_recomputed(run_dir, damage):
    rep_spec, kernel = CASES["soap"]
    rows = np.array([2, 4, 6, 8, 10, 13, 15]) + (0 if damage == "truncated" else 1)  # its own cache entry
    ws = _workspace(run_dir)
    ls = _length_scales(ws, rep_spec)[0]
    want = _direct(ws, rep_spec, kernel, rows, None, [ls])[ls]

    files_before = _kernel_files(run_dir)
    first = ws.bank(rep_spec, kernel, rows).get([ls])[ls]
    new = _kernel_files(run_dir) - files_before
    assert len(new) == 1, new  # the one entry of this (rows, ls)
    entry = new.pop()
    _assert_close(first, want)

    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not an hdf5 file" * 64)
    before = _counts()
    got = _workspace(run_dir).bank(rep_spec, kernel, rows).get([ls])[ls]
    after = _counts()
    assert after["corrupt"] == before["corrupt"] + 1
    assert after["computed"] == before["computed"] + 1
    np.testing.assert_array_equal(got, first)
    # the recomputed entry was stored again and is served from then on
    assert entry.exists() and entry.read_bytes() != data[: len(data) // 2]
    before = _counts()
    np.testing.assert_array_equal(_workspace(run_dir).bank(rep_spec, kernel, rows).get([ls])[ls], first)
    after = _counts()
    assert after["hit"] == before["hit"] + 1 and after["computed"] == before["computed"]
