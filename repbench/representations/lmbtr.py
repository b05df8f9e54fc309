"""Local many-body tensor representation (dscribe ``LMBTR``): one row per atom, terms k=2 and/or k=3.

This file plus one line in the ``REPRESENTATIONS`` table of ``repbench/representations/__init__.py`` is all
it takes to add a representation; the validation helpers are those of :mod:`.mbtr`.

Config keys (``representation.lmbtr``), defaults in brackets:

- ``k`` [[2]] the terms: ``[2]``, ``[3]`` or ``[2, 3]``; each atom's row is the k=2 block then the k=3 block.
- ``k2`` / ``k3`` (only for terms in ``k``), each with
  - ``geometry`` [k2: "inverse_distance", k3: "cosine"]; k2: ``distance`` | ``inverse_distance``
    (Angstrom, 1/Angstrom), k3: ``angle`` (degrees) | ``cosine``
  - ``grid`` {``min``, ``max``, ``n``, ``sigma``} [k2 inverse_distance: 0, 1.25, 100, 0.025;
    k2 distance: 0, 10, 100, 0.1; k3 cosine: -1, 1, 100, 0.05; k3 angle: 0, 180, 100, 2]
  - ``weighting`` [{function: exp, scale: 0.5, threshold: 0.001}]: ``function`` ``unity`` (molecules only),
    ``exp`` (``threshold`` [0.001] and one of ``scale`` or ``r_cut``), ``inverse_square`` (k2, ``r_cut``),
    ``smooth_cutoff`` (k3, ``r_cut``, ``sharpness`` [2])
  - ``normalize_gaussians`` [true]
  - ``normalization`` ["none"] ``none`` | ``l2`` (dscribe's LMBTR has no ``n_atoms`` or ``valle_oganov``)

dscribe's LMBTR marks the central atom as a ghost element X, so each block holds (n_species + 1) element
channels for k=2 and more for k=3; like dscribe's ACSF it does not say which element the central atom is.
Periodic systems need a weighting that cuts off (not ``unity``); this is checked when the dataset is known.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConfigError
from .base import (Representation, as_bool, as_choice, as_int, as_list, check_mapping, dscribe_error)
from .mbtr import GEOMETRIES, TERM_KEYS, _validate_grid, _validate_weighting

NORMALIZATIONS = ("none", "l2")


def _validate_term(value, where: str, k: int) -> dict:
    t = check_mapping(value, where, TERM_KEYS)
    geometry = as_choice(t.get("geometry", GEOMETRIES[k][0]), f"{where}.geometry", GEOMETRIES[k])
    norm = t.get("normalization", "none")
    return {
        "geometry": geometry,
        "grid": _validate_grid(t.get("grid"), f"{where}.grid", geometry),
        "weighting": _validate_weighting(t.get("weighting"), f"{where}.weighting", k),
        "normalize_gaussians": as_bool(t.get("normalize_gaussians", True), f"{where}.normalize_gaussians"),
        "normalization": as_choice("none" if norm is None else norm, f"{where}.normalization",
                                   NORMALIZATIONS),
    }


class LMBTRRepresentation(Representation):
    """Local MBTR (dscribe LMBTR) with terms k=2 and/or k=3 (local)."""

    kind = "lmbtr"
    local = True

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        return {"k": [2, 3], "k2": {"grid": {"n": 20}}, "k3": {"grid": {"n": 20}}}

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        self._terms = [self._make(params[f"k{k}"], self.species, self.periodic, f"{self.where}.k{k}")
                       for k in params["k"]]
        self._dims = [int(t.get_number_of_features()) for t in self._terms]

    @staticmethod
    def _make(term: dict, species: list[int], periodic: bool, where: str):
        from dscribe.descriptors import LMBTR

        if periodic and term["weighting"]["function"] == "unity":
            raise ConfigError("periodic systems need a weighting that cuts off", where=f"{where}.weighting",
                              hint="use function exp (with scale or r_cut), inverse_square or smooth_cutoff")
        try:
            return LMBTR(geometry={"function": term["geometry"]}, grid=dict(term["grid"]),
                         weighting=dict(term["weighting"]), normalize_gaussians=term["normalize_gaussians"],
                         normalization=term["normalization"], species=list(species), periodic=periodic,
                         sparse=False, dtype="float64")
        except (ValueError, KeyError, TypeError) as exc:
            raise dscribe_error(exc, where) from None

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.lmbtr") -> dict:
        p = check_mapping(params, where, ("k", "k2", "k3"))
        k = p.get("k", [2])
        if isinstance(k, int) and not isinstance(k, bool):
            k = [k]
        k = sorted(as_list(k, f"{where}.k",
                           item=lambda x, w: as_int(x, w, 2, 3, hint="allowed: [2], [3], [2, 3]")))
        out: dict = {"k": k}
        for kk in (2, 3):
            if kk in k:
                out[f"k{kk}"] = _validate_term(p.get(f"k{kk}"), f"{where}.k{kk}", kk)
            elif p.get(f"k{kk}") is not None:
                raise ConfigError(f"settings for k{kk} are given but k does not include {kk}",
                                  where=f"{where}.k{kk}", hint=f"add {kk} to k, or remove k{kk}")
        for kk in k:
            cls._make(out[f"k{kk}"], [1], False, f"{where}.k{kk}")
        return out

    @property
    def dim(self) -> int:
        return sum(self._dims)

    def compute_atoms(self, atoms_list: list) -> np.ndarray:
        out = np.empty((sum(len(a) for a in atoms_list), self.dim))
        self.compute_into(atoms_list, out)
        return out

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        n_atoms = sum(len(a) for a in atoms_list)
        if n_atoms != len(out):
            raise ValueError(f"{n_atoms} atoms for {len(out)} rows of output")
        with warnings.catch_warnings():
            # dscribe 2.1.2 calls the deprecated Atoms.get_calculator() (FutureWarning in ase 3.26)
            warnings.filterwarnings("ignore", category=FutureWarning)
            r = 0
            for a in atoms_list:
                c = 0
                for term, d in zip(self._terms, self._dims):
                    out[r:r + len(a), c:c + d] = np.asarray(term.create_single(a)).reshape(len(a), d)
                    c += d
                r += len(a)
