"""Timing, load and environment helpers of the benchmark suite."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def load() -> float:
    """1-minute load average (other people's jobs share this machine)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return float("nan")


class Stats:
    """Wall and process-CPU times of the repeats of one measurement."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.loads: list[float] = []
        self.extra: dict[str, list[float]] = {}

    @property
    def min(self) -> float:
        return min(self.wall)

    def as_dict(self) -> dict[str, Any]:
        i = int(np.argmin(self.wall))
        d = {"min_s": sig(self.wall[i]), "median_s": sig(statistics.median(self.wall)),
             "max_s": sig(max(self.wall)), "repeats": len(self.wall),
             "cpu_s_of_min": sig(self.cpu[i]), "load_1min": [min(self.loads), max(self.loads)]}
        for k, v in self.extra.items():
            d[f"{k}_of_min"] = sig(v[i])
        return d


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, process CPU seconds) of one call."""
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    r = fn()
    t1 = time.perf_counter()
    c1 = time.process_time()
    return r, t1 - t0, c1 - c0


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, *, warmup: bool = True,
                check: Callable[[dict[str, Any]], None] | None = None,
                extra: dict[str, Callable[[], dict[str, float]]] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Stats]:
    """Time several implementations of one task, interleaved (A B C A B C ...) so that a change of load
    hits all of them alike.

    The first (warm-up) round's results go to ``check`` (which must raise if they differ) before any
    timing is kept; with ``warmup=False`` the check uses the first timed round's results.  ``extra[name]()``
    is called after each timed call and returns extra numbers to record (e.g. a profile of that call).
    """
    stats = {k: Stats() for k in fns}
    if warmup:
        res = {}
        for k, f in fns.items():
            res[k] = f()
            if extra and k in extra:
                extra[k]()  # reset the profile counters
        if check is not None:
            check(res)
        del res
    for r in range(repeats):
        res = {}
        for k, f in fns.items():
            ld = load()
            out, w, c = timed(f)
            s = stats[k]
            s.wall.append(w)
            s.cpu.append(c)
            s.loads.append(ld)
            if extra and k in extra:
                for ek, ev in extra[k]().items():
                    s.extra.setdefault(ek, []).append(ev)
            if not warmup and r == 0:
                res[k] = out
            del out
        if not warmup and r == 0 and check is not None:
            check(res)
        del res
        if log is not None:
            log("  " + ", ".join(f"{k} {stats[k].wall[-1]:.3g} s" for k in fns) + f" (load {load()})")
    return stats


def sig(x: float, n: int = 4) -> float:
    """Round to ``n`` significant digits (for readable YAML)."""
    if x is None or not np.isfinite(x) or x == 0:
        return float(x) if x is not None else None
    return float(f"{x:.{n}g}")


def clean(obj: Any) -> Any:
    """numpy scalars/arrays -> plain Python for YAML; floats rounded to 4 significant digits."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return sig(float(obj))
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    return obj


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Hardware and versions the numbers belong to."""
    import numba
    import scipy

    from repbench.representations import available_cpus

    env: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores_available": available_cpus(),
        "memory_gb": sig(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 3),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
    }
    for mod in ("dscribe", "qmllib", "ase"):
        try:
            from importlib import metadata

            env[mod] = metadata.version(mod)
        except Exception:  # noqa: BLE001
            env[mod] = None
    try:
        from threadpoolctl import threadpool_info

        env["blas"] = [{"library": i.get("internal_api"), "version": i.get("version"),
                        "threads": i.get("num_threads"), "architecture": i.get("architecture")}
                       for i in threadpool_info() if i.get("user_api") == "blas"]
    except ImportError:  # pragma: no cover
        env["blas"] = None
    return env


class Profile:
    """Accumulates the time spent in repbench's fused kernel pass (``kernels._local_block``)."""

    def __init__(self) -> None:
        from repbench import kernels

        self._k = kernels
        self._orig = kernels._local_block
        self.fused = 0.0
        self.calls = 0

        def wrapped(*args):
            t = time.perf_counter()
            self._orig(*args)
            self.fused += time.perf_counter() - t
            self.calls += 1

        kernels._local_block = wrapped

    def take(self) -> dict[str, float]:
        out = {"fused_s": self.fused, "blocks": float(self.calls)}
        self.fused = 0.0
        self.calls = 0
        return out

    def close(self) -> None:
        self._k._local_block = self._orig
