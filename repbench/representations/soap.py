"""Smooth overlap of atomic positions (SOAP) power spectrum via dscribe.

Config keys (``representation.soap``), defaults in brackets:

- ``r_cut`` [5.0] cutoff in Angstrom (> 1 for ``rbf: gto``, > 0 for ``polynomial``)
- ``n_max`` [8] radial basis functions (gto: 2..20, polynomial: 1..20; dscribe may reject a large n_max
  for a small r_cut because the basis cannot be orthonormalised)
- ``l_max`` [6] spherical-harmonics degree (gto: 0..20; polynomial: 0..9 — dscribe's polynomial basis is no
  longer rotationally invariant above 9, measured relative error 6e-6)
- ``sigma`` [0.5] Gaussian width of the atomic density in Angstrom (dscribe's default is 1.0; the paper
  used 0.5)
- ``rbf`` ["gto"] ``gto`` or ``polynomial``
- ``weighting`` [null] dscribe's radial weighting, e.g. ``{function: pow, r0: 2, c: 1, d: 1, m: 4}``;
  functions ``poly`` (r0, c, m), ``pow`` (r0, c, d, m, threshold [0.01]), ``exp`` (r0, c, d,
  threshold [0.01]), and ``w0`` (weight of the central atom) alone or with a function.
- ``compression`` ["off"] ``off``, ``mu2``, ``mu1nu1``, ``crossover``, or
  ``{mode: ..., species_weighting: {H: 1.0, C: 0.5, ...}}``
- ``average`` ["off"] ``off`` (local: one row per atom), ``inner`` or ``outer`` (global: one row per
  structure)

Periodicity comes from the dataset.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np

from ..errors import ConfigError
from ..structures import SYMBOLS
from .base import (Representation, as_choice, as_float, as_int, check_mapping, dscribe_error,
                   normalize_species)

RBFS = ("gto", "polynomial")
AVERAGES = ("off", "inner", "outer")
COMPRESSIONS = ("off", "mu2", "mu1nu1", "crossover")
WEIGHTING_KEYS = {
    None: (),
    "poly": ("r0", "c", "m"),
    "pow": ("r0", "c", "d", "m", "threshold"),
    "exp": ("r0", "c", "d", "threshold"),
}
DEFAULTS = {"r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5, "rbf": "gto", "weighting": None,
            "compression": {"mode": "off", "species_weighting": None}, "average": "off"}


def _validate_weighting(value, where: str) -> dict | None:
    if value is None:
        return None
    allowed = ("function", "r0", "c", "d", "m", "threshold", "w0")
    w = check_mapping(value, where, allowed, none_ok=False)
    func = w.get("function")
    if func is not None:
        func = as_choice(func, f"{where}.function", [f for f in WEIGHTING_KEYS if f])
    needed = WEIGHTING_KEYS[func]
    for k in w:
        if k not in ("function", "w0") + needed:
            raise ConfigError(f"key {k!r} does not apply to weighting function {func!r}",
                              where=f"{where}.{k}",
                              hint=f"keys for {func!r}: {', '.join(('function', 'w0') + needed)}")
    out: dict = {}
    if func is not None:
        out["function"] = func
        for k in needed:
            if k == "threshold":
                out[k] = as_float(w.get(k, 1e-2), f"{where}.{k}", 0.0, 1.0, lo_open=True)
            elif k not in w:
                raise ConfigError(f"weighting function {func!r} needs {k!r}", where=f"{where}.{k}",
                                  hint=f"give: {', '.join(needed)}")
            elif k == "r0":
                out[k] = as_float(w[k], f"{where}.{k}", 0.0, lo_open=True)
            else:
                out[k] = as_float(w[k], f"{where}.{k}", 0.0)
    if "w0" in w:
        out["w0"] = as_float(w["w0"], f"{where}.w0", 0.0)
    if not out:
        raise ConfigError("empty weighting", where=where, hint="give a function and its parameters, or null")
    return out


def _off(value):
    """YAML 1.1 (PyYAML) reads a bare ``off`` as ``False``: take it as ``"off"``."""
    return "off" if value is False else value


def _validate_compression(value, where: str) -> dict:
    value = _off(value)
    if isinstance(value, dict) and "mode" in value:
        value = {**value, "mode": _off(value["mode"])}
    if isinstance(value, str) or value is None:
        value = {"mode": "off" if value is None else value}
    c = check_mapping(value, where, ("mode", "species_weighting"), none_ok=False)
    mode = as_choice(c.get("mode", "off"), f"{where}.mode", COMPRESSIONS)
    sw = c.get("species_weighting")
    if sw is not None:
        sw_where = f"{where}.species_weighting"
        if not isinstance(sw, dict):
            raise ConfigError(f"expected a mapping element -> weight, got {sw!r}", where=sw_where,
                              hint="e.g. {H: 1.0, C: 0.5}")
        out = {}
        for k, v in sw.items():
            z = normalize_species([k], f"{sw_where}.{k}")[0]
            out[SYMBOLS[z]] = as_float(v, f"{sw_where}.{k}", 0.0)
        sw = dict(sorted(out.items()))
    return {"mode": mode, "species_weighting": sw}


def _largest_gto_n_max(r_cut: float, l_max: int, n_max: int) -> int:
    """The largest n < n_max for which dscribe can orthonormalise the GTO basis (0 if none)."""
    from dscribe.descriptors import SOAP

    for n in range(n_max - 1, 1, -1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                SOAP.get_basis_gto(None, r_cut, n, l_max)
            return n
        except ValueError:
            continue
    return 0


class SOAPRepresentation(Representation):
    """SOAP (dscribe ``SOAP``); local unless ``average`` is ``inner``/``outer``."""

    kind = "soap"
    local = True

    @classmethod
    def local_for(cls, params: dict | None) -> bool:
        return not (isinstance(params, dict) and _off(params.get("average", "off")) not in ("off", None))

    @classmethod
    def kind_label(cls) -> str:
        return "local (global if averaged)"

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        return {"r_cut": 3.5, "n_max": 3, "l_max": 3, "sigma": 0.5}

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        self.local = params["average"] == "off"
        self._soap = self._make(params, self.species, self.periodic, self.where)

    @staticmethod
    def _make(params: dict, species: list[int], periodic: bool, where: str):
        from dscribe.descriptors import SOAP

        comp = params["compression"]
        sw = comp["species_weighting"]
        if sw is not None:
            missing = sorted(set(SYMBOLS[z] for z in species) - set(sw))
            extra = sorted(set(sw) - set(SYMBOLS[z] for z in species))
            if missing or extra:
                raise ConfigError(
                    "species_weighting must give a weight for each element of the dataset and no others",
                    where=f"{where}.compression.species_weighting",
                    hint=(f"missing: {', '.join(missing)}" if missing
                          else f"not in the data: {', '.join(extra)}"))
            sw = {z: sw[SYMBOLS[z]] for z in species}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scipy's LinAlgWarning for a nearly singular basis
                soap = SOAP(r_cut=params["r_cut"], n_max=params["n_max"], l_max=params["l_max"],
                            sigma=params["sigma"], rbf=params["rbf"],
                            weighting=copy.deepcopy(params["weighting"]),  # dscribe edits it in place
                            average=params["average"],
                            compression={"mode": comp["mode"], "species_weighting": sw},
                            species=list(species), periodic=periodic, sparse=False, dtype="float64")
                if params["rbf"] == "polynomial":  # dscribe builds this basis only when computing
                    soap.get_basis_poly(soap._r_cut, params["n_max"])
                return soap
        except (ValueError, KeyError, TypeError) as exc:
            if "n_max" in str(exc):
                best = (_largest_gto_n_max(params["r_cut"], params["l_max"], params["n_max"])
                        if params["rbf"] == "gto" else 0)
                hint = (f"with r_cut {params['r_cut']:g} and l_max {params['l_max']} at most n_max {best} "
                        "works; lower n_max or raise r_cut") if best else "lower n_max or raise r_cut"
                raise dscribe_error(exc, f"{where}.n_max", hint=hint) from None
            raise dscribe_error(exc, where) from None

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.soap") -> dict:
        p = check_mapping(params, where, tuple(DEFAULTS))
        out = {}
        out["rbf"] = as_choice(p.get("rbf", DEFAULTS["rbf"]), f"{where}.rbf", RBFS)
        gto = out["rbf"] == "gto"
        out["r_cut"] = as_float(p.get("r_cut", DEFAULTS["r_cut"]), f"{where}.r_cut", 1.0 if gto else 0.0,
                                lo_open=True,
                                hint="allowed: number > 1 (Angstrom) for rbf gto" if gto else "")
        out["n_max"] = as_int(p.get("n_max", DEFAULTS["n_max"]), f"{where}.n_max", 2 if gto else 1, 20,
                              hint=("allowed: integer 2..20 for rbf gto (n_max 1 puts the one basis "
                                    "function inside 1 Angstrom)") if gto else "allowed: integer 1..20")
        out["l_max"] = as_int(p.get("l_max", DEFAULTS["l_max"]), f"{where}.l_max", 0, 20 if gto else 9,
                              hint="allowed: integer 0..20 for rbf gto" if gto else
                              "allowed: integer 0..9 for rbf polynomial (dscribe's polynomial basis loses "
                              "rotational invariance above 9)")
        out["sigma"] = as_float(p.get("sigma", DEFAULTS["sigma"]), f"{where}.sigma", 0.0, lo_open=True)
        out["weighting"] = _validate_weighting(p.get("weighting"), f"{where}.weighting")
        out["compression"] = _validate_compression(p.get("compression", "off"), f"{where}.compression")
        out["average"] = as_choice(_off(p.get("average", DEFAULTS["average"])), f"{where}.average", AVERAGES)
        # dscribe's own checks (radial basis orthonormalisation, ...) with a stand-in species list
        # (species weights are checked against the dataset's elements when the representation is built)
        cls._make({**out, "compression": {"mode": out["compression"]["mode"], "species_weighting": None}},
                  [1], False, where)
        return out

    @property
    def dim(self) -> int:
        return int(self._soap.get_number_of_features())

    def compute_atoms(self, atoms_list: list) -> np.ndarray:
        if not atoms_list:
            return np.zeros((0, self.dim))
        rows = [self._soap.create_single(a) for a in atoms_list]
        return np.concatenate(rows, axis=0) if self.local else np.stack(rows)

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        """dscribe's ``create_single`` for each structure, but writing into ``out``'s rows directly: its
        C++ extension object is built once (``create_single`` builds one per call) and fills the rows in
        place (no temporary array and copy per structure).  Same code, same inputs: bit-identical."""
        direct = out.dtype == np.float64 and out.flags.c_contiguous
        s = self._soap
        ext = self._extension() if direct else None
        r = 0
        for a in atoms_list:
            k = len(a) if self.local else 1
            if not direct or not len(a):  # (an empty structure: dscribe's own answer, NaN when averaged)
                out[r:r + k] = s.create_single(a)
            else:
                # the checks and arguments of dscribe's SOAP.create_single (dscribe 2.1)
                rows = out[r:r + k]
                rows[...] = 0.0  # the averaged SOAP accumulates into its row
                positions = s.validate_positions(a.get_positions())
                numbers = s.validate_atomic_numbers(a.get_atomic_numbers())
                pbc = s.validate_pbc(a.get_pbc())
                cell = s.validate_cell(a.get_cell(), pbc)
                centers, _ = s.prepare_centers(a, None)
                ext.create(rows, positions, numbers, cell, pbc, centers)
            r += k
        if r != len(out):
            raise ValueError(f"{r} rows computed for {len(out)} rows of output")

    def _extension(self):
        """dscribe's C++ SOAP object for these parameters (what ``create_single`` builds for each call),
        built once per process and not pickled."""
        ext = self.__dict__.get("_ext")
        if ext is None:
            import dscribe.ext

            s = self._soap
            common = (s._r_cut, s._n_max, s._l_max, s._eta, s._weighting, s.average, s.get_cutoff_padding(),
                      s._atomic_numbers, s._species_weights, s.periodic, s.compression["mode"])
            if s._rbf == "gto":
                ext = dscribe.ext.SOAPGTO(*common, s._alphas.flatten(), s._betas.flatten())
            else:
                rx, gss = s.get_basis_poly(s._r_cut, s._n_max)
                ext = dscribe.ext.SOAPPolynomial(*common, rx, gss.flatten())
            self.__dict__["_ext"] = ext
        return ext

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_ext", None)  # a C++ object: rebuilt where it is used
        return state
