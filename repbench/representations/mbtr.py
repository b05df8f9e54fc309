"""Many-body tensor representation (dscribe ``MBTR``), one dscribe MBTR per term, concatenated (global).

Config keys (``representation.mbtr``), defaults in brackets:

- ``k`` [[2]] the terms: ``[2]``, ``[3]`` or ``[2, 3]``; the output is the k=2 block then the k=3 block.
- ``k2`` / ``k3`` (only for terms in ``k``), each with
  - ``geometry`` [k2: "inverse_distance", k3: "cosine"]; k2: ``distance`` | ``inverse_distance``,
    k3: ``angle`` | ``cosine``
  - ``grid`` {``min``, ``max``, ``n``, ``sigma``} [k2 inverse_distance: 0, 1.25, 100, 0.025;
    k2 distance: 0, 10, 100, 0.1; k3 cosine: -1, 1, 100, 0.05; k3 angle: 0, 180, 100, 2]
  - ``weighting`` [{function: exp, scale: 0.5, threshold: 0.001}]: ``function`` ``unity`` (molecules only),
    ``exp`` (``threshold`` [0.001] and one of ``scale`` or ``r_cut``), ``inverse_square`` (k2, ``r_cut``),
    ``smooth_cutoff`` (k3, ``r_cut``, ``sharpness`` [2])
  - ``normalize_gaussians`` [true]
  - ``normalization`` ["none"] ``none`` | ``l2`` | ``n_atoms`` | ``valle_oganov`` (periodic only)

Periodic systems need a weighting that cuts off (not ``unity``); this is checked when the dataset is known.
dscribe 2.1.2's MBTR breaks with ase >= 3.27 (dscribe issue #165): pin ase < 3.27.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConfigError
from .base import (Representation, as_bool, as_choice, as_float, as_int, as_list, check_mapping,
                   dscribe_error)

GEOMETRIES = {2: ("inverse_distance", "distance"), 3: ("cosine", "angle")}
WEIGHTINGS = {2: ("exp", "unity", "inverse_square"), 3: ("exp", "unity", "smooth_cutoff")}
NORMALIZATIONS = ("none", "l2", "n_atoms", "valle_oganov")
DEFAULT_GRIDS = {
    "inverse_distance": {"min": 0.0, "max": 1.25, "n": 100, "sigma": 0.025},
    "distance": {"min": 0.0, "max": 10.0, "n": 100, "sigma": 0.1},
    "cosine": {"min": -1.0, "max": 1.0, "n": 100, "sigma": 0.05},
    "angle": {"min": 0.0, "max": 180.0, "n": 100, "sigma": 2.0},
}
DEFAULT_WEIGHTING = {"function": "exp", "scale": 0.5, "threshold": 1e-3}
TERM_KEYS = ("geometry", "grid", "weighting", "normalize_gaussians", "normalization")


def _validate_grid(value, where: str, geometry: str) -> dict:
    g = check_mapping(value, where, ("min", "max", "n", "sigma"))
    d = DEFAULT_GRIDS[geometry]
    out = {"min": as_float(g.get("min", d["min"]), f"{where}.min"),
           "max": as_float(g.get("max", d["max"]), f"{where}.max"),
           "n": as_int(g.get("n", d["n"]), f"{where}.n", 1, 100000),
           "sigma": as_float(g.get("sigma", d["sigma"]), f"{where}.sigma", 0.0, lo_open=True)}
    if out["min"] >= out["max"]:
        raise ConfigError(f"min ({out['min']}) must be smaller than max ({out['max']})", where=f"{where}.min")
    return out


def _validate_weighting(value, where: str, k: int) -> dict:
    if value is None:
        return dict(DEFAULT_WEIGHTING)
    w = check_mapping(value, where, ("function", "scale", "threshold", "r_cut", "sharpness"), none_ok=False)
    if "function" not in w:
        raise ConfigError("weighting needs a function", where=f"{where}.function",
                          hint="allowed: " + ", ".join(WEIGHTINGS[k]))
    func = as_choice(w["function"], f"{where}.function", WEIGHTINGS[k])
    keys = {"unity": (), "exp": ("scale", "r_cut", "threshold"), "inverse_square": ("r_cut",),
            "smooth_cutoff": ("r_cut", "sharpness")}[func]
    for key in w:
        if key != "function" and key not in keys:
            raise ConfigError(f"key {key!r} does not apply to weighting function {func!r}",
                              where=f"{where}.{key}",
                              hint=f"keys for {func!r}: {', '.join(('function',) + keys)}")
    out = {"function": func}
    if func == "exp":
        if ("scale" in w) == ("r_cut" in w):
            raise ConfigError("exp weighting needs exactly one of 'scale' and 'r_cut'", where=where,
                              hint="e.g. {function: exp, scale: 0.5, threshold: 0.001}")
        if "scale" in w:
            out["scale"] = as_float(w["scale"], f"{where}.scale", 0.0, lo_open=True)
        else:
            out["r_cut"] = as_float(w["r_cut"], f"{where}.r_cut", 0.0, lo_open=True)
        out["threshold"] = as_float(w.get("threshold", 1e-3), f"{where}.threshold", 0.0, 1.0, lo_open=True)
    elif func in ("inverse_square", "smooth_cutoff"):
        if "r_cut" not in w:
            raise ConfigError(f"{func} weighting needs 'r_cut'", where=f"{where}.r_cut",
                              hint="a cutoff in Angstrom")
        out["r_cut"] = as_float(w["r_cut"], f"{where}.r_cut", 0.0, lo_open=True)
        if func == "smooth_cutoff":
            out["sharpness"] = as_float(w.get("sharpness", 2.0), f"{where}.sharpness", 0.0, lo_open=True)
    return out


def _validate_term(value, where: str, k: int, normalizations: tuple[str, ...] = NORMALIZATIONS) -> dict:
    t = check_mapping(value, where, TERM_KEYS)
    geometry = as_choice(t.get("geometry", GEOMETRIES[k][0]), f"{where}.geometry", GEOMETRIES[k])
    norm = t.get("normalization", "none")
    return {
        "geometry": geometry,
        "grid": _validate_grid(t.get("grid"), f"{where}.grid", geometry),
        "weighting": _validate_weighting(t.get("weighting"), f"{where}.weighting", k),
        "normalize_gaussians": as_bool(t.get("normalize_gaussians", True), f"{where}.normalize_gaussians"),
        "normalization": as_choice("none" if norm is None else norm, f"{where}.normalization",
                                   normalizations),
    }


class MBTRRepresentation(Representation):
    """MBTR with terms k=2 and/or k=3 (global)."""

    kind = "mbtr"
    local = False
    #: the dscribe class computing one term, and the normalisations dscribe offers for it
    dscribe_class = "MBTR"
    normalizations: tuple[str, ...] = NORMALIZATIONS

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        return {"k": [2, 3], "k2": {"grid": {"n": 20}}, "k3": {"grid": {"n": 20}}}

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        self._terms = [self._make(params[f"k{k}"], self.species, self.periodic, f"{self.where}.k{k}")
                       for k in params["k"]]
        self._dims = [int(t.get_number_of_features()) for t in self._terms]

    @classmethod
    def _make(cls, term: dict, species: list[int], periodic: bool, where: str):
        import dscribe.descriptors

        descriptor = getattr(dscribe.descriptors, cls.dscribe_class)
        if periodic and term["weighting"]["function"] == "unity":
            raise ConfigError("periodic systems need a weighting that cuts off", where=f"{where}.weighting",
                              hint="use function exp (with scale or r_cut), inverse_square or smooth_cutoff")
        if term["normalization"] == "valle_oganov" and not periodic:
            raise ConfigError("valle_oganov normalization needs periodic systems",
                              where=f"{where}.normalization",
                              hint="use none, l2 or n_atoms for molecules")
        try:
            return descriptor(geometry={"function": term["geometry"]}, grid=dict(term["grid"]),
                              weighting=dict(term["weighting"]), normalize_gaussians=term["normalize_gaussians"],
                              normalization=term["normalization"], species=list(species), periodic=periodic,
                              sparse=False, dtype="float64")
        except (ValueError, KeyError, TypeError) as exc:
            raise dscribe_error(exc, where) from None

    @classmethod
    def validate(cls, params: dict | None, where: str | None = None) -> dict:
        where = where or f"representation.{cls.kind}"
        p = check_mapping(params, where, ("k", "k2", "k3"))
        k = p.get("k", [2])
        if isinstance(k, int) and not isinstance(k, bool):
            k = [k]
        k = sorted(as_list(k, f"{where}.k",
                           item=lambda x, w: as_int(x, w, 2, 3, hint="allowed: [2], [3], [2, 3]")))
        out: dict = {"k": k}
        for kk in (2, 3):
            if kk in k:
                out[f"k{kk}"] = _validate_term(p.get(f"k{kk}"), f"{where}.k{kk}", kk, cls.normalizations)
            elif p.get(f"k{kk}") is not None:
                raise ConfigError(f"settings for k{kk} are given but k does not include {kk}",
                                  where=f"{where}.k{kk}",
                                  hint=f"add {kk} to k, or remove k{kk}")
        for kk in k:
            term = out[f"k{kk}"]
            if term["normalization"] != "valle_oganov":
                cls._make(term, [1], False, f"{where}.k{kk}")
        return out

    @property
    def dim(self) -> int:
        return sum(self._dims)

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        if len(atoms_list) != len(out):
            raise ValueError(f"{len(atoms_list)} structures for {len(out)} rows of output")
        with warnings.catch_warnings():
            # dscribe 2.1.2 calls the deprecated Atoms.get_calculator() (FutureWarning in ase 3.26)
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"dscribe\..*")
            warnings.filterwarnings("ignore", message=".*atoms.calc.*", category=FutureWarning)
            for i, a in enumerate(atoms_list):
                c = 0
                for term, d in zip(self._terms, self._dims):
                    out[i, c:c + d] = term.create_single(a)
                    c += d
