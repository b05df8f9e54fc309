"""The sorted eigenspectrum of the Coulomb matrix (Rupp et al., PRL 108, 058301 (2012)), global.

For a molecule with nuclear charges ``Z`` and positions ``R`` the Coulomb matrix is

    M_ii = 0.5 * Z_i ** 2.4,        M_ij = Z_i * Z_j / |R_i - R_j| ** distance_power   (i != j)

(``distance_power`` 1 is the original).  Its eigenvalues, sorted from largest to smallest and padded with
zeros to ``n_atoms_max``, are one vector per molecule.  They do not change under rotation, translation
or a reordering of the atoms (a reordering is a similarity transform ``P M P^T``), and they are cheap:
one symmetric eigensolve of at most ``n_atoms_max x n_atoms_max`` per molecule, in numpy.

Config (``representation.coulomb_eigen``), defaults in brackets:

- ``n_atoms_max`` [29] length of the vector; must be at least the largest molecule (QM9: 29 atoms).
- ``distance_power`` [1.0] exponent of the distance in the off-diagonal terms, number in (0, 6].

Molecules only: the Coulomb matrix of a periodic crystal is not defined this way (it would need a sine or
Ewald matrix), so building it for a periodic dataset is a config error.
"""

from __future__ import annotations

import numpy as np

from repbench.errors import ConfigError
from repbench.representations.base import Representation, as_float, as_int, check_mapping

DEFAULTS = {"n_atoms_max": 29, "distance_power": 1.0}

#: Bump when the numbers this class computes change for the same parameters: it is part of
#: :meth:`CoulombEigenspectrum.params_canonical`, so cached features of an older version are not reused.
NUMERICS_VERSION = 1


def coulomb_eigenspectrum(z: np.ndarray, positions: np.ndarray, n_atoms_max: int,
                          distance_power: float = 1.0) -> np.ndarray:
    """Sorted (descending) eigenvalues of the Coulomb matrix of one molecule, zero-padded to ``n_atoms_max``."""
    z = np.asarray(z, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    n = len(z)
    if n > n_atoms_max:
        raise ValueError(f"a structure has {n} atoms, more than n_atoms_max={n_atoms_max} "
                         f"(raise representation.coulomb_eigen.n_atoms_max)")
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    off = ~np.eye(n, dtype=bool)
    if n > 1 and d[off].min() < 1e-8:
        raise ValueError("two atoms of a structure are at the same position")
    with np.errstate(divide="ignore"):
        m = np.where(off, np.outer(z, z) / np.where(off, d, 1.0) ** distance_power, 0.0)
    m[np.diag_indices(n)] = 0.5 * z ** 2.4
    out = np.zeros(n_atoms_max)
    out[:n] = np.linalg.eigvalsh(m)[::-1]
    return out


class CoulombEigenspectrum(Representation):
    """Sorted Coulomb-matrix eigenvalues, zero-padded to n_atoms_max (global; molecules only)."""

    kind = "coulomb_eigen"
    local = False

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.coulomb_eigen") -> dict:
        p = check_mapping(params, where, tuple(DEFAULTS))
        return {
            "n_atoms_max": as_int(p.get("n_atoms_max", DEFAULTS["n_atoms_max"]), f"{where}.n_atoms_max",
                                  1, 10000, hint="allowed: integer 1..10000, at least the largest molecule"),
            "distance_power": as_float(p.get("distance_power", DEFAULTS["distance_power"]),
                                       f"{where}.distance_power", 0.0, 6.0, lo_open=True),
        }

    @classmethod
    def parameters(cls) -> dict:
        return dict(DEFAULTS)

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        """Small parameters for tests (the contract tests build every representation with these);
        None for periodic systems, which this representation does not support."""
        if periodic:
            return None
        return {"n_atoms_max": 12, "distance_power": 1.0}

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        if self.periodic:
            raise ConfigError("the Coulomb-matrix eigenspectrum is defined for molecules only, this dataset "
                              "is periodic", where=self.where,
                              hint="use soap, sf or mbtr for crystals")

    @property
    def dim(self) -> int:
        return int(self.params["n_atoms_max"])

    def params_canonical(self) -> dict:
        return {**self.params, "numerics_version": NUMERICS_VERSION}

    def describe(self) -> dict:
        from . import __version__

        return {"kind": self.kind, "params": self.params_canonical(), "species": list(self.species),
                "periodic": self.periodic, "repbench-example-plugin": __version__}

    def compute_atoms(self, atoms_list: list) -> np.ndarray:
        out = np.empty((len(atoms_list), self.dim))
        self.compute_into(atoms_list, out)
        return out

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        for i, atoms in enumerate(atoms_list):
            out[i] = coulomb_eigenspectrum(atoms.numbers, atoms.positions, self.params["n_atoms_max"],
                                           self.params["distance_power"])
