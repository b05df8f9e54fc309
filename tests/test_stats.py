"""Paired bootstrap and calibration statistics against brute force and known distributions."""

from __future__ import annotations

import numpy as np
import pytest

from repbench.stats import calibration_curve, coverage, gaussian_nll, paired_difference


def _data(seed=0, nd=3, nt=400, shift=0.0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=nt)
    hard = rng.gamma(2.0, size=nt)  # per-structure difficulty shared by both models
    pa = y + rng.normal(size=(nd, nt)) * hard
    pb = y + rng.normal(size=(nd, nt)) * hard * (1 + shift)
    return y, pa, pb


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_observed_difference_is_the_pooled_metric(metric):
    y, pa, pb = _data()
    r = paired_difference(y, pa, pb, metric=metric, n_boot=200)
    f = (lambda e: np.abs(e).mean()) if metric == "mae" else (lambda e: np.sqrt((e**2).mean()))
    assert r.a == pytest.approx(f(pa - y)) and r.b == pytest.approx(f(pb - y))
    assert r.diff == pytest.approx(r.a - r.b)
    assert r.lo <= r.diff <= r.hi


def test_bootstrap_matches_a_brute_force_resample():
    """The vectorised resampling equals an explicit loop with the same random numbers."""
    y, pa, pb = _data(nd=2, nt=50)
    r = paired_difference(y, pa, pb, n_boot=300, seed=7)
    rng = np.random.default_rng(7)
    idx_d = [rng.integers(0, 2, 2) for _ in range(300)]
    idx_i = [rng.integers(0, 50, 50) for _ in range(300)]
    diffs = []
    for d, i in zip(idx_d, idx_i):
        sub = np.ix_(d, i)
        diffs.append(np.abs(pa - y)[sub].mean() - np.abs(pb - y)[sub].mean())
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    assert (r.lo, r.hi) == pytest.approx((lo, hi), rel=1e-12)


def test_resolved_only_when_the_models_differ():
    y, pa, pb = _data(shift=0.3)
    r = paired_difference(y, pa, pb)
    assert r.resolved and r.better == "a" and r.hi < 0
    y, pa, pb = _data(shift=0.0, seed=3)
    same = paired_difference(y, pa, pa.copy())
    assert same.diff == 0 and not same.resolved and same.better is None


def test_pairing_is_more_sensitive_than_overlapping_error_bars():
    """A small systematic gain that per-run error bars over draws cannot resolve is resolved by pairing."""
    y, pa, _ = _data(nd=2, nt=500, seed=11)
    pa = y + (pa - y) * np.array([[0.7], [1.3]])  # draws differ much (small training sets do)
    pb = y + (pa - y) * 1.05  # B is 5% worse on every structure
    r = paired_difference(y, pa, pb)
    assert r.resolved and r.better == "a"
    ma, mb = np.abs(pa - y).mean(axis=1), np.abs(pb - y).mean(axis=1)
    assert abs(ma.mean() - mb.mean()) < ma.std(ddof=1) + mb.std(ddof=1)  # the error bars overlap


def test_bad_inputs():
    y, pa, pb = _data()
    with pytest.raises(ValueError, match="predictions"):
        paired_difference(y, pa, pb[:, :-1])
    with pytest.raises(ValueError, match="metric"):
        paired_difference(y, pa, pb, metric="r2")
    pa[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        paired_difference(y, pa, pb)


def test_calibration_of_a_calibrated_gaussian():
    rng = np.random.default_rng(0)
    n = 200_000
    mean = rng.normal(size=n)
    std = rng.uniform(0.5, 2.0, size=n)
    y = mean + std * rng.normal(size=n)
    assert coverage(y, mean, std, 0.68) == pytest.approx(0.68, abs=0.005)
    assert coverage(y, mean, std, 0.95) == pytest.approx(0.95, abs=0.003)
    nominal, observed = calibration_curve(y, mean, std)
    assert np.abs(nominal - observed).max() < 0.01
    # NLL of N(0, s^2) data: 0.5 + log s + 0.5 log 2 pi on average
    expected = np.mean(0.5 + np.log(std) + 0.5 * np.log(2 * np.pi))
    assert gaussian_nll(y, mean, std) == pytest.approx(expected, abs=0.01)
    # over-confident intervals cover less
    assert coverage(y, mean, std / 2, 0.95) < 0.8


def test_interval_covers_the_true_difference_at_the_stated_rate():
    """Synthetic test sets drawn from a known population: the 95% interval of the paired MAE difference
    covers the population's difference in 95% of the replicates (within 5 percentage points)."""
    rng = np.random.default_rng(42)
    nt, reps, scale_b = 300, 200, 1.15
    # population: |error| = s |z|, s ~ Gamma(2, 1) per structure, z standard normal per model
    true = 2.0 * np.sqrt(2 / np.pi) * (1 - scale_b)
    hits = 0
    for r in range(reps):
        s = rng.gamma(2.0, size=nt)
        y = np.zeros(nt)
        pa = (s * rng.normal(size=nt))[None, :]
        pb = (s * scale_b * rng.normal(size=nt))[None, :]
        res = paired_difference(y, pa, pb, n_boot=400, seed=r)
        hits += res.lo <= true <= res.hi
    assert abs(hits / reps - 0.95) <= 0.05, hits / reps
