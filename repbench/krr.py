"""Kernel ridge regression: fit, predict, many regularisation values at once, and the KRR grid search.

Pure numerics.  The model is ``alpha = (K + reg I)^-1 y`` and ``y_pred = K_test_train @ alpha``, which is
what scikit-learn's ``KernelRidge(kernel="precomputed", alpha=reg)`` computes (the tests check it).

* :func:`fit` solves by Cholesky (scipy ``cho_factor``); a matrix that is not positive definite raises
  :class:`KRRError` (a ``ValueError``) that says so and suggests a larger regularisation.
* :class:`EigenSolver` diagonalises a symmetric ``K = V diag(w) V^T`` once; then every regularisation value
  costs O(n^2): ``alpha(reg) = V diag(1 / (w + reg)) V^T y``.  Leave-one-out predictions come for free.
* :func:`grid_search` is the paper's "local grid search" over (log2 length scale, log2 regularisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from .baselines import Baseline

__all__ = ["KRRError", "cholesky", "condition_estimate", "fit", "fit_factored", "predict", "EigenSolver", "GridResult", "grid_search"]

_EPS = np.finfo(np.float64).eps


class KRRError(ValueError):
    """A kernel ridge regression cannot be solved (not positive definite, non-finite values)."""


def _square(K: Any, name: str = "K") -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {K.shape}")
    return K


def _targets(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"y must have {n} rows (one per training structure), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise KRRError("training targets contain NaN or infinite values")
    return y


def cholesky(K: Any, reg: float) -> tuple[np.ndarray, bool]:
    """The Cholesky factor of ``K + reg I`` as scipy's ``cho_factor`` returns it (lower triangle valid).

    Raises :class:`KRRError` when the matrix is not positive definite or holds non-finite values.
    """
    K = _square(K)
    reg = float(reg)
    if not np.isfinite(reg) or reg < 0:
        raise ValueError(f"regularisation must be a non-negative number, got {reg}")
    A = np.array(K, dtype=np.float64, copy=True)
    A.flat[:: A.shape[0] + 1] += reg
    try:
        return scipy.linalg.cho_factor(A, lower=True, overwrite_a=True, check_finite=True)
    except np.linalg.LinAlgError:
        raise KRRError(f"kernel matrix plus regularisation {reg:.3g} is not positive definite "
                       f"(n = {K.shape[0]}); use a larger regularisation") from None
    except ValueError as exc:  # non-finite entries
        raise KRRError(f"kernel matrix contains NaN or infinite values ({exc})") from None


def condition_estimate(factor: tuple[np.ndarray, bool]) -> float:
    """A cheap lower bound of the condition number of ``K + reg I`` from its Cholesky factor:
    ``(max L_ii / min L_ii)^2``.  Above about ``1e12`` float64 leaves fewer than four correct digits in
    the solution (relative error ~ condition x 2.2e-16)."""
    d = np.abs(np.diag(factor[0]))
    return float((d.max() / d.min()) ** 2) if d.size and d.min() > 0 else float("inf")


def fit(K: Any, y: Any, reg: float) -> np.ndarray:
    """``alpha = (K + reg I)^-1 y`` by Cholesky.  ``y`` may be ``(n,)`` or ``(n, m)``."""
    K = _square(K)
    y = _targets(y, K.shape[0])
    return scipy.linalg.cho_solve(cholesky(K, reg), y, check_finite=False)


def fit_factored(factor: tuple[np.ndarray, bool], y: Any) -> np.ndarray:
    """``alpha`` from a factor of :func:`cholesky`."""
    y = _targets(y, factor[0].shape[0])
    return scipy.linalg.cho_solve(factor, y, check_finite=False)


def predict(K_test_train: Any, alpha: Any) -> np.ndarray:
    """``K_test_train @ alpha``."""
    Kt = np.asarray(K_test_train, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    if Kt.ndim != 2 or Kt.shape[1] != alpha.shape[0]:
        raise ValueError(f"K_test_train {Kt.shape} does not match alpha {alpha.shape}")
    return Kt @ alpha


class EigenSolver:
    """One eigendecomposition of a symmetric kernel matrix, then any number of regularisation values.

    A regularisation value ``reg`` counts as positive definite when ``min(w) + reg`` exceeds
    ``n * eps * max|w|`` (below that the solve is dominated by rounding, where a Cholesky fails or is
    meaningless); :meth:`alphas` and :meth:`predict_many` raise :class:`KRRError` for such values,
    :meth:`positive_definite` tells which ones they are.
    """

    def __init__(self, K: Any):
        K = _square(K)
        if not np.all(np.isfinite(K)):
            raise KRRError("kernel matrix contains NaN or infinite values")
        self.n = K.shape[0]
        try:
            self.w, self.V = scipy.linalg.eigh(K, driver="evd", check_finite=False)
        except (np.linalg.LinAlgError, ValueError):  # pragma: no cover - evd rarely fails; evr as fallback
            self.w, self.V = scipy.linalg.eigh(K, check_finite=False)
        self._tol = max(self.n, 1) * _EPS * float(np.max(np.abs(self.w))) if self.n else 0.0

    def positive_definite(self, regs: Sequence[float] | np.ndarray) -> np.ndarray:
        regs = np.atleast_1d(np.asarray(regs, dtype=np.float64))
        if self.n == 0:
            return np.ones(regs.shape, dtype=bool)
        return self.w[0] + regs > self._tol

    def _inverse_eigs(self, regs: Any) -> np.ndarray:
        regs = np.atleast_1d(np.asarray(regs, dtype=np.float64))
        if regs.ndim != 1 or not np.all(np.isfinite(regs)) or np.any(regs < 0):
            raise ValueError(f"regularisations must be non-negative numbers, got {regs}")
        ok = self.positive_definite(regs)
        if not np.all(ok):
            bad = regs[~ok]
            raise KRRError(f"kernel matrix plus regularisation {bad[0]:.3g} is not positive definite "
                           f"(smallest eigenvalue {self.w[0]:.3g}); use a larger regularisation")
        return 1.0 / (self.w[None, :] + regs[:, None])

    def alphas(self, y: Any, regs: Any) -> np.ndarray:
        """``(n_regs, n)`` regression coefficients, one row per regularisation value (``y`` 1-D)."""
        y = _targets(y, self.n)
        if y.ndim != 1:
            raise ValueError("EigenSolver.alphas takes a 1-D y")
        inv = self._inverse_eigs(regs)
        Vty = self.V.T @ y
        return (inv * Vty[None, :]) @ self.V.T

    def predict_many(self, K_test_train: Any, y: Any, regs: Any) -> np.ndarray:
        """``(n_regs, n_test)`` predictions for every regularisation value."""
        Kt = np.asarray(K_test_train, dtype=np.float64)
        if Kt.ndim != 2 or Kt.shape[1] != self.n:
            raise ValueError(f"K_test_train must have {self.n} columns, got shape {Kt.shape}")
        y = _targets(y, self.n)
        inv = self._inverse_eigs(regs)
        Vty = self.V.T @ y
        KtV = Kt @ self.V
        return (inv * Vty[None, :]) @ KtV.T

    def loo_predictions(self, y: Any, regs: Any) -> np.ndarray:
        """``(n_regs, n)`` leave-one-out predictions: ``y_i - alpha_i / [(K + reg I)^-1]_ii``."""
        y = _targets(y, self.n)
        inv = self._inverse_eigs(regs)
        Vty = self.V.T @ y
        alphas = (inv * Vty[None, :]) @ self.V.T
        diag = inv @ (self.V**2).T  # (n_regs, n): diagonal of (K + reg I)^-1
        return y[None, :] - alphas / diag


# --------------------------------------------------------------------------------------------------------
# grid search
# --------------------------------------------------------------------------------------------------------


@dataclass
class GridResult:
    """Outcome of :func:`grid_search`.

    ``table`` has one row per evaluated (length scale, regularisation) pair with keys ``ls``, ``log2_ls``,
    ``reg``, ``log2_reg``, ``rmse``, ``mae``, ``loss`` (``ls``/``log2_ls`` are None for the polynomial
    kernel; losses are ``inf`` where the matrix was not positive definite).  ``at_bound`` names the search
    bounds the optimum sits on ("ls_low", "ls_high", "reg_low", "reg_high"): widen them if it is not empty.
    """

    ls: float | None
    reg: float
    loss: float
    log2_ls: float | None
    log2_reg: float
    rmse: float
    mae: float
    table: list[dict[str, Any]] = field(default_factory=list)
    n_kernel_evals: int = 0
    n_kernel_calls: int = 0
    at_bound: list[str] = field(default_factory=list)
    stopped_flat: bool = False


def _lookup(kmats: dict, key: Any) -> np.ndarray:
    if key in kmats:
        return kmats[key]
    if key is None:
        if len(kmats) == 1:
            return next(iter(kmats.values()))
        raise ValueError("kernels([None]) must return a dict with exactly one kernel matrix")
    for k, v in kmats.items():
        if k is not None and abs(float(k) - key) <= 1e-9 * abs(key):
            return v
    raise ValueError(f"kernels() did not return a matrix for length scale {key!r} "
                     f"(got keys {sorted(kmats, key=lambda k: (k is None, k))})")


def _check_folds(folds: Sequence[tuple[Any, Any]], n_pool: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    if len(folds) == 0:
        raise ValueError("grid_search needs at least one (train, validation) fold")
    for f, (tr, va) in enumerate(folds):
        tr = np.asarray(tr, dtype=np.int64).ravel()
        va = np.asarray(va, dtype=np.int64).ravel()
        if tr.size == 0 or va.size == 0:
            raise ValueError(f"fold {f}: empty training or validation index set")
        for name, idx in (("training", tr), ("validation", va)):
            if idx.min() < 0 or idx.max() >= n_pool:
                raise ValueError(f"fold {f}: {name} indices outside the pool of {n_pool}")
        if np.intersect1d(tr, va).size:
            raise ValueError(f"fold {f}: training and validation indices overlap")
        out.append((tr, va))
    return out


def grid_search(
    kernels: Callable[[list[Any]], dict[Any, np.ndarray]],
    y: Any,
    folds: Sequence[tuple[Any, Any]],
    *,
    ls_start: float | None,
    reg_start: float,
    ls_bounds: tuple[float, float] = (-20, 20),
    reg_bounds: tuple[float, float] = (-40, 0),
    step: float = 1.0,
    loss: str = "rmse",
    polynomial: bool = False,
    lookahead: int = 2,
    baseline: str = "none",
    counts: Any = None,
    flat_tol: float = 0.0,
) -> GridResult:
    """Local grid search of the KRR hyper-parameters (length scale, regularisation) on log2 grids.

    Parameters
    ----------
    kernels : ``kernels(list_of_length_scales) -> {ls: K}``, the POOL x POOL kernel matrix for each requested
        length scale (the caller computes several at once from one distance pass and may cache them).  For
        ``polynomial=True`` it is called once with ``[None]`` and must return a one-entry dict.
    y : targets of the pool, ``(n_pool,)``.
    folds : ``[(train_idx, val_idx), ...]``, index arrays into the pool.  Only these rows are used: models are
        fitted on ``train_idx`` rows and targets only, validation targets are used only to score.
    ls_start : initial length scale (a value, not its log2); required unless ``polynomial``.  A common choice
        is :func:`repbench.kernels.median_length_scale` of the features.
    reg_start : a regularisation value (not its log2): the reg grid is aligned to it, and ties in the loss
        are broken in favour of the value closest to it.
    ls_bounds, reg_bounds : log2 bounds of the search.
    step : grid spacing in log2 units (both axes).  The ls grid is ``log2(ls_start) + k * step``.
    loss : "rmse" or "mae" over the concatenated validation predictions of all folds.
    polynomial : no length scale (polynomial atom kernel): only the regularisation is searched.
    lookahead : when the search moves, this many further grid points in the moving direction are requested
        in the same ``kernels`` call (extra length scales from one distance pass cost little); 1 gives
        the plain neighbour-by-neighbour walk.  The first call requests ``ls_start`` and ``lookahead``
        points on either side.
    baseline, counts : optionally a baseline ("mean", "dressed_atoms") fitted per fold on the training rows
        only (``counts``: pool x elements), subtracted before KRR and added back to the predictions.
    flat_tol : stop walking the length scale when a pass (``lookahead`` further grid points) improved the
        best loss by no more than this fraction (0: walk until no neighbour is better, the paper's rule).
        MBTR's loss can fall by 1e-6 per step over ten steps (an ill-conditioned flat valley); with
        ``flat_tol`` 1e-4 such a walk stops after one more pass.  ``GridResult.stopped_flat`` says so.

    The search
    ----------
    The paper walks on the 2-D grid (log2 ls, log2 reg) from neighbour to best neighbour until none
    improves.  Here, for each length scale, one eigendecomposition per fold gives the validation loss for
    *every* regularisation value on the grid (O(n^2) each), so the regularisation is profiled over its
    whole range at each length scale; the walk then moves along the length-scale axis only, to the best
    evaluated point, until both its neighbours have been evaluated and none is better.  Every point the 2-D
    neighbour search would visit is evaluated, so this finds the same or a better optimum.  Ties (equal
    loss) go to the point nearest the start, then to the smaller length scale / larger regularisation.
    """
    if loss not in ("rmse", "mae"):
        raise ValueError(f"loss must be 'rmse' or 'mae', got {loss!r}")
    if not (step > 0 and np.isfinite(step)):
        raise ValueError(f"step must be positive, got {step}")
    if lookahead < 1:
        raise ValueError("lookahead must be >= 1")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one value per pool structure), got shape {y.shape}")
    n_pool = y.size
    folds_ = _check_folds(folds, n_pool)
    if baseline != "none" and counts is None:
        raise ValueError(f"baseline {baseline!r} needs the element counts of the pool")
    cnt = None if counts is None else np.asarray(counts, dtype=np.float64)
    if cnt is not None and cnt.shape[0] != n_pool:
        raise ValueError(f"counts must have {n_pool} rows, got {cnt.shape}")
    if not (reg_start > 0 and np.isfinite(reg_start)):
        raise ValueError(f"reg_start must be a positive number, got {reg_start}")

    # regularisation grid aligned to reg_start
    lr0 = math.log2(reg_start)
    klo = math.ceil((reg_bounds[0] - lr0) / step - 1e-9)
    khi = math.floor((reg_bounds[1] - lr0) / step + 1e-9)
    if klo > khi:
        raise ValueError(f"no regularisation grid point within log2 bounds {reg_bounds}")
    kr = np.arange(klo, khi + 1)
    log2_regs = lr0 + kr * step
    regs = reg_start * 2.0 ** (kr * step)
    reg_order = np.lexsort((-kr, np.abs(kr)))  # tie-break: nearest reg_start, then larger reg

    # targets and per-fold baselines (training rows only)
    y_val = np.concatenate([y[va] for _, va in folds_])
    if not np.all(np.isfinite(y_val)):
        raise KRRError("validation targets contain NaN or infinite values")
    fold_data = []
    for tr, va in folds_:
        ytr = y[tr]
        off_va = np.zeros(va.size)
        if baseline != "none":
            b = Baseline.make(baseline).fit(cnt[tr], ytr)
            ytr = ytr - b.predict(cnt[tr])
            off_va = b.predict(cnt[va])
        fold_data.append((tr, va, ytr, off_va))

    def evaluate(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RMSE and MAE per regularisation value (inf where not positive definite / non-finite)."""
        K = np.asarray(K)
        if K.shape[0] < n_pool or K.shape[1] < n_pool:
            raise ValueError(f"kernel matrix of shape {K.shape} is smaller than the pool ({n_pool})")
        preds = np.empty((regs.size, y_val.size))
        ok = np.ones(regs.size, dtype=bool)
        pos = 0
        for tr, va, ytr, off_va in fold_data:
            Ktr = K[np.ix_(tr, tr)]
            Kva = K[np.ix_(va, tr)]
            if not (np.all(np.isfinite(Ktr)) and np.all(np.isfinite(Kva))):
                ok[:] = False
                break
            solver = EigenSolver(Ktr)
            pd = solver.positive_definite(regs)
            ok &= pd
            if pd.any():
                preds[pd, pos:pos + va.size] = solver.predict_many(Kva, ytr, regs[pd]) + off_va[None, :]
            pos += va.size
        rmse = np.full(regs.size, np.inf)
        mae = np.full(regs.size, np.inf)
        if ok.any():
            err = preds[ok] - y_val[None, :]
            rmse[ok] = np.sqrt(np.mean(err**2, axis=1))
            mae[ok] = np.mean(np.abs(err), axis=1)
        bad = ~np.isfinite(rmse) | ~np.isfinite(mae)
        rmse[bad] = np.inf
        mae[bad] = np.inf
        return rmse, mae

    table: list[dict[str, Any]] = []
    results: dict[int, tuple[float, int, np.ndarray, np.ndarray]] = {}  # k -> (loss, reg index, rmse, mae)
    n_evals = 0
    n_calls = 0

    def best_reg(rmse: np.ndarray, mae: np.ndarray) -> tuple[float, int]:
        lv = rmse if loss == "rmse" else mae
        i = int(reg_order[np.argmin(lv[reg_order])])  # first minimum in tie-break order
        return float(lv[i]), i

    def record(k: int | None, ls: float | None, rmse: np.ndarray, mae: np.ndarray) -> None:
        for i in range(regs.size):
            table.append({
                "ls": ls, "log2_ls": None if ls is None else math.log2(ls),
                "reg": float(regs[i]), "log2_reg": float(log2_regs[i]),
                "rmse": float(rmse[i]), "mae": float(mae[i]),
                "loss": float(rmse[i] if loss == "rmse" else mae[i]),
            })

    if polynomial:
        kmats = kernels([None])
        n_calls, n_evals = 1, 1
        rmse, mae = evaluate(_lookup(kmats, None))
        record(None, None, rmse, mae)
        lv, i = best_reg(rmse, mae)
        if not np.isfinite(lv):
            raise KRRError("no regularisation value gave a finite validation loss "
                           "(kernel matrix not positive definite or not finite)")
        at = [b for b, cond in (("reg_low", i == 0), ("reg_high", i == regs.size - 1)) if cond]
        return GridResult(None, float(regs[i]), lv, None, float(log2_regs[i]), float(rmse[i]), float(mae[i]),
                          table, n_evals, n_calls, at)

    if ls_start is None:
        raise ValueError("ls_start is required (e.g. repbench.kernels.median_length_scale of the features)")
    if not (ls_start > 0 and np.isfinite(ls_start)):
        raise ValueError(f"ls_start must be a positive number, got {ls_start}")
    l0 = math.log2(ls_start)
    kmin = math.ceil((ls_bounds[0] - l0) / step - 1e-9)
    kmax = math.floor((ls_bounds[1] - l0) / step + 1e-9)
    if kmin > kmax:
        raise ValueError(f"no length-scale grid point within log2 bounds {ls_bounds}")

    def ls_of(k: int) -> float:
        # ls_start * 2^(k step): exact power-of-two ratios (for integer k * step) let the kernel code derive
        # one length scale's exponentials from another's by squaring
        return float(ls_start * 2.0 ** (k * step))

    def request(ks: list[int]) -> None:
        nonlocal n_evals, n_calls
        ks = sorted({k for k in ks if kmin <= k <= kmax and k not in results})
        if not ks:
            return
        values = [ls_of(k) for k in ks]
        kmats = kernels(values)
        n_calls += 1
        n_evals += len(ks)
        for k, v in zip(ks, values):
            rmse, mae = evaluate(_lookup(kmats, v))
            record(k, v, rmse, mae)
            lv, i = best_reg(rmse, mae)
            results[k] = (lv, i, rmse, mae)

    k_start = min(max(0, kmin), kmax)
    request([k_start + j for j in range(-lookahead, lookahead + 1)])
    stopped_flat = False
    previous = None
    while True:
        kb = min(results, key=lambda k: (results[k][0], abs(k - k_start), k))
        missing = [kb + s for s in (-1, 1) if kmin <= kb + s <= kmax and kb + s not in results]
        if not missing:
            break
        best_loss = results[kb][0]
        if (flat_tol > 0 and previous is not None and np.isfinite(previous)
                and previous - best_loss <= flat_tol * abs(previous)):
            # the last pass improved the loss by less than flat_tol (relative): the valley is flat, and
            # walking on would buy nothing but kernel passes
            stopped_flat = True
            break
        previous = best_loss
        ks = []
        for m in missing:
            direction = m - kb
            ks += [kb + direction * j for j in range(1, lookahead + 1)]
        request(ks)

    lv, i, rmse, mae = results[kb]
    if not np.isfinite(lv):
        raise KRRError("no (length scale, regularisation) pair gave a finite validation loss "
                       "(kernel matrices not positive definite or not finite)")
    at = [b for b, cond in (("ls_low", kb == kmin), ("ls_high", kb == kmax),
                            ("reg_low", i == 0), ("reg_high", i == regs.size - 1)) if cond]
    return GridResult(ls_of(kb), float(regs[i]), lv, l0 + kb * step, float(log2_regs[i]), float(rmse[i]),
                      float(mae[i]), table, n_evals, n_calls, at, stopped_flat)
