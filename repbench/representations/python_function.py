"""Your own Python function as a representation (``representation.python``), no package needed.

A config names the function and says whether it is local or global; every other key is a keyword argument
of the function (and may be a search-space leaf for ``repbench tune``)::

    representation:
      python:
        function: my_descriptors:radial_histogram   # MODULE:CALLABLE
        kind: local                                  # local: one row per atom; global: one per structure
        version: "1"                                 # optional (default: sha256 of the module's source)
        n_bins: {int: [8, 32]}                       # keyword argument(s) of the function

The function is called as ``f(atoms_list, **kwargs)`` with a list of :class:`ase.Atoms` (positions in
Angstrom) and returns a 2-D float array: for ``kind: local`` one row per atom of the list, in order; for
``kind: global`` one row per structure.  repbench calls it with one structure at a time, so the result
cannot depend on how the structures are split among worker processes (it is bit-identical for 1 and N
workers, as for the other representations).  Integer arrays are converted to float64; a wrong shape,
non-finite values, a complex, boolean, object or string array, and an exception raised in the function are
each reported as one error naming the function.

**Where the module comes from** (``MODULE`` in ``function: MODULE:CALLABLE``; ``CALLABLE`` may be dotted,
``Class.method``):

- a path ending in ``.py`` or containing ``/`` (``sub/dir/file.py``): that file, relative to the folder of
  the config file, then to the current directory (absolute paths as they are);
- a plain name (``my_descriptors``): ``my_descriptors.py`` next to the config, then in the current
  directory, else the importable module of that name;
- a dotted name (``my_package.descriptors``): the importable module (installed or on ``PYTHONPATH``).

The absolute path of a module loaded from a file is kept in the validated parameters (``module_file``), so
that later stages (``tune``, ``curve``, ``time`` from another directory) load the same file.  Its folder is
on ``sys.path`` while it is loaded, so it may import modules next to it.

**Versions and the cache.** Cached representations are keyed by the function's name, its keyword
arguments and ``version``.  Without ``version`` it is ``sha256:`` and the first 16 hex digits of the SHA-256
of the module's source file; when the representation is built and that file has changed since the config
was validated (the run was prepared), repbench refuses to compute (an edited function is never served a
stale cache) and asks to prepare the run again.  Only the module's own file is hashed: if the function's
behaviour depends on other files, give ``version`` yourself and change it when they change (repbench then
trusts it and does not look at the source).

Reserved keys (not passed to the function): ``function``, ``kind``, ``version``, ``module_file``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import sys
import threading
import traceback
import types
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .base import Representation, as_choice, check_json, check_mapping, config_dir

KINDS = ("local", "global")
RESERVED = ("function", "kind", "version", "module_file")
#: Prefix of a version that repbench derived from the module's source (and checks before computing).
AUTO_VERSION_PREFIX = "sha256:"

#: (absolute path, sha256 of its bytes) -> module loaded from that file content.
_FILE_MODULES: dict[tuple[str, str], types.ModuleType] = {}
_LOCK = threading.RLock()


# ---------------------------------------------------------------------------------------------- loading
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _looks_like_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def _candidates(module: str) -> list[Path]:
    """Files that ``module`` may name, in the order they are tried."""
    rel = Path(os.path.expanduser(module if _looks_like_path(module) else module + ".py"))
    if rel.is_absolute():
        return [rel]
    folders = []
    if config_dir() is not None:
        folders.append(Path(config_dir()))
    folders.append(Path.cwd())
    return [f / rel for f in folders]


def _load_file(path: Path, spec: str, where: str) -> tuple[types.ModuleType, str]:
    """The module executed from ``path`` (cached by path and content) and the sha256 of its source."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path} for {spec}: {e.strerror or e}",
                          where=f"{where}.function") from None
    sha = hashlib.sha256(data).hexdigest()
    key = (str(path), sha)
    with _LOCK:
        mod = _FILE_MODULES.get(key)
        if mod is not None:
            return mod, sha
        stem = re.sub(r"\W", "_", path.stem)
        name = f"_repbench_user_{stem}_{sha[:12]}"
        mod = types.ModuleType(name)
        mod.__file__ = str(path)
        sys.modules[name] = mod  # dataclasses, pickle and friends look the module up by name
        folder = str(path.parent)
        sys.path.insert(0, folder)
        try:
            # compile exactly the bytes that were hashed
            exec(compile(data, str(path), "exec"), mod.__dict__)  # noqa: S102 - the user's own code
        except BaseException as e:  # noqa: BLE001 - a broken user module must give one clear error
            sys.modules.pop(name, None)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise ConfigError(f"loading {path} for {spec} failed: {type(e).__name__}: {e}"
                              f"{_user_frame(e, path)}", where=f"{where}.function",
                              hint="fix the module") from None
        finally:
            try:
                sys.path.remove(folder)
            except ValueError:  # pragma: no cover - the module removed it itself
                pass
        _FILE_MODULES[key] = mod
        return mod, sha


def _import(module: str, spec: str, where: str, tried: list[Path]) -> tuple[types.ModuleType, str | None]:
    """The importable module ``module`` and the sha256 of its source file (None if it has none)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module != e.name and not module.startswith(e.name + "."):
            raise ConfigError(f"importing {module} for {spec} failed: {e}", where=f"{where}.function",
                              hint="install the missing package") from None
        looked = "; no " + " or ".join(str(p) for p in tried) if tried else ""
        raise ConfigError(f"cannot find the module {module!r} of {spec}{looked}, and it is not importable",
                          where=f"{where}.function",
                          hint="put MODULE.py next to the config, give a path (sub/dir/file.py:CALLABLE), or "
                               "install the module") from None
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"importing {module} for {spec} failed: {type(e).__name__}: {e}",
                          where=f"{where}.function", hint="fix the module") from None
    try:
        src = inspect.getsourcefile(mod) or getattr(mod, "__file__", None)
    except TypeError:  # built-in module
        src = None
    sha = _sha256(Path(src)) if src and Path(src).is_file() else None
    return mod, sha


def load_function(spec: str, module_file: str | None, where: str = "representation.python"):
    """``(callable, module_file, source_sha256)`` for ``spec`` = ``"MODULE:CALLABLE"``.

    ``module_file``: the absolute file found by an earlier validation (then it is loaded again, whatever
    the current directory), or None to resolve ``MODULE`` (see the module docstring).  The returned
    ``module_file`` is None for modules imported by name; ``source_sha256`` is None when the module has no
    source file.  Raises :class:`ConfigError` naming ``where.function``.
    """
    fwhere = f"{where}.function"
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"expected MODULE:CALLABLE, got {spec!r}", where=fwhere,
                          hint="e.g. my_descriptors:radial_histogram (my_descriptors.py next to the config)")
    module, _, attr = spec.rpartition(":")
    if not module or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise ConfigError(f"expected MODULE:CALLABLE, got {spec!r}", where=fwhere,
                          hint="e.g. my_descriptors:radial_histogram or sub/dir/file.py:radial_histogram")
    if module_file is not None:
        path = Path(module_file)
        if not path.is_file():
            raise ConfigError(f"the module file {module_file} of {spec} (found when the config was "
                              "validated) does not exist", where=f"{where}.module_file",
                              hint="restore the file, or prepare the run again from the config")
        mod, sha = _load_file(path, spec, where)
        found = str(path)
    else:
        tried = [] if ("." in module and not _looks_like_path(module)) else _candidates(module)
        hit = next((p for p in tried if p.is_file()), None)
        if hit is not None:
            path = hit.resolve()
            mod, sha = _load_file(path, spec, where)
            found = str(path)
        elif _looks_like_path(module):
            raise ConfigError(f"the file of {spec} does not exist; looked for "
                              + " and ".join(str(p) for p in tried), where=fwhere,
                              hint="paths are relative to the folder of the config file, then to the current "
                                   "directory")
        else:
            mod, sha = _import(module, spec, where, tried)
            found = None
    obj = mod
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            have = sorted(n for n, v in vars(mod).items() if callable(v) and not n.startswith("_")
                          and getattr(v, "__module__", None) == mod.__name__)
            raise ConfigError(f"{spec}: {'.'.join([module] + attr.split('.')[:i])} has no attribute {part!r}",
                              where=fwhere, hint=("callables defined there: " + ", ".join(have)) if have
                              else "check the name")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{spec} is a {type(obj).__name__}, not a function", where=fwhere,
                          hint="name a function (or another callable)")
    return obj, found, sha


def _user_frame(exc: BaseException, path=None) -> str:
    """`` (at file:line)`` of the innermost frame in the user's code (``path``) or else the last one."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    pick = frames[-1]
    if path is not None:
        mine = [f for f in frames if f.filename == str(path)]
        pick = mine[-1] if mine else pick
    return f" (at {Path(pick.filename).name}:{pick.lineno})"


# ---------------------------------------------------------------------------------------------- example
def radial_histogram(atoms_list: list, n_bins: int = 16, r_cut: float = 5.0,
                     sigma: float = 0.5) -> np.ndarray:
    """An example local representation (and the one the contract tests use): per atom, a Gaussian-smeared
    histogram of the distances to its neighbours within ``r_cut`` (Angstrom), each neighbour weighted by
    its atomic number / 10 and a smooth cosine cutoff.

    n_bins: histogram centres, evenly spaced on [0, r_cut]; sigma: Gaussian width in Angstrom.
    Periodic structures include all images within ``r_cut``.  Returns ``(n_atoms, n_bins)`` float64.
    """
    from ase.neighborlist import neighbor_list

    mu = np.linspace(0.0, r_cut, int(n_bins))
    rows = []
    for atoms in atoms_list:
        i, j, d = neighbor_list("ijd", atoms, float(r_cut))
        w = atoms.numbers[j] / 10.0 * 0.5 * (np.cos(np.pi * d / r_cut) + 1.0)
        g = w[:, None] * np.exp(-((d[:, None] - mu[None, :]) ** 2) / (2.0 * sigma**2))
        out = np.zeros((len(atoms), len(mu)))
        order = np.lexsort((d, i))  # sum each atom's neighbours in a fixed order (atom order invariant)
        np.add.at(out, i[order], g[order])
        rows.append(out)
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, len(mu)))


# -------------------------------------------------------------------------------------- representation
class PythonRepresentation(Representation):
    """Your own Python function (no package needed): local or global as `kind` says."""

    kind = "python"
    local = True

    @classmethod
    def local_for(cls, params: dict | None) -> bool:
        return not (isinstance(params, dict) and params.get("kind") == "global")

    @classmethod
    def parameters(cls) -> dict:
        return {"function": "module:callable (required)", "kind": "local|global (required)",
                "version": "sha256 of the module's source (default), or your own string",
                "...": "every other key is a keyword argument of the function"}

    @classmethod
    def kind_label(cls) -> str:
        return "local or global (key kind)"

    @classmethod
    def identity_params(cls, params: dict) -> dict:
        """Without ``module_file``: where the module lies is not what it computes (``version`` says that),
        so a project folder moved elsewhere keeps its studies and results."""
        return {k: v for k, v in params.items() if k != "module_file"}

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        return {"function": "repbench.representations.python_function:radial_histogram", "kind": "local",
                "n_bins": 8, "r_cut": 4.0, "sigma": 0.5}

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.python") -> dict:
        p = check_mapping(params, where)
        if "function" not in p:
            raise ConfigError("needs the function to call", where=f"{where}.function",
                              hint="e.g. function: my_descriptors:radial_histogram (my_descriptors.py "
                                   "next to the config)")
        spec = p["function"]
        if "kind" not in p:
            raise ConfigError(f"say whether {spec} returns one row per atom (local) or per structure "
                              "(global)", where=f"{where}.kind", hint="allowed: local, global")
        kind = as_choice(p["kind"], f"{where}.kind", KINDS)
        module_file = p.get("module_file")
        if module_file is not None and not isinstance(module_file, str):
            raise ConfigError(f"expected a path, got {module_file!r}", where=f"{where}.module_file")
        func, found, sha = load_function(spec, module_file, where)
        version = p.get("version")
        if version is None:
            if sha is None:
                raise ConfigError(f"{spec} has no source file to derive a version from",
                                  where=f"{where}.version",
                                  hint="give version: (any string; change it when the function changes)")
            version = AUTO_VERSION_PREFIX + sha[:16]
        elif isinstance(version, bool) or not isinstance(version, (str, int, float)) or str(version) == "":
            raise ConfigError(f"expected a non-empty string, got {version!r}", where=f"{where}.version",
                              hint="any string; change it when the function changes")
        kwargs = {k: check_json(v, f"{where}.{k}") for k, v in p.items() if k not in RESERVED}
        cls._check_signature(func, spec, kwargs, where)
        return {"function": spec, "kind": kind, "version": str(version), "module_file": found, **kwargs}

    @staticmethod
    def _check_signature(func, spec: str, kwargs: dict, where: str) -> None:
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):  # some built-ins have none: the call will tell
            return
        params = list(sig.parameters.values())
        positional = [q for q in params
                      if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD, q.VAR_POSITIONAL)]
        if not positional:
            raise ConfigError(f"{spec} must take the list of structures as its first argument",
                              where=f"{where}.function", hint="def f(atoms_list, **params)")
        first = positional[0].name
        if first in kwargs and positional[0].kind != positional[0].VAR_POSITIONAL:
            raise ConfigError(f"{first!r} is the first argument of {spec} (the list of structures), not a "
                              "keyword argument", where=f"{where}.{first}", hint=f"remove {first}")
        if not any(q.kind == q.VAR_KEYWORD for q in params):
            names = {q.name for q in params if q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)}
            for k in kwargs:
                if k not in names:
                    raise ConfigError(f"{spec} has no keyword argument {k!r}", where=f"{where}.{k}",
                                      hint="its arguments: " + (", ".join(sorted(names - {first})) or "none"))
        try:
            sig.bind([], **kwargs)
        except TypeError as e:
            missing = [q.name for q in params[1:]
                       if q.default is q.empty and q.kind in (q.POSITIONAL_OR_KEYWORD, q.KEYWORD_ONLY)
                       and q.name not in kwargs]
            raise ConfigError(f"{spec} cannot be called with these parameters: {e}",
                              where=f"{where}.{missing[0]}" if missing else where,
                              hint=f"give {', '.join(missing)}" if missing else "") from None

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        self.local = params["kind"] == "local"
        self.function_name = params["function"]
        self._func, self._module_file, sha = load_function(params["function"], params.get("module_file"),
                                                           self.where)
        version = params["version"]
        auto = version.startswith(AUTO_VERSION_PREFIX)
        if auto and (sha is None or version != AUTO_VERSION_PREFIX + sha[:16]):
            now = "gone" if sha is None else AUTO_VERSION_PREFIX + sha[:16]
            raise ConfigError(
                f"the source of {self.function_name} ({self._module_file or 'its module'}) changed since the "
                f"run was prepared (version {version}, now {now}); its cached results would be stale",
                where=f"{self.where}.version",
                hint="prepare the run again from the config (`repbench prepare CONFIG --force` or "
                     "`repbench run CONFIG`), or restore the old source")
        self._kwargs = {k: v for k, v in params.items() if k not in RESERVED}
        self._dim: int | None = None

    def params_canonical(self) -> dict:
        """The parameters without ``module_file`` (where the file lies does not change the features;
        ``version`` pins its content), so a run directory stays valid when moved along with the module."""
        p = super().params_canonical()
        p.pop("module_file", None)
        return p

    # -- computing
    @property
    def dim(self) -> int:
        if self._dim is None:
            raise RuntimeError(f"{self.where}: the width of {self.function_name} is only known after "
                               "computing a structure: call fit_dim(atoms_list) first (compute() does)")
        return self._dim

    def fit_dim(self, atoms_list: list) -> int:
        if self._dim is None:
            if not atoms_list:
                return 0
            self._dim = int(self._call(atoms_list[0]).shape[1])
        return self._dim

    def _call(self, atoms) -> np.ndarray:
        """The checked rows of one structure, float64 (one per atom for local, else one)."""
        name = self.function_name
        try:
            raw = self._func([atoms], **self._kwargs)
        except Exception as e:  # noqa: BLE001 - the user's code: one clear error, never a traceback
            raise DataError(f"{name} raised {type(e).__name__}: {e}{_user_frame(e, self._module_file)}",
                            where=self.where, hint="fix the function") from None
        return self._check(raw, atoms)

    def _check(self, raw, atoms) -> np.ndarray:
        name, n = self.function_name, len(atoms)
        what = f"for {n} atom{'s' if n != 1 else ''} ({atoms.get_chemical_formula()})"

        def fail(msg: str, hint: str = "return a 2-D float array"):
            raise DataError(f"{name} {msg}", where=self.where, hint=hint)

        if raw is None or isinstance(raw, (str, bytes, dict)):
            fail(f"returned {type(raw).__name__} {what}, not an array")
        try:
            arr = np.asarray(raw)
        except Exception as e:  # noqa: BLE001 - e.g. ragged nested lists
            fail(f"returned a {type(raw).__name__} that is not an array {what} ({e})")
        kind = arr.dtype.kind
        if kind in "iu":
            arr = arr.astype(np.float64)
        elif kind == "f":
            arr = arr.astype(np.float64, copy=False)
        else:
            names = {"b": "boolean", "c": "complex", "O": "object", "U": "string", "S": "bytes",
                     "V": "structured", "M": "datetime", "m": "timedelta"}
            fail(f"returned a {names.get(kind, kind)} array (dtype {arr.dtype}) {what}; only real numbers "
                 "are allowed", hint="return a float (or integer) array")
        rows = n if self.local else 1
        if arr.ndim != 2 or arr.shape[0] != rows:
            per = ("a local representation returns one row per atom" if self.local
                   else "a global representation returns one row per structure")
            fail(f"returned shape {arr.shape} {what}; {per}",
                 hint=f"return shape ({rows}, dim)" + ("" if arr.ndim == 2 else ", a 2-D array"))
        if arr.shape[1] == 0:
            fail(f"returned no columns (shape {arr.shape}) {what}", hint="return at least one feature")
        if self._dim is not None and arr.shape[1] != self._dim:
            fail(f"returned {arr.shape[1]} columns {what}, but {self._dim} for the first structure",
                 hint="every structure must give the same number of columns")
        bad = ~np.isfinite(arr)
        if bad.any():
            fail(f"returned {int(bad.sum())} non-finite value(s) (NaN or infinity) {what}",
                 hint="return finite numbers")
        return arr

    def compute_atoms(self, atoms_list: list) -> np.ndarray:
        self.fit_dim(atoms_list)
        if not atoms_list:
            return np.zeros((0, self._dim or 0))
        return np.concatenate([self._call(a) for a in atoms_list], axis=0)

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        r = 0
        for a in atoms_list:
            x = self._call(a)
            if self._dim is None:
                self._dim = x.shape[1]
            out[r:r + len(x)] = x
            r += len(x)
        if r != len(out):
            raise ValueError(f"{r} rows computed for {len(out)} rows of output")
