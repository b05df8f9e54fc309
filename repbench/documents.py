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

from .errors import ConfigError, RunDirError, short
from .rundir import RunDir, read_yaml, write_yaml

log = logging.getLogger("repbench")

#: format of tune/best.yaml, curve points, curve.yaml and timings.yaml
FORMAT = 2
METRICS = ("rmse", "mae", "maxae", "r2")


# --------------------------------------------------------------------------- value checks
class Damaged(ValueError):
    """A document's value has the wrong type or is out of range: ``key`` (a key path such as
    ``sizes[0].mean_report.mae``) and what is wrong with it."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def _field(doc: dict, key: str, path: str = "") -> Any:
    kp = f"{path}.{key}" if path else key
    if key not in doc:
        raise Damaged(kp, "is missing")
    return doc[key]


def _mapping(v: Any, key: str) -> dict:
    if not isinstance(v, dict):
        raise Damaged(key, f"is {short(v)}, not a mapping")
    return v


def _list(v: Any, key: str, *, nonempty: bool = True) -> list:
    if not isinstance(v, list):
        raise Damaged(key, f"is {short(v)}, not a list")
    if nonempty and not v:
        raise Damaged(key, "is an empty list")
    return v


def _string(v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise Damaged(key, f"is {short(v)}, not a string")
    return v


def _number(v: Any, key: str, *, integer: bool = False, lo: float | None = None, positive: bool = False,
            none_ok: bool = False, nan_ok: bool = False) -> Any:
    """A number (``integer``: an int) that is finite (NaN with ``nan_ok``), at least ``lo``, above zero
    with ``positive``; ``None`` with ``none_ok``."""
    if v is None and none_ok:
        return v
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
        raise Damaged(key, f"is {short(v)}, not {'an integer' if integer else 'a number'}")
    if isinstance(v, float) and math.isnan(v):
        if nan_ok:
            return v
        raise Damaged(key, "is NaN")
    if not math.isfinite(v):
        raise Damaged(key, f"is {v}, not a finite number")
    if positive and not v > 0:
        raise Damaged(key, f"is {v}, not a positive number")
    if lo is not None and v < lo:
        raise Damaged(key, f"is {v}, below {lo}")
    return v


def _metrics(v: Any, key: str) -> dict:
    """rmse, mae, maxae (not negative) and r2 (any number); NaN allowed (an undefined R^2)."""
    m = _mapping(v, key)
    for k in METRICS:
        _number(_field(m, k, key), f"{key}.{k}", lo=None if k == "r2" else 0.0, nan_ok=True)
    return m


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
    hint = "re-run `repbench tune` (it rewrites the file from the study), or delete the file"
    try:
        check_best(doc)
    except Damaged as e:
        raise RunDirError(f"tune/best.yaml is damaged: {e.key} {e.problem}", where=str(p),
                          hint=hint) from None
    except ConfigError as e:
        raise RunDirError(f"tune/best.yaml holds an invalid representation or kernel: {e.message}",
                          where=str(p), hint=hint) from None
    return Best(**{k: doc[k] for k in Best.__dataclass_fields__ if k in doc})


def check_best(doc: dict) -> None:
    """Raise :class:`Damaged` (or :class:`~repbench.errors.ConfigError` for an invalid representation or
    kernel) unless every value of a ``tune/best.yaml`` document has its type and range."""
    from .config import check_concrete

    _string(doc["study_hash"], "study_hash")
    for k in ("study", "loss_kind", "loss_unit"):
        if k in doc:
            _string(doc[k], k)
    if "trial" in doc:
        _number(doc["trial"], "trial", integer=True)
    if "loss" in doc:
        _number(doc["loss"], "loss", nan_ok=True)
    if "trials" in doc:
        _mapping(doc["trials"], "trials")
    krr = doc["krr"]
    _number(krr["length_scale"], "krr.length_scale", positive=True, none_ok=True)
    _number(krr["regularization"], "krr.regularization", positive=True)
    rep = doc["representation"]
    if not isinstance(next(iter(rep)), str):
        raise Damaged("representation", f"is {short(rep)}, not one representation")
    check_concrete(rep, doc["kernel"], "tune/best.yaml")


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
    condition: lower bound of the condition number of the fit's ``K + reg I`` (None: not known).
    uncertainty: calibration of the predictive standard deviation on the test set, report unit: ``nll``
    (mean negative log likelihood), ``coverage_68`` / ``coverage_95`` (fraction inside the central 68% /
    95% intervals), ``mean_std``; None where the regressor gives no standard deviation.
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
    condition: float | None = None
    uncertainty: dict | None = None
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
                  for m in ("metrics", "metrics_report")))
    if not ok:
        log.warning("%s is incomplete or damaged; recomputing it", p)
        return None
    try:
        check_point(doc)
    except Damaged as e:
        log.warning("%s is damaged (%s %s); recomputing it", p, e.key, e.problem)
        return None
    return CurvePoint(**{k: doc[k] for k in CurvePoint.__dataclass_fields__ if k in doc})


def check_point(doc: dict) -> None:
    """Raise :class:`Damaged` unless every value of a finished curve point has its type and range."""
    _number(doc["length_scale"], "length_scale", positive=True, none_ok=True)
    _number(doc["regularization"], "regularization", positive=True)
    _number(doc["refine_loss"], "refine_loss", lo=0.0, none_ok=True, nan_ok=True)
    _number(doc["n_test"], "n_test", integer=True, lo=1)
    _number(doc["seconds"], "seconds", lo=0.0)
    _metrics(doc["metrics"], "metrics")
    _metrics(doc["metrics_report"], "metrics_report")
    if "at_bound" in doc:
        for i, b in enumerate(_list(doc["at_bound"], "at_bound", nonempty=False)):
            _string(b, f"at_bound[{i}]")
    if doc.get("condition") is not None:
        _number(doc["condition"], "condition", lo=1.0 - 1e-9)
    if doc.get("uncertainty") is not None:
        u = _mapping(doc["uncertainty"], "uncertainty")
        for k in ("nll", "coverage_68", "coverage_95", "mean_std"):
            _number(_field(u, k, "uncertainty"), f"uncertainty.{k}")


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


def check_curve(doc: dict) -> None:
    """Raise :class:`Damaged` unless every value of curve.yaml that ``report`` and the plots read has its
    type and range (strings, sizes, every metric of every mean and spread)."""
    for k in ("run", "dataset", "target", "per", "representation", "report_unit"):
        _string(doc[k], k)
    seen = set()
    for i, x in enumerate(doc["sizes"]):
        key = f"sizes[{i}]"
        n = _number(x["size"], f"{key}.size", integer=True, lo=1)
        if n in seen:
            raise Damaged(f"{key}.size", f"{n} appears twice")
        seen.add(n)
        for m in ("mean_report", "std_report", "mean", "std"):
            if m in x or m.endswith("report"):
                _metrics(x[m], f"{key}.{m}")
        if "draws" in x:
            for j, d in enumerate(_list(x["draws"], f"{key}.draws")):
                _mapping(d, f"{key}.draws[{j}]")


def read_curve(run: RunDir) -> dict | None:
    """curve.yaml (None if absent); a damaged one is an error naming the file (and the key)."""
    p = run.curve_yaml
    if not p.exists():
        return None
    doc = read_yaml(p)
    hint = "delete it and re-run `repbench curve` (finished points are kept)"
    if not valid_curve(doc):
        raise RunDirError("curve.yaml is damaged (keys or learning-curve sizes missing)", where=str(p),
                          hint=hint)
    try:
        check_curve(doc)
    except Damaged as e:
        raise RunDirError(f"curve.yaml is damaged: {e.key} {e.problem}", where=str(p), hint=hint) from None
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


def check_timings(doc: dict) -> None:
    """Raise :class:`Damaged` unless every value of timings.yaml that ``report``, ``time`` and the plots read
    has its type and range."""
    _number(doc["representation_timing"]["per_structure_s"], "representation_timing.per_structure_s", lo=0.0)
    for i, x in enumerate(doc["sizes"]):
        key = f"sizes[{i}]"
        _number(x["train_size"], f"{key}.train_size", integer=True, lo=1)
        _number(x["test_size"], f"{key}.test_size", integer=True, lo=0)
        for k in ("kernel_train_train", "kernel_test_train"):
            _number(_field(_mapping(x[k], f"{key}.{k}"), "min_s", f"{key}.{k}"), f"{key}.{k}.min_s", lo=0.0)


def read_timings(run: RunDir) -> dict | None:
    """timings.yaml (None if absent); a damaged one is an error naming the file (and the key)."""
    p = run.timings_yaml
    if not p.exists():
        return None
    doc = read_yaml(p)
    if not valid_timings(doc):
        raise RunDirError("timings.yaml is damaged (keys missing)", where=str(p),
                          hint="delete it and re-run `repbench time`")
    try:
        check_timings(doc)
    except Damaged as e:
        raise RunDirError(f"timings.yaml is damaged: {e.key} {e.problem}", where=str(p),
                          hint="delete it and re-run `repbench time`") from None
    return doc


def timings_current(run: RunDir, model_hash: str, sizes: list[int]) -> bool:
    """Whether timings.yaml exists and was measured for this model at these sizes."""
    try:
        doc = read_timings(run)
    except RunDirError as e:
        log.warning("%s; measuring again", e.format())
        return False
    return (doc is not None and doc.get("format") == FORMAT and doc.get("model_hash") == model_hash
            and [int(r["train_size"]) for r in doc["sizes"]] == list(sizes))


def write_timings(run: RunDir, doc: dict) -> None:
    write_yaml(run.timings_yaml, {"format": FORMAT, **{k: v for k, v in doc.items() if k != "format"}},
               header="# timings written by `repbench time`; seconds; format documented in docs/formats.md")



# --------------------------------------------------------------------------- curve/<size>-<draw>.predictions.npz
#: arrays of a predictions file: test indices (into the run's structures), true values, predictions and
#: predictive standard deviations (modelled unit; std NaN where the regressor gives none)
PREDICTION_ARRAYS = ("test", "y", "pred", "std")


def write_predictions(run: RunDir, size: int, draw: int, model_hash: str, arrays: dict) -> None:
    """The per-structure test predictions of a point (written before the point, so that a finished point
    of this repbench always has them; compact: float64 arrays in one ``.npz``)."""
    import numpy as np

    from .rundir import atomic_path

    with atomic_path(run.predictions_path(size, draw)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, model_hash=np.array(model_hash), format=np.array(FORMAT),
                     **{k: np.asarray(arrays[k]) for k in PREDICTION_ARRAYS})


def read_predictions(run: RunDir, size: int, draw: int, model_hash: str) -> dict | None:
    """The predictions of point (size, draw) if they exist and belong to ``model_hash``; a damaged file
    is an error naming it."""
    import numpy as np

    p = run.predictions_path(size, draw)
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            if str(z["model_hash"]) != model_hash:
                return None
            out = {k: z[k] for k in PREDICTION_ARRAYS}
    except (OSError, ValueError, KeyError) as e:
        raise RunDirError(f"{p.name} is damaged ({e.__class__.__name__})", where=str(p),
                          hint="delete it and its point file, then re-run `repbench curve`") from None
    n = len(out["test"])
    if any(out[k].shape != (n,) for k in PREDICTION_ARRAYS):
        raise RunDirError(f"{p.name} is damaged (arrays of different lengths)", where=str(p),
                          hint="delete it and its point file, then re-run `repbench curve`")
    return out
