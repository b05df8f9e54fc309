"""``repbench curve``: the learning curve of the best (or fixed) configuration.

For each draw, the kernels of the largest training set (train x train) and of the test set against it
(test x train) are computed once and sliced for every smaller size of that draw (training sets are nested,
see :mod:`repbench.splits`).  At each (size, draw) the KRR hyper-parameters are refined on the draw's inner
splits, the model is fitted on the whole draw and the fixed test set is predicted.

Each finished point is written to ``curve/<size>-<draw>.yaml`` at once (the resume unit); ``curve.yaml``
aggregates them with mean and standard deviation per size.  Re-running recomputes nothing that is done.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .config import Config, thaw
from .documents import CurvePoint, read_point, write_curve, write_point
from .errors import ConfigError
from .models.model import Model
from .models.resolve import resolve_model
from .rundir import RunDir, clean_stale_tmp, lock
from .workspace import Workspace, positions_in

log = logging.getLogger("repbench")


def run_curve(run: RunDir, *, progress: bool = True, console=None) -> dict:
    """Compute the missing learning-curve points and write curve.yaml."""
    with lock(run.path, "curve"):
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
            points.update(_compute_points(run, cfg, ws, model, mhash, todo, progress, console))
        doc = aggregate(cfg, ws, model, mhash, points)
        write_curve(run, doc)
        run.update_status("curve", "done", points=len(sizes) * draws)
        return doc


def _compute_points(run: RunDir, cfg: Config, ws: Workspace, model: Model, mhash: str, todo, progress,
                    console) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    poly = not model.has_length_scale
    done = {}
    sizes = sorted(ws.splits.train)
    big = sizes[-1]
    test = ws.splits.test
    draws_needed = sorted({d for _, d in todo})
    # one representation computation for every structure the curve needs
    universe = np.unique(np.concatenate([test] + [ws.splits.train[big][d] for d in draws_needed]))
    feats = ws.features(model.representation, universe)
    krr_cfg = dict(thaw(cfg.krr))
    with Progress(TextColumn("[bold]curve[/]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  disable=not progress) as prog:
        task = prog.add_task("", total=len(todo))
        for d in draws_needed:
            train_big = ws.splits.train[big][d]
            bank_tt = ws.model_bank(model, train_big, features=feats, features_index=universe)
            bank_te = ws.model_bank(model, test, train_big, features=feats, features_index=universe)
            for s in sizes:
                if (s, d) not in todo:
                    continue
                prog.update(task, description=f"size {s} draw {d}")
                t0 = time.perf_counter()
                tr = ws.splits.train[s][d]
                pos = positions_in(train_big, tr)
                view = bank_tt.view(pos)
                folds = ws.splits.inner[s][d]
                refine_loss, at_bound = None, []
                if cfg.curve["refine"] and cfg.krr["refine"] and folds:
                    res = ws.refine(model, view, tr, folds, krr_cfg, ls_start=model.length_scale)
                    ls, reg, refine_loss, at_bound = res.ls, res.reg, float(res.loss), list(res.at_bound)
                else:
                    ls, reg = model.length_scale, model.regularization
                    if (ls is None and not poly) or reg is None:
                        raise ConfigError("curve.refine is off but no KRR values are known",
                                          where=cfg.file, hint="set krr.length_scale and krr.regularization")
                key = model.kernel_key(ls)
                K_tr = view.get([key])[key]
                K_te = bank_te.get([key])[key][:, pos]
                pred = ws.fit_predict(model, K_tr, K_te, tr, test, float(reg))
                m, mr = ws.metrics(test, pred)
                point = CurvePoint(model_hash=mhash, size=int(s), draw=int(d), n_test=int(len(test)),
                                   length_scale=None if poly else float(ls), regularization=float(reg),
                                   refine_loss=refine_loss, metrics=m, metrics_report=mr,
                                   seconds=time.perf_counter() - t0, at_bound=at_bound)
                write_point(run, point)
                done[(s, d)] = point
                prog.advance(task)
    return done


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
                     and (ws.structures.parts == "test").any() else "drawn"},
        "model": {"source": model.source, "representation": model.representation,
                  "kernel": model.kernel, "regressor": model.regressor, "baseline": model.baseline},
        "sizes": per_size,
    }
