"""The benchmark sections.  Each returns a dict for results.yaml and appends rows to the printed table.

Conventions: every comparison first runs each implementation once (warm-up, numba compilation, caches) and
asserts that they produced the same numbers; then they are timed interleaved (A B A B ...) ``repeats``
times and the minimum wall time is reported (with median, CPU time and the 1-minute load average).
"""

from __future__ import annotations

import math
import os
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import config as C
from .util import Profile, Stats, interleaved, load, sig, timed


class Suite:
    def __init__(self, mode: str, log: Callable[[str], None]):
        self.mode = mode
        self.cfg = C.MODES[mode]
        self.log = log
        self.rows: list[dict[str, Any]] = []
        self.targets: dict[str, dict[str, Any]] = {}
        self.kernel_mats: dict[tuple[str, int], np.ndarray] = {}
        self.kernel_stats: dict[tuple[str, int], Stats] = {}
        self.sf_features = None

    # ------------------------------------------------------------------------------------------ helpers
    def row(self, section: str, what: str, repbench: str, reference: str = "", ratio: str = "",
            target: str = "", status: str = "") -> None:
        self.rows.append({"section": section, "what": what, "repbench": repbench, "reference": reference,
                          "ratio": ratio, "target": target, "status": status})

    def target(self, key: str, value: float, detail: str, stretch: float | None = None) -> str:
        desc, op, thr = C.TARGETS[key]
        met = value >= thr if op == ">=" else value <= thr
        status = "met" if met else "NOT met"
        if stretch is not None and met:
            status += f" (stretch {'met' if value >= stretch else 'not met'})"
        self.targets[key] = {"target": desc, "value": sig(value), "met": bool(met), "detail": detail}
        if stretch is not None:
            self.targets[key]["stretch_met"] = bool(value >= stretch)
        return status

    def train(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        off = self.off_train[: n + 1]
        return self.X_train[: off[-1]], off

    # ------------------------------------------------------------------------------------------ data
    def prepare(self) -> dict[str, Any]:
        from repbench.datasets import load_dataset
        from repbench.representations import make_representation

        cfg = self.cfg
        self.ds = load_dataset("qm9")
        rng = np.random.default_rng(cfg["seed"])
        n_train = max(cfg["kernel_sizes"] + [cfg["f32_size"], cfg["memory_size"], cfg["ls_soap"],
                                              cfg["peer_qmllib"], cfg["peer_dscribe"]])
        n_pool = max(n_train, cfg["ls_sflike"], *cfg["rep_n"].values())
        perm = rng.permutation(len(self.ds))
        self.pool = perm[:n_pool]                      # training molecules (nested: first n of them)
        self.test = perm[n_pool:n_pool + cfg["n_test"]]
        self.sflike_test = perm[n_pool + cfg["n_test"]:n_pool + cfg["n_test"] + cfg["ls_sflike"]]
        self.soap = make_representation({"soap": C.SOAP}, species=self.ds.elements, periodic=False)
        self.n_train = n_train
        self.data = {"dataset": "QM9 (qm9pack), random molecules, seed %d" % cfg["seed"],
                     "soap": dict(C.SOAP, species="HCNOF", dim=int(self.soap.dim)),
                     "train_molecules": n_train, "test_molecules": int(cfg["n_test"])}
        return self.data

    def __getattr__(self, name: str):
        # the SOAP data of the kernel sections is computed on first use, so that the sections before it
        # (matmul, representations: forked worker pools) run in a lean process
        if name in ("X_train", "off_train", "X_test", "off_test", "d", "ls"):
            self._soap_data()
            return self.__dict__[name]
        raise AttributeError(name)

    def _soap_data(self) -> None:
        from repbench.kernels import median_length_scale
        from repbench.representations import compute

        cfg = self.cfg
        t0 = time.perf_counter()
        ftr = compute(self.soap, self.ds, self.pool[: self.n_train], progress=False)
        fte = compute(self.soap, self.ds, self.test, progress=False)
        t_soap = time.perf_counter() - t0
        self.X_train, self.off_train = np.asarray(ftr.values), ftr.offsets
        self.X_test, self.off_test = np.asarray(fte.values), fte.offsets
        self.d = self.X_train.shape[1]
        self.ls = median_length_scale(self.X_train)
        self.log(f"data: SOAP of {self.n_train} + {cfg['n_test']} molecules "
                 f"({self.X_train.shape[0]} + {self.X_test.shape[0]} atoms, dim {self.d}) in {t_soap:.1f} s; "
                 f"length scale (median atom distance) {self.ls:.3g}")
        self.data.update({"train_atoms": int(self.X_train.shape[0]), "test_atoms": int(self.X_test.shape[0]),
                          "length_scale": sig(self.ls), "length_scale_rule": "median atom-atom SOAP distance",
                          "soap_seconds": sig(t_soap)})

    # ------------------------------------------------------------------------------------------ matmul
    def matmul_ref(self, dtype=np.float64):
        """The reference GEMM interleaved with kernel timings: (4096 x d) @ (d x 4096) in the mode's size."""
        n = self.cfg["matmul_n"]
        rng = np.random.default_rng(1)
        A = rng.random((n, self.soap.dim)).astype(dtype)
        B = rng.random((n, self.soap.dim)).astype(dtype)
        out = np.empty((n, n), dtype=dtype)
        flops = 2.0 * n * n * self.soap.dim
        return (lambda: np.matmul(A, B.T, out=out)), flops

    def matmul(self) -> dict[str, Any]:
        cfg = self.cfg
        n = cfg["matmul_n"]
        rng = np.random.default_rng(0)
        res: dict[str, Any] = {}
        fns, flops = {}, {}
        for dt in (np.float64, np.float32):
            name = np.dtype(dt).name
            A = rng.random((n, n)).astype(dt)
            B = rng.random((n, n)).astype(dt)
            fns[f"square {name}"] = (lambda A=A, B=B: A @ B)
            flops[f"square {name}"] = 2.0 * n**3
            f, fl = self.matmul_ref(dt)
            fns[f"soap-shaped {name}"] = f
            flops[f"soap-shaped {name}"] = fl
        st = interleaved(fns, cfg["matmul_repeats"])
        for k, s in st.items():
            g = flops[k] / s.min / 1e9
            res[k] = {"gflops": sig(g), **s.as_dict()}
            shape = f"{n}x{n}x{n}" if k.startswith("square") else f"{n}x{self.soap.dim}x{n}"
            res[k]["shape"] = shape
            self.row("matmul", f"numpy {k} ({shape})", f"{g:.1f} GFLOP/s")
        self.matmul_gflops = {dt: max(res[f"square {dt}"]["gflops"], res[f"soap-shaped {dt}"]["gflops"])
                              for dt in ("float64", "float32")}
        res["ceiling_gflops"] = dict(self.matmul_gflops)
        return res

    # ------------------------------------------------------------------------------------------ local kernel
    def local_kernel(self) -> dict[str, Any]:
        from repbench import kernels as K

        cfg = self.cfg
        prof = Profile()
        mm, mm_flops = self.matmul_ref(np.float64)
        out: dict[str, Any] = {"length_scales": [sig(self.ls)], "dtype": "float64",
                               "block_bytes": 256 * 2**20, "note": (
                                   "GFLOP/s = kernels.kernel_flops (train x train: n(n+1)d, the upper half "
                                   "only; test x train: 2 nA nB d) / min wall time; fraction = that / the rate "
                                   "of the reference matmul timed interleaved with the kernel (best of its "
                                   "repeats); fused_s = time in the fused exp + segment-sum pass (the rest "
                                   "is GEMM and bookkeeping)")}
        sizes = []
        Xte, ote = self.X_test, self.off_test
        na_te = int(ote[-1])
        try:
            for n in cfg["kernel_sizes"]:
                X, off = self.train(n)
                na = int(off[-1])
                reps = cfg["kernel_repeats"][n]
                self.log(f"local kernel: {n} molecules ({na} atoms), {reps} repeats")
                mats: dict[str, np.ndarray] = {}

                def tt(X=X, off=off):
                    mats["tt"] = K.local_kernel(X, off, length_scales=[self.ls])[0]
                    return True

                def te(X=X, off=off):
                    mats["te"] = K.local_kernel(Xte, ote, X, off, length_scales=[self.ls])[0]
                    return True

                st = interleaved({"matmul": mm, "train x train": tt, "test x train": te}, reps,
                                 warmup=(n == cfg["kernel_sizes"][0]),
                                 extra={"train x train": prof.take, "test x train": prof.take}, log=self.log)
                self.kernel_mats[("tt", n)] = mats["tt"]
                self.kernel_mats[("te", n)] = mats["te"]
                self.kernel_stats[("tt", n)] = st["train x train"]
                self.kernel_stats[("te", n)] = st["test x train"]
                g_mm = mm_flops / st["matmul"].min / 1e9
                entry = {"molecules": n, "atoms": na, "test_molecules": int(cfg["n_test"]), "test_atoms": na_te,
                         "matmul_gflops": sig(g_mm), "matmul": st["matmul"].as_dict()}
                for kind, fl in (("train x train", K.kernel_flops(na, None, self.d, symmetric=True)),
                                 ("test x train", K.kernel_flops(na_te, na, self.d))):
                    s = st[kind]
                    g = fl / s.min / 1e9
                    cpu_frac = (fl / min(s.cpu)) / (mm_flops / min(st["matmul"].cpu))
                    entry[kind] = {"gflops": sig(g), "fraction_of_matmul": sig(g / g_mm),
                                   "fraction_of_matmul_by_cpu_time": sig(cpu_frac), "flops": fl, **s.as_dict()}
                    if n in cfg["kernel_report"]:
                        self.row("local kernel", f"SOAP {kind}, {n} molecules"
                                 + (f" ({cfg['n_test']} test)" if kind == "test x train" else ""),
                                 f"{s.min:.3g} s, {g:.1f} GFLOP/s", f"matmul {g_mm:.1f} GFLOP/s",
                                 f"{g / g_mm:.0%}")
                sizes.append(entry)
                # only the first size has a warm-up round: the later ones run the same compiled code
        finally:
            prof.close()
        out["sizes"] = sizes
        # target: the reported sizes, the worse of train x train and test x train
        fr = [(e[k]["fraction_of_matmul"], e["molecules"], k) for e in sizes if e["molecules"] in cfg["kernel_report"]
              for k in ("train x train", "test x train")]
        worst = min(fr)
        best = max(fr)
        status = self.target("local_kernel_fraction", worst[0],
                             f"worst {worst[0]:.0%} ({worst[2]}, {worst[1]} molecules), best {best[0]:.0%} "
                             f"({best[2]}, {best[1]} molecules)", stretch=0.90)
        self.row("local kernel", "fraction of matmul rate (worst of the rows above)", f"{worst[0]:.0%}",
                 target=">= 75% (90%)", status=status)
        return out

    # ------------------------------------------------------------------------------------------ curve
    def curve(self) -> dict[str, Any]:
        """Kernel cost of a learning curve: largest size once + slicing vs the largest alone vs every size."""
        sizes = self.cfg["kernel_sizes"]
        big = sizes[-1]
        Ktt, Kte = self.kernel_mats[("tt", big)], self.kernel_mats[("te", big)]
        t_slice = 0.0
        worst = 0.0
        for n in sizes:
            pos = np.arange(n)  # nested training sets: the first n molecules of the largest draw
            _, w, _ = timed(lambda: (Ktt[np.ix_(pos, pos)], Kte[:, pos]))
            t_slice += w
            a, b = Ktt[np.ix_(pos, pos)], Kte[:, pos]
            for sl, direct in ((a, self.kernel_mats[("tt", n)]), (b, self.kernel_mats[("te", n)])):
                err = float(np.max(np.abs(sl - direct) / np.abs(direct)))
                assert err <= 1e-8, f"sliced kernel of size {n} differs from the direct one: {err:.3g}"
                worst = max(worst, err)
        T = {n: self.kernel_stats[("tt", n)].min + self.kernel_stats[("te", n)].min for n in sizes}
        largest = T[big]
        repbench_way = largest + t_slice
        separately = sum(T.values())
        r = repbench_way / largest
        status = self.target("curve_vs_largest", r,
                             f"{repbench_way:.3g} s vs {largest:.3g} s (each size separately: {separately:.3g} s, "
                             f"{separately / largest:.2f}x)")
        self.row("curve", f"kernel cost of sizes {sizes} (+{self.cfg['n_test']} test), largest once + slices",
                 f"{repbench_way:.3g} s", f"largest alone {largest:.3g} s; each size {separately:.3g} s",
                 f"{r:.3f}x / {separately / largest:.2f}x", "<= 1.2x", status)
        return {"sizes": sizes, "n_test": self.cfg["n_test"], "largest_alone_s": sig(largest),
                "repbench_way_s": sig(repbench_way), "slicing_s": sig(t_slice), "each_size_separately_s": sig(separately),
                "per_size_s": {n: sig(v) for n, v in T.items()}, "ratio_vs_largest": sig(r),
                "ratio_separately_vs_largest": sig(separately / largest),
                "max_rel_difference_sliced_vs_direct": sig(worst),
                "note": ("kernel times from the local-kernel section of this run (min of repeats); fixed "
                         "hyper-parameters.  With per-size KRR refinement each new batch of length scales "
                         "is one more pass over the largest set (repbench.curve asks the bank of the largest "
                         "draw), so the cost is (kernel calls of the grid searches) x this.")}

    # ------------------------------------------------------------------------------------------ float32
    def float32(self) -> dict[str, Any]:
        from repbench import kernels as K
        from repbench import krr
        from repbench.baselines import Baseline

        cfg = self.cfg
        n = cfg["f32_size"]
        X, off = self.train(n)
        Xte, ote = self.X_test, self.off_test
        reps = cfg["f32_repeats"]
        self.log(f"float32 vs float64: {n} molecules, {reps} repeats")
        factors = sorted({f for f, _ in C.KRR_SETTINGS})
        ls_list = [f * self.ls for f in factors]
        mats: dict[str, np.ndarray] = {}

        def mk(name, dt, test):
            def f():
                if test:
                    mats[name] = K.local_kernel(Xte, ote, X, off, length_scales=ls_list, dtype=dt)
                else:
                    mats[name] = K.local_kernel(X, off, length_scales=ls_list, dtype=dt)
                return True
            return f

        st = interleaved({"tt64": mk("tt64", np.float64, False), "tt32": mk("tt32", np.float32, False),
                          "te64": mk("te64", np.float64, True), "te32": mk("te32", np.float32, True)}, reps,
                         warmup=False, log=self.log)
        res: dict[str, Any] = {"molecules": n, "test_molecules": len(self.test),
                               "length_scales": {f"{f:g} x median": sig(x) for f, x in zip(factors, ls_list)},
                               "note": "no warm-up round (numba compiled by the kernel section); errors: "
                                       "max |K32 - K64| / max |K64| per length scale, and the largest "
                                       "elementwise relative error"}
        for kind, a, b in (("train x train", "tt64", "tt32"), ("test x train", "te64", "te32")):
            k64, k32 = mats[a], mats[b]
            errs = {}
            for i, f in enumerate(factors):
                err = float(np.max(np.abs(k32[i] - k64[i])) / np.max(np.abs(k64[i])))
                elem = float(np.max(np.abs(k32[i] - k64[i]) / np.abs(k64[i])))
                assert err <= K.FLOAT32_REL_ERROR_BOUND, f"float32 error {err:.3g} above the documented bound"
                errs[f"{f:g} x median"] = {"max_abs_error_over_max": sig(err), "max_elementwise_rel_error": sig(elem)}
            r = st[a].min / st[b].min
            res[kind] = {"float64": st[a].as_dict(), "float32": st[b].as_dict(), "speedup": sig(r), "errors": errs}
            worst = max(e["max_abs_error_over_max"] for e in errs.values())
            self.row("float32", f"SOAP {kind}, {n} molecules, {len(factors)} length scales: float32 vs float64",
                     f"{st[b].min:.3g} s", f"{st[a].min:.3g} s", f"{r:.2f}x faster; rel. err {worst:.1e}")
        # KRR test error with fixed hyper-parameters
        y = self.ds.targets[C.KRR_TARGET]
        cnt = self.ds.element_counts()
        tr, te = self.pool[:n], self.test
        b = Baseline.make("dressed_atoms").fit(cnt[tr], y[tr])
        ytr = y[tr] - b.predict(cnt[tr])
        settings = []
        for f, reg in C.KRR_SETTINGS:
            i = factors.index(f)
            mae, preds = {}, {}
            for name, tt, tx in (("float64", "tt64", "te64"), ("float32", "tt32", "te32")):
                alpha = krr.fit(mats[tt][i], ytr, reg)
                preds[name] = krr.predict(mats[tx][i], alpha) + b.predict(cnt[te])
                mae[name] = float(np.mean(np.abs(preds[name] - y[te]))) * C.EV_TO_KCAL_MOL
            dpred = float(np.max(np.abs(preds["float32"] - preds["float64"]))) * C.EV_TO_KCAL_MOL
            settings.append({"length_scale": f"{f:g} x median = {ls_list[i]:.4g}", "regularization": reg,
                             "mae_kcal_mol_float64": sig(mae["float64"], 6), "mae_kcal_mol_float32": sig(mae["float32"], 6),
                             "mae_difference_kcal_mol": sig(mae["float32"] - mae["float64"]),
                             "max_prediction_difference_kcal_mol": sig(dpred)})
            self.row("float32", f"KRR {C.KRR_TARGET}, {n} train / {len(te)} test, ls {f:g} x median, reg {reg:g}: "
                     "MAE kcal/mol", f"f32 {mae['float32']:.4f}", f"f64 {mae['float64']:.4f}",
                     f"max |pred32 - pred64| {dpred:.1e}")
        res["krr"] = {"target": C.KRR_TARGET, "train": n, "test": len(te), "baseline": "dressed_atoms",
                      "settings": settings}
        return res

    # ------------------------------------------------------------------------------------------ memory
    def memory(self) -> dict[str, Any]:
        from repbench import kernels as K

        n = self.cfg["memory_size"]
        X, off = self.train(n)
        out = []
        self.log(f"memory: {n} molecules, block sizes {self.cfg['memory_blocks_mb']} MB (1 run each)")
        for dt in (np.float64, np.float32):
            for mb in self.cfg["memory_blocks_mb"]:
                if dt == np.float32 and mb != 256:
                    continue
                tracemalloc.start()
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
                ld = load()
                _, w, c = timed(lambda: K.local_kernel(X, off, length_scales=[self.ls], dtype=dt,
                                                       block_bytes=mb * 2**20))
                peak = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
                res_mb = n * n * 8 / 2**20
                out.append({"dtype": np.dtype(dt).name, "block_mb": mb, "peak_mb": sig(peak / 2**20),
                            "peak_minus_result_mb": sig(peak / 2**20 - 2 * res_mb), "seconds": sig(w), "load_1min": ld})
                self.row("memory", f"train x train {n} molecules, {np.dtype(dt).name}, block {mb} MB",
                         f"peak {peak / 2**20:.0f} MB", f"result {res_mb:.0f} MB", f"{w:.3g} s")
        return {"molecules": n, "atoms": int(off[-1]), "input_mb": sig(X.nbytes / 2**20), "runs": out,
                "note": ("tracemalloc peak of numpy allocations during one local_kernel call (the input "
                         "features are not counted; the result is allocated twice briefly: n x n x 8 bytes "
                         "plus its transpose sum); numba's per-thread row buffers (< 1 MB) are not traced.  "
                         "One run per block size; tracemalloc adds a little time.")}

    # ------------------------------------------------------------------------------------------ length scales
    def length_scales(self) -> dict[str, Any]:
        from repbench import kernels as K
        from repbench.kernels import median_length_scale

        cfg = self.cfg
        reps = cfg["ls_repeats"]
        res: dict[str, Any] = {}
        rng = np.random.default_rng(3)

        def case(name, XA, offA, XB, offB, ls0):
            grids = {"1": [ls0], "8 log2": [ls0 * 2.0**k for k in range(-4, 4)],
                     "8 ratio 1.25": [ls0 * 1.25**k for k in range(-4, 4)]}
            mats = {}

            def mk(g):
                def f():
                    mats[g] = K.local_kernel(XA, offA, XB, offB, length_scales=grids[g])
                    return True
                return f

            def check(_):
                e1 = float(np.max(np.abs(mats["8 log2"][4] - mats["1"][0])) / np.max(mats["1"][0]))
                e2 = float(np.max(np.abs(mats["8 ratio 1.25"][4] - mats["1"][0])) / np.max(mats["1"][0]))
                assert e1 <= 1e-10 and e2 <= 1e-12, f"several length scales differ from one: {e1:.3g} {e2:.3g}"
                # a squared exponential against a direct one (the log2 chain)
                one = K.local_kernel(XA, offA, XB, offB, length_scales=[grids["8 log2"][0]])[0]
                e3 = float(np.max(np.abs(mats["8 log2"][0] - one)) / np.max(one))
                assert e3 <= 1e-10, f"squared exponentials differ: {e3:.3g}"
                self._ls_err = max(e1, e2, e3)

            prof = Profile()
            try:
                st = interleaved({g: mk(g) for g in grids}, reps, warmup=True, check=check, log=self.log,
                                 extra={g: prof.take for g in grids})
            finally:
                prof.close()
            pairs = float(offA[-1]) * float(offB[-1] if XB is not None else offA[-1])
            if XB is None:
                pairs = float(offA[-1]) * (offA[-1] + 1) / 2
            r = {"atoms_a": int(offA[-1]), "atoms_b": int(offB[-1]) if XB is not None else None,
                 "dim": int(XA.shape[1]), "atom_pairs": pairs, "max_rel_difference": sig(self._ls_err)}
            for g, s in st.items():
                d = s.as_dict()
                r[g] = {**d, "ns_per_atom_pair": sig(s.min / pairs * 1e9),
                        "fused_ns_per_atom_pair": sig(d["fused_s_of_min"] / pairs * 1e9),
                        "ratio_to_1": sig(s.min / st["1"].min)}
            return r, st

        # SOAP, train x train
        n = cfg["ls_soap"]
        X, off = self.train(n)
        self.log(f"length scales: SOAP {n} molecules train x train")
        r, st = case("soap", X, off, None, None, self.ls)
        res["soap"] = {"molecules": n, "kind": "train x train", **r}
        soap_ratio = st["8 log2"].min / st["1"].min
        self.row("length scales", f"SOAP train x train {n} molecules: 8 (log2 grid) vs 1",
                 f"{st['8 log2'].min:.3g} s", f"{st['1'].min:.3g} s",
                 f"{soap_ratio:.2f}x (ratio-1.25 grid {st['8 ratio 1.25'].min / st['1'].min:.2f}x)")
        # SF-like: d = 100, non-negative correlated features, QM9 atom counts, test x train
        m = cfg["ls_sflike"]
        cnt_a = self.ds.n_atoms[self.pool[:m]]
        cnt_b = self.ds.n_atoms[self.sflike_test]
        offa = np.concatenate([[0], np.cumsum(cnt_a)]).astype(np.int64)
        offb = np.concatenate([[0], np.cumsum(cnt_b)]).astype(np.int64)
        basis = rng.random((8, 100))
        XA = np.abs(rng.normal(size=(offa[-1], 8))) @ basis + 0.1 * rng.random((offa[-1], 100))
        XB = np.abs(rng.normal(size=(offb[-1], 8))) @ basis + 0.1 * rng.random((offb[-1], 100))
        ls0 = median_length_scale(XA)
        self.log(f"length scales: SF-like d=100, {m} x {m} molecules test x train")
        r, st = case("sflike", XB, offb, XA, offa, ls0)
        res["sf_like"] = {"molecules": [m, m], "kind": "test x train", "features": "synthetic, d = 100", **r}
        ns1 = st["1"].min / r["atom_pairs"] * 1e9
        ns8 = st["8 log2"].min / r["atom_pairs"] * 1e9
        sf_ratio = st["8 log2"].min / st["1"].min
        fz1 = r["1"]["fused_ns_per_atom_pair"]
        fz8 = r["8 log2"]["fused_ns_per_atom_pair"]
        status = self.target("sflike_ns_per_pair", ns1, f"{ns1:.2f} ns per atom pair (1 length scale, "
                             f"{r['atom_pairs']:.3g} pairs, d = 100; of which the fused exp + segment-sum pass "
                             f"{fz1:.2f} ns, the rest GEMM); 8 log2 length scales {ns8:.2f} ns (fused {fz8:.2f} ns)")
        self.row("length scales", f"SF-like d=100, {m} x {m} molecules: ns per atom pair (1 length scale)",
                 f"{ns1:.2f} ns (fused pass {fz1:.2f})", f"8 length scales {ns8:.2f} ns (fused pass {fz8:.2f})",
                 "", "<= 4 ns", status)
        self.row("length scales", f"SF-like d=100: 8 (log2 grid) vs 1",
                 f"{st['8 log2'].min:.3g} s", f"{st['1'].min:.3g} s",
                 f"{sf_ratio:.2f}x (ratio-1.25 grid {st['8 ratio 1.25'].min / st['1'].min:.2f}x)")
        res["sf_like"]["one_thread"] = self._one_thread(XB, offb, XA, offa, ls0, r["atom_pairs"], reps)
        ot = res["sf_like"]["one_thread"]
        self.row("length scales", "SF-like d=100, one thread (BLAS and numba): CPU ns per atom pair",
                 f"{ot['1']['cpu_ns_per_atom_pair']:.2f} ns", f"8 log2: {ot['8 log2']['cpu_ns_per_atom_pair']:.2f} ns",
                 f"{ot['8 log2']['cpu_ns_per_atom_pair'] / ot['1']['cpu_ns_per_atom_pair']:.2f}x")
        worst = max(soap_ratio, sf_ratio)
        status = self.target("length_scales_8_vs_1", worst,
                             f"SOAP {soap_ratio:.2f}x, SF-like {sf_ratio:.2f}x (log2 grid ls0 * 2^k, k=-4..3); "
                             f"a grid without power-of-two ratios (1.25^k): SOAP "
                             f"{res['soap']['8 ratio 1.25']['ratio_to_1']:.2f}x, SF-like "
                             f"{res['sf_like']['8 ratio 1.25']['ratio_to_1']:.2f}x")
        self.row("length scales", "8 length scales vs 1 (worse of SOAP and SF-like, log2 grid)", f"{worst:.2f}x",
                 target="<= 1.5x", status=status)
        # real SF k=2 features (from the representation section), test x train
        if self.sf_features is not None:
            f, nmol = self.sf_features
            h = nmol // 2
            Xa, oa = f.values[: f.offsets[h]], f.offsets[: h + 1]
            Xb, ob = f.values[f.offsets[h]:], f.offsets[h:] - f.offsets[h]
            self.log(f"length scales: real SF k=2 (d={Xa.shape[1]}), {nmol - h} x {h} molecules")
            r, st = case("sf2", np.ascontiguousarray(Xb), ob, np.ascontiguousarray(Xa), oa, median_length_scale(Xa))
            res["sf_k2_real"] = {"molecules": [nmol - h, h], "kind": "test x train", **r}
            self.row("length scales", f"real SF k=2 (d={Xa.shape[1]}), {nmol - h} x {h} molecules",
                     f"{st['1'].min / r['atom_pairs'] * 1e9:.2f} ns/pair",
                     f"8 log2: {st['8 log2'].min / r['atom_pairs'] * 1e9:.2f} ns/pair",
                     f"{st['8 log2'].min / st['1'].min:.2f}x")
        return res

    def _one_thread(self, XA, offA, XB, offB, ls0, pairs, reps) -> dict[str, Any]:
        """The SF-like kernel on one thread: process CPU time per atom pair, a measure that other jobs on the
        machine disturb much less than the wall time of two threads in lock step (halve it for 2 idle cores)."""
        import numba
        from threadpoolctl import threadpool_limits

        from repbench import kernels as K

        grids = {"1": [ls0], "8 log2": [ls0 * 2.0**k for k in range(-4, 4)]}
        nt = numba.get_num_threads()
        out: dict[str, Any] = {"note": "min over repeats of process CPU time / atom pairs, BLAS and numba "
                                       "limited to one thread"}
        try:
            numba.set_num_threads(1)
            with threadpool_limits(limits=1, user_api="blas"):
                st = interleaved({g: (lambda g=g: K.local_kernel(XA, offA, XB, offB, length_scales=grids[g]))
                                  for g in grids}, reps, warmup=True, log=self.log)
        finally:
            numba.set_num_threads(nt)
        for g, s in st.items():
            out[g] = {"cpu_ns_per_atom_pair": sig(min(s.cpu) / pairs * 1e9),
                      "wall_ns_per_atom_pair": sig(s.min / pairs * 1e9), "load_1min": [min(s.loads), max(s.loads)]}
        return out

    # ------------------------------------------------------------------------------------------ representations
    def representations(self) -> dict[str, Any]:
        from repbench.representations import compute, default_workers, make_representation

        cfg = self.cfg
        # dscribe 2.1.2 calls ase's deprecated get_calculator(): keep its FutureWarning out of the log, also
        # in joblib's worker processes (they inherit the environment when they start)
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
        species = self.ds.elements
        res: dict[str, Any] = {"molecules": dict(cfg["rep_n"]), "note": (
                                   "'repbench 1 worker' (n_workers=1) is the profile: its ratio to dscribe "
                                   "n_jobs=1 is repbench's per-structure overhead (ASE conversion, SF "
                                   "stratification), its ratio to 'repbench' the parallel speed-up.  "
                                   "repbench: representations.compute (default workers: forked processes "
                                   "writing into shared memory; includes converting the molecules to ASE). "
                                   "dscribe: the descriptor's create() on a prepared list of ase.Atoms with "
                                   "n_jobs=1 and n_jobs=2 (joblib).  Molecules per representation: about "
                                   "2-3 s of single-process work, so that starting workers is not what is timed")}
        ratios = {}
        for name, spec in C.REPRESENTATIONS.items():
            n = cfg["rep_n"][name]
            idx = self.pool[:n]
            atoms = self.ds.to_ase(idx)
            rep = make_representation(spec, species=species, periodic=False)
            descs = _dscribe_descriptors(spec, species)
            kind = next(iter(spec))
            outs: dict[str, np.ndarray] = {}

            # each call returns its output, which interleaved() drops after the timing: what is timed is the
            # computing, not freeing the previous round's output (0.12 s for 830 MB of shared pages)
            def rb():
                return np.asarray(compute(rep, self.ds, idx, progress=False).values)

            def rb1():
                return np.asarray(compute(rep, self.ds, idx, progress=False, n_workers=1).values)

            def ds_(jobs):
                def f():
                    return _dscribe_create(descs, atoms, kind, jobs, species)
                return f

            def check(res):
                ref = res["repbench"]
                for k in ("repbench 1 worker", "dscribe n_jobs=1", "dscribe n_jobs=2"):
                    v = res[k]
                    assert v.shape == ref.shape, f"{name}: {k} shape {v.shape} != repbench {ref.shape}"
                    np.testing.assert_allclose(v, ref, rtol=1e-12, atol=0, err_msg=f"{name}: {k} vs repbench")
                self._rep_equal = bool(np.array_equal(res["dscribe n_jobs=1"], ref))
                if name == "SF k=2":  # its rows are the length-scale section's SF features
                    outs["repbench"] = ref

            self.log(f"representations: {name}, {n} molecules")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                st = interleaved({"repbench": rb, "repbench 1 worker": rb1, "dscribe n_jobs=1": ds_(1),
                                  "dscribe n_jobs=2": ds_(2)},
                                 cfg["rep_repeats"], check=check, log=self.log)
            if name == "SF k=2":
                from repbench.representations import Features

                m = min(n, cfg["ls_sflike"])  # the first m molecules, for the length-scale section
                off = np.concatenate([[0], np.cumsum(self.ds.n_atoms[idx[:m]])])
                self.sf_features = (Features(values=np.ascontiguousarray(outs["repbench"][: off[-1]]),
                                             offsets=off), m)
            r = st["dscribe n_jobs=1"].min / st["repbench"].min
            ratios[name] = r
            outs.clear()
            res[name] = {"dim": int(rep.dim), "molecules": n, "atoms": int(self.ds.n_atoms[idx].sum()),
                         "repbench_workers": default_workers(n), "bitwise_equal": self._rep_equal,
                         **{k: {**s.as_dict(), "structures_per_s": sig(n / s.min)} for k, s in st.items()},
                         "speedup_vs_dscribe_1": sig(r),
                         "speedup_vs_dscribe_2": sig(st["dscribe n_jobs=2"].min / st["repbench"].min),
                         "profile": {
                             "parallel_speedup_repbench_2_vs_1_worker": sig(st["repbench 1 worker"].min / st["repbench"].min),
                             "repbench_1_worker_vs_dscribe_1_job": sig(st["repbench 1 worker"].min
                                                                       / st["dscribe n_jobs=1"].min)}}
            self.row("representations", f"{name} (dim {rep.dim}), {n} molecules",
                     f"{n / st['repbench'].min:.0f} /s",
                     f"dscribe {n / st['dscribe n_jobs=1'].min:.0f} /s (1 job), "
                     f"{n / st['dscribe n_jobs=2'].min:.0f} /s (2 jobs)", f"{r:.2f}x")
        worst = min(ratios, key=ratios.get)
        status = self.target("representations_vs_dscribe", ratios[worst],
                             "worst " + f"{worst} {ratios[worst]:.2f}x; " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        self.row("representations", "speed-up over dscribe n_jobs=1 (worst representation)",
                 f"{ratios[worst]:.2f}x ({worst})", target=">= 1.6x", status=status)
        return res

    # ------------------------------------------------------------------------------------------ KRR
    def krr(self) -> dict[str, Any]:
        import scipy.linalg
        from scipy.linalg import lapack

        from repbench import kernels as K
        from repbench import krr

        cfg = self.cfg
        n, nt = cfg["krr_n"], cfg["krr_n_test"]
        rng = np.random.default_rng(7)
        Z = rng.normal(size=(n + nt, 30))
        ls = K.median_length_scale(Z)
        KK = K.global_kernel(Z, length_scales=[ls])[0]
        Ktr, Kte = np.ascontiguousarray(KK[:n, :n]), np.ascontiguousarray(KK[n:, :n])
        del KK
        y = np.sin(Z[:n, 0]) + Z[:n, 1] ** 2 + 0.1 * rng.normal(size=n)
        results: dict[str, Any] = {"n": n, "n_test": nt, "kernel": "synthetic: global Gaussian kernel of 30-dim "
                                   "normal vectors at the median distance (SPD)"}
        self.log(f"KRR: n = {n}, {cfg['krr_regs']} and 41 regularisation values")
        for nregs in (cfg["krr_regs"], 41):
            regs = np.logspace(-10, -1, nregs) if nregs != 41 else 2.0 ** np.arange(-40, 1)
            outs = {}

            def chol():
                outs["chol"] = np.array([krr.predict(Kte, krr.fit(Ktr, y, r)) for r in regs])
                return True

            def eig():
                outs["eig"] = krr.EigenSolver(Ktr).predict_many(Kte, y, regs)
                return True

            def check(_):
                a, b = outs["chol"], outs["eig"]
                err = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
                assert err <= 1e-6, f"EigenSolver and Cholesky predictions differ: {err:.3g}"
                self._krr_err = err

            st = interleaved({"cholesky": chol, "eigen": eig}, cfg["krr_repeats"], check=check, log=self.log,
                             warmup=(nregs == cfg["krr_regs"]))
            r = st["cholesky"].min / st["eigen"].min
            results[f"{nregs}_regularisations"] = {
                "regularisations": f"{regs[0]:.3g} .. {regs[-1]:.3g}, {nregs} values"
                + (" (grid_search's log2 grid)" if nregs == 41 else ""),
                "repeated_cholesky": st["cholesky"].as_dict(), "eigensolver": st["eigen"].as_dict(),
                "speedup": sig(r), "max_rel_prediction_difference": sig(self._krr_err)}
            if nregs == cfg["krr_regs"]:
                r20 = r
                self.row("KRR", f"{nregs} regularisations, n = {n}: EigenSolver vs repeated Cholesky",
                         f"{st['eigen'].min:.3g} s", f"{st['cholesky'].min:.3g} s", f"{r:.2f}x")
            else:
                self.row("KRR", f"41 regularisations (grid_search's grid), n = {n}",
                         f"{st['eigen'].min:.3g} s", f"{st['cholesky'].min:.3g} s", f"{r:.2f}x")
        # profile: one Cholesky vs the parts of an eigendecomposition
        A = Ktr + 1e-6 * np.eye(n)
        lw = int(lapack.dsytrd_lwork(n, lower=1)[0])
        parts = {
            "cholesky (dpotrf)": lambda: scipy.linalg.cho_factor(A, lower=True, check_finite=False),
            "tridiagonal reduction (dsytrd)": lambda: lapack.dsytrd(A, lower=1, lwork=lw),
            "eigh, values only (dsyevd)": lambda: scipy.linalg.eigh(A, eigvals_only=True, driver="evd",
                                                                      check_finite=False),
            "eigh, values + vectors (dsyevd)": lambda: scipy.linalg.eigh(A, driver="evd", check_finite=False),
        }
        st = interleaved(parts, max(1, cfg["krr_repeats"] - 1), warmup=False)
        tc = st["cholesky (dpotrf)"].min
        prof = {k: {"min_s": sig(s.min), "cholesky_equivalents": sig(s.min / tc)} for k, s in st.items()}
        results["profile"] = prof
        ceq = st["eigh, values + vectors (dsyevd)"].min / tc
        tri = st["tridiagonal reduction (dsytrd)"].min / tc
        results["break_even_regularisations"] = sig(ceq)
        results["best_possible_with_tridiagonal_reduction"] = sig(cfg["krr_regs"] / tri)
        status = self.target("many_regularisations", r20,
                             f"{r20:.2f}x for {cfg['krr_regs']} values; one eigendecomposition costs {ceq:.1f} "
                             f"Cholesky factorisations (its tridiagonal reduction alone {tri:.1f}), so the "
                             f"speed-up is about n_values / {ceq:.1f}")
        self.row("KRR", f"profile: eigh = {ceq:.1f} Cholesky, dsytrd alone = {tri:.1f} Cholesky",
                 f"{r20:.2f}x", target=">= 10x", status=status)
        return results

    # ------------------------------------------------------------------------------------------ peers
    def peers(self) -> dict[str, Any]:
        from repbench import kernels as K

        cfg = self.cfg
        res: dict[str, Any] = {}
        ls = self.ls
        # --- qmllib -------------------------------------------------------------------------------------
        try:
            from qmllib.kernels import get_local_kernels_gaussian
        except ImportError as exc:
            res["qmllib"] = {"available": False, "reason": f"import failed: {exc} (pip install qmllib)"}
            self.row("peers", "qmllib local Gaussian kernel", "", "not installed", "", "", "skipped")
            get_local_kernels_gaussian = None
        if get_local_kernels_gaussian is not None:
            import qmllib

            n = cfg["peer_qmllib"]
            nt = max(2, n // 2)
            X, off = self.train(n)
            na = np.diff(off).astype(np.int32)
            Xt, offt = self.X_test[: self.off_test[nt]], self.off_test[: nt + 1]
            nat = np.diff(offt).astype(np.int32)
            self.log(f"peers: qmllib {n} molecules ({int(off[-1])} atoms), test {nt}")
            outs = {}

            def q_tt():
                outs["q_tt"] = get_local_kernels_gaussian(X, X, na, na, [ls])[0]
                return True

            def r_tt():
                outs["r_tt"] = K.local_kernel(X, off, length_scales=[ls])[0]
                return True

            def q_te():
                outs["q_te"] = get_local_kernels_gaussian(Xt, X, nat, na, [ls])[0]
                return True

            def r_te():
                outs["r_te"] = K.local_kernel(Xt, offt, X, off, length_scales=[ls])[0]
                return True

            def check(_):
                errs = []
                for a, b in (("q_tt", "r_tt"), ("q_te", "r_te")):
                    np.testing.assert_allclose(outs[a], outs[b], rtol=1e-8, atol=0,
                                               err_msg=f"qmllib {a} differs from repbench")
                    errs.append(float(np.max(np.abs(outs[a] - outs[b]) / np.abs(outs[b]))))
                self._q_err = max(errs)

            st = interleaved({"qmllib train x train": q_tt, "repbench train x train": r_tt,
                              "qmllib test x train": q_te, "repbench test x train": r_te},
                             cfg["peer_repeats"], check=check, log=self.log)
            entry = {"available": True, "version": getattr(qmllib, "__version__", None),
                     "function": "qmllib.kernels.get_local_kernels_gaussian (Fortran, OpenMP)",
                     "molecules": n, "test_molecules": nt, "atoms": int(off[-1]), "dim": self.d,
                     "max_elementwise_rel_difference": sig(self._q_err)}
            for kind in ("train x train", "test x train"):
                q, r = st[f"qmllib {kind}"], st[f"repbench {kind}"]
                entry[kind] = {"qmllib": q.as_dict(), "repbench": r.as_dict(), "repbench_speedup": sig(q.min / r.min)}
                self.row("peers", f"qmllib local Gaussian, SOAP {kind} {n} molecules"
                         + (f" ({nt} test)" if kind == "test x train" else ""),
                         f"{r.min:.3g} s", f"qmllib {q.min:.3g} s", f"{q.min / r.min:.1f}x faster",
                         status=f"equal (rtol 1e-8; {self._q_err:.1e})")
            entry["note"] = ("qmllib's flat-array local kernel has no symmetric variant: train x train is "
                             "computed in full there; repbench computes the upper half.  Same inputs (float64 "
                             "SOAP rows, atom counts), one length scale.")
            res["qmllib"] = entry
        # --- dscribe AverageKernel -------------------------------------------------------------------------
        from dscribe.kernels import AverageKernel

        n = cfg["peer_dscribe"]
        X, off = self.train(n)
        per = [X[off[i]:off[i + 1]] for i in range(n)]
        nat = np.diff(off).astype(np.float64)
        self.log(f"peers: dscribe AverageKernel {n} molecules")
        outs = {}
        gamma = 1.0 / (2.0 * ls * ls)

        def d_tt():
            outs["d"] = AverageKernel(metric="rbf", gamma=gamma, normalize_kernel=False).create(per)
            return True

        def r_tt():
            outs["r"] = K.local_kernel(X, off, length_scales=[ls])[0]
            return True

        def r_tt_norm():
            outs["rn"] = K.local_kernel(X, off, length_scales=[ls], normalize=True)[0]
            return True

        def check(_):
            np.testing.assert_allclose(outs["d"] * np.outer(nat, nat), outs["r"], rtol=1e-8, atol=0,
                                       err_msg="dscribe AverageKernel * nA nB differs from repbench")
            np.testing.assert_allclose(outs["d"], outs["rn"], rtol=1e-8, atol=0,
                                       err_msg="dscribe AverageKernel differs from repbench normalize=True")
            self._d_err = float(np.max(np.abs(outs["d"] * np.outer(nat, nat) - outs["r"]) / np.abs(outs["r"])))

        st = interleaved({"dscribe": d_tt, "repbench": r_tt, "repbench normalize": r_tt_norm},
                         cfg["peer_repeats"], check=check, log=self.log)
        r = st["dscribe"].min / st["repbench normalize"].min
        res["dscribe_average_kernel"] = {
            "function": "dscribe.kernels.AverageKernel(metric='rbf', gamma=1/(2 ls^2), normalize_kernel=False)",
            "molecules": n, "atoms": int(off[-1]), "max_elementwise_rel_difference": sig(self._d_err),
            "dscribe": st["dscribe"].as_dict(), "repbench_sum": st["repbench"].as_dict(),
            "repbench_normalized": st["repbench normalize"].as_dict(), "repbench_speedup": sig(r),
            "note": "AverageKernel averages over atom pairs: compared as K_avg = repbench normalize=True and "
                    "K_avg * nA * nB = repbench's sum kernel"}
        self.row("peers", f"dscribe AverageKernel (rbf), SOAP train x train {n} molecules",
                 f"{st['repbench normalize'].min:.3g} s", f"dscribe {st['dscribe'].min:.3g} s", f"{r:.0f}x faster",
                 status=f"equal (rtol 1e-8; {self._d_err:.1e})")
        return res

    # ------------------------------------------------------------------------------------------ soap_featomic
    def tuning(self) -> dict[str, Any]:
        """Plain vs multi-fidelity TPE on NMD18 SOAP (benchmarks/tuning.py)."""
        from .tuning import tuning

        return tuning(self)

    def soap_featomic(self) -> dict[str, Any]:
        """featomic's SOAP (representation soap_featomic) beside dscribe's (soap): same molecules, same
        parameters, one process, 1 and 2 workers through repbench.representations.compute."""
        try:
            import featomic
        except ImportError as exc:
            self.row("soap_featomic", "featomic SoapPowerSpectrum vs dscribe SOAP", "", "featomic not installed",
                     status="skipped")
            return {"available": False, "reason": f"import failed: {exc} (pip install repbench[featomic])"}
        # like with like: dscribe computes on one thread per process, so featomic's own thread pool (rayon)
        # gets one thread too (repbench's workers are the parallelism); must be set before the pool starts
        os.environ.setdefault("RAYON_NUM_THREADS", "1")
        from importlib.metadata import version

        from repbench.representations import compute, make_representation
        from repbench.representations import soap_featomic as SF

        cfg = self.cfg
        n = min(cfg["featomic_n"], len(self.pool))
        idx = self.pool[:n]
        species = self.ds.elements
        p = dict(C.SOAP)
        res: dict[str, Any] = {
            "available": True, "featomic": featomic.__version__, "metatensor-core": version("metatensor-core"),
            "rayon_num_threads": os.environ.get("RAYON_NUM_THREADS"), "molecules": n,
            "atoms": int(self.ds.n_atoms[idx].sum()), "parameters": p,
            "note": ("Six runs through repbench.representations.compute (three representations, n_workers 1 or "
                     "2; the 2-worker runs fork a pool each time, as repbench does) and featomic gto in one "
                     "compute call for all molecules.  'featomic dscribe_gto' is featomic's "
                     "SoapPowerSpectrum with dscribe's radial basis (splined radial integral): the same numbers "
                     "as dscribe after the fixed convention map (asserted); 'featomic gto' is featomic's own "
                     "GTO basis: different numbers, similarity measured.  featomic's rayon pool: one thread "
                     "per process (RAYON_NUM_THREADS).")}
        reps, build = {}, {}
        for name, spec in (("dscribe", {"soap": p}), ("featomic dscribe_gto", {"soap_featomic": {**p, "rbf": "dscribe_gto"}}),
                           ("featomic gto", {"soap_featomic": {**p, "rbf": "gto"}})):
            t0 = time.perf_counter()
            reps[name] = make_representation(spec, species=species, periodic=False)
            build[name] = time.perf_counter() - t0
        res["build_seconds"] = {k: sig(v) for k, v in build.items()}
        res["dim"] = {k: int(r.dim) for k, r in reps.items()}
        outs: dict[str, np.ndarray] = {}

        def mk(name, workers):
            def f():
                outs[f"{name}, {workers}"] = np.asarray(compute(reps[name], self.ds, idx, n_workers=workers,
                                                                progress=False).values)
                return True
            return f

        off = np.concatenate([[0], np.cumsum(self.ds.n_atoms[idx])]).astype(np.int64)

        def check(_):
            for name in reps:
                assert outs[f"{name}, 1"].tobytes() == outs[f"{name}, 2"].tobytes(), f"{name}: 1 and 2 workers differ"
            d = outs["dscribe, 1"]
            mapped = SF.to_dscribe_layout(outs["featomic dscribe_gto, 1"], species, p["n_max"], p["l_max"], p["sigma"])
            err = float(np.max(np.abs(mapped - d)) / np.max(np.abs(d)))
            assert err <= 1e-8, f"featomic (dscribe_gto) differs from dscribe's SOAP by {err:.3g} (relative)"
            self._fe_err = err
            full = SF.from_dscribe_layout(d, species, p["n_max"], p["l_max"], p["sigma"])
            self._fe_sim = soap_similarity(outs["featomic gto, 1"], full, off, block=p["n_max"] ** 2)

        atoms = self.ds.to_ase(idx)

        def one_call():
            # featomic's own batching: all molecules in one compute call (repbench's driver calls it once per
            # chunk of structures, by default about n / 16 per worker)
            outs["featomic gto, one call"] = reps["featomic gto"].compute_atoms(atoms)
            return True

        def check_all(res_):
            check(res_)
            assert outs["featomic gto, one call"].tobytes() == outs["featomic gto, 1"].tobytes(), (
                "featomic gto: one compute call for all molecules differs from compute() by chunks")

        self.log(f"soap_featomic: {n} molecules ({res['atoms']} atoms), dims {res['dim']}")
        fns = {f"{name}, {w} worker{'s' if w > 1 else ''}": mk(name, w) for name in reps for w in (1, 2)}
        fns["featomic gto, one call"] = one_call
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            st = interleaved(fns, cfg["featomic_repeats"], check=check_all, log=self.log)
        st = {k.rsplit(" worker", 1)[0]: v for k, v in st.items()}   # "name, w"
        outs.clear()
        res["equality"] = {"featomic_dscribe_gto_vs_dscribe_max_rel_difference": sig(self._fe_err),
                           "definition": "max |to_dscribe_layout(featomic) - dscribe| / max |dscribe|",
                           "one_vs_two_workers": "bitwise equal (all three)"}
        res["featomic_gto_vs_dscribe"] = self._fe_sim
        res["periodic"] = self._featomic_cells(p)
        timings = {}
        for name in reps:
            for w in (1, 2):
                s = st[f"{name}, {w}"]
                timings[f"{name}, {w} worker{'s' if w > 1 else ''}"] = {**s.as_dict(), "structures_per_s": sig(n / s.min)}
        s1 = st["featomic gto, one call"]
        timings["featomic gto, one compute call (in this process)"] = {**s1.as_dict(), "structures_per_s": sig(n / s1.min)}
        res["timings"] = timings
        ratios = {}
        for w in (1, 2):
            ref = st[f"dscribe, {w}"].min
            for name in ("featomic dscribe_gto", "featomic gto"):
                ratios[f"{name} / dscribe, {w} worker{'s' if w > 1 else ''}"] = sig(st[f"{name}, {w}"].min / ref)
        for name in reps:
            ratios[f"{name}: 2 vs 1 worker speed-up"] = sig(st[f"{name}, 1"].min / st[f"{name}, 2"].min)
        ratios["featomic gto, one compute call / dscribe, 1 worker"] = sig(s1.min / st["dscribe, 1"].min)
        # one process: its CPU time is what the work costs, and other jobs on the machine change it far less
        # than the wall time (the 2-worker runs compute in children, so their process CPU time says nothing)
        for name in ("featomic dscribe_gto", "featomic gto"):
            ratios[f"{name} / dscribe, 1 worker, CPU time"] = sig(min(st[f"{name}, 1"].cpu) / min(st["dscribe, 1"].cpu))
        res["time_ratios"] = ratios
        sim = self._fe_sim
        lm = sim["blockwise_linear_map"]["heldout_rel_residual"]
        gto_status = (f"not equal (other radial basis): atom kernel r {sim['zeta_2']['pearson']:.4f}"
                      + (f", linear-map residual {lm:.1%}" if lm is not None else ""))
        for name, status in (("featomic dscribe_gto", f"equal (rtol 1e-8; {self._fe_err:.1e})"),
                             ("featomic gto", gto_status)):
            for w in (1, 2):
                a, b = st[f"dscribe, {w}"].min, st[f"{name}, {w}"].min
                cpu = (f" (CPU {min(st[f'{name}, 1'].cpu) / min(st['dscribe, 1'].cpu):.2f}x)" if w == 1 else "")
                self.row("soap_featomic", f"{name.replace('featomic ', 'featomic, rbf ')} vs dscribe, {n} molecules, "
                         f"{w} worker{'s' if w > 1 else ''}", f"dscribe {n / a:.0f} /s", f"featomic {n / b:.0f} /s",
                         f"featomic {b / a:.2f}x the time{cpu}", status=status)
        a = st["dscribe, 1"].min
        self.row("soap_featomic", f"featomic, rbf gto, one compute call for all {n} molecules (no chunks)",
                 f"dscribe {n / a:.0f} /s", f"featomic {n / s1.min:.0f} /s", f"featomic {s1.min / a:.2f}x the time",
                 status="bitwise equal to the chunked rows")
        per = res["periodic"]
        self.row("soap_featomic", f"periodic cells ({len(per['cells'])}): featomic dscribe_gto vs dscribe",
                 f"max rel. diff {per['max_rel_difference_dscribe_gto']:.1e}", "", "",
                 status="equal (rtol 1e-8)")
        return res

    def _featomic_cells(self, p: dict) -> dict[str, Any]:
        """The equality check on a few periodic cells (no timing)."""
        from ase.build import bulk

        from repbench.api import structures_from_ase
        from repbench.representations import compute, make_representation
        from repbench.representations import soap_featomic as SF

        atoms = []
        for i, (name, kind, a, rep, rattle) in enumerate(C.FEATOMIC_CELLS):
            x = bulk(name, kind, a=a) * rep
            if rattle:
                x.rattle(rattle, seed=20 + i)
            atoms.append(x)
        s = structures_from_ase(atoms)
        X = {}
        for name, spec in (("dscribe", {"soap": p}), ("dscribe_gto", {"soap_featomic": {**p, "rbf": "dscribe_gto"}}),
                           ("gto", {"soap_featomic": {**p, "rbf": "gto"}})):
            rep = make_representation(spec, species=s.elements, periodic=True)
            X[name] = np.asarray(compute(rep, s, n_workers=1, progress=False).values)
        d = X["dscribe"]
        mapped = SF.to_dscribe_layout(X["dscribe_gto"], s.elements, p["n_max"], p["l_max"], p["sigma"])
        err = float(np.max(np.abs(mapped - d)) / np.max(np.abs(d)))
        assert err <= 1e-8, f"periodic: featomic (dscribe_gto) differs from dscribe's SOAP by {err:.3g}"
        off = np.concatenate([[0], np.cumsum([len(x) for x in atoms])]).astype(np.int64)
        full = SF.from_dscribe_layout(d, s.elements, p["n_max"], p["l_max"], p["sigma"])
        sim = soap_similarity(X["gto"], full, off, linear_map=False)
        return {"cells": [f"{n} {k} a={a} x{r} rattle {t}" for n, k, a, r, t in C.FEATOMIC_CELLS],
                "atoms": int(off[-1]), "max_rel_difference_dscribe_gto": sig(err),
                "featomic_gto_vs_dscribe": sim}


def _dscribe_descriptors(spec: dict, species: list[int]):
    """The dscribe objects a repbench spec stands for, built here independently of repbench."""
    from dscribe.descriptors import ACSF, MBTR, SOAP

    from repbench.representations import angular_parameters, radial_parameters
    from repbench.representations.mbtr import MBTRRepresentation

    (kind, p), = spec.items()
    if kind == "soap":
        return [SOAP(r_cut=p["r_cut"], n_max=p["n_max"], l_max=p["l_max"], sigma=p["sigma"], rbf="gto",
                     species=list(species), periodic=False, sparse=False, dtype="float64")]
    if kind == "sf":
        r = p["radial"]
        g4 = angular_parameters(p["angular"]) if 3 in p["k"] else None
        return [ACSF(r_cut=r["cutoff"], g2_params=radial_parameters(r["scheme"], r["n"], r["cutoff"]),
                     g4_params=g4, species=list(species), periodic=False, sparse=False, dtype="float64")]
    # MBTR: one dscribe MBTR per term with the validated defaults
    v = MBTRRepresentation.validate(p, "benchmarks")
    out = []
    for k in v["k"]:
        t = v[f"k{k}"]
        out.append(MBTR(geometry={"function": t["geometry"]}, grid=dict(t["grid"]), weighting=dict(t["weighting"]),
                        normalize_gaussians=t["normalize_gaussians"], normalization=t["normalization"],
                        species=list(species), periodic=False, sparse=False, dtype="float64"))
    return out


def _dscribe_create(descs, atoms, kind: str, n_jobs: int, species: list[int]) -> np.ndarray:
    """dscribe's own create() for a list of molecules, arranged like repbench's rows."""
    if kind == "mbtr":
        return np.hstack([np.asarray(d.create(atoms, n_jobs=n_jobs)).reshape(len(atoms), -1) for d in descs])
    d = descs[0]
    rows = d.create(atoms, n_jobs=n_jobs)
    X = np.concatenate(rows if isinstance(rows, list) else list(rows), axis=0)
    if kind == "soap":
        return X
    # SF: repbench stratifies ACSF by the central element: block of the atom's element, zeros elsewhere
    z = np.concatenate([a.numbers for a in atoms])
    pos = {s: i for i, s in enumerate(species)}
    dim = X.shape[1]
    out = np.zeros((X.shape[0], dim * len(species)))
    for s, i in pos.items():
        m = z == s
        out[m, i * dim:(i + 1) * dim] = X[m]
    return out


def soap_similarity(F: np.ndarray, D: np.ndarray, offsets: np.ndarray, *, block: int | None = None,
                    linear_map: bool = True, max_atoms: int = 2000) -> dict[str, Any]:
    """How close two SOAP feature sets of the same atoms are when they are not equal (other radial basis).

    ``F`` and ``D``: rows of the same atoms in the same layout (featomic's; dscribe's rows mapped with
    ``soap_featomic.from_dscribe_layout``), ``offsets`` the structures' row offsets.  Rows are l2-normalised.
    Reported: the polynomial ("SOAP") kernel (x.y)^zeta between atoms (zeta 1 and 2) and the normalised
    structure kernel (sum over atom pairs, zeta 2, divided by sqrt(K_AA K_BB)): Pearson correlation and
    largest / mean absolute difference over pairs; and, with ``linear_map``, a least-squares linear map per
    block of ``block`` columns (one element pair and one l: the map P -> T P T' between two radial bases
    is linear within it) fitted on the atoms of the first half of the structures, with its relative
    residual ||F W - D|| / ||D|| on the other half (and the residual without a map, W = 1).  The fit solves
    the normal equations with a ridge of 1e-10 of the mean eigenvalue (a negligible change of the residual).
    """
    Fn = F / np.linalg.norm(F, axis=1, keepdims=True)
    Dn = D / np.linalg.norm(D, axis=1, keepdims=True)
    n = len(F)
    sub = np.sort(np.random.default_rng(0).choice(n, min(n, max_atoms), replace=False))
    iu = np.triu_indices(len(sub), 1)
    out: dict[str, Any] = {"atoms": int(n), "atoms_in_kernel": int(len(sub))}
    for zeta in (1, 2):
        a = (Fn[sub] @ Fn[sub].T)[iu] ** zeta
        b = (Dn[sub] @ Dn[sub].T)[iu] ** zeta
        r = float(np.corrcoef(a, b)[0, 1])
        out[f"zeta_{zeta}"] = {"pearson": r, "one_minus_pearson": sig(1.0 - r),
                               "max_abs_difference": sig(float(np.max(np.abs(a - b)))),
                               "mean_abs_difference": sig(float(np.mean(np.abs(a - b))))}
    # structure kernel of the first structures (at most max_atoms atoms): sum over atom pairs of (x.y)^2,
    # normalised to 1 on the diagonal
    k = max(2, int(np.searchsorted(offsets, max_atoms, side="right")) - 1)
    k = min(k, len(offsets) - 1)
    na = int(offsets[k])
    A = np.zeros((k, na))
    A[np.repeat(np.arange(k), np.diff(offsets[:k + 1])), np.arange(na)] = 1.0

    def structure_kernel(X):
        S = A @ ((X[:na] @ X[:na].T) ** 2) @ A.T
        d = np.sqrt(np.diag(S))
        return S / np.outer(d, d)

    a, b = structure_kernel(Fn), structure_kernel(Dn)
    ju = np.triu_indices(k, 1)
    r = float(np.corrcoef(a[ju], b[ju])[0, 1])
    out["structure_kernel_zeta_2"] = {"structures": k, "pearson": r, "one_minus_pearson": sig(1.0 - r),
                                      "max_abs_difference": sig(float(np.max(np.abs(a[ju] - b[ju])))),
                                      "mean_abs_difference": sig(float(np.mean(np.abs(a[ju] - b[ju]))))}
    if linear_map and block:
        h = int(offsets[(len(offsets) - 1) // 2])
        if h < 4 * block:
            out["blockwise_linear_map"] = {"fit_atoms": h, "block_columns": block, "heldout_rel_residual": None,
                                           "reason": "too few atoms to fit (fewer than 4 per unknown)"}
            return out
        num = den = 0.0
        for c in range(0, F.shape[1], block):
            cs = slice(c, c + block)
            A = Fn[:h, cs]
            G = A.T @ A
            tr = float(np.trace(G))
            # least squares by the normal equations with a negligible ridge (1e-10 of the mean eigenvalue):
            # LAPACK's lstsq took ~0.1 s per 64-column block here; columns of absent element pairs are zero
            W = (np.linalg.solve(G + (1e-10 * tr / block) * np.eye(block), A.T @ Dn[:h, cs]) if tr > 0
                 else np.zeros((block, block)))
            num += float(np.sum((Fn[h:, cs] @ W - Dn[h:, cs]) ** 2))
            den += float(np.sum(Dn[h:, cs] ** 2))
        out["blockwise_linear_map"] = {
            "fit_atoms": h, "heldout_atoms": int(n - h), "block_columns": block,
            "heldout_rel_residual": sig(math.sqrt(num / den)),
            "rel_difference_without_map": sig(float(np.linalg.norm(Fn[h:] - Dn[h:]) / np.linalg.norm(Dn[h:])))}
    return out
