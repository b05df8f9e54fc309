"""Representations of structures, by name from the :data:`REPRESENTATIONS` registry.

Typical use::

    rep = make_representation({"soap": {"r_cut": 5.0, "n_max": 8, "l_max": 6}},
                              species=structures.elements, periodic=structures.periodic)
    feats = compute(rep, structures)          # Features(values, offsets)

``species`` should be the elements of the whole dataset, so that features of any subset line up.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..registry import Registry, expects
from .base import Features, Representation, available_cpus, compute, default_workers, normalize_species
from .sf import angular_parameters, radial_parameters


#: name (the key under ``representation:`` in a config) -> :class:`Representation` subclass.
#: Built-ins: one line each here, one module each in this folder; plugins: entry-point group
#: ``repbench.representations`` (see :mod:`repbench.registry` and docs/extending.md).
REPRESENTATIONS: Registry = Registry("representation", {
    "soap": "repbench.representations.soap:SOAPRepresentation",
    "sf": "repbench.representations.sf:SFRepresentation",
    "mbtr": "repbench.representations.mbtr:MBTRRepresentation",
    "lmbtr": "repbench.representations.lmbtr:LMBTRRepresentation",
    "python": "repbench.representations.python_function:PythonRepresentation",
    "dscribe": "repbench.representations.dscribe_any:DscribeRepresentation",
    "coulomb_matrix": "repbench.representations.coulomb_matrix:CoulombMatrixRepresentation",
    "sine_matrix": "repbench.representations.sine_matrix:SineMatrixRepresentation",
    "ewald_matrix": "repbench.representations.ewald_matrix:EwaldMatrixRepresentation",
    "fchl19": "repbench.representations.fchl19:FCHL19Representation",
    "soap_featomic": "repbench.representations.soap_featomic:FeatomicSOAPRepresentation",
}, check=expects(Representation, instance=False, hint="see docs/extending.md (Add your representation)"))


def representation_class(kind: str, where: str = "representation") -> type[Representation]:
    """The registered class for ``kind`` (a clear :class:`ConfigError` naming ``where`` if unknown)."""
    if kind not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {kind!r}", where=f"{where}.{kind}",
                          hint="allowed: " + ", ".join(REPRESENTATIONS.names()))
    return REPRESENTATIONS.get_component(kind, file=f"{where}.{kind}")


def _split_spec(spec, where: str) -> tuple[str, dict | None]:
    kinds = ", ".join(REPRESENTATIONS.names())
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError("expected exactly one representation, e.g. {soap: {r_cut: 5.0}}", where=where,
                          hint=f"allowed: {kinds}")
    (kind, params), = spec.items()
    representation_class(kind, where)
    return kind, params


def is_local(spec: dict) -> bool:
    """Whether ``{kind: params}`` gives one row per atom (asks the registered class)."""
    kind, params = _split_spec(spec, "representation")
    return REPRESENTATIONS[kind].local_for(params)


def validate_spec(spec: dict, where: str = "representation") -> dict:
    """``{kind: params}`` with the params validated and defaults filled (no species needed)."""
    kind, params = _split_spec(spec, where)
    return {kind: representation_class(kind, where).validate(params, f"{where}.{kind}")}


def make_representation(spec: dict, species, periodic: bool, where: str = "representation") -> Representation:
    """Validate ``spec`` (``{"soap": {...}}``, exactly one key) and build the representation.

    Raises :class:`ConfigError` naming ``where.kind.key`` for bad parameters, including combinations that
    only fail for the dataset (e.g. MBTR without a cutting-off weighting for periodic systems).
    """
    kind, params = _split_spec(spec, where)
    cls = representation_class(kind, where)
    valid = cls.validate(params, f"{where}.{kind}")
    return cls(valid, normalize_species(species), periodic, where=f"{where}.{kind}")


__all__ = ["Features", "Representation", "REPRESENTATIONS", "representation_class", "is_local",
           "make_representation", "validate_spec", "compute", "radial_parameters",
           "angular_parameters", "available_cpus", "default_workers"]
