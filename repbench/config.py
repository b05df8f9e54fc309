"""YAML config -> validated, frozen config; canonical hashes of what determines a result.

A config has these sections (see ``configs/quickstart.yaml`` for a commented example)::

    name, seed, dataset, splits, representation, kernel, krr, tune, curve, time

Every key is checked: an unknown key, a wrong type or a value out of range raises :class:`ConfigError`
naming the file, the key path (``representation.soap.n_max``) and the allowed values.  Representation,
kernel and KRR parameters may be *search-space leaves* (``{loguniform: [lo, hi]}`` ...) that
``repbench tune`` samples; see :mod:`repbench.space`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from . import space
from .canonical import canonical_hash, freeze, thaw
from .baselines import BASELINE_KINDS
from .errors import ConfigError
from .models.kernel import kernel_names

SECTIONS = ("name", "seed", "dataset", "splits", "representation", "kernel", "regressor", "krr", "tune",
            "curve", "time")

PER = ("structure", "atom", "cation")
LOSSES = ("rmse", "mae")
DTYPES = ("float64", "float32")

#: The execution context: keys that decide how (and how long) work is done, never what a stored result
#: is.  Editing them in a finished run's config continues the run (cmlkit: "the config must fully
#: determine the output; everything else goes in the context").
EXECUTION_KEYS: dict[str, tuple[str, ...]] = {
    "kernel": ("block_mb",),
    "tune": ("trials", "timeout", "trial_timeout", "n_startup_trials"),
    "time": ("repeats", "n_structures"),
}
#: Keys that decide ``data.h5`` (the structures and every split).
DATA_SECTIONS = ("seed", "dataset", "splits")

_MISSING = object()


# --------------------------------------------------------------------------- small typed field checker
class _Checker:
    """Reads keys of one mapping with type/range checks and reports unknown keys."""

    def __init__(self, data: Any, path: str, file: str):
        self.path = path
        self.file = file
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail(path, f"must be a mapping (key: value), got {_tname(data)}")
        self.data = data
        self.used: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def fail(self, key: str, msg: str, hint: str = ""):
        raise ConfigError(f"{key}: {msg}", where=self.file, hint=hint)

    def get(self, k, types, default=_MISSING, *, choices=None, lo=None, hi=None, lo_open=False,
            allow_leaf=False, nullable=False):
        self.used.add(k)
        if k not in self.data:
            if default is _MISSING:
                self.fail(self.key(k), "is required", hint=_allowed(types, choices, lo, hi))
            return default
        v = self.data[k]
        if v is None and nullable:
            return None
        if allow_leaf and space.is_leaf(v):
            space.check_leaf(v, self.key(k), self.file)
            for end in space.leaf_ends(v):  # every value the search can reach must be valid
                check_value(end, types, self.key(k), self.file, choices=choices, lo=lo, hi=hi, lo_open=lo_open)
            return v
        return check_value(v, types, self.key(k), self.file, choices=choices, lo=lo, hi=hi, lo_open=lo_open)

    def done(self):
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            self.fail(self.key(str(unknown[0])), "unknown key",
                      hint=f"allowed keys here: {', '.join(sorted(self.used))}")


def _tname(v) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false", int: "an integer",
            float: "a number", type(None): "nothing (null)"}.get(type(v), type(v).__name__)


def _allowed(types, choices, lo, hi) -> str:
    if choices:
        return "allowed: " + ", ".join(map(str, choices))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a mapping"}
    t = types if isinstance(types, tuple) else (types,)
    s = " or ".join(names.get(x, x.__name__) for x in t)
    if lo is not None or hi is not None:
        s += f" in [{'' if lo is None else lo}, {'' if hi is None else hi}]"
    return "expected " + s


def check_value(v, types, key: str, file: str, *, choices=None, lo=None, hi=None, lo_open=False):
    """Check one value's type (ints are accepted where floats are) and range."""
    t = types if isinstance(types, tuple) else (types,)
    ok = isinstance(v, t) and not (isinstance(v, bool) and bool not in t)
    if not ok and float in t and isinstance(v, int) and not isinstance(v, bool):
        v, ok = float(v), True
    if not ok:
        raise ConfigError(f"{key}: wrong type: got {_tname(v)} {v!r}", where=file,
                          hint=_allowed(types, choices, lo, hi))
    if choices is not None and v not in choices:
        raise ConfigError(f"{key}: {v!r} is not allowed", where=file, hint=_allowed(types, choices, None, None))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v != v or v in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: must be finite, got {v}", where=file)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise ConfigError(f"{key}: {v} is out of range", where=file, hint=_allowed(types, None, lo, hi))
        if hi is not None and v > hi:
            raise ConfigError(f"{key}: {v} is out of range", where=file, hint=_allowed(types, None, lo, hi))
    return v


# --------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class Config:
    """A validated config.  Sections are read-only mappings; ``raw`` is the resolved plain dict."""

    file: str
    name: str
    seed: int
    dataset: MappingProxyType
    splits: MappingProxyType
    representation: MappingProxyType
    kernel: MappingProxyType
    regressor: MappingProxyType
    krr: MappingProxyType
    tune: MappingProxyType
    curve: MappingProxyType
    time: MappingProxyType

    @property
    def rep_kind(self) -> str:
        return next(iter(self.representation))

    @property
    def rep_params(self) -> dict:
        return thaw(self.representation[self.rep_kind])

    @property
    def is_local(self) -> bool:
        return _is_local(thaw(self.representation))

    @property
    def regressor_name(self) -> str:
        return next(iter(self.regressor))

    @property
    def has_search_space(self) -> bool:
        return bool(space.find_leaves({"representation": thaw(self.representation),
                                       "kernel": thaw(self.kernel),
                                       "krr": {k: v for k, v in thaw(self.krr).items()
                                               if k not in ("length_scale", "regularization")}}))

    def to_dict(self) -> dict:
        return {s: thaw(getattr(self, s)) for s in SECTIONS}

    def results_dict(self) -> dict:
        """The config without ``name`` and without the execution context (:data:`EXECUTION_KEYS`)."""
        from .representations import REPRESENTATIONS

        d = self.to_dict()
        d.pop("name")
        for sec, keys in EXECUTION_KEYS.items():
            d[sec] = {k: v for k, v in d[sec].items() if k not in keys}
        (kind, params), = d["representation"].items()
        d["representation"] = {kind: REPRESENTATIONS[kind].identity_params(params)}
        return d

    def data_hash(self) -> str:
        """Scope of ``data.h5``: dataset selection, splits and seed."""
        return canonical_hash({"seed": self.seed, "dataset": self.dataset, "splits": self.splits})

    def study_hash(self) -> str:
        """Scope of a tuning study: the data, the search space (representation, kernel, regressor) and
        what decides a trial's loss (the KRR refinement settings, the tuning loss)."""
        d = self.results_dict()
        krr = {k: v for k, v in d["krr"].items() if k not in ("length_scale", "regularization", "refine")}
        return canonical_hash({"data": self.data_hash(), "representation": d["representation"],
                               "kernel": d["kernel"], "regressor": d["regressor"], "krr": krr,
                               "loss": d["tune"]["loss"]})

    def hash(self) -> str:
        """Hash of everything that determines results: all sections but ``name`` and the execution context
        (:data:`EXECUTION_KEYS`).  Stages check the narrower scopes (:meth:`data_hash`,
        :meth:`study_hash`, the model hash of :mod:`repbench.models.resolve`)."""
        return canonical_hash(self.results_dict())

    def changed_keys(self, other: "Config", sections: tuple[str, ...] | None = None) -> list[str]:
        """Key paths (``splits.test``) whose values differ between this config and ``other``."""
        a, b = self.to_dict(), other.to_dict()
        if sections is not None:
            a = {k: a[k] for k in sections}
            b = {k: b[k] for k in sections}
        return _diff(a, b, "")

    def with_params(self, representation: dict | None = None, kernel: dict | None = None,
                    krr: dict | None = None) -> "Config":
        """A copy with some sections replaced (used to apply tuned values)."""
        d = self.to_dict()
        if representation is not None:
            d["representation"] = representation
        if kernel is not None:
            d["kernel"] = kernel
        if krr is not None:
            d["krr"] = krr
        return from_dict(d, self.file)


def _diff(a, b, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            out += _diff(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}" if path else str(k))
        return out
    return [] if a == b else [path]


def load(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("config file not found", where=str(path), hint="check the path")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e}", where=str(path),
                          hint="a config is a UTF-8 text file in YAML; see configs/quickstart.yaml") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"malformed YAML: {problem}", where=where,
                          hint="check indentation and quoting") from None
    if data is None:
        raise ConfigError("config file is empty", where=str(path), hint="see configs/quickstart.yaml")
    data.setdefault("name", path.stem) if isinstance(data, dict) else None
    return from_dict(data, str(path))


def from_dict(data: dict, file: str = "<config>") -> Config:
    """Validate a config given as a plain dict."""
    if not isinstance(data, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {_tname(data)}", where=file,
                          hint="see configs/quickstart.yaml")
    top = _Checker(data, "", file)
    name = top.get("name", str, "run")
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        top.fail("name", f"{name!r} is not a valid run name", hint="letters, digits, '-', '_' and '.'")
    seed = top.get("seed", int, 0, lo=0)
    ds = _dataset(top.get("dataset", dict), file)
    sp = _splits(top.get("splits", dict, {}), file)
    rep = _representation(top.get("representation", dict), file, ds)
    local = _is_local(rep)
    ker = _kernel(top.get("kernel", dict, {}), file, local)
    reg = _regressor(top.get("regressor", (str, dict), "krr"), file)
    krr = _krr(top.get("krr", dict, {}), file, ds, ker)
    tune = _tune(top.get("tune", dict, {}), file)
    curve = _curve(top.get("curve", dict, {}), file)
    tim = _time(top.get("time", dict, {}), file)
    top.done()
    return Config(file=file, name=name, seed=seed, dataset=freeze(ds), splits=freeze(sp),
                  representation=freeze(rep), kernel=freeze(ker), regressor=freeze(reg), krr=freeze(krr),
                  tune=freeze(tune),
                  curve=freeze(curve), time=freeze(tim))


def _is_local(rep: dict) -> bool:
    """Whether a representation spec gives one row per atom (the registered class decides)."""
    from .representations import is_local

    return is_local(rep)


def _dataset(data, file) -> dict:
    c = _Checker(data, "dataset", file)
    out = {
        "name": c.get("name", str, choices=_dataset_names()),
        "path": c.get("path", str, None, nullable=True),
        "target": c.get("target", str),
        "per": c.get("per", str, "structure", choices=PER),
        "subset": c.get("subset", int, None, lo=2, nullable=True),
        "target_key": c.get("target_key", str, None, nullable=True),
        "target_unit": c.get("target_unit", str, "eV"),
        "target_extensive": c.get("target_extensive", bool, True),
        "format": c.get("format", str, None, nullable=True),
    }
    c.done()
    from .datasets import reader

    if reader(out["name"]).needs_path and not out["path"]:
        c.fail("dataset.path", f"is required for dataset {out['name']!r}",
               hint="the file or folder the dataset is read from; see datasets/README.md")
    if out["name"] == "file" and out["target_key"] is None:
        out["target_key"] = out["target"]
    if out["path"] and not Path(out["path"]).is_absolute():
        # paths in a config are relative to the config file's folder unless they exist from the cwd
        p = Path(out["path"])
        if not p.exists() and file not in ("<config>",):
            cand = Path(file).parent / p
            if cand.exists():
                out["path"] = str(cand)
    return out


def _splits(data, file) -> dict:
    c = _Checker(data, "splits", file)
    out = {
        "test": c.get("test", int, None, lo=1, nullable=True),
        "use_predefined_test": c.get("use_predefined_test", bool, True),
        "train_sizes": c.get("train_sizes", list, [100, 250, 500]),
        "draws": c.get("draws", int, 3, lo=1, hi=100),
        "stratify": c.get("stratify", bool, True),
        "tune_train": c.get("tune_train", int, None, lo=2, nullable=True),
        "tune_val": c.get("tune_val", int, None, lo=1, nullable=True),
        "inner_folds": c.get("inner_folds", int, 3, lo=1, hi=20),
        "inner_val_fraction": c.get("inner_val_fraction", float, 0.2, lo=0.01, hi=0.9),
    }
    c.done()
    sizes = out["train_sizes"]
    if not sizes:
        c.fail("splits.train_sizes", "must list at least one training-set size", hint="e.g. [100, 250, 500]")
    for i, s in enumerate(sizes):
        check_value(s, int, f"splits.train_sizes[{i}]", file, lo=2)
    if sorted(set(sizes)) != list(sizes):
        c.fail("splits.train_sizes", f"must be strictly increasing, got {sizes}", hint="e.g. [100, 250, 500]")
    return out


def _dataset_names() -> list[str]:
    from .datasets import READERS

    return READERS.names()


def _representation(data, file, ds) -> dict:
    from .representations import REPRESENTATIONS as REGISTRY
    from .representations.base import validating_config

    if not isinstance(data, dict) or len(data) != 1:
        raise ConfigError("representation: must have exactly one key naming the representation", where=file,
                          hint="allowed: " + ", ".join(REGISTRY.names()))
    kind, params = next(iter(data.items()))
    if kind not in REGISTRY:
        raise ConfigError(f"representation.{kind}: unknown representation", where=file,
                          hint="allowed: " + ", ".join(REGISTRY.names()))
    cls = REGISTRY.get_component(kind, file=file)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ConfigError(f"representation.{kind}: must be a mapping of parameters", where=file)
    where = f"representation.{kind}"
    # check leaves, then validate every extreme instantiation of the search space
    for path, leaf in space.find_leaves(params, where):
        space.check_leaf(leaf, path, file)
    validated = None
    folder = Path(file).parent if file not in ("<config>", "") else None
    for inst in space.extremes(params):
        try:
            with validating_config(folder):
                v = cls.validate(copy.deepcopy(inst), where)
        except ConfigError as e:
            msg = f"{e.where}: {e.message}" if e.where else e.message
            raise ConfigError(msg, where=file, hint=e.hint) from None
        if validated is None:
            validated = v
    if space.find_leaves(params):
        # keep the leaves; fill the defaults validation added
        merged = dict(validated)
        merged.update(params)
        return {kind: merged}
    return {kind: validated}


def _regressor(data, file) -> dict:
    """``regressor: krr`` or ``regressor: {name: {params}}`` -> ``{name: params}`` (default krr)."""
    from .models.regressor import REGRESSORS

    if isinstance(data, dict):
        if len(data) != 1:
            raise ConfigError("regressor: must name exactly one regressor", where=file,
                              hint="allowed: " + ", ".join(REGRESSORS.names()))
        name, params = next(iter(data.items()))
    else:
        name, params = data, None
    if name not in REGRESSORS:
        raise ConfigError(f"regressor: unknown regressor {name!r}", where=file,
                          hint="allowed: " + ", ".join(REGRESSORS.names()))
    cls = REGRESSORS.get_component(name, file=file)
    try:
        return {name: cls.validate(params, f"regressor.{name}")}
    except ConfigError as e:
        raise ConfigError(e.message, where=file, hint=e.hint) from None


def _kernel(data, file, local: bool) -> dict:
    c = _Checker(data, "kernel", file)
    if local:
        out = {
            "atom_kernel": c.get("atom_kernel", str, "gaussian", choices=kernel_names(True), allow_leaf=True),
            "zeta": c.get("zeta", float, 2.0, lo=0.0, lo_open=True, allow_leaf=True),
            "normalize": c.get("normalize", bool, False, allow_leaf=True),
        }
    else:
        out = {"kind": c.get("kind", str, "gaussian", choices=kernel_names(False), allow_leaf=True)}
    out["dtype"] = c.get("dtype", str, "float64", choices=DTYPES)
    out["block_mb"] = c.get("block_mb", int, 256, lo=8, hi=65536)
    c.done()
    return out


def _krr(data, file, ds, ker) -> dict:
    c = _Checker(data, "krr", file)
    default_baseline = "dressed_atoms"
    out = {
        "baseline": c.get("baseline", str, default_baseline, choices=BASELINE_KINDS),
        "length_scale": c.get("length_scale", float, None, lo=0.0, lo_open=True, nullable=True),
        "regularization": c.get("regularization", float, None, lo=0.0, lo_open=True, nullable=True),
        "refine": c.get("refine", bool, True),
        "ls_bounds": c.get("ls_bounds", list, [-20, 20]),
        "reg_bounds": c.get("reg_bounds", list, [-40, 0]),
        "reg_start": c.get("reg_start", float, -20.0),
        "loss": c.get("loss", str, "rmse", choices=LOSSES),
    }
    c.done()
    for k in ("ls_bounds", "reg_bounds"):
        b = out[k]
        if len(b) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in b) \
                or b[0] >= b[1]:
            c.fail(f"krr.{k}", f"must be [low, high] log2 exponents with low < high, got {b}",
                   hint=f"e.g. {[-20, 20] if k == 'ls_bounds' else [-40, 0]}")
    if not out["refine"] and (out["length_scale"] is None and ker.get("atom_kernel") != "polynomial"
                              or out["regularization"] is None):
        c.fail("krr.refine", "is false, so krr.length_scale and krr.regularization must be given",
               hint="give both values or set refine: true")
    return out


def _tune(data, file) -> dict:
    c = _Checker(data, "tune", file)
    out = {
        "trials": c.get("trials", int, 20, lo=1),
        "loss": c.get("loss", str, "rmse", choices=LOSSES),
        "timeout": c.get("timeout", float, None, lo=0.0, lo_open=True, nullable=True),
        "trial_timeout": c.get("trial_timeout", float, None, lo=0.0, lo_open=True, nullable=True),
        "n_startup_trials": c.get("n_startup_trials", int, 10, lo=0),
    }
    c.done()
    return out


def _curve(data, file) -> dict:
    c = _Checker(data, "curve", file)
    out = {"refine": c.get("refine", bool, True)}
    c.done()
    return out


def _time(data, file) -> dict:
    c = _Checker(data, "time", file)
    out = {
        "sizes": c.get("sizes", list, None, nullable=True),
        "repeats": c.get("repeats", int, 3, lo=1, hi=100),
        "n_structures": c.get("n_structures", int, 100, lo=1),
    }
    c.done()
    if out["sizes"] is not None:
        for i, s in enumerate(out["sizes"]):
            check_value(s, int, f"time.sizes[{i}]", file, lo=2)
    return out
