"""Atom-centred symmetry functions (dscribe ``ACSF``), stratified by the central atom's element.

Config keys (``representation.sf``), defaults in brackets:

- ``k`` [[2]] ``[2]`` (radial G2 only) or ``[2, 3]`` (G2 and angular G4)
- ``radial``: ``scheme`` ["rad_shifted"] ``rad_centered`` | ``rad_shifted``, ``n`` [12] number of radial
  functions (>= 2), ``cutoff`` [6.0] Angstrom (> 1.5), the cutoff of all functions.
  With r0 = 0.5 A, r_n = cutoff - 1 and Delta = (r_n - r0) / (n - 1) (Gastegger et al. 2018), for
  i = 0..n-1: ``rad_centered`` mu_i = 0, eta_i = 0.5 / (r0 + i Delta)^2; ``rad_shifted`` mu_i = r0 + i Delta,
  eta = 0.5 / Delta^2.  dscribe's G2 is exp(-eta (r - mu)^2) fc(r).
- ``angular`` (required when k includes 3, not allowed otherwise): ``eta`` list (>= 0, 1/A^2), ``zeta`` list
  (> 0), ``lambda`` [[-1, 1]] sublist of -1, 1; one G4 for every (eta, zeta, lambda) combination.

dscribe's ACSF vector of an atom holds G1 (the sum of cutoff functions, which dscribe always includes) and
the G2 per neighbour element, then the G4 per unordered neighbour-element pair; it does not say which element
the central atom is.  Here each atom's row has one block per species (in the order of ``species``); the
block of the atom's own element holds the ACSF vector and the others are zero, so that atoms of different
elements are never compared in a sum-of-atom-pairs kernel.  dim = n_species * acsf_dim.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import ConfigError
from .base import Representation, as_choice, as_float, as_int, as_list, check_mapping, dscribe_error

SCHEMES = ("rad_centered", "rad_shifted")
R0 = 0.5
DEFAULT_RADIAL = {"scheme": "rad_shifted", "n": 12, "cutoff": 6.0}


def radial_parameters(scheme: str, n: int, cutoff: float) -> np.ndarray:
    """(n, 2) array of dscribe G2 parameters (eta, mu) for a Gastegger et al. (2018) radial scheme."""
    if n < 2 or cutoff - 1.0 <= R0:
        raise ValueError("need n >= 2 and cutoff > 1.5")
    r_n = cutoff - 1.0
    delta = (r_n - R0) / (n - 1)
    i = np.arange(n, dtype=np.float64)
    if scheme == "rad_centered":
        eta = 0.5 / (R0 + i * delta) ** 2
        mu = np.zeros(n)
    elif scheme == "rad_shifted":
        mu = R0 + i * delta
        eta = np.full(n, 0.5 / delta**2)
    else:
        raise ValueError(f"unknown scheme {scheme!r}")
    return np.column_stack([eta, mu])


def angular_parameters(angular: dict) -> np.ndarray:
    """(m, 3) array of dscribe G4 parameters (eta, zeta, lambda), eta slowest, lambda fastest."""
    return np.array(list(itertools.product(angular["eta"], angular["zeta"], angular["lambda"])),
                    dtype=np.float64).reshape(-1, 3)


class SFRepresentation(Representation):
    """Element-stratified ACSF (local)."""

    kind = "sf"
    local = True

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        return {"k": [2, 3], "radial": {"scheme": "rad_shifted", "n": 4, "cutoff": 4.0},
                "angular": {"eta": [0.01], "zeta": [1.0, 2.0], "lambda": [-1, 1]}}

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        self._acsf = self._make(params, self.species, self.periodic, self.where)
        self.acsf_dim = int(self._acsf.get_number_of_features())
        self._block = np.full(max(self.species) + 1, -1, dtype=np.int64)
        self._block[self.species] = np.arange(len(self.species))

    @staticmethod
    def _make(params: dict, species: list[int], periodic: bool, where: str):
        from dscribe.descriptors import ACSF

        rad = params["radial"]
        g2 = radial_parameters(rad["scheme"], rad["n"], rad["cutoff"])
        g4 = angular_parameters(params["angular"]) if 3 in params["k"] else None
        try:
            return ACSF(r_cut=rad["cutoff"], g2_params=g2, g4_params=g4, species=list(species),
                        periodic=periodic, sparse=False, dtype="float64")
        except (ValueError, KeyError, TypeError) as exc:
            raise dscribe_error(exc, where) from None

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.sf") -> dict:
        p = check_mapping(params, where, ("k", "radial", "angular"))
        k = p.get("k", [2])
        if isinstance(k, int) and not isinstance(k, bool):
            k = [k]
        k = sorted(as_list(k, f"{where}.k",
                           item=lambda x, w: as_int(x, w, 2, 3, hint="allowed: [2] or [2, 3]")))
        if k not in ([2], [2, 3]):
            raise ConfigError(f"invalid body orders {k}", where=f"{where}.k", hint="allowed: [2] or [2, 3]")
        rw = f"{where}.radial"
        r = check_mapping(p.get("radial"), rw, ("scheme", "n", "cutoff"))
        radial = {
            "scheme": as_choice(r.get("scheme", DEFAULT_RADIAL["scheme"]), f"{rw}.scheme", SCHEMES),
            "n": as_int(r.get("n", DEFAULT_RADIAL["n"]), f"{rw}.n", 2, 1000),
            "cutoff": as_float(r.get("cutoff", DEFAULT_RADIAL["cutoff"]), f"{rw}.cutoff", 1.0 + R0,
                               lo_open=True,
                               hint="allowed: number > 1.5 (Angstrom; the schemes put r_n = cutoff - 1 above "
                                    "r0 = 0.5)"),
        }
        out = {"k": k, "radial": radial}
        aw = f"{where}.angular"
        if 3 in k:
            if p.get("angular") is None:
                raise ConfigError("k includes 3 but no angular functions are given", where=aw,
                                  hint="add angular: {eta: [...], zeta: [...], lambda: [-1, 1]}")
            a = check_mapping(p["angular"], aw, ("eta", "zeta", "lambda"), none_ok=False)
            for key in ("eta", "zeta"):
                if key not in a:
                    raise ConfigError(f"angular functions need {key!r}", where=f"{aw}.{key}",
                                      hint="a list of numbers, e.g. [0.005, 0.05]" if key == "eta"
                                      else "a list of numbers, e.g. [1, 2, 4]")
            out["angular"] = {
                "eta": as_list(a["eta"], f"{aw}.eta", item=lambda x, w: as_float(x, w, 0.0)),
                "zeta": as_list(a["zeta"], f"{aw}.zeta", item=lambda x, w: as_float(x, w, 0.0, lo_open=True)),
                "lambda": as_list(a.get("lambda", [-1, 1]), f"{aw}.lambda",
                                  item=lambda x, w: as_int(x, w, -1, 1, hint="allowed: -1, 1")),
            }
            if 0 in out["angular"]["lambda"]:
                raise ConfigError("lambda must be -1 or 1", where=f"{aw}.lambda", hint="allowed: -1, 1")
        elif p.get("angular") is not None:
            raise ConfigError("angular functions are given but k does not include 3", where=aw,
                              hint="use k: [2, 3], or remove angular")
        cls._make(out, [1], False, where)
        return out

    @property
    def dim(self) -> int:
        return len(self.species) * self.acsf_dim

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        n_atoms = sum(len(a) for a in atoms_list)
        if n_atoms != len(out):
            raise ValueError(f"{n_atoms} atoms for {len(out)} rows of output")
        if n_atoms == 0:
            return
        acsf = np.concatenate([self._acsf.create_single(a) for a in atoms_list], axis=0)
        z = np.concatenate([a.numbers for a in atoms_list])
        d = self.acsf_dim
        block = self._block[z]
        # each atom's row holds its ACSF in the block of its own element, zeros elsewhere: one zeroing
        # pass and one scattered write (per-element boolean masks copied every row several times)
        if not out.flags.c_contiguous:  # the element-block view below must be a view, not a copy
            raise ValueError("compute_into needs a C-contiguous output block")
        out.fill(0)
        out.reshape(n_atoms, len(self.species), d)[np.arange(n_atoms), block] = acsf
