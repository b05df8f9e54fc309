"""Representations of structures: SOAP and SF (local, one row per atom) and MBTR (global).

Typical use::

    rep = make_representation({"soap": {"r_cut": 5.0, "n_max": 8, "l_max": 6}},
                              species=structures.elements, periodic=structures.periodic)
    feats = compute(rep, structures)          # Features(values, offsets)

``species`` should be the elements of the whole dataset, so that features of any subset line up.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Features, Representation, available_cpus, compute, default_workers, normalize_species
from .mbtr import MBTRRepresentation
from .sf import SFRepresentation, angular_parameters, radial_parameters
from .soap import SOAPRepresentation

#: kind -> class
REPRESENTATIONS: dict[str, type[Representation]] = {
    "soap": SOAPRepresentation,
    "sf": SFRepresentation,
    "mbtr": MBTRRepresentation,
}


def _split_spec(spec, where: str) -> tuple[str, dict | None]:
    kinds = ", ".join(REPRESENTATIONS)
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError("expected exactly one representation, e.g. {soap: {r_cut: 5.0}}", where=where,
                          hint=f"allowed: {kinds}")
    (kind, params), = spec.items()
    if kind not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {kind!r}", where=f"{where}.{kind}",
                          hint=f"allowed: {kinds}")
    return kind, params


def validate_spec(spec: dict, where: str = "representation") -> dict:
    """``{kind: params}`` with the params validated and defaults filled (no species needed)."""
    kind, params = _split_spec(spec, where)
    return {kind: REPRESENTATIONS[kind].validate(params, f"{where}.{kind}")}


def make_representation(spec: dict, species, periodic: bool, where: str = "representation") -> Representation:
    """Validate ``spec`` (``{"soap": {...}}``, exactly one key) and build the representation.

    Raises :class:`ConfigError` naming ``where.kind.key`` for bad parameters, including combinations that
    only fail for the dataset (e.g. MBTR without a cutting-off weighting for periodic systems).
    """
    kind, params = _split_spec(spec, where)
    cls = REPRESENTATIONS[kind]
    valid = cls.validate(params, f"{where}.{kind}")
    return cls(valid, normalize_species(species), periodic, where=f"{where}.{kind}")


__all__ = ["Features", "Representation", "REPRESENTATIONS", "SOAPRepresentation", "SFRepresentation",
           "MBTRRepresentation", "make_representation", "validate_spec", "compute", "radial_parameters",
           "angular_parameters", "available_cpus", "default_workers"]
