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

from .documents import timings_current, write_timings
from .errors import ConfigError
from .models.kernel import kernel_matrices
from .models.resolve import resolve_model
from .representations import compute, make_representation
from .rundir import RunDir, clean_stale_tmp, host_info, stage_lock, versions
from .workspace import (Workspace, check_memory, estimate_features_bytes, estimate_kernel_bytes,
                        take_features)


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


def run_time(run: RunDir, *, progress: bool = True, console=None, only_missing: bool = False) -> dict | None:
    """Measure and write timings.yaml.

    only_missing: do nothing (return None) when timings.yaml already holds this model's timings at these
    sizes (``repbench run`` re-run after an edit of an execution setting such as ``time.repeats``).
    """
    with stage_lock(run.path, "time"):  # shared run-directory lock + the time lock
        cfg = run.config()
        clean_stale_tmp(run.path)  # temporary files of killed writers
        ws = Workspace(run, cfg, progress=False)
        model = resolve_model(run, cfg)
        mhash = model.hash(cfg)
        rep_spec, ker = model.representation, model.kernel
        poly = not model.has_length_scale
        ls = 1.0 if poly else float(model.length_scale or 1.0)
        reg = float(model.regularization or 1e-6)
        repeats = cfg.time["repeats"]
        sizes = list(cfg.time["sizes"] or [max(ws.splits.train)])
        pool, test = ws.splits.pool, ws.splits.test
        sizes = [s for s in sizes if s <= len(pool)]
        if not sizes:
            raise ConfigError(f"time.sizes: every size exceeds the {len(pool)} structures outside the "
                              "test set",
                              where=cfg.file, hint=f"use sizes up to {len(pool)}")
        if only_missing and timings_current(run, mhash, sizes):
            return None
        big = max(sizes)
        check_memory(estimate_kernel_bytes(big, big, 1) + estimate_kernel_bytes(len(test), big, 1),
                     f"timing the {big} x {big} and {len(test)} x {big} kernels",
                     hint="use smaller time.sizes", where=str(run.path))
        n_rep = min(cfg.time["n_structures"], len(pool))
        rep = make_representation(rep_spec, ws.structures.elements, ws.structures.periodic)
        rng = np.random.default_rng(cfg.seed)
        idx_rep = np.sort(rng.choice(pool, size=n_rep, replace=False))
        n_atoms_rep = int(ws.structures.n_atoms[idx_rep].sum())
        dim = ws.feature_dim(rep, idx_rep)
        check_memory(estimate_features_bytes(n_atoms_rep if rep.local else n_rep, dim),
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
                       "dim": dim}
            biggest = np.sort(rng.choice(pool, size=max(sizes), replace=False))
            universe = np.unique(np.concatenate([biggest, test]))
            feats = ws.features(rep_spec, universe)
            kern_rows = []
            for s in sizes:
                tr = biggest[:s]
                fa = take_features(feats, np.searchsorted(universe, tr))
                ft = take_features(feats, np.searchsorted(universe, test))

                def k_tt():
                    return kernel_matrices(fa, None, ker, [ls], block_mb=ws.block_mb)[0]

                def k_te():
                    return kernel_matrices(ft, fa, ker, [ls], block_mb=ws.block_mb)[0]

                tt = _measure(k_tt, repeats)
                prog.advance(task)
                te = _measure(k_te, repeats)
                prog.advance(task)
                Ktt, Kte = k_tt(), k_te()
                y = ws.y[tr]
                fit = _measure(lambda: model.make_regressor(reg).fit(Ktt, y), repeats)
                prog.advance(task)
                fitted = model.make_regressor(reg).fit(Ktt, y)
                pred = _measure(lambda: fitted.predict(Kte), repeats)
                prog.advance(task)
                kern_rows.append({"train_size": int(s), "test_size": int(len(test)),
                                  "kernel_train_train": tt, "kernel_test_train": te,
                                  "krr_fit": fit, "krr_predict": pred})
        doc = {
            "run": cfg.name,
            "config_hash": cfg.hash(),
            "model_hash": mhash,
            "representation": rep.kind,
            "model": {"source": model.source, "representation": rep_spec, "kernel": ker,
                      "regressor": model.regressor, "length_scale": None if poly else ls,
                      "regularization": reg},
            "representation_timing": rep_doc,
            "sizes": kern_rows,
            "hardware": {**host_info(), **blas_info()},
            "versions": versions(),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_timings(run, doc)
        run.update_status("time", "done")
        return doc
