"""The contract every registered representation keeps, run on each name in the REPRESENTATIONS registry.

For molecules and crystals, with the parameters of the class's ``example_params``:

- the kernel between structures is invariant (to 1e-8 of its largest entry) to rotating, translating and
  re-ordering the atoms of each structure, and for crystals to moving one atom by a lattice vector;
- computing is deterministic: two computes, and 1 vs 2 worker processes, agree bit for bit;
- the shapes, dtypes and offsets of :class:`Features` are as documented;
- ``params_canonical()`` and ``describe()`` change when any scalar parameter changes (they key the cache);
- the registry round-trips: the name builds a class whose ``kind`` is that name, validation is idempotent
  and JSON-able.

The names come from the registry, so a new representation (built in or a plugin) is tested without
editing this file; one whose ``example_params`` is None for both kinds of system fails here.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from ase.build import bulk, molecule

from repbench.api import structures_from_ase
from repbench.errors import ConfigError
from repbench.models.kernel import kernel_matrices
from repbench.representations import REPRESENTATIONS, compute, make_representation, validate_spec

NAMES = REPRESENTATIONS.names()
RTOL = 1e-8
LOCAL_KERNEL = {"atom_kernel": "gaussian", "zeta": 2.0, "normalize": False}
GLOBAL_KERNEL = {"kind": "gaussian"}


# ---------------------------------------------------------------------------------------------- structures
def _molecules() -> list:
    """Small molecules, plus rattled copies (no two atoms equivalent: no ties in sorted descriptors)."""
    out = [molecule(m) for m in ("H2O", "CH4", "NH3", "CH3CH2OH", "CH3OCH3")]
    for i, m in enumerate(("H2O", "CH3CH2OH", "CH3OCH3")):
        a = molecule(m)
        a.rattle(0.05, seed=10 + i)
        out.append(a)
    return out


def _crystals() -> list:
    """Rock salt NaCl and KCl primitive cells, a rattled NaCl supercell, a strained rattled KCl cell."""
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    kcl = bulk("KCl", "rocksalt", a=6.29)
    sup = nacl * (2, 1, 1)
    sup.rattle(0.05, seed=1)
    strained = kcl.copy()
    strain = np.array([[1.03, 0.02, 0.0], [0.0, 0.98, 0.01], [0.0, 0.0, 1.0]])
    strained.set_cell(np.asarray(kcl.cell) @ strain, scale_atoms=True)
    strained.rattle(0.05, seed=2)
    return [nacl, kcl, sup, strained]


def _rotated(atoms, seed: int):
    a = atoms.copy()
    a.rotate(37.0 + 11 * seed, (1.0, 2.0, -0.5 + seed), center="COM", rotate_cell=True)
    a.rotate(-71.0, "z", center=(0.3, -0.2, 0.1), rotate_cell=True)
    return a


def _translated(atoms, seed: int):
    a = atoms.copy()
    a.translate(np.array([1.3, -2.1, 0.7]) * (1 + seed))
    return a


def _permuted(atoms, seed: int):
    perm = np.random.default_rng(seed).permutation(len(atoms))
    if len(atoms) > 1 and np.array_equal(perm, np.arange(len(atoms))):
        perm = np.roll(perm, 1)
    return atoms[perm]


def _lattice_shifted(atoms, seed: int):
    a = atoms.copy()
    pos = a.get_positions()
    pos[seed % len(a)] += np.asarray(a.cell[0]) - 2 * np.asarray(a.cell[2])
    a.set_positions(pos)
    return a


TRANSFORMS = {"rotation": _rotated, "translation": _translated, "atom order": _permuted,
              "lattice shift": _lattice_shifted}
SYSTEMS = {"molecules": (False, _molecules), "crystals": (True, _crystals)}
CASES = [(n, s) for n in NAMES for s in SYSTEMS]


def _example(name: str, system: str) -> dict:
    periodic, _ = SYSTEMS[system]
    params = REPRESENTATIONS[name].example_params(periodic)
    if params is None:
        pytest.skip(f"{name}: example_params({periodic}) is None (not applicable to {system})")
    return copy.deepcopy(params)


def _setup(name: str, system: str):
    periodic, make = SYSTEMS[system]
    atoms = make()
    s = structures_from_ase(atoms)
    assert s.periodic == periodic
    rep = make_representation({name: _example(name, system)}, s.elements, s.periodic)
    return rep, atoms, s


def _kernel_params(rep) -> dict:
    return LOCAL_KERNEL if rep.local else GLOBAL_KERNEL


def _length_scales(f) -> list[float]:
    """Half and once the median distance between rows (atoms or structures): a kernel that is neither
    flat nor diagonal, so that it sees differences in the features."""
    x = f.values
    d2 = np.maximum(np.sum(x * x, 1)[:, None] + np.sum(x * x, 1)[None, :] - 2 * x @ x.T, 0.0)
    d = np.sqrt(d2[np.triu_indices(len(x), 1)])
    d = d[d > 0]
    med = float(np.median(d)) if len(d) else 1.0
    return [0.5 * med, med]


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", NAMES)
def test_registry_round_trip(name):
    cls = REPRESENTATIONS[name]
    assert cls.kind == name, f"{cls.__name__}.kind is {cls.kind!r}, registered as {name!r}"
    examples = {s: cls.example_params(p) for s, (p, _) in SYSTEMS.items()}
    assert any(v is not None for v in examples.values()), (
        f"{name}: add example_params(periodic) to {cls.__name__} (small, fast, invariant parameters for "
        "molecules and/or crystals; see repbench.representations.base.Representation.example_params)")
    assert isinstance(cls.summary(), str) and cls.summary()
    assert isinstance(cls.parameters(), dict)
    for system, params in examples.items():
        if params is None:
            continue
        valid = validate_spec({name: copy.deepcopy(params)})[name]
        assert validate_spec({name: copy.deepcopy(valid)})[name] == valid, "validate() is not idempotent"
        assert json.loads(json.dumps(valid)) == valid, "validated parameters are not plain JSON data"
        assert cls.local_for(params) == cls.local_for(valid)


@pytest.mark.parametrize("name,system", CASES)
def test_features_contract(name, system):
    rep, atoms, s = _setup(name, system)
    f = compute(rep, s, n_workers=1, progress=False)
    assert f.values.dtype == np.float64 and f.values.ndim == 2
    assert f.values.shape[1] == rep.dim > 0
    assert np.all(np.isfinite(f.values))
    assert rep.local == type(rep).local_for(rep.params) == f.local
    if rep.local:
        assert f.offsets is not None and f.offsets.dtype == np.int64
        assert f.offsets[0] == 0 and np.array_equal(np.diff(f.offsets), [len(a) for a in atoms])
        assert f.values.shape[0] == f.offsets[-1] == sum(len(a) for a in atoms)
    else:
        assert f.offsets is None and f.values.shape[0] == len(atoms)
    assert f.n_structures == len(atoms)
    # a subset in another order gives the same rows
    idx = np.array([2, 0], dtype=np.int64)
    sub = compute(rep, s, idx, n_workers=1, progress=False)
    for j, i in enumerate(idx):
        np.testing.assert_array_equal(sub.structure(j), f.structure(i))
    d = rep.describe()
    assert d["kind"] == name and d["params"] == rep.params_canonical() and d["periodic"] == s.periodic
    json.dumps(d)


@pytest.mark.parametrize("name,system", CASES)
def test_deterministic(name, system):
    rep, _, s = _setup(name, system)
    a = compute(rep, s, n_workers=1, progress=False)
    b = compute(rep, s, n_workers=1, progress=False)
    c = compute(rep, s, n_workers=2, chunk_size=1, progress=False)
    assert a.values.tobytes() == b.values.tobytes(), "two computes differ"
    assert a.values.tobytes() == c.values.tobytes(), "1 and 2 workers differ"
    if a.local:
        assert np.array_equal(a.offsets, c.offsets)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("name,system", CASES)
def test_kernel_invariance(name, system, transform):
    periodic, _ = SYSTEMS[system]
    if transform == "lattice shift" and not periodic:
        pytest.skip("molecules have no lattice")
    rep, atoms, s = _setup(name, system)
    moved = [TRANSFORMS[transform](a, i) for i, a in enumerate(atoms)]
    t = structures_from_ase(moved)
    fa = compute(rep, s, n_workers=1, progress=False)
    fb = compute(rep, t, n_workers=1, progress=False)
    kp = _kernel_params(rep)
    ls = _length_scales(fa)
    kaa = kernel_matrices(fa, None, kp, ls)
    kba = kernel_matrices(fb, fa, kp, ls)
    kbb = kernel_matrices(fb, None, kp, ls)
    for l, a, ba, bb in zip(ls, kaa, kba, kbb):
        scale = np.max(np.abs(a))
        assert scale > 0
        err = max(np.max(np.abs(ba - a)), np.max(np.abs(bb - a))) / scale
        assert err <= RTOL, (f"{name} on {system}: kernel (length scale {l:.4g}) changes by {err:.3g} "
                             f"(relative) under {transform}")


def _scalar_leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _scalar_leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _scalar_leaves(v, path + (i,))
    elif isinstance(obj, (bool, int, float)):
        yield path, obj


def _perturbations(v):
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [v + 1, v - 1, 2 * v]
    return [v * 1.1, v * 0.9, v + 0.5]


def _set(obj, path, value):
    obj = copy.deepcopy(obj)
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


@pytest.mark.parametrize("name,system", CASES)
def test_identity_changes_with_every_parameter(name, system):
    rep, _, s = _setup(name, system)
    params = _example(name, system)
    again = make_representation({name: copy.deepcopy(params)}, s.elements, s.periodic)
    assert again.params_canonical() == rep.params_canonical() and again.describe() == rep.describe()
    changed = []
    for path, value in _scalar_leaves(params):
        for new in _perturbations(value):
            try:
                other = make_representation({name: _set(params, path, new)}, s.elements, s.periodic)
            except ConfigError:
                continue  # out of range: try the next perturbation
            assert other.params_canonical() != rep.params_canonical(), (
                f"{name}: params_canonical() ignores {'.'.join(map(str, path))} = {new!r}")
            assert other.describe() != rep.describe()
            changed.append(path)
            break
    assert changed, f"{name}: no scalar parameter of example_params could be perturbed"
