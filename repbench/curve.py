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
from .errors import ConfigError, RunDirError
from .rundir import RunDir, clean_stale_tmp, lock, read_yaml, write_yaml
from .tuning import read_best
from .workspace import Workspace, positions_in

log = logging.getLogger("repbench")

CURVE_FORMAT = 1


def resolved_model(run: RunDir, cfg: Config) -> dict:
    """The concrete representation, kernel and starting KRR values: tune/best.yaml or the config."""
    from . import space

    best = read_best(run, cfg)
    if best is not None:
        return {"source": "tune/best.yaml", "representation": best["representation"], "kernel": best["kernel"],
                "length_scale": best["krr"]["length_scale"], "regularization": best["krr"]["regularization"]}
    rep, ker = thaw(cfg.representation), thaw(cfg.kernel)
    leaves = space.find_leaves({"representation": rep, "kernel": ker})
    if leaves:
        raise RunDirError(f"the config has search-space leaves ({leaves[0][0]} ...) and no tuning result",
                          where=str(run.path), hint="run `repbench tune` first, or give fixed values")
    return {"source": "config", "representation": rep, "kernel": ker,
            "length_scale": cfg.krr["length_scale"], "regularization": cfg.krr["regularization"]}


def point_path(run: RunDir, size: int, draw: int):
    return run.curve_dir / f"{size}-{draw}.yaml"


def model_hash(cfg: Config, model: dict) -> str:
    from .config import canonical_hash

    return canonical_hash({"config": cfg.hash(), "model": {k: model[k] for k in
                                                          ("representation", "kernel", "length_scale",
                                                           "regularization")}})


def run_curve(run: RunDir, *, progress: bool = True, console=None) -> dict:
    """Compute the missing learning-curve points and write curve.yaml."""
    with lock(run.path, "curve"):
        cfg = run.config()
        clean_stale_tmp(run.path)  # temporary files of killed writers
        ws = Workspace(run, cfg, progress=progress)
        model = resolved_model(run, cfg)
        mhash = model_hash(cfg, model)
        sizes = sorted(ws.splits.train)
        draws = cfg.splits["draws"]
        todo = [(s, d) for d in range(draws) for s in sizes if not _point_ok(run, s, d, mhash)]
        if todo:
            _compute_points(run, cfg, ws, model, mhash, todo, progress, console)
        doc = aggregate(run, cfg, ws, model, mhash)
        write_yaml(run.path / "curve.yaml", doc, header="# learning curve written by `repbench curve`; "
                   "format documented in docs/formats.md")
        run.update_status("curve", "done", points=len(sizes) * draws)
        return doc


def _point_ok(run: RunDir, size: int, draw: int, mhash: str) -> bool:
    p = point_path(run, size, draw)
    if not p.exists():
        return False
    try:
        doc = read_yaml(p)
    except RunDirError:
        log.warning("%s is damaged; recomputing it", p)
        return False
    ok = (isinstance(doc, dict) and doc.get("model_hash") == mhash and doc.get("size") == size
          and doc.get("draw") == draw and {"length_scale", "regularization", "refine_loss"} <= set(doc)
          and all(isinstance(doc.get(m), dict) and {"rmse", "mae", "maxae", "r2"} <= set(doc[m])
                  for m in ("metrics", "metrics_report")))
    if not ok and isinstance(doc, dict) and doc.get("model_hash") == mhash:
        log.warning("%s is incomplete or damaged; recomputing it", p)
    return ok


def _compute_points(run, cfg, ws: Workspace, model, mhash, todo, progress, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    rep, ker = model["representation"], model["kernel"]
    poly = ker.get("atom_kernel") == "polynomial"
    sizes = sorted(ws.splits.train)
    big = sizes[-1]
    test = ws.splits.test
    draws_needed = sorted({d for _, d in todo})
    # one representation computation for every structure the curve needs
    universe = np.unique(np.concatenate([test] + [ws.splits.train[big][d] for d in draws_needed]))
    feats = ws.features(rep, universe)
    krr_cfg = dict(thaw(cfg.krr))
    with Progress(TextColumn("[bold]curve[/]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  disable=not progress) as prog:
        task = prog.add_task("", total=len(todo))
        for d in draws_needed:
            train_big = ws.splits.train[big][d]
            bank_tt = ws.bank(rep, ker, train_big, features=feats, features_index=universe)
            bank_te = ws.bank(rep, ker, test, train_big, features=feats, features_index=universe)
            for s in sizes:
                if (s, d) not in todo:
                    continue
                prog.update(task, description=f"size {s} draw {d}")
                t0 = time.perf_counter()
                tr = ws.splits.train[s][d]
                pos = positions_in(train_big, tr)
                view = bank_tt.view(pos)
                folds = ws.splits.inner[s][d]
                refine_loss = None
                if cfg.curve["refine"] and cfg.krr["refine"] and folds:
                    res = ws.refine(view, tr, folds, krr_cfg, ker, ls_start=model["length_scale"])
                    ls, reg, refine_loss = res.ls, res.reg, float(res.loss)
                else:
                    ls, reg = model["length_scale"], model["regularization"]
                    if (ls is None and not poly) or reg is None:
                        raise ConfigError("curve.refine is off but no KRR values are known",
                                          where=cfg.file, hint="set krr.length_scale and krr.regularization")
                key = 1.0 if poly else float(ls)
                K_tr = view.get([key])[key]
                K_te = bank_te.get([key])[key][:, pos]
                pred = ws.fit_predict(K_tr, K_te, tr, test, float(reg), krr_cfg["baseline"])
                m, mr = ws.metrics(test, pred)
                doc = {"model_hash": mhash, "size": int(s), "draw": int(d), "n_test": int(len(test)),
                       "length_scale": None if poly else float(ls), "regularization": float(reg),
                       "refine_loss": refine_loss, "metrics": m, "metrics_report": mr,
                       "seconds": time.perf_counter() - t0}
                write_yaml(point_path(run, s, d), doc)
                prog.advance(task)


def aggregate(run: RunDir, cfg: Config, ws: Workspace, model: dict, mhash: str) -> dict:
    sizes = sorted(ws.splits.train)
    draws = cfg.splits["draws"]
    per_size = []
    for s in sizes:
        pts = [read_yaml(point_path(run, s, d)) for d in range(draws)]
        entry = {"size": int(s), "draws": []}
        for p in pts:
            entry["draws"].append({"draw": p["draw"], "length_scale": p["length_scale"],
                                   "regularization": p["regularization"], "refine_loss": p["refine_loss"],
                                   **{k: p["metrics"][k] for k in ("rmse", "mae", "maxae", "r2")}})
        for unit_key, src in (("mean", "metrics"), ("mean_report", "metrics_report")):
            vals = {k: np.array([p[src][k] for p in pts]) for k in ("rmse", "mae", "maxae", "r2")}
            entry[unit_key] = {k: float(v.mean()) for k, v in vals.items()}
            entry[unit_key.replace("mean", "std")] = {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0
                                                     for k, v in vals.items()}
        per_size.append(entry)
    tm = ws.target
    return {
        "format": CURVE_FORMAT,
        "run": cfg.name,
        "config_hash": cfg.hash(),
        "model_hash": mhash,
        "dataset": cfg.dataset["name"],
        "target": cfg.dataset["target"],
        "per": cfg.dataset["per"],
        "representation": next(iter(model["representation"])),
        "unit": tm.unit,
        "report_unit": tm.report_unit,
        "report_factor": tm.report_factor,
        "test_set": {"size": int(len(ws.splits.test)),
                     "kind": "predefined" if (ws.structures.parts[ws.splits.test] == "test").all()
                     and (ws.structures.parts == "test").any() else "drawn"},
        "model": {"source": model["source"], "representation": model["representation"],
                  "kernel": model["kernel"], "baseline": cfg.krr["baseline"]},
        "sizes": per_size,
    }
