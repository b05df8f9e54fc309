"""Every output document of a run directory: typed, versioned records, read and written here only.

===================  =========================  ===================================================
file                 record                     scope (what makes it valid)
===================  =========================  ===================================================
tune/best.yaml       :class:`Best`              ``study_hash`` of the config (data + search space)
curve/<s>-<d>.yaml   :class:`CurvePoint`        ``model_hash`` (data + concrete model + refinement)
curve.yaml           :func:`write_curve`        the aggregate of the points (``model_hash``)
timings.yaml         :func:`write_timings`      ``model_hash`` + ``time.sizes``
===================  =========================  ===================================================

A document that is damaged, from another format, or written for another scope is reported with a
:class:`~repbench.errors.RunDirError` naming the file and what to do (or, for the resume units, treated
as missing and recomputed).  Paths come from :class:`~repbench.rundir.RunDir`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import RunDirError
from .rundir import RunDir, read_yaml, write_yaml

log = logging.getLogger("repbench")

#: format of tune/best.yaml, curve points, curve.yaml and timings.yaml
FORMAT = 2
METRICS = ("rmse", "mae", "maxae", "r2")


# --------------------------------------------------------------------------- tune/best.yaml
@dataclass
class Best:
    """The best configuration of a study (``tune/best.yaml``), ready for ``curve`` and ``time``.

    loss: the validation loss of the best trial in the modelled unit (``loss_unit``, eV or eV/atom ...).
    """

    study_hash: str
    representation: dict
    kernel: dict
    krr: dict
    study: str = ""
    trial: int = -1
    loss: float = float("nan")
    loss_kind: str = "rmse"
    loss_unit: str = ""
    trials: dict = field(default_factory=dict)
    format: int = FORMAT

    ORDER = ("format", "study_hash", "study", "trial", "loss", "loss_kind", "loss_unit", "trials",
             "representation", "kernel", "krr")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in self.ORDER}


def read_best(run: RunDir, study_hash: str) -> Best | None:
    """``tune/best.yaml`` if it belongs to the study ``study_hash``; None if absent or of another study
    (the search space was edited: tune again); a damaged file is an error."""
    p = run.best_yaml
    if not p.exists():
        return None
    doc = read_yaml(p)
    if not isinstance(doc, dict) or "study_hash" not in doc:
        raise RunDirError("tune/best.yaml is damaged or not a repbench tuning result", where=str(p),
                          hint="re-run `repbench tune` (it rewrites the file from the study) or delete it")
    if doc.get("study_hash") != study_hash:
        return None
    if not (doc.get("format") == FORMAT and isinstance(doc.get("representation"), dict)
            and len(doc["representation"]) == 1 and isinstance(doc.get("kernel"), dict)
            and isinstance(doc.get("krr"), dict) and {"length_scale", "regularization"} <= set(doc["krr"])):
        raise RunDirError("tune/best.yaml is damaged or incomplete (representation, kernel or krr missing)",
                          where=str(p), hint="re-run `repbench tune` (it rewrites the file from the study)")
    return Best(**{k: doc[k] for k in Best.__dataclass_fields__ if k in doc})


def write_best(run: RunDir, best: Best) -> None:
    run.tune_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(run.best_yaml, best.to_dict(),
               header="# best configuration found by `repbench tune`; `repbench curve` uses it")


# --------------------------------------------------------------------------- curve/<size>-<draw>.yaml
@dataclass
class CurvePoint:
    """One finished learning-curve point (the resume unit of ``curve``), errors in two units.

    metrics: modelled unit (eV, eV/atom ...); metrics_report: report unit (kcal/mol, meV/atom ...).
    at_bound: search bounds the refined values sit on ("ls_low", "reg_high", ...).
    """

    model_hash: str
    size: int
    draw: int
    n_test: int
    length_scale: float | None
    regularization: float
    refine_loss: float | None
    metrics: dict
    metrics_report: dict
    seconds: float
    at_bound: list = field(default_factory=list)
    format: int = FORMAT

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"format": d.pop("format"), **d}


def read_point(run: RunDir, size: int, draw: int, model_hash: str) -> CurvePoint | None:
    """The finished point (size, draw) for ``model_hash``; None if missing, stale or damaged (then it is
    recomputed; a damaged one is reported)."""
    p = run.point_path(size, draw)
    if not p.exists():
        return None
    try:
        doc = read_yaml(p)
    except RunDirError:
        log.warning("%s is damaged; recomputing it", p)
        return None
    if not isinstance(doc, dict) or doc.get("model_hash") != model_hash:
        return None
    ok = (doc.get("format") == FORMAT and doc.get("size") == size and doc.get("draw") == draw
          and {"length_scale", "regularization", "refine_loss", "n_test", "seconds"} <= set(doc)
          and all(isinstance(doc.get(m), dict) and set(METRICS) <= set(doc[m])
                  and all(isinstance(doc[m][k], (int, float)) for k in METRICS)
                  for m in ("metrics", "metrics_report")))
    if not ok:
        log.warning("%s is incomplete or damaged; recomputing it", p)
        return None
    return CurvePoint(**{k: doc[k] for k in CurvePoint.__dataclass_fields__ if k in doc})


def write_point(run: RunDir, point: CurvePoint) -> None:
    write_yaml(run.point_path(point.size, point.draw), point.to_dict())


# --------------------------------------------------------------------------- curve.yaml
def valid_curve(c: Any) -> bool:
    """curve.yaml has what the report reads (a damaged or foreign file is an error, not a traceback)."""
    keys = {"run", "dataset", "target", "per", "representation", "report_unit"}
    return (isinstance(c, dict) and keys <= set(c)
            and isinstance(c.get("sizes"), list) and bool(c["sizes"])
            and all(isinstance(x, dict) and {"size", "mean_report", "std_report"} <= set(x)
                    and isinstance(x["mean_report"], dict) and isinstance(x["std_report"], dict)
                    for x in c["sizes"]))


def read_curve(run: RunDir) -> dict | None:
    """curve.yaml (None if absent); a damaged one is an error naming the file."""
    p = run.curve_yaml
    if not p.exists():
        return None
    doc = read_yaml(p)
    if not valid_curve(doc):
        raise RunDirError("curve.yaml is damaged (keys or learning-curve sizes missing)", where=str(p),
                          hint="delete it and re-run `repbench curve` (finished points are kept)")
    return doc


def write_curve(run: RunDir, doc: dict) -> None:
    write_yaml(run.curve_yaml, {"format": FORMAT, **{k: v for k, v in doc.items() if k != "format"}},
               header="# learning curve written by `repbench curve`; format documented in docs/formats.md")


# --------------------------------------------------------------------------- timings.yaml
def valid_timings(t: Any) -> bool:
    return (isinstance(t, dict) and isinstance(t.get("representation_timing"), dict)
            and "per_structure_s" in t["representation_timing"]
            and isinstance(t.get("sizes"), list) and bool(t["sizes"])
            and all(isinstance(x, dict)
                    and {"train_size", "test_size", "kernel_train_train", "kernel_test_train"} <= set(x)
                    for x in t["sizes"]))


def read_timings(run: RunDir) -> dict | None:
    """timings.yaml (None if absent); a damaged one is an error naming the file."""
    p = run.timings_yaml
    if not p.exists():
        return None
    doc = read_yaml(p)
    if not valid_timings(doc):
        raise RunDirError("timings.yaml is damaged (keys missing)", where=str(p),
                          hint="delete it and re-run `repbench time`")
    return doc


def timings_current(run: RunDir, model_hash: str, sizes: list[int]) -> bool:
    """Whether timings.yaml exists and was measured for this model at these sizes."""
    try:
        doc = read_timings(run)
    except RunDirError:
        return False
    return (doc is not None and doc.get("format") == FORMAT and doc.get("model_hash") == model_hash
            and [int(r["train_size"]) for r in doc["sizes"]] == list(sizes))


def write_timings(run: RunDir, doc: dict) -> None:
    write_yaml(run.timings_yaml, {"format": FORMAT, **{k: v for k, v in doc.items() if k != "format"}},
               header="# timings written by `repbench time`; seconds; format documented in docs/formats.md")


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
