"""KRR's predictive standard deviation (the equivalent Gaussian process) against brute force, and its
calibration on data drawn from that Gaussian process."""

from __future__ import annotations

import numpy as np
import pytest

from repbench import krr
from repbench.models.regressor import KRR
from repbench.stats import coverage, gaussian_nll


def _gauss(a, b, ls):
    return np.exp(-((a[:, None] - b[None, :]) ** 2) / (2 * ls**2))


def test_std_equals_the_explicit_formula():
    rng = np.random.default_rng(0)
    x, xt = rng.uniform(0, 5, 60), rng.uniform(0, 5, 25)
    K, Kt, kd = _gauss(x, x, 0.7), _gauss(xt, x, 0.7), np.ones(25)
    y = np.sin(x) + 0.1 * rng.normal(size=60)
    reg = 1e-2
    m = KRR(reg).fit(K, y)
    pred, std = m.predict(Kt, return_std=True, K_test_diag=kd)
    inv = np.linalg.inv(K + reg * np.eye(60))
    s2 = y @ inv @ y / 60
    var = s2 * (kd - np.einsum("ij,jk,ik->i", Kt, inv, Kt) + reg)
    assert pred == pytest.approx(Kt @ inv @ y, rel=1e-9)
    assert std == pytest.approx(np.sqrt(var), rel=1e-8)
    assert m.amplitude_ == pytest.approx(s2, rel=1e-9)
    with pytest.raises(ValueError, match="K_test_diag"):
        m.predict(Kt, return_std=True)


def test_calibrated_on_gaussian_process_data():
    """y ~ GP(0, s2 (K + reg I)): the 68% and 95% intervals cover about 68% and 95% of test points."""
    rng = np.random.default_rng(1)
    hits68, hits95, nll = [], [], []
    for _ in range(20):
        x = rng.uniform(0, 10, 260)
        s2, reg, ls = 4.0, 0.05, 0.8
        C = s2 * (_gauss(x, x, ls) + reg * np.eye(x.size))
        y = np.linalg.cholesky(C) @ rng.normal(size=x.size)
        tr, te = np.arange(200), np.arange(200, 260)
        m = KRR(reg).fit(_gauss(x[tr], x[tr], ls), y[tr])
        pred, std = m.predict(_gauss(x[te], x[tr], ls), return_std=True, K_test_diag=np.ones(te.size))
        hits68.append(coverage(y[te], pred, std, 0.68))
        hits95.append(coverage(y[te], pred, std, 0.95))
        nll.append(gaussian_nll(y[te], pred, std))
    assert np.mean(hits68) == pytest.approx(0.68, abs=0.05)
    assert np.mean(hits95) == pytest.approx(0.95, abs=0.03)


def test_condition_estimate_flags_ill_conditioned_fits():
    x = np.linspace(0, 1, 80)
    K = _gauss(x, x, 5.0)  # nearly rank-deficient
    good = krr.condition_estimate(krr.cholesky(K, 1e-2))
    bad = krr.condition_estimate(krr.cholesky(K, 1e-13))
    assert good < 1e4 < 1e12 < bad
    assert KRR(1e-13).fit(K, np.sin(x)).condition_ == pytest.approx(bad)
