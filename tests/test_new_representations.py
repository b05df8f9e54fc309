"""The representations beyond the paper's three: Coulomb matrix, sine and Ewald sum matrices, FCHL19, and the
two twins of the local-or-global comparison (LMBTR, averaged SOAP).

- each gives its package's own numbers for the same parameters (max abs difference <= 1e-10; the measured
  differences are printed with ``pytest -s``);
- FCHL19 with repbench's Gaussian sum-over-atom-pairs kernel equals qmllib's element-matched local kernel;
- parameter errors name the key; molecules-only and crystals-only representations refuse the other kind;
- without qmllib, fchl19 is still listed and a config that names it gives one clear error.

The general contract (invariance, determinism, shapes, cache identity) is tests/test_contract.py.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from ase.build import bulk, molecule

from repbench.api import structures_from_ase
from repbench.errors import ConfigError, DataError
from repbench.representations import REPRESENTATIONS, compute, make_representation, validate_spec

TOL = 1e-10
# dscribe 2.1.2 calls the deprecated Atoms.get_calculator() (the reference computations below)
pytestmark = pytest.mark.filterwarnings("ignore:Please use atoms.calc:FutureWarning")
MOLECULES = ("H2O", "CH4", "NH3", "CH3CH2OH", "CH3OCH3", "C6H6", "CH3COOH")


def _molecules() -> list:
    out = [molecule(m) for m in MOLECULES]
    for i, a in enumerate(out[3:]):
        a.rattle(0.03, seed=i)
    return out


def _crystals() -> list:
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    sup = nacl * (2, 1, 1)
    sup.rattle(0.05, seed=1)
    kcl = bulk("KCl", "rocksalt", a=6.29, cubic=True)
    kcl.rattle(0.05, seed=2)
    return [nacl, sup, kcl]


def _ours(spec: dict, atoms: list):
    s = structures_from_ase(atoms)
    rep = make_representation(spec, s.elements, s.periodic)
    return rep, compute(rep, s, n_workers=1, progress=False), s


def _needs_qmllib() -> None:
    pytest.importorskip("qmllib", reason="qmllib not installed (pip install repbench[qmllib])", exc_type=ImportError)


def _report(name: str, diff: float) -> None:
    print(f"\n{name}: max abs difference to the package {diff:.3g}")


# ---------------------------------------------------------------------------------------------- equality
@pytest.mark.parametrize("permutation", ["sorted_l2", "eigenspectrum"])
def test_coulomb_matrix_equals_dscribe(permutation):
    from dscribe.descriptors import CoulombMatrix

    atoms = _molecules()
    rep, f, _ = _ours({"coulomb_matrix": {"n_atoms_max": 12, "permutation": permutation}}, atoms)
    ref = CoulombMatrix(n_atoms_max=12, permutation=permutation)
    want = np.array([ref.create_single(a) for a in atoms], dtype=np.float64)
    assert f.offsets is None and f.values.shape == want.shape == (len(atoms), rep.dim)
    diff = float(np.abs(f.values - want).max())
    _report(f"coulomb_matrix {permutation}", diff)
    assert diff <= TOL


@pytest.mark.parametrize("permutation", ["sorted_l2", "eigenspectrum"])
def test_sine_matrix_equals_dscribe(permutation):
    from dscribe.descriptors import SineMatrix

    atoms = _crystals()
    _, f, _ = _ours({"sine_matrix": {"n_atoms_max": 8, "permutation": permutation}}, atoms)
    ref = SineMatrix(n_atoms_max=8, permutation=permutation)
    want = np.array([ref.create_single(a) for a in atoms], dtype=np.float64)
    diff = float(np.abs(f.values - want).max())
    _report(f"sine_matrix {permutation}", diff)
    assert diff <= TOL


@pytest.mark.parametrize("create", [{}, {"accuracy": 1e-6, "w": 2.0}, {"r_cut": 8.0, "g_cut": 3.0, "a": 0.5}],
                         ids=["defaults", "accuracy-w", "cutoffs"])
def test_ewald_matrix_equals_dscribe(create):
    from dscribe.descriptors import EwaldSumMatrix

    atoms = _crystals()
    rep, f, _ = _ours({"ewald_matrix": {"n_atoms_max": 8, "permutation": "sorted_l2", **create}}, atoms)
    for key in ("accuracy", "w", "r_cut", "g_cut", "a"):     # every create argument is a config key
        assert key in rep.params
    ref = EwaldSumMatrix(n_atoms_max=8, permutation="sorted_l2")
    want = np.array([ref.create_single(a, **create) for a in atoms], dtype=np.float64)
    diff = float(np.abs(f.values - want).max())
    _report(f"ewald_matrix {create or 'defaults'}", diff)
    assert diff <= TOL


def test_lmbtr_equals_dscribe():
    """The local twin of MBTR: rows are dscribe's LMBTR per term, k=2 block then k=3 block."""
    from dscribe.descriptors import LMBTR

    atoms = _molecules()
    params = {"k": [2, 3], "k2": {"grid": {"n": 20}}, "k3": {"grid": {"n": 20}}}
    rep, f, s = _ours({"lmbtr": params}, atoms)
    v = rep.params
    terms = [LMBTR(geometry={"function": v[f"k{k}"]["geometry"]}, grid=dict(v[f"k{k}"]["grid"]),
                   weighting=dict(v[f"k{k}"]["weighting"]), normalize_gaussians=True, normalization="none",
                   species=s.elements, periodic=False) for k in (2, 3)]
    want = np.concatenate([np.concatenate([t.create_single(a) for t in terms], axis=1) for a in atoms])
    diff = float(np.abs(f.values - want).max())
    _report("lmbtr k=2,3", diff)
    assert diff <= TOL


@pytest.mark.parametrize("average", ["inner", "outer"])
def test_averaged_soap_equals_dscribe(average):
    """The global twin of SOAP: one dscribe-averaged row per structure."""
    from dscribe.descriptors import SOAP

    atoms = _molecules()
    rep, f, s = _ours({"soap": {"r_cut": 4.0, "n_max": 3, "l_max": 3, "sigma": 0.5, "average": average}}, atoms)
    assert not rep.local and f.offsets is None
    ref = SOAP(r_cut=4.0, n_max=3, l_max=3, sigma=0.5, average=average, species=s.elements)
    want = np.array([ref.create_single(a) for a in atoms])
    diff = float(np.abs(f.values - want).max())
    _report(f"soap average={average}", diff)
    assert diff <= TOL


FCHL_PARAMS = [{}, {"nRs2": 10, "nRs3": 6, "nFourier": 2, "eta2": 0.5, "eta3": 2.0, "zeta": 2.5, "rcut": 5.0,
                    "acut": 4.5, "two_body_decay": 1.5, "three_body_decay": 0.7, "three_body_weight": 20.0}]


@pytest.mark.parametrize("params", FCHL_PARAMS, ids=["defaults", "all-set"])
def test_fchl19_equals_qmllib(params):
    """repbench's rows are qmllib's generate_fchl19 rows (padded by qmllib to the largest molecule, cut back to
    the real atoms), followed by the element columns of ``element_offset``."""
    _needs_qmllib()
    from qmllib.representations import generate_fchl19

    atoms = _molecules()
    rep, f, s = _ours({"fchl19": dict(params)}, atoms)
    nmax = max(len(a) for a in atoms)
    d = rep.fchl_dim
    assert rep.dim == d + len(s.elements)
    diff = 0.0
    for i, a in enumerate(atoms):
        want = generate_fchl19(a.numbers, a.positions, elements=s.elements, pad=nmax, **params)[:len(a)]
        got = f.structure(i)
        assert got.shape == (len(a), d + len(s.elements))
        diff = max(diff, float(np.abs(got[:, :d] - want).max()))
        onehot = np.zeros((len(a), len(s.elements)))
        onehot[np.arange(len(a)), np.searchsorted(s.elements, a.numbers)] = 100.0
        assert np.array_equal(got[:, d:], onehot)
    _report(f"fchl19 {params or 'defaults'}", diff)
    assert diff <= TOL
    # element_offset 0: qmllib's rows alone
    _, f0, _ = _ours({"fchl19": {**params, "element_offset": 0}}, atoms)
    assert f0.dim == d and np.array_equal(f0.values, f.values[:, :d])


def test_fchl19_kernel_equals_qmllib_local_kernel():
    """With element_offset (default 100), repbench's Gaussian sum over atom pairs is qmllib's get_local_kernel
    (only atoms of the same element compared), to 1e-9 relative for length scales 0.5 ... 21."""
    _needs_qmllib()
    from qmllib.kernels import get_local_kernel
    from qmllib.representations import generate_fchl19

    from repbench.models.kernel import kernel_matrices

    atoms = _molecules()
    _, f, s = _ours({"fchl19": {}}, atoms)
    nmax = max(len(a) for a in atoms)
    X = np.array([generate_fchl19(a.numbers, a.positions, elements=s.elements, pad=nmax) for a in atoms])
    Q = [a.numbers for a in atoms]
    scales = [0.5, 2.0, 8.0, 21.0]
    ours = kernel_matrices(f, None, {"atom_kernel": "gaussian", "normalize": False}, scales)
    worst = 0.0
    for sigma, K in zip(scales, ours):
        want = get_local_kernel(X, X, Q, Q, sigma)
        worst = max(worst, float(np.abs(K - want).max() / np.abs(want).max()))
    print(f"\nfchl19 kernel vs qmllib get_local_kernel: max relative difference {worst:.3g}")
    assert worst <= 1e-9


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name,params,key", [
    ("coulomb_matrix", {}, "n_atoms_max"),
    ("coulomb_matrix", {"n_atoms_max": 0}, "n_atoms_max"),
    ("coulomb_matrix", {"n_atoms_max": 29, "permutation": "random"}, "permutation"),
    ("coulomb_matrix", {"n_atoms_max": 29, "permutation": "none"}, "permutation"),
    ("coulomb_matrix", {"n_atoms_max": 29, "permutation": "sorted"}, "permutation"),
    ("coulomb_matrix", {"n_atoms_max": 29, "sigma": 0.1}, "sigma"),
    ("sine_matrix", {"n_atoms_max": 2.5}, "n_atoms_max"),
    ("sine_matrix", {"n_atoms_max": 80, "accuracy": 1e-5}, "accuracy"),
    ("ewald_matrix", {"n_atoms_max": 80, "accuracy": 0}, "accuracy"),
    ("ewald_matrix", {"n_atoms_max": 80, "r_cut": 8.0}, "g_cut"),
    ("ewald_matrix", {"n_atoms_max": 80, "g_cut": 3.0}, "r_cut"),
    ("ewald_matrix", {"n_atoms_max": 80, "w": "big"}, "w"),
    ("fchl19", {"rcut": -1.0}, "rcut"),
    ("fchl19", {"nRs2": 0}, "nRs2"),
    ("fchl19", {"nFourier": 1.5}, "nFourier"),
    ("fchl19", {"three_body_weight": -2}, "three_body_weight"),
    ("fchl19", {"element_offset": -1}, "element_offset"),
    ("fchl19", {"n_max": 3}, "n_max"),
])
def test_errors_name_the_key(name, params, key):
    with pytest.raises(ConfigError) as e:
        validate_spec({name: params})
    assert e.value.where == f"representation.{name}.{key}", str(e.value)


def test_defaults_and_idempotence():
    cm = validate_spec({"coulomb_matrix": {"n_atoms_max": 29}})["coulomb_matrix"]
    assert cm == {"n_atoms_max": 29, "permutation": "sorted_l2"}
    ew = validate_spec({"ewald_matrix": {"n_atoms_max": 80}})["ewald_matrix"]
    assert ew == {"n_atoms_max": 80, "permutation": "sorted_l2", "accuracy": 1e-5, "w": 1.0, "r_cut": None,
                  "g_cut": None, "a": None}
    assert validate_spec({"ewald_matrix": ew})["ewald_matrix"] == ew
    fchl = REPRESENTATIONS["fchl19"].parameters()        # qmllib's defaults, listed without qmllib
    assert fchl["nRs2"] == 24 and fchl["nRs3"] == 20 and fchl["rcut"] == 8.0 and fchl["element_offset"] == 100.0


def test_matrix_too_small_is_refused_naming_the_key():
    atoms = _molecules()
    with pytest.raises(DataError) as e:
        _ours({"coulomb_matrix": {"n_atoms_max": 5}}, atoms)
    assert e.value.where == "representation.coulomb_matrix.n_atoms_max"


@pytest.mark.parametrize("name,params,system", [
    ("coulomb_matrix", {"n_atoms_max": 8}, "crystals"),
    ("sine_matrix", {"n_atoms_max": 12}, "molecules"),
    ("ewald_matrix", {"n_atoms_max": 12}, "molecules"),
    ("fchl19", {}, "crystals"),
])
def test_molecules_or_crystals_only(name, params, system):
    if name == "fchl19":
        _needs_qmllib()
    s = structures_from_ase(_crystals() if system == "crystals" else _molecules())
    with pytest.raises(ConfigError) as e:
        make_representation({name: params}, s.elements, s.periodic)
    assert e.value.where == f"representation.{name}"
    assert ("periodic" in e.value.message) if system == "crystals" else ("molecules" in e.value.message)


def test_fchl19_without_qmllib(monkeypatch):
    """Listed with its kind and package; a config naming it gives one error with the install command."""
    for mod in [m for m in sys.modules if m == "qmllib" or m.startswith("qmllib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "qmllib", None)        # import qmllib -> ImportError
    entry = {e.name: e for e in REPRESENTATIONS.entries()}["fchl19"]
    cls = REPRESENTATIONS["fchl19"]
    assert entry.source == "repbench" and cls.kind_label() == "local" and "qmllib" in cls.summary()
    assert cls.parameters()["nRs2"] == 24
    with pytest.raises(ConfigError) as e:
        validate_spec({"fchl19": {}})
    assert e.value.hint == "pip install repbench[qmllib]" and "qmllib" in e.value.message
    assert e.value.where == "representation.fchl19"
    with pytest.raises(ConfigError) as e:
        make_representation({"fchl19": {}}, [1, 6], False)
    assert e.value.hint == "pip install repbench[qmllib]"
