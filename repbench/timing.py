"""``repbench time``: wall times of representation, kernels and KRR for the best (or fixed) configuration.

Each measurement runs once to warm up (imports, numba compilation, page faults), then ``time.repeats``
times; min and median are recorded.  Hardware and library versions are written beside the figures, so a
reader knows what machine produced them.  Sizes: ``time.sizes`` or the learning curve's largest training size.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import numpy as np

from . import kernels as K
from . import krr
from .config import thaw
from .representations import compute, make_representation
from .rundir import RunDir, clean_stale_tmp, host_info, lock, versions, write_yaml
from .errors import ConfigError
from .workspace import (Workspace, check_memory, estimate_features_bytes, estimate_kernel_bytes,
                        take_features)

TIMINGS_FORMAT = 1


def _measure(fn: Callable[[], object], repeats: int) -> dict:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"min_s": min(ts), "median_s": statistics.median(ts), "repeats": repeats}


def blas_info() -> dict:
    info: dict = {}
    try:
        cfg = np.show_config(mode="dicts")
        bl = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = f"{bl.get('name', '?')} {bl.get('version', '')}".strip()
    except Exception:  # noqa: BLE001
        info["blas"] = "unknown"
    try:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
        info["threads"] = {p.get("internal_api", "?"): p.get("num_threads") for p in pools}
    except Exception:  # noqa: BLE001
        info["threads"] = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                           if os.environ.get(v)}
    return info


def run_time(run: RunDir, *, progress: bool = True, console=None) -> dict:
    """Measure and write timings.yaml."""
    from .curve import resolved_model

    with lock(run.path, "time"):
        cfg = run.config()
        clean_stale_tmp(run.path)  # temporary files of killed writers
        ws = Workspace(run, cfg, progress=False)
        model = resolved_model(run, cfg)
        rep_spec, ker = model["representation"], model["kernel"]
        poly = ker.get("atom_kernel") == "polynomial"
        ls = 1.0 if poly else float(model["length_scale"] or 1.0)
        reg = float(model["regularization"] or 1e-6)
        repeats = cfg.time["repeats"]
        sizes = list(cfg.time["sizes"] or [max(ws.splits.train)])
        pool, test = ws.splits.pool, ws.splits.test
        sizes = [s for s in sizes if s <= len(pool)]
        if not sizes:
            raise ConfigError(f"time.sizes: every size exceeds the {len(pool)} structures outside the "
                              "test set",
                              where=cfg.file, hint=f"use sizes up to {len(pool)}")
        big = max(sizes)
        check_memory(estimate_kernel_bytes(big, big, 1) + estimate_kernel_bytes(len(test), big, 1),
                     f"timing the {big} x {big} and {len(test)} x {big} kernels",
                     hint="use smaller time.sizes", where=str(run.path))
        n_rep = min(cfg.time["n_structures"], len(pool))
        rep = make_representation(rep_spec, ws.structures.elements, ws.structures.periodic)
        rng = np.random.default_rng(cfg.seed)
        idx_rep = np.sort(rng.choice(pool, size=n_rep, replace=False))
        n_atoms_rep = int(ws.structures.n_atoms[idx_rep].sum())
        check_memory(estimate_features_bytes(n_atoms_rep if rep.local else n_rep, int(rep.dim)),
                     f"timing the {rep.kind} representation of {n_rep} structures", where=str(run.path),
                     hint="use a smaller time.n_structures")

        steps = 1 + 4 * len(sizes)
        from rich.progress import Progress

        with Progress(console=console, disable=not progress, transient=True) as prog:
            task = prog.add_task("time", total=steps)
            t_rep = _measure(lambda: compute(rep, ws.structures, idx_rep, progress=False), repeats)
            prog.advance(task)
            rep_doc = {"structures": n_rep, "atoms": n_atoms_rep, **t_rep,
                       "per_structure_s": t_rep["min_s"] / n_rep, "per_atom_s": t_rep["min_s"] / n_atoms_rep,
                       "dim": int(rep.dim)}
            biggest = np.sort(rng.choice(pool, size=max(sizes), replace=False))
            universe = np.unique(np.concatenate([biggest, test]))
            feats = ws.features(rep_spec, universe)
            dtype = np.float32 if ker.get("dtype") == "float32" else np.float64
            kern_rows = []
            for s in sizes:
                tr = biggest[:s]
                fa = take_features(feats, np.searchsorted(universe, tr))
                ft = take_features(feats, np.searchsorted(universe, test))

                def k_tt():
                    return _kernel(fa, None, ker, ls, dtype)

                def k_te():
                    return _kernel(ft, fa, ker, ls, dtype)

                tt = _measure(k_tt, repeats)
                prog.advance(task)
                te = _measure(k_te, repeats)
                prog.advance(task)
                Ktt, Kte = k_tt(), k_te()
                y = ws.y[tr]
                fit = _measure(lambda: krr.fit(Ktt, y, reg), repeats)
                prog.advance(task)
                alpha = krr.fit(Ktt, y, reg)
                pred = _measure(lambda: krr.predict(Kte, alpha), repeats)
                prog.advance(task)
                kern_rows.append({"train_size": int(s), "test_size": int(len(test)),
                                  "kernel_train_train": tt, "kernel_test_train": te,
                                  "krr_fit": fit, "krr_predict": pred})
        doc = {
            "format": TIMINGS_FORMAT,
            "run": cfg.name,
            "config_hash": cfg.hash(),
            "representation": rep.kind,
            "model": {"source": model["source"], "representation": rep_spec, "kernel": thaw(ker),
                      "length_scale": None if poly else ls, "regularization": reg},
            "representation_timing": rep_doc,
            "sizes": kern_rows,
            "hardware": {**host_info(), **blas_info()},
            "versions": versions(),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_yaml(run.path / "timings.yaml", doc, header="# timings written by `repbench time`; seconds; "
                   "format documented in docs/formats.md")
        run.update_status("time", "done")
        return doc


def _kernel(fa, fb, ker, ls, dtype):
    block = int(ker.get("block_mb", 256)) * 2**20
    if fa.offsets is not None:
        return K.local_kernel(fa.values, fa.offsets, None if fb is None else fb.values,
                              None if fb is None else fb.offsets, atom_kernel=ker["atom_kernel"],
                              length_scales=[ls], zeta=ker.get("zeta", 2.0),
                              normalize=bool(ker.get("normalize", False)), dtype=dtype, block_bytes=block)[0]
    return K.global_kernel(fa.values, None if fb is None else fb.values, kind=ker["kind"], length_scales=[ls],
                           dtype=dtype, block_bytes=block)[0]
