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
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from . import space
from .canonical import canonical_hash, freeze, thaw
from .baselines import BASELINE_KINDS
from .errors import ConfigError, short
from .models.kernel import kernel_names

SECTIONS = ("name", "seed", "dataset", "splits", "representation", "kernel", "regressor", "krr", "tune",
            "curve", "time")

PER = ("structure", "atom", "cation")
SPLIT_STRATEGIES = ("random", "group", "size")
PRUNERS = ("successive_halving", "hyperband", "none")
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

#: Largest config file read (bytes), most YAML nodes it may expand to (aliases counted every time they are
#: used: a "billion laughs" alias bomb is refused before it is built) and deepest nesting.
MAX_CONFIG_BYTES = 2**20
MAX_CONFIG_NODES = 100_000
MAX_CONFIG_DEPTH = 64
#: Largest seed: optuna's sampler seeds numpy's legacy generator, which takes 32 bits.
MAX_SEED = 2**32 - 1
#: Longest run name (bytes in UTF-8): it names the run directory and the study, and temporary names add
#: about 70 bytes to it within the 255-byte file-name limit.
MAX_NAME_BYTES = 128
#: log2 limits of the KRR search (``krr.ls_bounds``, ``krr.reg_bounds``, ``krr.reg_start``) and of fixed
#: values (``krr.length_scale``, ``krr.regularization``): beyond 2^+-100, squares of length scales and
#: kernel sums leave double precision (a length scale of 1e-300 gives NaN kernels).
LOG2_LIMIT = 100


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
            for end in space.probe_values(v):  # every value the search can reach must be valid
                try:
                    check_value(end, types, self.key(k), self.file, choices=choices, lo=lo, hi=hi,
                                lo_open=lo_open)
                except ConfigError as e:
                    raise ConfigError(f"{e.message}, a value the search-space leaf {short(v)} reaches",
                                      where=e.where, hint=e.hint) from None
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
        raise ConfigError(f"{key}: wrong type: got {_tname(v)} {short(v)}", where=file,
                          hint=_allowed(types, choices, lo, hi))
    if choices is not None and v not in choices:
        raise ConfigError(f"{key}: {short(v)} is not allowed", where=file,
                          hint=_allowed(types, choices, None, None))
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
        scope = {"data": self.data_hash(), "representation": d["representation"], "kernel": d["kernel"],
                 "regressor": d["regressor"], "krr": krr, "loss": d["tune"]["loss"]}
        # multi-fidelity settings decide which trials complete and what their loss is
        scope.update({k: d["tune"][k] for k in ("fidelity", "pruner", "kernel_dtype") if k in d["tune"]})
        return canonical_hash(scope)

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


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader; :func:`parse_yaml` checks the composed nodes before anything is built."""


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    return []


def _check_nodes(root, loader: yaml.SafeLoader, file: str) -> None:
    """Refuse a YAML document that repeats a key in a mapping, refers to itself (a recursive alias),
    expands to more than :data:`MAX_CONFIG_NODES` nodes or nests deeper than :data:`MAX_CONFIG_DEPTH`.

    Works on the composed node graph, where an alias is a shared node: sizes are counted with every use
    of an alias (memoised per node), so an alias bomb is measured without being expanded.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool, str]] = [(root, False, "")]
    while stack:
        node, done, path = stack.pop()
        k = id(node)
        ch = _children(node)
        if done:
            on_path.discard(k)
            size[k] = 1 + sum(size[id(c)] for c in ch)
            depth[k] = 1 + max((depth[id(c)] for c in ch), default=0)
            line = node.start_mark.line + 1
            if size[k] > MAX_CONFIG_NODES:
                raise ConfigError(f"{path or 'the document'}: YAML aliases expand to more than "
                                  f"{MAX_CONFIG_NODES} values", where=f"{file}:{line}",
                                  hint="a config is a few dozen keys; do not nest aliases (&name / *name)")
            if depth[k] > MAX_CONFIG_DEPTH:
                raise ConfigError(f"{path or 'the document'}: nested more than {MAX_CONFIG_DEPTH} levels "
                                  "deep",
                                  where=f"{file}:{line}", hint="see configs/quickstart.yaml")
            continue
        if k in size:
            continue
        if k in on_path:
            raise ConfigError(f"{path or 'the document'}: a YAML alias refers to a value that contains it",
                              where=f"{file}:{node.start_mark.line + 1}", hint="remove the recursive alias")
        on_path.add(k)
        stack.append((node, True, path))
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                kname = ""
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = loader.construct_object(key_node, deep=True)
                    kname = str(key)
                    try:
                        first = seen.get(key)
                    except TypeError:
                        first = None
                    line = key_node.start_mark.line + 1
                    if first is not None:
                        keypath = f"{path}.{kname}" if path else kname
                        raise ConfigError(f"{keypath}: duplicate key (given on line {first} and again on "
                                          f"line {line})", where=f"{file}:{line}",
                                          hint="remove one of them: YAML would silently keep only the last")
                    with_hash = True
                    try:
                        hash(key)
                    except TypeError:
                        with_hash = False
                    if with_hash:
                        seen[key] = line
                child_path = (f"{path}.{kname}" if path else kname) if kname else path
                for c, cp in ((key_node, path), (value_node, child_path)):
                    if id(c) in on_path:
                        raise ConfigError(f"{cp or 'the document'}: a YAML alias refers to a value that "
                                          "contains it", where=f"{file}:{c.start_mark.line + 1}",
                                          hint="remove the recursive alias")
                    if id(c) not in size:
                        stack.append((c, False, cp))
        else:
            for i, c in enumerate(ch):
                if id(c) in on_path:
                    raise ConfigError(f"{path or 'the document'}: a YAML alias refers to a value that "
                                      "contains it", where=f"{file}:{c.start_mark.line + 1}",
                                      hint="remove the recursive alias")
                if id(c) not in size:
                    stack.append((c, False, f"{path}[{i}]"))


def parse_yaml(text: str, file: str) -> Any:
    """The YAML document in ``text``, checked by :func:`_check_nodes` before it is built; malformed YAML
    raises :class:`ConfigError` naming ``file`` and the line."""
    loader = _ConfigLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"nested more than {MAX_CONFIG_DEPTH} levels deep", where=file,
                              hint="see configs/quickstart.yaml") from None
        if node is None:
            return None
        _check_nodes(node, loader, file)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"malformed YAML: {problem}", where=where,
                          hint="check indentation and quoting") from None
    finally:
        loader.dispose()


def load(path: str | Path) -> Config:
    """Read and validate a YAML config file.

    The file must be a regular file of at most :data:`MAX_CONFIG_BYTES` (a FIFO or a device is refused
    before it is read), and its YAML is checked before it is built (:func:`parse_yaml`: no duplicate keys,
    no alias bombs).  Every combination of search-space values is validated when there are at most
    :data:`repbench.space.MAX_PROBES` of them (:func:`repbench.space.probes`).
    """
    from .datasets import read_bytes

    path = Path(path)
    if not path.exists():
        raise ConfigError("config file not found", where=str(path), hint="check the path")
    raw = read_bytes(path, MAX_CONFIG_BYTES, error=ConfigError, what="config file",
                     hint="a config is a small YAML text file; see configs/quickstart.yaml")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config: {e}", where=str(path),
                          hint="a config is a UTF-8 text file in YAML; see configs/quickstart.yaml") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError("config file is empty", where=str(path), hint="see configs/quickstart.yaml")
    data.setdefault("name", path.stem) if isinstance(data, dict) else None
    return from_dict(data, str(path), probe_combinations=True)


def from_dict(data: dict, file: str = "<config>", *, probe_combinations: bool = False) -> Config:
    """Validate a config given as a plain dict.

    Every value a search-space leaf can reach is validated (ends, every option, an interior point of a
    continuous range).  ``probe_combinations``: also combinations of several leaves' values
    (:func:`repbench.space.probes`; :func:`load` does this, once, when a config file is read).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {_tname(data)}", where=file,
                          hint="see configs/quickstart.yaml")
    top = _Checker(data, "", file)
    name = top.get("name", str, "run")
    _check_name(name, top)
    seed = top.get("seed", int, 0, lo=0, hi=MAX_SEED)
    ds = _dataset(top.get("dataset", dict), file)
    sp = _splits(top.get("splits", dict, {}), file)
    rep = _representation(top.get("representation", dict), file, ds, probe_combinations)
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


def _check_name(name: str, top: "_Checker") -> None:
    """A run name names a folder and a study: no path separators, no control or format characters (a
    newline, an escape sequence, a right-to-left override), and short enough for a file name."""
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        top.fail("name", f"{short(name)} is not a valid run name", hint="letters, digits, '-', '_' and '.'")
    bad = next((c for c in name if unicodedata.category(c)[0] == "C"), None)
    if bad is not None:
        top.fail("name", f"{short(name)} holds the control character {bad!r}",
                 hint="letters, digits, '-', '_' and '.'")
    n = len(name.encode("utf-8", "surrogatepass"))
    if n > MAX_NAME_BYTES:
        top.fail("name", f"the run name is {n} bytes long, more than {MAX_NAME_BYTES}",
                 hint="a run name names a folder: use a short name")


def check_concrete(representation: Any, kernel: Any, file: str) -> None:
    """Raise :class:`ConfigError` unless ``representation`` and ``kernel`` are valid, concrete (leaf-free)
    config sections, as a tuning result must hold (``tune/best.yaml``); nothing is returned: the
    values themselves (which the model hash covers) are used as stored."""
    leaves = space.find_leaves({"representation": representation, "kernel": kernel})
    if leaves:
        raise ConfigError(f"{leaves[0][0]}: a search-space leaf where a concrete value belongs", where=file,
                          hint="a tuning result holds the concrete values of one trial")
    if not isinstance(kernel, dict):
        raise ConfigError(f"kernel: must be a mapping, got {_tname(kernel)}", where=file)
    rep = _representation(representation, file, None)
    _kernel(kernel, file, _is_local(rep))


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
    strategy = c.get("strategy", str, "random", choices=SPLIT_STRATEGIES)
    # keys of the other strategies are only written when used, so that configs of the random strategy
    # keep their hashes (and the results made with them stay valid)
    if strategy == "group":
        out["strategy"] = strategy
        out["group_by"] = c.get("group_by", str)
        out["test_groups"] = c.get("test_groups", list, None, nullable=True)
        out["holdout_groups"] = c.get("holdout_groups", int, 1, lo=1)
        if out["test_groups"] is not None:
            if not out["test_groups"]:
                c.fail("splits.test_groups", "must name at least one group", hint="e.g. [\"12\", \"33\"]")
            out["test_groups"] = [str(g) for g in out["test_groups"]]
    elif strategy == "size":
        out["strategy"] = strategy
        out["size_by"] = c.get("size_by", str, "heavy_atoms", choices=("atoms", "heavy_atoms"))
        out["max_train_size"] = c.get("max_train_size", int, lo=1)
    for key in ("group_by", "test_groups", "holdout_groups", "size_by", "max_train_size"):
        if key in c.data and key not in out:
            c.fail(f"splits.{key}", f"does not apply to splits.strategy {strategy!r}",
                   hint="group_by, test_groups, holdout_groups: strategy group; size_by, max_train_size: "
                        "strategy size")
        c.used.add(key)
    c.done()
    _increasing_sizes(c, "splits.train_sizes", out["train_sizes"], file, "e.g. [100, 250, 500]")
    return out


def _increasing_sizes(c: "_Checker", key: str, sizes: list, file: str, example: str) -> None:
    """A non-empty, strictly increasing list of training-set sizes (integers >= 2)."""
    if not sizes:
        c.fail(key, "must list at least one training-set size", hint=example)
    for i, s in enumerate(sizes):
        check_value(s, int, f"{key}[{i}]", file, lo=2)
    if sorted(set(sizes)) != list(sizes):
        c.fail(key, f"must be strictly increasing, got {sizes}", hint=example)


def _dataset_names() -> list[str]:
    from .datasets import READERS

    return READERS.names()


def _representation(data, file, ds, probe_combinations: bool = False) -> dict:
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
    leaves = space.find_leaves(params)
    instances = (space.probes(params) if probe_combinations
                 else space.probes(params, max_probes=0))  # each leaf's values alone
    for n, inst in enumerate(instances):
        try:
            with validating_config(folder):
                v = cls.validate(copy.deepcopy(inst), where)
        except ConfigError as e:
            msg = f"{e.where}: {e.message}" if e.where else e.message
            if n and leaves:
                reached = ", ".join(f"{where}.{p} = {short(_at(inst, p))}" for p, _ in leaves)
                msg += f" (with {reached}, values the search space reaches)"
            raise ConfigError(msg, where=file, hint=e.hint) from None
        if validated is None:
            validated = v
    if space.find_leaves(params):
        # keep the leaves; fill the defaults validation added
        merged = dict(validated)
        merged.update(params)
        return {kind: merged}
    return {kind: validated}


def _at(obj: Any, path: str) -> Any:
    for part in space._split_path(path):
        obj = obj[part]
    return obj


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
    leaves = space.find_leaves(params, f"regressor.{name}")
    if leaves:  # only representation and kernel are searched: a leaf here would reach the regressor as is
        raise ConfigError(f"{leaves[0][0]}: a search-space leaf, but `tune` searches only the representation "
                          "and kernel sections", where=file, hint="give a fixed value")
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
    lim = 2.0 ** LOG2_LIMIT
    out = {
        "baseline": c.get("baseline", str, default_baseline, choices=BASELINE_KINDS),
        "length_scale": c.get("length_scale", float, None, lo=0.0, lo_open=True, nullable=True),
        "regularization": c.get("regularization", float, None, lo=0.0, lo_open=True, nullable=True),
        "refine": c.get("refine", bool, True),
        "ls_bounds": c.get("ls_bounds", list, [-20, 20]),
        "reg_bounds": c.get("reg_bounds", list, [-40, 0]),
        "reg_start": c.get("reg_start", float, -20.0, lo=-LOG2_LIMIT, hi=LOG2_LIMIT),
        "loss": c.get("loss", str, "rmse", choices=LOSSES),
    }
    # walk control of the refinement (written only when set, so that other configs keep their hashes)
    flat = c.get("flat_tol", float, None, lo=0.0, hi=0.5, nullable=True)
    if flat is not None:
        out["flat_tol"] = flat
    look = c.get("lookahead", int, None, lo=1, hi=16, nullable=True)
    if look is not None:
        out["lookahead"] = look
    c.done()
    for k in ("length_scale", "regularization"):
        v = out[k]
        if v is not None and not 1 / lim <= v <= lim:
            c.fail(f"krr.{k}", f"{v} is out of range", hint=f"expected a number in [2^-{LOG2_LIMIT}, "
                   f"2^{LOG2_LIMIT}] (about 1e-30 to 1e30)")
    for k in ("ls_bounds", "reg_bounds"):
        b = out[k]
        eg = [-20, 20] if k == "ls_bounds" else [-40, 0]
        if len(b) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in b) \
                or not all(math.isfinite(x) for x in b) or b[0] >= b[1]:
            c.fail(f"krr.{k}", f"must be [low, high] finite log2 exponents with low < high, got {short(b)}",
                   hint=f"e.g. {eg}")
        if b[0] < -LOG2_LIMIT or b[1] > LOG2_LIMIT:
            c.fail(f"krr.{k}", f"{short(b)} is out of range", hint=f"log2 exponents within "
                   f"[-{LOG2_LIMIT}, {LOG2_LIMIT}], e.g. {eg}")
    # the refinement walks log2 grids of step 1: the length-scale grid starts at the data's median
    # distance, so its bounds must span a step; the regularisation grid is aligned to reg_start
    if out["ls_bounds"][1] - out["ls_bounds"][0] < 1:
        c.fail("krr.ls_bounds", f"{short(out['ls_bounds'])} spans less than one grid step (1 in log2)",
               hint="e.g. [-20, 20]")
    lo, hi = out["reg_bounds"]
    r0 = out["reg_start"]
    if math.floor(hi - r0 + 1e-9) < math.ceil(lo - r0 - 1e-9):
        c.fail("krr.reg_bounds", f"{short(out['reg_bounds'])} holds no point of the regularisation grid "
               f"(reg_start {r0} + whole numbers)", hint="widen the bounds to span at least 1, or move "
               "krr.reg_start")
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
    # multi-fidelity tuning (written only when set, so that other configs keep their hashes)
    fid = c.get("fidelity", list, None, nullable=True)
    if fid is not None:
        _increasing_sizes(c, "tune.fidelity", fid, file, "e.g. [100, 200, 400]")
        out["fidelity"] = list(fid)
        out["pruner"] = c.get("pruner", str, "successive_halving", choices=PRUNERS)
    elif "pruner" in c.data:
        c.fail("tune.pruner", "needs tune.fidelity (the training-set sizes of the rungs)",
               hint="e.g. fidelity: [100, 200] with pruner: successive_halving")
    c.used.add("pruner")
    kd = c.get("kernel_dtype", str, None, choices=DTYPES, nullable=True)
    if kd is not None:
        out["kernel_dtype"] = kd
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
