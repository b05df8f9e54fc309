"""Regressor components: objects with ``fit`` / ``predict`` on precomputed kernels, and their registry.

The contract (scikit-learn's, on precomputed kernels)::

    reg = REGRESSORS["krr"](regularization=1e-8, **params)
    reg.fit(K_train_train, y_train)                 # returns reg
    y = reg.predict(K_test_train)                   # (n_test,)
    y, std = reg.predict(K_test_train, return_std=True, K_test_diag=k_xx)   # where supported

A regressor class also says whether it can take part in the KRR-style hyper-parameter refinement
(:meth:`Regressor.refine`): the built-in ``krr`` profiles every regularisation value per length scale
from one eigendecomposition (:func:`repbench.krr.grid_search`).  Plugins register a :class:`Regressor`
subclass under the entry-point group ``repbench.regressors``.  Baselines (:mod:`repbench.baselines`) are
fitted around any regressor by the model layer, not by the regressor.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import scipy.linalg

from .. import krr
from ..errors import ConfigError
from ..registry import Registry, expects


class Regressor:
    """Base class of regressors on precomputed kernels (see the module docstring)."""

    name: str = ""
    #: whether ``predict(..., return_std=True)`` works
    has_std: bool = False

    def __init__(self, regularization: float, **params: Any):
        self.regularization = float(regularization)
        self.params = params

    @classmethod
    def validate(cls, params: dict | None, where: str) -> dict:
        """Validated parameters with defaults (besides the regularisation); default: none allowed."""
        if params:
            raise ConfigError(f"{where}: unknown parameter {next(iter(params))!r}",
                              hint=f"the {cls.name} regressor takes no parameters")
        return {}

    @classmethod
    def summary(cls) -> str:
        return ((cls.__doc__ or "").strip().splitlines() or [""])[0]

    def fit(self, K: np.ndarray, y: np.ndarray) -> "Regressor":
        raise NotImplementedError

    def predict(self, K_test_train: np.ndarray, return_std: bool = False,
                K_test_diag: np.ndarray | None = None):
        raise NotImplementedError

    @classmethod
    def refine(cls, kernels: Callable[[list], dict], y: np.ndarray, folds: Sequence, **kw) -> krr.GridResult:
        """Search (length scale, regularisation) on ``folds``; see :func:`repbench.krr.grid_search`."""
        raise ConfigError(f"the {cls.name} regressor cannot refine its hyper-parameters",
                          hint="set krr.refine: false (and curve.refine: false) and give krr.length_scale "
                               "and krr.regularization")


class KRR(Regressor):
    """Kernel ridge regression (Cholesky), the paper's method; also the GP posterior mean and std."""

    name = "krr"
    has_std = True

    def fit(self, K: np.ndarray, y: np.ndarray) -> "KRR":
        """Fit on the training kernel ``K`` and targets ``y``; sets ``alpha_``, ``amplitude_`` (the
        maximum-likelihood signal variance of the equivalent Gaussian process, ``y.alpha / n``, in target
        units squared) and ``condition_`` (a lower bound of the condition number of ``K + reg I``)."""
        y = np.asarray(y, dtype=np.float64)
        self._factor = krr.cholesky(K, self.regularization)
        self.alpha_ = krr.fit_factored(self._factor, y)
        self.amplitude_ = float(y @ self.alpha_ / max(1, y.size))
        self.condition_ = krr.condition_estimate(self._factor)
        return self

    def predict(self, K_test_train: np.ndarray, return_std: bool = False,
                K_test_diag: np.ndarray | None = None):
        """Predictions; with ``return_std`` also the predictive standard deviation of the equivalent
        Gaussian process (noise variance = regularisation, signal variance = ``amplitude_``)::

            std = sqrt(amplitude_ * (k(x,x) - k_x^T (K + reg I)^-1 k_x + reg))

        ``K_test_diag`` = k(x,x) of each test structure.  Computed from the factorisation of the fit (one
        triangular solve, no further kernel)."""
        pred = krr.predict(K_test_train, self.alpha_)
        if not return_std:
            return pred
        if K_test_diag is None:
            raise ValueError("return_std needs K_test_diag (the kernel of each test structure with itself)")
        v = scipy.linalg.solve_triangular(self._factor[0], np.asarray(K_test_train, dtype=np.float64).T,
                                          lower=True, check_finite=False)
        var = np.asarray(K_test_diag, dtype=np.float64) - np.einsum("ij,ij->j", v, v) + self.regularization
        return pred, np.sqrt(np.maximum(self.amplitude_ * var, 0.0))

    @classmethod
    def refine(cls, kernels, y, folds, **kw) -> krr.GridResult:
        return krr.grid_search(kernels, y, folds, **kw)


#: name -> :class:`Regressor` subclass; plugins through the entry-point group ``repbench.regressors``.
REGRESSORS: Registry = Registry("regressor", {"krr": KRR}, check=expects(Regressor, instance=False))

__all__ = ["Regressor", "KRR", "REGRESSORS"]
