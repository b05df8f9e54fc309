"""Any dscribe descriptor by its class name (``representation.dscribe``), with its own parameters.

Config::

    representation:
      dscribe:
        descriptor: CoulombMatrix        # a class of dscribe.descriptors
        n_atoms_max: 29                  # ... and its constructor's keyword arguments
        permutation: sorted_l2

- ``descriptor`` names a class of :mod:`dscribe.descriptors` (found by introspection, so a newer dscribe's
  classes work too): ACSF, CoulombMatrix, EwaldSumMatrix, LMBTR, MBTR, SineMatrix, SOAP, ValleOganov with
  dscribe 2.1.  Every other key is a keyword argument of its constructor (see the dscribe documentation);
  the constructor's defaults are filled in, so a default and an explicit equal value are the same run.
- ``species``, ``periodic``, ``sparse`` and ``dtype`` are supplied by repbench (the dataset's elements,
  whether it is periodic, dense float64 output) and are refused in the config.
- ``create`` (only for classes whose ``create`` takes extra arguments, i.e. ``EwaldSumMatrix``): keyword
  arguments of ``create_single``, defaults filled in.  For EwaldSumMatrix: ``accuracy`` [1e-5], ``w`` [1],
  ``r_cut`` and ``g_cut`` [null, derived from accuracy; give both or neither] (Angstrom and 1/Angstrom),
  ``a`` [null: sqrt(pi) (N w / V^2)^(1/6)] (1/Angstrom); each null or a number > 0.
- ``n_atoms_max`` (the matrix descriptors CoulombMatrix, SineMatrix, EwaldSumMatrix) is required: the
  largest number of atoms in a structure of your dataset (``repbench datasets show NAME`` lists the atoms
  per structure).  It is part of the cache key and fixes the width of the features; a structure with more
  atoms is refused when computed.  (It cannot default to the dataset's largest structure: a representation
  is built from the elements and periodicity alone, and the width must not depend on the subset computed.)
- ``permutation: random`` is refused: dscribe draws its noise from one generator shared by all structures,
  so the result would depend on the order and the worker in which structures are computed.

Local (one row per atom): classes derived from dscribe's ``DescriptorLocal`` (ACSF, LMBTR, SOAP), except
SOAP with ``average`` ``inner``/``outer``; the others are global (one row per structure).  SineMatrix,
EwaldSumMatrix and ValleOganov need periodic structures.  Invariance: an unsorted matrix
(``permutation: none``) depends on the atom order, and ``sorted_l2`` is only invariant when no two rows
have the same norm; ``eigenspectrum`` is invariant (but not unique).

Parameters are checked by building the dscribe object with a stand-in species list (H), as for SOAP;
dscribe's errors become :class:`ConfigError` naming ``representation.dscribe.<key>`` where the message names a
key.  Each structure is computed by itself with ``create_single`` (bit-identical for 1 and N workers).
"""

from __future__ import annotations

import copy
import inspect
import re
import warnings

import numpy as np

from ..errors import ConfigError, DataError
from .base import Representation, as_float, check_json, check_mapping, dscribe_error

#: Constructor parameters that repbench supplies itself, with the reason shown when a config sets them.
SUPPLIED = {
    "species": "repbench passes the elements of the whole dataset",
    "periodic": "repbench takes it from the dataset",
    "sparse": "repbench always computes dense arrays",
    "dtype": "repbench computes in float64",
}
#: ``create_single`` arguments that are not parameters (the structure, per-call switches, centers that would
#: change the number of rows).
NOT_CREATE_PARAMS = ("self", "system", "centers", "return_descriptor", "return_derivatives", "n_jobs",
                     "only_physical_cores", "verbose")
#: Phrases of dscribe's error messages that name a parameter without its key.
MESSAGE_KEYS = {"maximum number of atoms": "n_atoms_max", "radial basis function": "rbf",
                "permutation option": "permutation", "normalization option": "normalization"}
#: Classes whose features are only defined for periodic structures.
NEEDS_PERIODIC = ("SineMatrix", "EwaldSumMatrix", "ValleOganov")


def descriptor_classes() -> dict:
    """Name -> class of every concrete descriptor in :mod:`dscribe.descriptors`."""
    import dscribe.descriptors as dd
    from dscribe.descriptors.descriptor import Descriptor

    return {n: c for n, c in sorted(vars(dd).items())
            if isinstance(c, type) and issubclass(c, Descriptor) and not inspect.isabstract(c)
            and not n.startswith("_")}


def _init_parameters(cls) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _create_parameters(cls) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(cls.create_single).parameters.items()
            if n not in NOT_CREATE_PARAMS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _json_default(value):
    """A constructor default as plain data, or ``...`` when it is not plain data (then it is not filled)."""
    try:
        return check_json(copy.deepcopy(value), "")
    except ConfigError:
        return ...


def _off(value):
    """YAML 1.1 (PyYAML) reads a bare ``off`` as ``False``: take it as ``"off"``."""
    return "off" if value is False else value


def _is_local(cls, params: dict) -> bool:
    from dscribe.descriptors.descriptorlocal import DescriptorLocal

    return issubclass(cls, DescriptorLocal) and _off(params.get("average", "off")) in ("off", None)


def _error(exc: Exception, keys, where: str, name: str) -> ConfigError:
    """dscribe's exception as a :class:`ConfigError` naming the one key its message mentions, if any."""
    msg = str(exc.args[0]) if exc.args else str(exc)
    named = [k for k in keys if re.search(rf"(?<![A-Za-z0-9_]){re.escape(k)}(?![A-Za-z0-9_])", msg)]
    if not named:
        low = msg.lower()
        named = [k for phrase, k in MESSAGE_KEYS.items() if phrase in low and k in keys][:1]
    at = f"{where}.{named[0]}" if len(named) == 1 else where
    return dscribe_error(exc, at, hint=f"see the parameters of dscribe's {name}")


class DscribeRepresentation(Representation):
    """Any dscribe descriptor by class name with its own parameters; local or global by the class."""

    kind = "dscribe"
    local = False

    @classmethod
    def local_for(cls, params: dict | None) -> bool:
        if not isinstance(params, dict):
            return False
        klass = descriptor_classes().get(params.get("descriptor"))
        return klass is not None and _is_local(klass, params)

    @classmethod
    def parameters(cls) -> dict:
        return {"descriptor": "a class of dscribe.descriptors (required): " + ", ".join(descriptor_classes()),
                "...": "its constructor's keyword arguments (species, periodic, sparse, dtype are set by "
                       "repbench)",
                "create": "keyword arguments of create_single (EwaldSumMatrix: accuracy, w, r_cut, g_cut, a)"}

    @classmethod
    def kind_label(cls) -> str:
        return "local or global (by descriptor)"

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        # eigenspectrum: invariant to the atom order (sorted_l2 is not when rows tie, none never is)
        if periodic:
            return {"descriptor": "SineMatrix", "n_atoms_max": 8, "permutation": "eigenspectrum"}
        return {"descriptor": "CoulombMatrix", "n_atoms_max": 12, "permutation": "eigenspectrum"}

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.dscribe") -> dict:
        p = check_mapping(params, where)
        classes = descriptor_classes()
        name = p.get("descriptor")
        if name is None:
            raise ConfigError("needs the descriptor class", where=f"{where}.descriptor",
                              hint="available: " + ", ".join(classes))
        if not isinstance(name, str) or name not in classes:
            raise ConfigError(f"unknown dscribe descriptor {name!r}", where=f"{where}.descriptor",
                              hint="available: " + ", ".join(classes))
        klass = classes[name]
        accepted = _init_parameters(klass)
        own = [k for k in accepted if k not in SUPPLIED]
        out: dict = {"descriptor": name}
        for key, value in p.items():
            if key in ("descriptor", "create"):
                continue
            if key in SUPPLIED:
                raise ConfigError(f"{key!r} is set by repbench", where=f"{where}.{key}",
                                  hint=f"remove it; {SUPPLIED[key]}")
            if key not in accepted:
                raise ConfigError(f"dscribe's {name} has no parameter {key!r}", where=f"{where}.{key}",
                                  hint="allowed keys: " + ", ".join(["descriptor"] + own
                                                                    + (["create"] if _create_parameters(klass)
                                                                       else [])))
            out[key] = check_json(value, f"{where}.{key}")
        for key in own:
            if key in out:
                continue
            default = accepted[key].default
            if default is inspect.Parameter.empty:
                hint = ("the largest number of atoms in a structure of the dataset (`repbench datasets show "
                        "NAME` lists atoms per structure)" if key == "n_atoms_max"
                        else f"see the parameters of dscribe's {name}")
                raise ConfigError(f"dscribe's {name} needs {key!r}", where=f"{where}.{key}", hint=hint)
            default = _json_default(default)
            if default is not ...:
                out[key] = default
        if "average" in out:
            out["average"] = _off(out["average"])
        if isinstance(out.get("compression"), dict) and "mode" in out["compression"]:
            out["compression"] = {**out["compression"], "mode": _off(out["compression"]["mode"])}
        if out.get("permutation") == "random":
            raise ConfigError("permutation 'random' is not reproducible here (dscribe draws the noise of all "
                              "structures from one generator)", where=f"{where}.permutation",
                              hint="use eigenspectrum or sorted_l2")
        create = cls._validate_create(klass, p.get("create"), f"{where}.create")
        if create is not None:
            out["create"] = create
        # dscribe's own checks, with a stand-in species list; descriptors such as MBTR with valle_oganov
        # normalization can only be built for periodic systems
        try:
            cls._build(klass, out, [1], False, where)
        except ConfigError:
            cls._build(klass, out, [1], True, where)
        return out

    @staticmethod
    def _validate_create(klass, value, where: str) -> dict | None:
        allowed = _create_parameters(klass)
        if not allowed:
            if value not in (None, {}):
                raise ConfigError(f"dscribe's {klass.__name__} takes no create arguments", where=where,
                                  hint="remove create")
            return None
        c = check_mapping(value, where, tuple(allowed))
        out = {}
        for key, prm in allowed.items():
            v = c.get(key, _json_default(prm.default) if prm.default is not prm.empty else None)
            out[key] = None if v is None or v is ... else as_float(v, f"{where}.{key}", 0.0, lo_open=True)
        if "r_cut" in out and "g_cut" in out and (out["r_cut"] is None) != (out["g_cut"] is None):
            missing = "g_cut" if out["g_cut"] is None else "r_cut"
            raise ConfigError("give both cutoffs r_cut and g_cut, or neither", where=f"{where}.{missing}",
                              hint="without them dscribe derives both from accuracy")
        return out

    @staticmethod
    def _build(klass, params: dict, species: list[int], periodic: bool, where: str):
        accepted = _init_parameters(klass)
        kw = {k: copy.deepcopy(v) for k, v in params.items() if k not in ("descriptor", "create")}
        supplied = {"species": list(species), "periodic": bool(periodic), "sparse": False, "dtype": "float64"}
        kw.update({k: v for k, v in supplied.items() if k in accepted})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return klass(**kw)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise _error(exc, [k for k in params if k not in ("descriptor", "create")], where,
                         klass.__name__) from None

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        classes = descriptor_classes()
        self.descriptor = params["descriptor"]
        klass = classes[self.descriptor]
        self.local = _is_local(klass, params)
        if self.descriptor in NEEDS_PERIODIC and not self.periodic:
            raise ConfigError(f"dscribe's {self.descriptor} is defined for periodic structures only",
                              where=f"{self.where}.descriptor",
                              hint="use CoulombMatrix (or another descriptor) for molecules")
        self._desc = self._build(klass, params, self.species, self.periodic, self.where)
        self._create = dict(params.get("create") or {})
        self._n_atoms_max = params.get("n_atoms_max")
        self._dim = int(self._desc.get_number_of_features())

    @property
    def dim(self) -> int:
        return self._dim

    def _one(self, atoms) -> np.ndarray:
        if self._n_atoms_max is not None and len(atoms) > self._n_atoms_max:
            raise DataError(f"a structure with {len(atoms)} atoms ({atoms.get_chemical_formula()}) is larger "
                            f"than n_atoms_max {self._n_atoms_max}", where=f"{self.where}.n_atoms_max",
                            hint="set n_atoms_max to the largest number of atoms in a structure of the "
                                 "dataset")
        try:
            with warnings.catch_warnings():
                # dscribe 2.1.2 calls the deprecated Atoms.get_calculator() (FutureWarning in ase 3.26)
                warnings.filterwarnings("ignore", category=FutureWarning)
                x = self._desc.create_single(atoms, **self._create)
        except (ValueError, KeyError, TypeError, IndexError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
            raise DataError(f"dscribe's {self.descriptor} failed for a structure of {len(atoms)} atoms "
                            f"({atoms.get_chemical_formula()}): {type(exc).__name__}: {exc}",
                            where=self.where,
                            hint="check the descriptor's parameters for this dataset") from None
        x = np.asarray(x.todense() if hasattr(x, "todense") else x, dtype=np.float64)
        return x.reshape(len(atoms), -1) if self.local else x.reshape(1, -1)

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        r = 0
        for a in atoms_list:
            x = self._one(a)
            out[r:r + len(x)] = x
            r += len(x)
        if r != len(out):
            raise ValueError(f"{r} rows computed for {len(out)} rows of output")
