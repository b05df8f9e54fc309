"""FCHL19 (Christensen et al., J. Chem. Phys. 152, 044107 (2020)) computed by qmllib, one row per atom (local).

Needs the optional package qmllib (``pip install repbench[qmllib]``).  Without it, ``repbench representations``
still lists ``fchl19`` (kind, package, parameters), and a config naming it stops when it is read with one error:
``representation.fchl19: the fchl19 representation needs the optional package qmllib, which is not installed
(...) (pip install repbench[qmllib])``.

Config keys (``representation.fchl19``), defaults in brackets (qmllib's defaults, which Christensen et al.
optimised on QM7b/QM9):

- ``nRs2`` [24] Gaussian radial basis functions of the two-body term (integer >= 1)
- ``nRs3`` [20] Gaussian radial basis functions of the three-body term (integer >= 1)
- ``nFourier`` [1] order of the Fourier expansion of the three-body angular term (integer >= 1)
- ``eta2`` [0.32] and ``eta3`` [2.7] precisions of the two- and three-body radial Gaussians (1/Angstrom^2, > 0)
- ``zeta`` [pi] precision of the angular basis (> 0)
- ``rcut`` [8.0] and ``acut`` [8.0] cutoffs of the two- and three-body terms (Angstrom, > 0)
- ``two_body_decay`` [1.8] and ``three_body_decay`` [0.57] the exponents of the distance decay (>= 0)
- ``three_body_weight`` [13.4] the weight of the three-body block (>= 0)
- ``element_offset`` [100.0] (>= 0) makes repbench's kernel compare atoms of the same element only, as
  qmllib's own local kernels (``get_local_kernel``) do: each row gets one more column per element of the
  dataset, holding ``element_offset`` in the column of the atom's own element and 0 in the others.  Distances
  between atoms of the same element are unchanged; between atoms of different elements the squared distance
  grows by 2 ``element_offset``^2, so their Gaussian is exp(-offset^2 / s^2) times at most 1: below 1e-40
  for length scales s < offset / 10 (the tuned ones are ~1-10 on QM9, where FCHL19 rows have norms ~1-4).
  With it, repbench's Gaussian sum over atom pairs equals qmllib's ``get_local_kernel``
  (``tests/test_new_representations.py``).  FCHL19 describes the neighbours, not the central atom's
  element, so without it (``0``: qmllib's rows alone) an H and a C with similar surroundings look alike.
  For the polynomial (normalised dot product) atom kernel, set it to 0.

qmllib's ``elements`` argument is the dataset's elements (so features of any subset line up column by
column).  Each structure is computed by itself without padding (qmllib pads to ``pad`` atoms only when asked;
repbench keeps exactly the structure's atoms).  Molecules only: qmllib 1.x's ``generate_fchl19`` takes no cell
(no periodic images), so periodic datasets are refused.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, DataError
from .base import Representation, as_float, as_int, check_mapping

INSTALL_HINT = "pip install repbench[qmllib]"

#: qmllib's defaults (qmllib.representations.generate_fchl19), in qmllib's argument order.
DEFAULTS = {"nRs2": 24, "nRs3": 20, "nFourier": 1, "eta2": 0.32, "eta3": 2.7, "zeta": math.pi, "rcut": 8.0,
            "acut": 8.0, "two_body_decay": 1.8, "three_body_decay": 0.57, "three_body_weight": 13.4}
INTS = ("nRs2", "nRs3", "nFourier")
POSITIVE = ("eta2", "eta3", "zeta", "rcut", "acut")
NON_NEGATIVE = ("two_body_decay", "three_body_decay", "three_body_weight")
#: default of ``element_offset``
ELEMENT_OFFSET = 100.0


def qmllib_generate_fchl19():
    """qmllib's ``generate_fchl19``, or a :class:`ConfigError` saying how to install qmllib."""
    try:
        from qmllib.representations import generate_fchl19
    except ImportError as exc:
        raise ConfigError(f"the fchl19 representation needs the optional package qmllib, which is not "
                          f"installed ({type(exc).__name__}: {exc})", where="representation.fchl19",
                          hint=INSTALL_HINT) from None
    return generate_fchl19


def fchl19_width(n_elements: int, nRs2: int, nRs3: int, nFourier: int) -> int:
    """qmllib's FCHL19 width: n_elements nRs2 + n_elements (n_elements + 1) nRs3 nFourier."""
    return n_elements * nRs2 + n_elements * (n_elements + 1) * nRs3 * nFourier


class FCHL19Representation(Representation):
    """FCHL19 (qmllib generate_fchl19; optional: pip install repbench[qmllib]), molecules (local)."""

    kind = "fchl19"
    local = True

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        if periodic:
            return None
        return {"nRs2": 6, "nRs3": 4, "rcut": 5.0, "acut": 5.0}

    @classmethod
    def parameters(cls) -> dict:
        return cls._check(None, "representation.fchl19")      # the listing works without qmllib

    @classmethod
    def missing_dependency(cls) -> str | None:
        """Why this representation cannot be used here (qmllib not installed, with the install command), or
        None.  For tests that skip, with this reason, what cannot run without the optional extra."""
        try:
            qmllib_generate_fchl19()
        except ConfigError as exc:
            return f"{exc.message} ({exc.hint})"
        return None

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.fchl19") -> dict:
        """Keys, types and ranges, then whether qmllib is installed: without it a config naming fchl19 stops
        at validation with one error and the install command (not with one failed trial per tuning trial)."""
        out = cls._check(params, where)
        try:
            qmllib_generate_fchl19()
        except ConfigError as exc:
            raise ConfigError(exc.message, where=where, hint=exc.hint) from None
        return out

    @classmethod
    def _check(cls, params: dict | None, where: str) -> dict:
        p = check_mapping(params, where, tuple(DEFAULTS) + ("element_offset",))
        out: dict = {}
        for key, default in DEFAULTS.items():
            v = p.get(key, default)
            if key in INTS:
                out[key] = as_int(v, f"{where}.{key}", 1, 10000)
            elif key in POSITIVE:
                out[key] = as_float(v, f"{where}.{key}", 0.0, lo_open=True)
            else:
                out[key] = as_float(v, f"{where}.{key}", 0.0)
        out["element_offset"] = as_float(p.get("element_offset", ELEMENT_OFFSET), f"{where}.element_offset", 0.0)
        return out

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        if self.periodic:
            raise ConfigError("fchl19 is defined for molecules only: qmllib's generate_fchl19 takes no cell "
                              "(no periodic images), and this dataset is periodic", where=self.where,
                              hint="use soap, sf, lmbtr, sine_matrix or ewald_matrix for crystals")
        try:
            self._generate = qmllib_generate_fchl19()
        except ConfigError as exc:
            raise ConfigError(exc.message, where=self.where, hint=exc.hint) from None
        self._kw = {k: params[k] for k in DEFAULTS}
        self.fchl_dim = fchl19_width(len(self.species), params["nRs2"], params["nRs3"], params["nFourier"])
        self._block = np.full(max(self.species) + 1, -1, dtype=np.int64)
        self._block[self.species] = np.arange(len(self.species))

    def describe(self) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        d = super().describe()
        try:
            d["qmllib"] = version("qmllib")
        except PackageNotFoundError:  # pragma: no cover - checked when built
            d["qmllib"] = "unknown"
        return d

    @property
    def dim(self) -> int:
        return self.fchl_dim + (len(self.species) if self.params["element_offset"] > 0 else 0)

    def qmllib_rows(self, atoms) -> np.ndarray:
        """qmllib's FCHL19 rows of one structure: (n_atoms, qmllib's width), the real atoms only."""
        z = np.asarray(atoms.numbers, dtype=np.int64)
        try:
            x = self._generate(z, np.asarray(atoms.positions, dtype=np.float64), elements=list(self.species),
                               **self._kw)
        except (ValueError, TypeError, IndexError) as exc:
            raise DataError(f"qmllib's generate_fchl19 failed for a structure of {len(atoms)} atoms "
                            f"({atoms.get_chemical_formula()}): {type(exc).__name__}: {exc}",
                            where=self.where, hint="check the fchl19 parameters") from None
        x = np.asarray(x, dtype=np.float64)
        return x[:len(atoms)]   # qmllib pads to `pad` rows when asked: keep the structure's atoms only

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        n_atoms = sum(len(a) for a in atoms_list)
        if n_atoms != len(out):
            raise ValueError(f"{n_atoms} atoms for {len(out)} rows of output")
        d = self.fchl_dim
        r = 0
        for a in atoms_list:
            x = self.qmllib_rows(a)
            if x.shape != (len(a), d):
                raise RuntimeError(f"qmllib's generate_fchl19 returned shape {x.shape}, expected "
                                   f"({len(a)}, {d})")
            rows = out[r:r + len(a)]
            rows[:, :d] = x
            if self.params["element_offset"] > 0:
                rows[:, d:] = 0.0
                rows[np.arange(len(a)), d + self._block[a.numbers]] = self.params["element_offset"]
            r += len(a)
