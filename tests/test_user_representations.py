"""User-facing representations: a user's own Python function (``representation.python``), the generic dscribe
adapter (``representation.dscribe``) and LMBTR (``representation.lmbtr``).

- python: module resolution next to the config / in the current directory / by path / by import, the
  validated ``module_file`` reused from another directory, keyword arguments checked against the
  signature, each kind of bad output (shape, NaN, dtype, exception in the function) as one clear error
  naming the function (also from a worker process), source edits change the cache identity and are refused
  for a run validated with the old source, a user ``version`` is respected, config validation with a
  search-space leaf.
- dscribe: equal to dscribe's own output (max abs diff <= 1e-10) for CoulombMatrix, SineMatrix, LMBTR, ACSF,
  SOAP (averaged) and EwaldSumMatrix (with create arguments); local/global by class; validation errors name
  the key.
- lmbtr: equal to dscribe's LMBTR per term, concatenated; validation.
- ``repbench representations`` lists python, dscribe and lmbtr with local/global.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml
from ase.build import bulk, molecule

from repbench.api import structures_from_ase
from repbench.config import from_dict, load, thaw
from repbench.errors import ConfigError, DataError
from repbench.representations import compute, make_representation, validate_spec
from repbench.representations.base import validating_config, wrap_into_cell

dscribe = pytest.importorskip("dscribe")
from dscribe.descriptors import (ACSF, LMBTR, SOAP, CoulombMatrix, EwaldSumMatrix,  # noqa: E402
                                 SineMatrix)

TOL = 1e-10


# ---------------------------------------------------------------------------------------------- data
def _molecules():
    out = [molecule(m) for m in ("H2O", "CH4", "NH3", "CH3CH2OH")]
    a = molecule("CH3OCH3")
    a.rattle(0.05, seed=3)
    return out + [a]


def _crystals():
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    sup = bulk("KCl", "rocksalt", a=6.29) * (2, 1, 1)
    sup.rattle(0.05, seed=1)
    # dscribe itself is given the positions repbench computes with (atoms moved into the cell)
    return wrap_into_cell([nacl, sup, bulk("NaCl", "rocksalt", a=5.5)])


MOLS = structures_from_ase(_molecules())
CRYSTALS = structures_from_ase(_crystals())


def _features(spec, s, **kw):
    rep = make_representation(spec, s.elements, s.periodic)
    return rep, compute(rep, s, n_workers=1, progress=False, **kw)


def _dscribe_rows(desc, s, local, **create):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        rows = [np.asarray(desc.create_single(a, **create), dtype=np.float64) for a in s.to_ase()]
    return np.concatenate([r.reshape(len(a), -1) for r, a in zip(rows, s.to_ase())]) if local else np.stack(
        [r.reshape(-1) for r in rows])


# ---------------------------------------------------------------------------------------------- python
MODULE = '''
"""A throwaway user module."""
import numpy as np


def radial_histogram(atoms_list, n_bins=8, r_cut=4.0):
    """Per atom: Gaussian-smeared histogram of distances to the other atoms."""
    mu = np.linspace(0.0, r_cut, n_bins)
    rows = []
    for a in atoms_list:
        d = a.get_all_distances()
        g = np.exp(-(d[:, :, None] - mu) ** 2)
        rows.append(g.sum(axis=1) - np.exp(-mu ** 2))  # without the atom itself
    return np.concatenate(rows)


def n_atoms(atoms_list, scale=1):
    return np.array([[len(a) * scale, 1] for a in atoms_list])  # integers: converted to float64


def wrong_shape(atoms_list):
    return np.zeros((sum(len(a) for a in atoms_list) - 1, 5))


def with_nan(atoms_list):
    x = np.ones((sum(len(a) for a in atoms_list), 2))
    x[0, 1] = np.nan
    return x


def complex_out(atoms_list):
    return np.zeros((sum(len(a) for a in atoms_list), 2), dtype=complex)


def strings(atoms_list):
    return np.array([["a", "b"]] * sum(len(a) for a in atoms_list))


def flat(atoms_list):
    return np.zeros(sum(len(a) for a in atoms_list))


def boom(atoms_list):
    raise ValueError("my own message about " + atoms_list[0].get_chemical_formula())


def boom_on_methane(atoms_list):
    if atoms_list[0].get_chemical_formula() == "CH4":
        raise RuntimeError("methane is not supported")
    return np.ones((len(atoms_list[0]), 3))


def varying_width(atoms_list):
    return np.ones((len(atoms_list[0]), len(atoms_list[0])))


NOT_CALLABLE = 3
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``cfg/my_descriptors.py`` next to ``cfg/config.yaml``; the current directory is elsewhere."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "my_descriptors.py").write_text(MODULE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return cfg


def _validated(params: dict, folder) -> dict:
    with validating_config(folder):
        return validate_spec({"python": params})["python"]


def test_python_next_to_the_config_and_reused_from_another_directory(user_module, tmp_path, monkeypatch):
    valid = _validated({"function": "my_descriptors:radial_histogram", "kind": "local", "n_bins": 6},
                       user_module)
    assert valid["module_file"] == str((user_module / "my_descriptors.py").resolve())
    assert valid["version"].startswith("sha256:") and len(valid["version"]) == len("sha256:") + 16
    assert valid["n_bins"] == 6 and valid["kind"] == "local"
    assert validate_spec({"python": dict(valid)})["python"] == valid  # idempotent, no config dir needed
    # a later stage, from another directory and without the config's folder: the same file
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    rep, f = _features({"python": valid}, MOLS)
    assert rep.local and f.local and f.values.shape == (MOLS.n_atoms.sum(), 6)
    from repbench.representations.python_function import PythonRepresentation

    assert "module_file" not in rep.params_canonical()
    assert rep.params_canonical()["function"] == "my_descriptors:radial_histogram"
    assert PythonRepresentation.local_for(valid)
    # without module_file and outside the config's folder the name is not found
    with pytest.raises(ConfigError) as info:
        validate_spec({"python": {"function": "my_descriptors:radial_histogram", "kind": "local"}})
    assert info.value.where == "representation.python.function" and "my_descriptors" in str(info.value)


def test_python_path_forms_cwd_and_import(user_module, tmp_path, monkeypatch):
    sub = user_module / "sub" / "dir"
    sub.mkdir(parents=True)
    (sub / "file.py").write_text(MODULE)
    v = _validated({"function": "sub/dir/file.py:n_atoms", "kind": "global"}, user_module)
    assert v["module_file"] == str((sub / "file.py").resolve())
    # relative to the current directory when no config folder is set
    monkeypatch.chdir(user_module)
    spec = {"function": "my_descriptors:n_atoms", "kind": "global", "scale": 2}
    v2 = validate_spec({"python": spec})["python"]
    rep, f = _features({"python": v2}, MOLS)
    assert not rep.local and f.offsets is None and f.values.dtype == np.float64
    np.testing.assert_array_equal(f.values[:, 0], 2.0 * MOLS.n_atoms)
    # an absolute path, and an importable module (no file next to the config)
    v3 = validate_spec({"python": {"function": f"{sub / 'file.py'}:n_atoms", "kind": "global"}})["python"]
    assert v3["module_file"] == v["module_file"]
    v4 = _validated({"function": "repbench.representations.python_function:radial_histogram", "kind": "local",
                     "n_bins": 4}, user_module)
    assert v4["module_file"] is None and v4["version"].startswith("sha256:")


@pytest.mark.parametrize("params,where,text", [
    ({"kind": "local"}, "representation.python.function", "needs the function"),
    ({"function": "my_descriptors:radial_histogram"}, "representation.python.kind", "allowed: local, global"),
    ({"function": "my_descriptors:radial_histogram", "kind": "both"}, "representation.python.kind", "both"),
    ({"function": "my_descriptors", "kind": "local"}, "representation.python.function", "MODULE:CALLABLE"),
    ({"function": "no_such_module:f", "kind": "local"}, "representation.python.function", "no_such_module"),
    ({"function": "missing/file.py:f", "kind": "local"}, "representation.python.function", "does not exist"),
    ({"function": "my_descriptors:nope", "kind": "local"}, "representation.python.function",
     "callables defined there: boom"),
    ({"function": "my_descriptors:NOT_CALLABLE", "kind": "local"}, "representation.python.function",
     "not a function"),
    ({"function": "my_descriptors:radial_histogram", "kind": "local", "n_bin": 8},
     "representation.python.n_bin", "has no keyword argument 'n_bin'"),
    ({"function": "my_descriptors:radial_histogram", "kind": "local", "version": ""},
     "representation.python.version", "non-empty"),
    ({"function": "my_descriptors:radial_histogram", "kind": "local", "n_bins": {"a": object()}},
     "representation.python.n_bins.a", "plain data"),
])
def test_python_validation_errors(user_module, params, where, text):
    with pytest.raises(ConfigError) as info:
        _validated(params, user_module)
    assert info.value.where == where, str(info.value)
    assert text in str(info.value)


def test_python_broken_module_is_one_error(user_module):
    (user_module / "broken.py").write_text("import numpy as np\n\ndef f(atoms_list):\n    return [\n")
    with pytest.raises(ConfigError) as info:
        _validated({"function": "broken:f", "kind": "local"}, user_module)
    assert info.value.where == "representation.python.function"
    assert "broken:f" in str(info.value) and "SyntaxError" in str(info.value)


@pytest.mark.parametrize("func,text", [
    ("wrong_shape", "my_descriptors:wrong_shape returned shape (2, 5) for 3 atoms (H2O); a local "
                    "representation returns one row per atom"),
    ("with_nan", "my_descriptors:with_nan returned 1 non-finite value(s) (NaN or infinity) for 3 atoms "
                 "(H2O)"),
    ("complex_out", "my_descriptors:complex_out returned a complex array (dtype complex128)"),
    ("strings", "my_descriptors:strings returned a string array"),
    ("flat", "my_descriptors:flat returned shape (3,) for 3 atoms (H2O)"),
    ("boom", "my_descriptors:boom raised ValueError: my own message about H2O (at my_descriptors.py:"),
    ("varying_width", "my_descriptors:varying_width returned 5 columns for 5 atoms (CH4), but 3 for the "
                      "first structure"),
])
def test_python_bad_output_is_one_clear_error(user_module, func, text):
    valid = _validated({"function": f"my_descriptors:{func}", "kind": "local"}, user_module)
    rep = make_representation({"python": valid}, MOLS.elements, MOLS.periodic)
    with pytest.raises(DataError) as info:
        compute(rep, MOLS, n_workers=1, progress=False)
    assert info.value.where == "representation.python"
    assert text in str(info.value), str(info.value)
    assert str(info.value).startswith("representation.python: my_descriptors:" + func)


def test_python_error_in_a_worker_process(user_module):
    valid = _validated({"function": "my_descriptors:boom_on_methane", "kind": "local"}, user_module)
    rep = make_representation({"python": valid}, MOLS.elements, MOLS.periodic)
    with pytest.raises(DataError) as info:
        compute(rep, MOLS, n_workers=2, chunk_size=1, progress=False)
    msg = str(info.value)
    assert msg.startswith("representation.python: my_descriptors:boom_on_methane raised RuntimeError: "
                          "methane is not supported"), msg
    assert "(structure '1')" in msg and "Traceback" not in msg


def test_python_dim_is_known_after_fit_dim(user_module):
    valid = _validated({"function": "my_descriptors:radial_histogram", "kind": "local", "n_bins": 5},
                       user_module)
    rep = make_representation({"python": valid}, MOLS.elements, MOLS.periodic)
    with pytest.raises(RuntimeError, match="fit_dim"):
        rep.dim
    assert rep.fit_dim([]) == 0
    assert rep.fit_dim(MOLS.to_ase([0])) == 5 == rep.dim
    # 1 and 2 workers agree bit for bit
    a = compute(rep, MOLS, n_workers=1, progress=False)
    b = compute(rep, MOLS, n_workers=2, chunk_size=1, progress=False)
    assert a.values.tobytes() == b.values.tobytes()


def test_python_edited_source_changes_identity_and_is_refused(user_module):
    path = user_module / "config.yaml"
    data = {"name": "t", "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 50},
            "representation": {"python": {"function": "my_descriptors:radial_histogram", "kind": "local"}}}
    path.write_text(yaml.safe_dump(data))
    prepared = thaw(load(path).representation)         # as `repbench prepare` stores it in run.yaml
    rep_old = make_representation(prepared, MOLS.elements, MOLS.periodic)
    # the user edits the function
    src = user_module / "my_descriptors.py"
    src.write_text(MODULE.replace("rows.append(g.sum(axis=1) - np.exp(-mu ** 2))",
                                  "rows.append(2.0 * (g.sum(axis=1) - np.exp(-mu ** 2)))"))
    with pytest.raises(ConfigError) as info:
        make_representation(prepared, MOLS.elements, MOLS.periodic)
    msg = str(info.value)
    assert info.value.where == "representation.python.version"
    assert "my_descriptors:radial_histogram" in msg and "changed since the run was prepared" in msg
    assert "repbench prepare" in msg
    # validated again from the config: a new identity, computed with the new code
    fresh = thaw(load(path).representation)
    rep_new = make_representation(fresh, MOLS.elements, MOLS.periodic)
    assert rep_new.params_canonical() != rep_old.params_canonical()
    assert rep_new.params_canonical()["version"] != rep_old.params_canonical()["version"]
    f_new = compute(rep_new, MOLS, n_workers=1, progress=False)
    src.write_text(MODULE)
    f_old = compute(make_representation(prepared, MOLS.elements, MOLS.periodic), MOLS, n_workers=1,
                    progress=False)  # the old source is back: accepted again
    np.testing.assert_array_equal(f_new.values, 2.0 * f_old.values)


def test_python_user_version_is_respected(user_module):
    params = {"function": "my_descriptors:radial_histogram", "kind": "local", "version": "1"}
    v1 = _validated(params, user_module)
    assert v1["version"] == "1"
    rep1 = make_representation({"python": v1}, MOLS.elements, MOLS.periodic)
    (user_module / "my_descriptors.py").write_text(MODULE.replace("n_bins=8", "n_bins=9"))
    # the user manages versions: an edit with the same version keeps the identity and is not refused
    rep1b = make_representation({"python": v1}, MOLS.elements, MOLS.periodic)
    assert rep1b.params_canonical() == rep1.params_canonical()
    assert compute(rep1b, MOLS, n_workers=1, progress=False).dim == 9
    v2 = _validated({**params, "version": 2}, user_module)
    assert v2["version"] == "2"
    assert make_representation({"python": v2}, MOLS.elements, MOLS.periodic).params_canonical() != \
        rep1.params_canonical()


def test_python_config_with_search_space_leaf(user_module):
    path = user_module / "config.yaml"
    data = {
        "name": "py", "seed": 0,
        "dataset": {"name": "qm9", "target": "U0_atomization", "per": "structure", "subset": 200},
        "splits": {"test": 50, "train_sizes": [20, 40], "draws": 1},
        "representation": {"python": {"function": "my_descriptors:radial_histogram", "kind": "local",
                                      "n_bins": {"int": [8, 32]}, "r_cut": 4.0}},
        "kernel": {"atom_kernel": "gaussian"},
    }
    cfg = from_dict(data, str(path))
    rep = thaw(cfg.representation)["python"]
    assert rep["n_bins"] == {"int": [8, 32]} and rep["r_cut"] == 4.0
    assert rep["module_file"] == str((user_module / "my_descriptors.py").resolve())
    assert rep["version"].startswith("sha256:")
    assert thaw(cfg.kernel)["atom_kernel"] == "gaussian"  # picked as a local representation
    # a bad keyword argument in the config names the file and the key
    bad = {**data, "representation": {"python": {**data["representation"]["python"], "n_bns": 3}}}
    with pytest.raises(ConfigError) as info:
        from_dict(bad, str(path))
    assert "representation.python.n_bns" in str(info.value) and str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------- dscribe
DSCRIBE_CASES = [
    ("CoulombMatrix sorted_l2", MOLS, {"descriptor": "CoulombMatrix", "n_atoms_max": 12},
     lambda s: CoulombMatrix(n_atoms_max=12), {}),
    ("CoulombMatrix eigenspectrum", MOLS,
     {"descriptor": "CoulombMatrix", "n_atoms_max": 10, "permutation": "eigenspectrum"},
     lambda s: CoulombMatrix(n_atoms_max=10, permutation="eigenspectrum"), {}),
    ("SineMatrix", CRYSTALS, {"descriptor": "SineMatrix", "n_atoms_max": 6},
     lambda s: SineMatrix(n_atoms_max=6), {}),
    ("EwaldSumMatrix", CRYSTALS,
     {"descriptor": "EwaldSumMatrix", "n_atoms_max": 6, "permutation": "eigenspectrum",
      "create": {"accuracy": 1e-6}},
     lambda s: EwaldSumMatrix(n_atoms_max=6, permutation="eigenspectrum"), {"accuracy": 1e-6}),
    ("LMBTR", MOLS,
     {"descriptor": "LMBTR", "geometry": {"function": "cosine"},
      "grid": {"min": -1, "max": 1, "n": 30, "sigma": 0.05},
      "weighting": {"function": "exp", "scale": 0.5, "threshold": 1e-3}},
     lambda s: LMBTR(geometry={"function": "cosine"}, grid={"min": -1, "max": 1, "n": 30, "sigma": 0.05},
                     weighting={"function": "exp", "scale": 0.5, "threshold": 1e-3}, species=s.elements,
                     periodic=False), {}),
    ("ACSF", MOLS, {"descriptor": "ACSF", "r_cut": 5.0, "g2_params": [[1.0, 1.0], [0.5, 2.0]],
                    "g4_params": [[0.01, 1.0, -1.0], [0.01, 2.0, 1.0]]},
     lambda s: ACSF(r_cut=5.0, g2_params=[[1.0, 1.0], [0.5, 2.0]],
                    g4_params=[[0.01, 1.0, -1.0], [0.01, 2.0, 1.0]], species=s.elements), {}),
    ("ACSF periodic", CRYSTALS, {"descriptor": "ACSF", "r_cut": 5.0, "g2_params": [[1.0, 1.0]]},
     lambda s: ACSF(r_cut=5.0, g2_params=[[1.0, 1.0]], species=s.elements, periodic=True), {}),
    ("SOAP averaged", MOLS, {"descriptor": "SOAP", "r_cut": 4.0, "n_max": 3, "l_max": 2, "average": "inner"},
     lambda s: SOAP(r_cut=4.0, n_max=3, l_max=2, average="inner", species=s.elements), {}),
]


@pytest.mark.parametrize("case", DSCRIBE_CASES, ids=[c[0] for c in DSCRIBE_CASES])
def test_dscribe_adapter_equals_dscribe(case):
    label, s, params, make, create = case
    rep, f = _features({"dscribe": params}, s)
    ref = _dscribe_rows(make(s), s, rep.local, **create)
    assert f.values.shape == ref.shape
    diff = float(np.max(np.abs(f.values - ref)))
    print(f"{label}: max |repbench - dscribe| = {diff:.3g} (max |x| {np.max(np.abs(ref)):.3g})")
    assert diff <= TOL


def test_dscribe_local_or_global_by_class():
    from repbench.representations.dscribe_any import DscribeRepresentation as D

    assert D.local_for({"descriptor": "LMBTR"}) and D.local_for({"descriptor": "SOAP"}) and \
        D.local_for({"descriptor": "ACSF"})
    assert not D.local_for({"descriptor": "SOAP", "average": "inner"})
    assert D.local_for({"descriptor": "SOAP", "average": False})  # YAML's bare `off`
    for g in ("CoulombMatrix", "SineMatrix", "EwaldSumMatrix", "MBTR", "ValleOganov"):
        assert not D.local_for({"descriptor": g})
    v = validate_spec({"dscribe": {"descriptor": "CoulombMatrix", "n_atoms_max": 5}})["dscribe"]
    assert v == {"descriptor": "CoulombMatrix", "n_atoms_max": 5, "permutation": "sorted_l2", "sigma": None,
                 "seed": None}
    e = validate_spec({"dscribe": {"descriptor": "EwaldSumMatrix", "n_atoms_max": 5}})["dscribe"]
    assert e["create"] == {"accuracy": 1e-5, "w": 1.0, "r_cut": None, "g_cut": None, "a": None}


@pytest.mark.parametrize("params,where,text", [
    ({}, "descriptor", "available: ACSF, CoulombMatrix"),
    ({"descriptor": "Coulomb"}, "descriptor", "available: ACSF, CoulombMatrix, EwaldSumMatrix"),
    ({"descriptor": "CoulombMatrix"}, "n_atoms_max", "repbench datasets show"),
    ({"descriptor": "CoulombMatrix", "n_atoms_max": 9, "species": ["H"]}, "species", "set by repbench"),
    ({"descriptor": "SOAP", "r_cut": 4, "n_max": 3, "l_max": 2, "periodic": True}, "periodic",
     "set by repbench"),
    ({"descriptor": "SOAP", "r_cut": 4, "n_max": 3, "l_max": 2, "sparse": True}, "sparse", "dense"),
    ({"descriptor": "CoulombMatrix", "n_atoms_max": 9, "r_cut": 3}, "r_cut",
     "allowed keys: descriptor, n_atoms_max, permutation, sigma, seed"),
    ({"descriptor": "CoulombMatrix", "n_atoms_max": 9, "permutation": "bogus"}, "permutation",
     "rejected by dscribe"),
    ({"descriptor": "CoulombMatrix", "n_atoms_max": 0}, "n_atoms_max", "rejected by dscribe"),
    ({"descriptor": "CoulombMatrix", "n_atoms_max": 9, "permutation": "random", "sigma": 0.1}, "permutation",
     "not reproducible"),
    ({"descriptor": "CoulombMatrix", "n_atoms_max": 9, "create": {"accuracy": 1}}, "create",
     "takes no create arguments"),
    ({"descriptor": "EwaldSumMatrix", "n_atoms_max": 9, "create": {"r_cut": 5.0}}, "create.g_cut",
     "both cutoffs"),
    ({"descriptor": "EwaldSumMatrix", "n_atoms_max": 9, "create": {"accuracy": -1}}, "create.accuracy",
     "out of range"),
    ({"descriptor": "SOAP", "r_cut": 4.0, "n_max": 3, "l_max": 2, "rbf": "nope"}, "rbf",
     "rejected by dscribe"),
])
def test_dscribe_validation_errors(params, where, text):
    with pytest.raises(ConfigError) as info:
        validate_spec({"dscribe": params})
    assert info.value.where == "representation.dscribe." + where, str(info.value)
    assert text in str(info.value), str(info.value)


def test_dscribe_errors_that_need_the_dataset():
    with pytest.raises(ConfigError) as info:
        make_representation({"dscribe": {"descriptor": "SineMatrix", "n_atoms_max": 9}}, MOLS.elements, False)
    assert info.value.where == "representation.dscribe.descriptor" and "periodic" in str(info.value)
    rep = make_representation({"dscribe": {"descriptor": "CoulombMatrix", "n_atoms_max": 4}}, MOLS.elements,
                              False)
    with pytest.raises(DataError) as info:
        compute(rep, MOLS, n_workers=1, progress=False)
    assert info.value.where == "representation.dscribe.n_atoms_max"
    assert "5 atoms (CH4) is larger than n_atoms_max 4" in str(info.value)


# ---------------------------------------------------------------------------------------------- lmbtr
LMBTR_K2 = {"geometry": "distance", "grid": {"min": 0.0, "max": 6.0, "n": 40, "sigma": 0.2},
            "weighting": {"function": "exp", "scale": 0.7, "threshold": 1e-3}}
LMBTR_K3 = {"geometry": "angle", "grid": {"min": 0.0, "max": 180.0, "n": 30, "sigma": 5.0},
            "weighting": {"function": "exp", "scale": 0.5, "threshold": 1e-3}}


def _dscribe_lmbtr(term: dict, s):
    return LMBTR(geometry={"function": term["geometry"]}, grid=dict(term["grid"]),
                 weighting=dict(term["weighting"]), normalize_gaussians=True, normalization="none",
                 species=s.elements, periodic=s.periodic)


@pytest.mark.parametrize("s", [MOLS, CRYSTALS], ids=["molecules", "crystals"])
@pytest.mark.parametrize("k", [[2], [3], [2, 3]])
def test_lmbtr_equals_dscribe(s, k):
    params = {"k": k, **({"k2": LMBTR_K2} if 2 in k else {}), **({"k3": LMBTR_K3} if 3 in k else {})}
    rep, f = _features({"lmbtr": params}, s)
    assert rep.local and f.local
    blocks = [_dscribe_rows(_dscribe_lmbtr(t, s), s, True) for t in ([LMBTR_K2] if 2 in k else [])
              + ([LMBTR_K3] if 3 in k else [])]
    ref = np.concatenate(blocks, axis=1)
    diff = float(np.max(np.abs(f.values - ref)))
    print(f"lmbtr k={k} {s.name}: max |repbench - dscribe| = {diff:.3g} (max |x| {np.max(np.abs(ref)):.3g})")
    assert f.values.shape == ref.shape and diff <= TOL


def test_lmbtr_defaults_and_idempotent():
    v = validate_spec({"lmbtr": None})["lmbtr"]
    assert v["k"] == [2] and v["k2"]["geometry"] == "inverse_distance" and v["k2"]["normalization"] == "none"
    assert validate_spec({"lmbtr": v})["lmbtr"] == v


@pytest.mark.parametrize("params,where,text", [
    ({"k": [4]}, "representation.lmbtr.k[0]", "allowed: [2], [3], [2, 3]"),
    ({"k": [2], "k3": {}}, "representation.lmbtr.k3", "add 3 to k"),
    ({"k2": {"normalization": "n_atoms"}}, "representation.lmbtr.k2.normalization", "allowed: none, l2"),
    ({"k2": {"geometry": "angle"}}, "representation.lmbtr.k2.geometry", "distance"),
    ({"k2": {"grid": {"min": 2, "max": 1}}}, "representation.lmbtr.k2.grid.min", "smaller than max"),
    ({"k2": {"weighting": {"function": "exp"}}}, "representation.lmbtr.k2.weighting", "scale"),
    ({"k2": {"weighting": {"function": "smooth_cutoff", "r_cut": 3}}},
     "representation.lmbtr.k2.weighting.function", "allowed"),
    ({"k2": {"colour": 1}}, "representation.lmbtr.k2.colour", "allowed keys"),
])
def test_lmbtr_validation_errors(params, where, text):
    with pytest.raises(ConfigError) as info:
        validate_spec({"lmbtr": params})
    assert info.value.where == where, str(info.value)
    assert text in str(info.value)


def test_lmbtr_periodic_needs_a_cutoff():
    with pytest.raises(ConfigError) as info:
        make_representation({"lmbtr": {"k2": {"weighting": {"function": "unity"}}}}, CRYSTALS.elements, True)
    assert info.value.where == "representation.lmbtr.k2.weighting"


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_lists_the_new_representations():
    from click.testing import CliRunner

    from repbench.cli import main

    res = CliRunner().invoke(main, ["representations", "--format", "yaml"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in yaml.safe_load(res.output)}
    assert {"python", "dscribe", "lmbtr"} <= set(rows)
    assert rows["lmbtr"]["kind"] == "local"
    assert rows["python"]["kind"] == "local or global (key kind)"
    assert rows["dscribe"]["kind"] == "local or global (by descriptor)"
    assert "function" in rows["python"]["parameters"] and "descriptor" in rows["dscribe"]["parameters"]
    assert all(rows[n]["package"] == "repbench" for n in ("python", "dscribe", "lmbtr"))
    table = CliRunner().invoke(main, ["representations"])
    assert table.exit_code == 0
    for name in ("python", "dscribe", "lmbtr"):
        assert name in table.output
