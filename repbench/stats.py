"""Paired comparisons and calibration statistics of test predictions (pure numerics, no I/O).

Two runs evaluated on the same test structures with the same training draws are compared *paired*: the
difference of their errors is computed structure by structure and draw by draw, so that what both models
find hard cancels.  The uncertainty of that difference comes from a two-level bootstrap that resamples the
draws and the test structures (with replacement, independently): a draw-to-draw spread and a finite test
set are the two sources of chance in a learning-curve point.

Calibration: for predictions with a predictive standard deviation (Gaussian), the negative log likelihood,
the coverage of central intervals and the calibration curve (observed against nominal coverage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erfinv

__all__ = ["PairedDifference", "paired_difference", "gaussian_nll", "coverage", "calibration_curve"]


@dataclass(frozen=True)
class PairedDifference:
    """Error of A minus error of B (negative: A is better), with a bootstrap confidence interval.

    metric: "mae" or "rmse"; diff: the observed difference; lo, hi: the ``level`` percentile interval over
    ``n_boot`` resamples; resolved: the interval excludes 0 (the sign of the difference is established at
    that level).
    """

    metric: str
    a: float
    b: float
    diff: float
    lo: float
    hi: float
    level: float
    n_boot: int

    @property
    def resolved(self) -> bool:
        return self.lo > 0 or self.hi < 0

    @property
    def better(self) -> str | None:
        """"a" or "b" when resolved, else None."""
        if not self.resolved:
            return None
        return "a" if self.diff < 0 else "b"


def _check(y: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    pa = np.atleast_2d(np.asarray(pa, dtype=np.float64))
    pb = np.atleast_2d(np.asarray(pb, dtype=np.float64))
    if y.ndim != 1 or pa.shape != pb.shape or pa.shape[1] != y.size:
        raise ValueError(f"predictions must be (draws, n_test) for both runs with n_test = len(y): got "
                         f"{pa.shape}, {pb.shape}, y {y.shape}")
    if not (np.isfinite(y).all() and np.isfinite(pa).all() and np.isfinite(pb).all()):
        raise ValueError("targets and predictions must be finite")
    return y, pa, pb


def paired_difference(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, metric: str = "mae",
                      n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> PairedDifference:
    """Paired difference of ``metric`` (A - B) over draws and test structures, with a bootstrap interval.

    y: ``(n_test,)`` true values; pred_a, pred_b: ``(n_draws, n_test)`` predictions of the two runs for
    the same test structures (same order) and the same training draws.  The metric of a run is pooled over
    all draws and structures (MAE: mean absolute error; RMSE: root of the mean squared error), as the
    learning curve's mean over draws is for MAE.  Each bootstrap resample draws ``n_draws`` draws and
    ``n_test`` structures with replacement and recomputes both metrics on the same resample.
    """
    if metric not in ("mae", "rmse"):
        raise ValueError(f"metric must be 'mae' or 'rmse', got {metric!r}")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    y, pa, pb = _check(y, pred_a, pred_b)
    nd, nt = pa.shape
    if metric == "mae":
        ea, eb = np.abs(pa - y), np.abs(pb - y)
    else:
        ea, eb = (pa - y) ** 2, (pb - y) ** 2
    rng = np.random.default_rng(seed)
    # resample counts: draws (B, nd) and structures (B, nt); the resampled mean of a (nd, nt) array e is
    # sum_d sum_i wd[b, d] e[d, i] wi[b, i] / (nd nt)
    wd = np.stack([np.bincount(rng.integers(0, nd, nd), minlength=nd) for _ in range(n_boot)]).astype(float)
    wi = np.stack([np.bincount(rng.integers(0, nt, nt), minlength=nt) for _ in range(n_boot)]).astype(float)

    def resampled(e: np.ndarray) -> np.ndarray:
        return np.einsum("bi,bi->b", wd @ e, wi) / (nd * nt)

    ma, mb = resampled(ea), resampled(eb)
    a, b = float(ea.mean()), float(eb.mean())
    if metric == "rmse":
        ma, mb, a, b = np.sqrt(ma), np.sqrt(mb), float(np.sqrt(a)), float(np.sqrt(b))
    d = ma - mb
    q = (1 - level) / 2
    lo, hi = np.quantile(d, [q, 1 - q])
    return PairedDifference(metric=metric, a=a, b=b, diff=a - b, lo=float(lo), hi=float(hi), level=level,
                            n_boot=n_boot)


def gaussian_nll(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Mean negative log likelihood of ``y`` under N(mean, std^2) (in the units of ``y``: nats, with the
    log of the unit's scale included)."""
    y, mean, std = (np.asarray(a, dtype=np.float64) for a in (y, mean, std))
    if (std <= 0).any():
        raise ValueError("standard deviations must be positive")
    z = (y - mean) / std
    return float(np.mean(0.5 * z**2 + np.log(std) + 0.5 * np.log(2 * np.pi)))


def _z(p: float) -> float:
    """Half-width in standard deviations of the central Gaussian interval holding fraction ``p``."""
    return float(np.sqrt(2.0) * erfinv(p))


def coverage(y: np.ndarray, mean: np.ndarray, std: np.ndarray, p: float) -> float:
    """Fraction of ``y`` inside the central ``p`` interval of N(mean, std^2) (p = 0.68, 0.95 ...)."""
    y, mean, std = (np.asarray(a, dtype=np.float64) for a in (y, mean, std))
    return float(np.mean(np.abs(y - mean) <= _z(p) * std))


def calibration_curve(y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                      levels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(nominal, observed) coverage of central intervals at ``levels`` (default 0.05 ... 0.95, 0.99).

    A calibrated model lies on the diagonal; below it the intervals are too narrow (over-confident).
    """
    levels = np.r_[np.arange(0.05, 0.951, 0.05), 0.99] if levels is None else np.asarray(levels, float)
    return levels, np.array([coverage(y, mean, std, float(p)) for p in levels])
