"""Search-space leaves in configs and their translation to optuna.

A parameter anywhere in ``representation``, ``kernel`` (and ``krr`` where noted) may be a fixed value or a
*leaf*, a one-key mapping:

=============================  =====================================================
``{loguniform: [lo, hi]}``     float, log-uniform in [lo, hi] (lo > 0)
``{uniform: [lo, hi]}``        float, uniform in [lo, hi]
``{int: [lo, hi]}``            integer in [lo, hi] (inclusive)
``{choice: [a, b, ...]}``      one of the listed values (any YAML values, lists included)
``{loggrid: [start, stop, num, base]}``  a choice over ``base**x`` for ``num`` values of x evenly
                               spaced in [start, stop] (cmlkit's ``hp_loggrid``); ``base`` defaults to 2
=============================  =====================================================
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterator

import numpy as np

from .errors import ConfigError, short

LEAF_KINDS = ("loguniform", "uniform", "int", "choice", "loggrid")

#: Most options of a ``choice`` leaf and most values of a ``loggrid`` leaf (a search space is a list a
#: person writes; a larger one is a typo such as ``num: 1e9``, which would allocate gigabytes).
MAX_OPTIONS = 10_000
#: Where a continuous leaf is probed besides its ends (as a fraction of its range; log range for
#: ``loguniform``): an irrational point, so that a range over an integer parameter is caught.
INTERIOR = 0.41421356237309515
#: At most this many instantiations probe every combination of leaf values at config time (else every
#: pair of leaves, else each leaf alone; see :func:`probes`).
MAX_PROBES = 64


def is_leaf(v: Any) -> bool:
    return isinstance(v, dict) and len(v) == 1 and next(iter(v)) in LEAF_KINDS


def check_leaf(leaf: dict, key: str, file: str) -> None:
    """Raise :class:`ConfigError` if a leaf is malformed."""
    kind, args = next(iter(leaf.items()))

    def fail(msg):
        raise ConfigError(f"{key}: malformed search-space leaf {{{kind}: {short(args)}}}: {msg}", where=file,
                          hint="see the search-space forms in the README "
                               f"(e.g. {{{kind}: {_example(kind)}}})")

    if not isinstance(args, list):
        fail("the arguments must be a list")
    if len(args) > MAX_OPTIONS:
        fail(f"more than {MAX_OPTIONS} options")
    num = all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args)
    if kind in ("loguniform", "uniform", "int"):
        if len(args) != 2 or not num:
            fail("expected [low, high] numbers")
        if args[0] >= args[1]:
            fail("low must be below high")
        if kind == "loguniform" and args[0] <= 0:
            fail("low must be > 0 for a log-uniform range")
        if kind == "int" and not all(isinstance(a, int) for a in args):
            fail("bounds must be integers")
    elif kind == "choice":
        if len(args) < 1:
            fail("needs at least one option")
    elif kind == "loggrid":
        if len(args) not in (3, 4) or not num:
            fail("expected [start, stop, num] or [start, stop, num, base]")
        if not isinstance(args[2], int) or args[2] < 1:
            fail("num must be a positive integer")
        if args[2] > MAX_OPTIONS:
            fail(f"num must be at most {MAX_OPTIONS}")
        if len(args) == 4 and args[3] <= 0:
            fail("base must be > 0")


def _example(kind: str) -> str:
    return {"loguniform": "[0.01, 10]", "uniform": "[2.0, 8.0]", "int": "[2, 8]", "choice": "[2, 3]",
            "loggrid": "[-3, 3, 7, 2]"}[kind]


def leaf_options(leaf: dict) -> list | None:
    """The finite set of values a discrete leaf can take (None for continuous leaves)."""
    kind, args = next(iter(leaf.items()))
    if kind == "choice":
        return list(args)
    if kind == "loggrid":
        start, stop, num = args[:3]
        base = args[3] if len(args) == 4 else 2
        with np.errstate(over="ignore"):  # an overflowing grid gives inf, which validation refuses
            return [float(np.float64(base) ** x) for x in np.linspace(start, stop, num)]
    if kind == "int":
        return list(range(args[0], args[1] + 1))
    return None


def find_leaves(obj: Any, path: str = "") -> list[tuple[str, dict]]:
    """All (key path, leaf) pairs in a nested structure, in a deterministic order."""
    out = []
    if is_leaf(obj):
        return [(path, obj)]
    if isinstance(obj, dict):
        for k in obj:
            out.extend(find_leaves(obj[k], f"{path}.{k}" if path else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(find_leaves(v, f"{path}[{i}]"))
    return out


def _set(obj: Any, path: list, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    obj[head] = _set(obj[head], rest, value)
    return obj


def _split_path(path: str) -> list:
    parts: list = []
    for seg in path.split("."):
        while "[" in seg:
            name, _, rest = seg.partition("[")
            if name:
                parts.append(name)
            idx, _, seg = rest.partition("]")
            parts.append(int(idx))
        if seg:
            parts.append(seg)
    return parts


def substitute(obj: Any, values: dict[str, Any]) -> Any:
    """A copy of ``obj`` with the leaves at the given key paths replaced by concrete values."""
    out = copy.deepcopy(obj)
    for path, v in values.items():
        out = _set(out, _split_path(path), v)
    return out


def extremes(obj: Any) -> Iterator[Any]:
    """Concrete instantiations that probe each leaf's ends (others at their first value).

    Used to validate a search space at config time: every option of a discrete leaf and both bounds of
    a continuous one are tried once.
    """
    leaves = find_leaves(obj)
    base = {p: _ends(leaf)[0] for p, leaf in leaves}
    yield substitute(obj, base)
    for p, leaf in leaves:
        for v in _ends(leaf)[1:]:
            yield substitute(obj, {**base, p: v})


def leaf_ends(leaf: dict) -> list:
    """The values at the ends of a leaf's range (every option of a discrete leaf)."""
    return _ends(leaf)


def probe_values(leaf: dict) -> list:
    """The values of a leaf that config validation tries: its ends (every option of a discrete leaf) and,
    for a continuous leaf, one interior value (:data:`INTERIOR`), which an integer parameter rejects."""
    kind, args = next(iter(leaf.items()))
    ends = _ends(leaf)
    if kind == "uniform":
        return ends + [float(args[0] + (args[1] - args[0]) * INTERIOR)]
    if kind == "loguniform":
        lo, hi = math.log(args[0]), math.log(args[1])
        return ends + [float(math.exp(lo + (hi - lo) * INTERIOR))]
    return ends


def probes(obj: Any, max_probes: int = MAX_PROBES) -> Iterator[Any]:
    """Concrete instantiations of ``obj`` for config validation, at most about ``max_probes``.

    Every leaf takes each of its :func:`probe_values` at least once (the others at their first value), so
    a value that one parameter cannot take is always found.  Combinations: every combination of all the
    leaves' probe values when there are at most ``max_probes``; else every combination of each pair of
    leaves when those are at most ``max_probes``; else none beyond the single-leaf ones.
    """
    import itertools

    leaves = find_leaves(obj)
    values = [probe_values(leaf) for _, leaf in leaves]
    paths = [p for p, _ in leaves]
    base = {p: v[0] for p, v in zip(paths, values)}
    total = 1
    for v in values:
        total *= len(v)
        if total > max_probes:
            break
    if total <= max_probes:
        for combo in itertools.product(*values):
            yield substitute(obj, dict(zip(paths, combo)))
        return
    yield substitute(obj, base)
    for p, v in zip(paths, values):
        for x in v[1:]:
            yield substitute(obj, {**base, p: x})
    pairs = list(itertools.combinations(range(len(leaves)), 2))
    if sum((len(values[i]) - 1) * (len(values[j]) - 1) for i, j in pairs) <= max_probes:
        for i, j in pairs:
            for a in values[i][1:]:
                for b in values[j][1:]:
                    yield substitute(obj, {**base, paths[i]: a, paths[j]: b})


def _ends(leaf: dict) -> list:
    kind, args = next(iter(leaf.items()))
    if kind in ("uniform", "loguniform"):
        return [float(args[0]), float(args[1])]
    if kind == "int":
        return [int(args[0]), int(args[1])]
    return leaf_options(leaf)


def suggest(trial, obj: Any, prefix: str = "") -> Any:
    """Sample every leaf of ``obj`` with an optuna trial; the parameter names are the key paths."""
    values = {}
    for path, leaf in find_leaves(obj):
        name = f"{prefix}{path}"
        kind, args = next(iter(leaf.items()))
        if kind == "loguniform":
            values[path] = trial.suggest_float(name, args[0], args[1], log=True)
        elif kind == "uniform":
            values[path] = trial.suggest_float(name, args[0], args[1])
        elif kind == "int":
            values[path] = trial.suggest_int(name, args[0], args[1])
        else:
            options = leaf_options(leaf)
            # optuna's categorical needs hashable scalars: choose by index for lists/dicts
            if all(isinstance(o, (int, float, str, bool)) or o is None for o in options):
                values[path] = trial.suggest_categorical(name, options)
            else:
                i = trial.suggest_categorical(name, list(range(len(options))))
                values[path] = options[i]
    return substitute(obj, values)
