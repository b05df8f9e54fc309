"""``repbench curve``: the learning curve of the best (or fixed) configuration.

For each draw, the kernels of the largest training set (train x train) and of the test set against it
(test x train) are computed once and sliced for every smaller size of that draw (training sets are nested,
see :mod:`repbench.splits`).  At each (size, draw) the KRR hyper-parameters are refined on the draw's inner
splits, the model is fitted on the whole draw and the fixed test set is predicted.

Each finished point is written to ``curve/<size>-<draw>.yaml`` at once (the resume unit); ``curve.yaml``
aggregates them with mean and standard deviation per size.  Re-running recomputes nothing that is done.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np

from .config import Config, thaw
from .documents import CurvePoint, read_point, read_predictions, write_curve, write_point, write_predictions
from .execution import (BLOCK_STRUCTURES, blas_threads, in_dask_worker, kernel_blocks, run_tasks,
                        same_blas_threads)
from .errors import ConfigError
from .models.model import Model
from .models.resolve import resolve_model
from .rundir import RunDir, clean_stale_tmp, stage_lock
from .progress import progress_lines
from .workspace import Workspace, positions_in, take_features

log = logging.getLogger("repbench")


def run_curve(run: RunDir, *, progress: bool = True, console=None, scheduler: str | None = None,
              block_structures: int | None = None) -> dict:
    """Compute the missing learning-curve points and write curve.yaml.

    scheduler: None (this process) or a Dask scheduler address (:mod:`repbench.execution`): each draw's
    missing points become one task; this process writes every result, exactly as a local run does.
    block_structures: with a scheduler, a draw's kernels of more than ``block_structures**2`` structure
    pairs are computed as row blocks of about that many pairs, each a Dask task
    (:func:`repbench.execution.kernel_blocks`; None: :data:`repbench.execution.BLOCK_STRUCTURES`, 0: never).
    An execution setting: no hash sees it.
    """
    with stage_lock(run.path, "curve"):  # shared run-directory lock + the curve lock
        cfg = run.config()
        clean_stale_tmp(run.path)  # temporary files of killed writers
        ws = Workspace(run, cfg, progress=progress)
        model = resolve_model(run, cfg)
        mhash = model.hash(cfg)
        sizes = sorted(ws.splits.train)
        draws = cfg.splits["draws"]
        points = {(s, d): read_point(run, s, d, mhash) for d in range(draws) for s in sizes}
        todo = [k for k, p in points.items() if p is None]
        if todo:
            points.update(_compute_points(run, cfg, ws, model, mhash, todo, progress, console, scheduler,
                                          block_structures))
        for w in warnings_for(cfg, points):
            log.warning("curve: %s", w)
        doc = aggregate(cfg, ws, model, mhash, points)
        write_curve(run, doc)
        run.update_status("curve", "done", points=len(sizes) * draws)
        return doc


#: condition number of K + reg I above which float64 leaves fewer than about four correct digits
ILL_CONDITIONED = 1e12


def _draw_points(ws: Workspace, model: Model, mhash: str, draw: int, sizes_todo: list[int],
                 feats=None, universe=None, on_point=None, blocks=None) -> list[tuple[CurvePoint, dict]]:
    """Compute the points (size, ``draw``) for ``sizes_todo``: (point, predictions) pairs.

    Each training size refines on kernels of its own training set (train x train, then test x train at
    the chosen length scale): a length scale that only a small size asks for costs a small kernel, not a
    pass over the draw's largest one (NMD18 SOAP at full budget: the size-100 walk from the tuned 2 A
    down to 0.125 A cost 4 passes, 11 length scales and 22 min over the 1,600-crystal kernel; with a kernel
    per size the remaining 13 points of the curve took less time than those first 2).  Kernels are
    cached per (rows, columns, length scale), so a resumed curve recomputes nothing.  Pure computation on
    the workspace's caches: the caller writes the results (locally, or as the client of a Dask cluster).
    ``blocks``: computes the kernels as row blocks (the kernel banks' ``compute``); None: in this process.
    """
    cfg = ws.cfg
    poly = not model.has_length_scale
    sizes = sorted(ws.splits.train)
    big = sizes[-1]
    test = ws.splits.test
    train_big = ws.splits.train[big][draw]
    if feats is None:
        universe = np.unique(np.concatenate([test, train_big]))
        feats = ws.features(model.representation, universe)
    krr_cfg = dict(thaw(cfg.krr))
    ls_start = model.length_scale
    if ls_start is None and not poly and cfg.curve["refine"] and cfg.krr["refine"]:
        # no tuned or fixed length scale: every size starts from the median distance of the largest set
        ls_start = ws.model_bank(model, train_big, features=feats, features_index=universe).median_length_scale()
    test_feats = take_features(feats, positions_in(universe, test))
    diag: dict[float, np.ndarray] = {}
    out = []
    for s in sizes:
        if s not in sizes_todo:
            continue
        t0 = time.perf_counter()
        tr = ws.splits.train[s][draw]
        bank_tt = ws.model_bank(model, tr, features=feats, features_index=universe, compute=blocks)
        bank_te = ws.model_bank(model, test, tr, features=feats, features_index=universe, compute=blocks)
        folds = ws.splits.inner[s][draw]
        refine_loss, at_bound = None, []
        if cfg.curve["refine"] and cfg.krr["refine"] and folds:
            res = ws.refine(model, bank_tt, tr, folds, krr_cfg, ls_start=ls_start)
            ls, reg, refine_loss, at_bound = res.ls, res.reg, float(res.loss), list(res.at_bound)
        else:
            ls, reg = model.length_scale, model.regularization
            if (ls is None and not poly) or reg is None:
                raise ConfigError("curve.refine is off but no KRR values are known",
                                  where=cfg.file, hint="set krr.length_scale and krr.regularization")
        key = model.kernel_key(ls)
        K_tr = bank_tt.get([key])[key]
        K_te = bank_te.get([key])[key]
        if key not in diag and model.regressor_class.has_std:
            diag[key] = ws.self_kernel(model, test_feats, ls)
        pred, std, fitted = ws.fit_predict_std(model, K_tr, K_te, tr, test, float(reg), diag.get(key))
        m, mr = ws.metrics(test, pred)
        unc = ws.uncertainty(test, pred, std) if std is not None else None
        point = CurvePoint(model_hash=mhash, size=int(s), draw=int(draw), n_test=int(len(test)),
                           length_scale=None if poly else float(ls), regularization=float(reg),
                           refine_loss=refine_loss, metrics=m, metrics_report=mr,
                           seconds=time.perf_counter() - t0, at_bound=at_bound,
                           condition=getattr(fitted, "condition_", None), uncertainty=unc)
        preds = {"test": test, "y": ws.y[test], "pred": pred,
                 "std": std if std is not None else np.full(len(test), np.nan)}
        if on_point is not None:
            on_point(point, preds)
        out.append((point, preds))
    return out


def draw_task(run_path: str, model: Model, mhash: str, draw: int, sizes_todo: list[int],
              threads: int | None = None, block_structures: int | None = None) -> list:
    """One draw's missing points, computed where this runs (a Dask worker): it opens the run directory
    by its path (a shared filesystem) and returns the results for the client to write.  ``threads``: the
    client's BLAS thread count, so that factorisations round as in a local run.  ``block_structures``
    (> 0): kernels of more than its square of structure pairs are computed as row blocks, Dask tasks on
    the cluster this task runs on (:func:`repbench.execution.kernel_blocks`; outside a worker: here, one
    block after another)."""
    blocks = None
    if block_structures:
        blocks = functools.partial(kernel_blocks, scheduler="worker" if in_dask_worker() else None,
                                   block_structures=int(block_structures), threads=threads)
    with same_blas_threads(threads):
        ws = Workspace(RunDir(run_path), progress=False)
        return _draw_points(ws, model, mhash, draw, sizes_todo, blocks=blocks)


def _compute_points(run: RunDir, cfg: Config, ws: Workspace, model: Model, mhash: str, todo, progress,
                    console, scheduler: str | None = None, block_structures: int | None = None) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    done: dict = {}
    draws_needed = sorted({d for _, d in todo})

    def write(point: CurvePoint, preds: dict) -> None:
        # predictions first: a finished point always has them
        write_predictions(run, point.size, point.draw, mhash, preds)
        write_point(run, point)
        done[(point.size, point.draw)] = point

    feats = universe = None
    if scheduler is None:
        # one representation computation for every structure the curve needs (before the progress
        # heartbeat starts: computing representations forks worker processes)
        big = max(ws.splits.train)
        universe = np.unique(np.concatenate([ws.splits.test]
                                            + [ws.splits.train[big][d] for d in draws_needed]))
        feats = ws.features(model.representation, universe)
    with Progress(TextColumn("[bold]curve[/]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  disable=not progress) as prog:
        task = prog.add_task("", total=len(todo))
        ticker = progress_lines("curve", len(todo), unit="points", heartbeat=True)

        def on_point(point: CurvePoint, preds: dict) -> None:
            write(point, preds)
            prog.update(task, description=f"size {point.size} draw {point.draw}")
            prog.advance(task)
            ticker.advance()

        try:
            _run_draws(run, ws, model, mhash, todo, draws_needed, scheduler, block_structures, on_point,
                       feats, universe)
        finally:
            ticker.close()
    return done


def _run_draws(run, ws, model, mhash, todo, draws_needed, scheduler, block_structures, on_point, feats,
               universe) -> None:
    """The draws' missing points: here, one draw after another, or as Dask tasks."""
    if scheduler is None:
        for d in draws_needed:
            _draw_points(ws, model, mhash, d, [s for s, dd in todo if dd == d], feats, universe, on_point)
    else:
        threads = blas_threads()
        blk = BLOCK_STRUCTURES if block_structures is None else int(block_structures)
        n_big = len(ws.splits.train[max(ws.splits.train)][draws_needed[0]])
        if blk and n_big * (n_big + 1) / 2 > blk**2:
            log.info("curve: kernels of more than %d^2 structure pairs are computed as row blocks on "
                     "the cluster", blk)
        args = [(str(run.path.resolve()), model, mhash, d, [s for s, dd in todo if dd == d], threads, blk)
                for d in draws_needed]
        run_tasks(draw_task, args, scheduler=scheduler,
                  on_result=lambda results: [on_point(p, pr) for p, pr in results])


def warnings_for(cfg: Config, points: dict) -> list[str]:
    """One line per kind of problem over the finished points: refined values on a bound of their grid,
    ill-conditioned fits (the key to change is named)."""
    out = []
    names = {"ls_low": ("lower", "length scale", "krr.ls_bounds", 0),
             "ls_high": ("upper", "length scale", "krr.ls_bounds", 1),
             "reg_low": ("lower", "regularisation", "krr.reg_bounds", 0),
             "reg_high": ("upper", "regularisation", "krr.reg_bounds", 1)}
    for bound, (side, what, key, i) in names.items():
        hit = sorted((p.size, p.draw) for p in points.values() if bound in (p.at_bound or []))
        if hit:
            where = ", ".join(f"{s}/{d}" for s, d in hit[:4]) + (" ..." if len(hit) > 4 else "")
            out.append(f"the refined {what} sits on the {side} bound of {key} (2^{cfg.krr[key[4:]][i]:g}) at "
                       f"{len(hit)} of {len(points)} points (size/draw {where}): widen {key}")
    bad = sorted((p.size, p.draw, p.condition) for p in points.values()
                 if p.condition is not None and p.condition > ILL_CONDITIONED)
    if bad:
        worst = max(c for _, _, c in bad)
        out.append(f"{len(bad)} of {len(points)} fits are ill-conditioned (condition number up to "
                   f"{worst:.1e}; float64 resolves about 1e12 at this regularisation): their predictions "
                   "may carry rounding error; raise the lower end of krr.reg_bounds")
    return out


def aggregate(cfg: Config, ws: Workspace, model: Model, mhash: str, points: dict) -> dict:
    """curve.yaml: every draw's point and mean / std per size, in the modelled and the report unit."""
    sizes = sorted(ws.splits.train)
    draws = cfg.splits["draws"]
    per_size = []
    for s in sizes:
        pts = [points[(s, d)] for d in range(draws)]
        entry = {"size": int(s), "draws": []}
        for p in pts:
            entry["draws"].append({"draw": p.draw, "length_scale": p.length_scale,
                                   "regularization": p.regularization, "refine_loss": p.refine_loss,
                                   **{k: p.metrics[k] for k in ("rmse", "mae", "maxae", "r2")}})
        for unit_key, src in (("mean", "metrics"), ("mean_report", "metrics_report")):
            vals = {k: np.array([getattr(p, src)[k] for p in pts]) for k in ("rmse", "mae", "maxae", "r2")}
            entry[unit_key] = {k: float(v.mean()) for k, v in vals.items()}
            entry[unit_key.replace("mean", "std")] = {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0
                                                     for k, v in vals.items()}
        if all(p.uncertainty for p in pts):  # calibration of the predictive std, mean over draws
            entry["uncertainty"] = {k: float(np.mean([p.uncertainty[k] for p in pts]))
                                    for k in ("nll", "coverage_68", "coverage_95", "mean_std")}
        bounds = sorted({b for p in pts for b in (p.at_bound or [])})
        if bounds:
            entry["at_bound"] = bounds
        per_size.append(entry)
    tm = ws.target
    return {
        "run": cfg.name,
        "config_hash": cfg.hash(),
        "model_hash": mhash,
        "dataset": cfg.dataset["name"],
        "target": cfg.dataset["target"],
        "per": cfg.dataset["per"],
        "representation": model.representation_name,
        "unit": tm.unit,
        "report_unit": tm.report_unit,
        "report_factor": tm.report_factor,
        "test_set": {"size": int(len(ws.splits.test)),
                     "kind": "predefined" if (ws.structures.parts[ws.splits.test] == "test").all()
                     and (ws.structures.parts == "test").any() else "drawn",
                     **ws.split_strategy()},
        "model": {"source": model.source, "representation": model.representation,
                  "kernel": model.kernel, "regressor": model.regressor, "baseline": model.baseline},
        "warnings": warnings_for(cfg, points),
        "sizes": per_size,
    }


def calibration_data(run: RunDir, doc: dict) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(nominal, observed) coverage per training size from the stored test predictions (all draws pooled);
    sizes without predictive standard deviations are left out."""
    from .stats import calibration_curve

    out = {}
    for entry in doc["sizes"]:
        preds = [read_predictions(run, entry["size"], d["draw"], doc["model_hash"]) for d in entry["draws"]]
        if any(p is None or not np.isfinite(p["std"]).all() for p in preds):
            continue
        y = np.concatenate([p["y"] for p in preds])
        mean = np.concatenate([p["pred"] for p in preds])
        std = np.maximum(np.concatenate([p["std"] for p in preds]), 1e-300)
        out[int(entry["size"])] = calibration_curve(y, mean, std)
    return out
