"""Kernel ridge regression, the eigen solver, the KRR grid search and the baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from repbench import krr
from repbench.baselines import BASELINE_KINDS, Baseline, fit_baseline
from repbench.krr import EigenSolver, GridResult, KRRError, fit, grid_search, predict


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny matrices: a second BLAS thread only adds waiting when the (shared) machine is busy."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _gauss(X, Y, ls):
    return np.exp(-cdist(X, Y, "sqeuclidean") / (2 * ls * ls))


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2] + 0.05 * rng.normal(size=120)
    return X, y


# ---------------------------------------------------------------------------------------------- fit


@pytest.mark.parametrize("reg", [1e-6, 1e-3, 0.1, 10.0])
def test_fit_predict_match_sklearn(problem, reg):
    KernelRidge = pytest.importorskip("sklearn.kernel_ridge").KernelRidge
    X, y = problem
    tr, te = np.arange(90), np.arange(90, 120)
    K = _gauss(X[tr], X[tr], 1.5)
    Kt = _gauss(X[te], X[tr], 1.5)
    alpha = fit(K, y[tr], reg)
    ours = predict(Kt, alpha)
    skl = KernelRidge(kernel="precomputed", alpha=reg).fit(K, y[tr])
    np.testing.assert_allclose(alpha, skl.dual_coef_, rtol=1e-8, atol=1e-8 * np.abs(alpha).max())
    np.testing.assert_allclose(ours, skl.predict(Kt), rtol=1e-8, atol=1e-8)
    # the eigen path gives the same predictions
    eig = EigenSolver(K).predict_many(Kt, y[tr], [reg])[0]
    np.testing.assert_allclose(eig, skl.predict(Kt), rtol=1e-8, atol=1e-8)


def test_fit_two_dimensional_targets(problem):
    X, y = problem
    K = _gauss(X, X, 1.0)
    Y = np.stack([y, 2 * y + 1], axis=1)
    A = fit(K, Y, 1e-3)
    np.testing.assert_allclose(A[:, 0], fit(K, y, 1e-3))
    np.testing.assert_allclose(A[:, 1], fit(K, 2 * y + 1, 1e-3))


def test_fit_raises_clear_error_when_not_positive_definite():
    K = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3, -1
    with pytest.raises(KRRError, match="not positive definite.*larger regularisation"):
        fit(K, [1.0, 2.0], 1e-3)
    assert issubclass(KRRError, ValueError)
    np.testing.assert_allclose(fit(K, [1.0, 2.0], 2.0), np.linalg.solve(K + 2 * np.eye(2), [1.0, 2.0]))
    with pytest.raises(KRRError, match="NaN"):
        fit(np.array([[1.0, np.nan], [np.nan, 1.0]]), [1.0, 2.0], 1.0)
    with pytest.raises(KRRError, match="NaN"):
        fit(np.eye(2), [1.0, np.inf], 1.0)
    with pytest.raises(ValueError, match="square"):
        fit(np.zeros((2, 3)), [1.0, 2.0], 1.0)


# -------------------------------------------------------------------------------------------- eigen


def test_eigen_equals_cholesky_for_every_reg(problem):
    X, y = problem
    K = _gauss(X[:80], X[:80], 0.8)
    Kt = _gauss(X[80:], X[:80], 0.8)
    regs = 2.0 ** np.arange(-20, 3)
    es = EigenSolver(K)
    A = es.alphas(y[:80], regs)
    P = es.predict_many(Kt, y[:80], regs)
    assert A.shape == (regs.size, 80) and P.shape == (regs.size, 40)
    for i, reg in enumerate(regs):
        a = fit(K, y[:80], reg)
        # agreement limited by the conditioning of K + reg I
        cond = (np.linalg.eigvalsh(K)[-1] + reg) / reg
        tol = max(1e-10, 1e-15 * cond)
        np.testing.assert_allclose(A[i], a, rtol=0, atol=tol * np.abs(a).max())
        np.testing.assert_allclose(P[i], predict(Kt, a), rtol=0, atol=tol * np.abs(predict(Kt, a)).max())


def test_eigen_rejects_non_positive_definite():
    K = np.array([[1.0, 2.0], [2.0, 1.0]])
    es = EigenSolver(K)
    assert list(es.positive_definite([0.5, 2.0])) == [False, True]
    with pytest.raises(KRRError, match="not positive definite"):
        es.alphas([1.0, 2.0], [0.5, 2.0])
    with pytest.raises(KRRError):
        EigenSolver(np.array([[np.nan]]))


def test_loo_predictions_match_refits(problem):
    X, y = problem
    n = 40
    K = _gauss(X[:n], X[:n], 1.0)
    regs = [1e-4, 1e-2]
    loo = EigenSolver(K).loo_predictions(y[:n], regs)
    for r, reg in enumerate(regs):
        for i in (0, 17, 39):
            keep = np.delete(np.arange(n), i)
            a = fit(K[np.ix_(keep, keep)], y[keep], reg)
            assert loo[r, i] == pytest.approx(K[i, keep] @ a, rel=1e-7, abs=1e-9)


# ------------------------------------------------------------------------------------- grid search


def _folds(n, k, rng):
    perm = rng.permutation(n)
    parts = np.array_split(perm, k)
    return [(np.concatenate(parts[:i] + parts[i + 1:]), parts[i]) for i in range(k)]


class _Kernels:
    """kernels() callback over a pool, counting calls and what was requested."""

    def __init__(self, X):
        self.X = X
        self.calls: list[list[float]] = []

    def __call__(self, scales):
        self.calls.append(list(scales))
        return {s: _gauss(self.X, self.X, s) for s in scales}


def _brute_force_grid(X, y, folds, log2_ls, log2_regs, loss="rmse"):
    """Loss table by explicit Cholesky fits on every fold."""
    out = np.empty((len(log2_ls), len(log2_regs)))
    for a, l in enumerate(log2_ls):
        K = _gauss(X, X, 2.0**l)
        for b, r in enumerate(log2_regs):
            errs = []
            for tr, va in folds:
                p = predict(K[np.ix_(va, tr)], fit(K[np.ix_(tr, tr)], y[tr], 2.0**r))
                errs.append(p - y[va])
            e = np.concatenate(errs)
            out[a, b] = np.sqrt(np.mean(e**2)) if loss == "rmse" else np.mean(np.abs(e))
    return out


@pytest.mark.parametrize("loss", ["rmse", "mae"])
def test_grid_search_finds_the_grid_minimum(problem, loss):
    X, y = problem
    rng = np.random.default_rng(1)
    folds = _folds(y.size, 4, rng)
    kern = _Kernels(X)
    res = grid_search(kern, y, folds, ls_start=2.0**3, reg_start=2.0**-10, ls_bounds=(-4, 6),
                      reg_bounds=(-20, 0), loss=loss)
    assert isinstance(res, GridResult)
    log2_ls = np.arange(-4, 7)
    log2_regs = np.arange(-20, 1)
    table = _brute_force_grid(X, y, folds, log2_ls, log2_regs, loss)
    a, b = np.unravel_index(np.argmin(table), table.shape)
    # the problem is unimodal in ls: the local search reaches the global grid minimum
    assert res.log2_ls == log2_ls[a] and res.log2_reg == log2_regs[b]
    assert res.loss == pytest.approx(table[a, b], rel=1e-6)
    assert res.ls == 2.0 ** log2_ls[a] and res.reg == 2.0 ** log2_regs[b]
    # every table row agrees with the brute-force loss
    for row in res.table:
        i = int(row["log2_ls"] - log2_ls[0])
        j = int(row["log2_reg"] - log2_regs[0])
        assert row["loss"] == pytest.approx(table[i, j], rel=1e-6)
    assert res.n_kernel_evals == len({row["ls"] for row in res.table})
    assert res.n_kernel_calls == len(kern.calls) < res.n_kernel_evals  # several ls per call
    # it walked down from ls = 8 and did not evaluate the whole ls range
    assert res.n_kernel_evals < log2_ls.size
    assert res.at_bound == []


def test_grid_search_walk_and_lookahead(problem):
    X, y = problem
    folds = _folds(y.size, 3, np.random.default_rng(2))
    r1 = grid_search(_Kernels(X), y, folds, ls_start=2.0**5, reg_start=1e-4, lookahead=1)
    r3 = grid_search(_Kernels(X), y, folds, ls_start=2.0**5, reg_start=1e-4, lookahead=3)
    assert (r1.ls, r1.reg) == (r3.ls, r3.reg)
    assert r3.n_kernel_calls < r1.n_kernel_calls
    # plain neighbour walk: one new ls per call after the first (3 points)
    assert r1.n_kernel_evals == r1.n_kernel_calls + 2


def test_grid_search_uses_only_fold_rows(problem, monkeypatch):
    """Rows outside the folds are never read; models are fitted on training rows/targets only."""
    X, y = problem
    n_pool = 100
    rng = np.random.default_rng(3)
    used = rng.permutation(n_pool)[:70]
    folds = [(used[:50], used[50:]), (used[20:], used[:20])]
    y_pool = y[:n_pool].copy()
    unused = np.setdiff1d(np.arange(n_pool), used)
    y_pool[unused] = np.nan  # would poison any loss that touches them

    def kernels(scales):
        out = {}
        for s in scales:
            K = _gauss(X[:n_pool], X[:n_pool], s)
            K[unused, :] = np.nan
            K[:, unused] = np.nan
            out[s] = K
        return out

    seen = []
    real_init, real_pm = EigenSolver.__init__, EigenSolver.predict_many

    def spy_init(self, K):
        seen.append(("K", np.asarray(K).copy()))
        real_init(self, K)

    def spy_pm(self, Kt, yy, regs):
        seen.append(("y", np.asarray(yy).copy()))
        return real_pm(self, Kt, yy, regs)

    monkeypatch.setattr(EigenSolver, "__init__", spy_init)
    monkeypatch.setattr(EigenSolver, "predict_many", spy_pm)
    res = grid_search(kernels, y_pool, folds, ls_start=1.0, reg_start=1e-6)
    assert np.isfinite(res.loss)
    train_targets = [y_pool[tr] for tr, _ in folds]
    ys = [v for kind, v in seen if kind == "y"]
    Ks = [v for kind, v in seen if kind == "K"]
    assert ys and all(any(np.array_equal(v, t) for t in train_targets) for v in ys)
    assert Ks and all(K.shape == (50, 50) for K in Ks)  # training rows of a fold only
    # validation targets changed -> same fitted models (same y passed to the solver), different loss
    y2 = y_pool.copy()
    for _, va in folds:
        y2[va] += 1.0
    seen.clear()
    log2_ls = float(np.log2(res.ls))
    grid_search(kernels, y2, folds, ls_start=res.ls, reg_start=1e-6, ls_bounds=(log2_ls, log2_ls))
    ys2 = [v for kind, v in seen if kind == "y"]
    for v in ys2:
        assert any(np.array_equal(v, y2[tr]) for tr, _ in folds)


def test_grid_search_with_baseline_fits_per_fold(problem):
    X, y = problem
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 5, size=(y.size, 3)).astype(float)
    coef = np.array([10.0, -3.0, 7.0])
    y_big = y + counts @ coef
    folds = _folds(y.size, 3, rng)
    res_b = grid_search(_Kernels(X), y_big, folds, ls_start=1.0, reg_start=1e-6, baseline="dressed_atoms",
                        counts=counts)
    res_0 = grid_search(_Kernels(X), y, folds, ls_start=1.0, reg_start=1e-6, baseline="dressed_atoms",
                        counts=counts)
    res_n = grid_search(_Kernels(X), y_big, folds, ls_start=1.0, reg_start=1e-6)
    # least squares is linear: an exact linear part added to y is removed entirely by the per-fold fit
    assert res_b.loss == pytest.approx(res_0.loss, rel=1e-6)
    assert (res_b.ls, res_b.reg) == (res_0.ls, res_0.reg)
    assert res_n.loss > 2 * res_b.loss  # and without the baseline it is much worse
    with pytest.raises(ValueError, match="counts"):
        grid_search(_Kernels(X), y, folds, ls_start=1.0, reg_start=1e-6, baseline="mean")


def test_grid_search_polynomial_only_reg(problem):
    X, y = problem
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    calls = []

    def kernels(scales):
        calls.append(scales)
        assert scales == [None]
        return {None: (1 + Xn @ Xn.T) ** 2}

    folds = _folds(y.size, 3, np.random.default_rng(5))
    res = grid_search(kernels, y, folds, ls_start=None, reg_start=2.0**-10, polynomial=True,
                      reg_bounds=(-30, 0))
    assert res.ls is None and res.log2_ls is None and len(calls) == 1
    losses = [row["loss"] for row in res.table]
    assert res.loss == min(losses)
    assert len(res.table) == 31


def test_grid_search_ties_and_bounds(problem):
    X, y = problem
    folds = _folds(y.size, 2, np.random.default_rng(6))
    const = np.full(y.size, 3.0)  # constant target: every model predicts nearly the same
    res = grid_search(_Kernels(X), const, folds, ls_start=4.0, reg_start=2.0**-3, ls_bounds=(2, 2),
                      reg_bounds=(-6, -2))
    assert res.log2_ls == 2.0
    again = grid_search(_Kernels(X), const, folds, ls_start=4.0, reg_start=2.0**-3, ls_bounds=(2, 2),
                        reg_bounds=(-6, -2))
    assert (res.ls, res.reg, res.loss) == (again.ls, again.reg, again.loss)
    assert "ls_low" in res.at_bound and "ls_high" in res.at_bound


def test_grid_search_all_non_positive_definite_raises():
    def kernels(scales):
        return {s: -np.eye(6) for s in scales}

    with pytest.raises(KRRError, match="finite validation loss"):
        grid_search(kernels, np.arange(6.0), [(np.arange(4), np.arange(4, 6))], ls_start=1.0,
                    reg_start=1e-3, reg_bounds=(-10, -1), ls_bounds=(-1, 1))


def test_grid_search_input_validation(problem):
    X, y = problem
    k = _Kernels(X)
    with pytest.raises(ValueError, match="overlap"):
        grid_search(k, y, [(np.arange(10), np.arange(5, 15))], ls_start=1.0, reg_start=1e-3)
    with pytest.raises(ValueError, match="outside the pool"):
        grid_search(k, y, [(np.arange(10), np.array([500]))], ls_start=1.0, reg_start=1e-3)
    with pytest.raises(ValueError, match="ls_start"):
        grid_search(k, y, [(np.arange(10), np.arange(10, 20))], ls_start=None, reg_start=1e-3)
    with pytest.raises(ValueError, match="loss"):
        grid_search(k, y, [(np.arange(10), np.arange(10, 20))], ls_start=1.0, reg_start=1e-3, loss="r2")


# ------------------------------------------------------------------------------------------ baselines


def test_dressed_atoms_reproduces_exact_linear_model():
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 9, size=(40, 4)).astype(float)
    coef = np.array([-0.5, -38.0, -54.6, -75.1])
    y = counts @ coef
    b = Baseline.make("dressed_atoms").fit(counts, y, elements=[1, 6, 7, 8])
    np.testing.assert_allclose(b.coef, coef, rtol=1e-10)
    new = rng.integers(0, 9, size=(5, 4)).astype(float)
    np.testing.assert_allclose(b.predict(new), new @ coef, rtol=1e-10)
    d = json.loads(json.dumps(b.to_dict()))
    assert d["kind"] == "dressed_atoms" and d["elements"] == [1, 6, 7, 8]
    b2 = Baseline.from_dict(d)
    np.testing.assert_array_equal(b2.predict(new), b.predict(new))


def test_dressed_atoms_collinear_columns_min_norm():
    # fixed stoichiometry (M2O3): the O column is 1.5 x the metal column
    metal = np.arange(2.0, 12.0, 2.0)
    counts = np.stack([metal, 1.5 * metal], axis=1)
    y = 3.0 * metal
    b = Baseline.make("dressed_atoms").fit(counts, y)
    np.testing.assert_allclose(b.predict(counts), y, rtol=1e-12)
    expected = np.linalg.pinv(counts) @ y
    np.testing.assert_allclose(b.coef, expected, rtol=1e-10)


def _poisoned(a, rows, value):
    out = np.array(a, dtype=np.float64, copy=True)
    out[rows] = value
    return out


@pytest.mark.parametrize("kind", BASELINE_KINDS)
@pytest.mark.parametrize("poison", [np.nan, 1e9, -np.inf])
def test_fit_baseline_reads_only_the_training_rows(kind, poison):
    """fit_baseline gets the FULL arrays and an index; the other rows hold garbage and change nothing."""
    rng = np.random.default_rng(8)
    n = 40
    counts = rng.integers(0, 5, size=(n, 3)).astype(float)
    y = counts @ np.array([1.0, 2.0, 3.0]) + rng.normal(size=n)
    train = rng.permutation(n)[:25]          # scattered and unordered: not a prefix of the rows
    others = np.setdiff1d(np.arange(n), train)
    ref = Baseline.make(kind).fit(counts[train], y[train], elements=[1, 6, 8])
    for c, t in ((_poisoned(counts, others, poison), _poisoned(y, others, poison)),   # both
                 (counts, _poisoned(y, others, poison)),                                # targets only
                 (_poisoned(counts, others, poison), y)):                              # counts only
        got = fit_baseline(kind, c, t, train, elements=[1, 6, 8])
        assert got.to_dict() == ref.to_dict()   # identical fitted coefficients / mean
        np.testing.assert_array_equal(got.predict(counts), ref.predict(counts))
    if kind != "none":
        # the check has teeth: the clean rows outside the index would change the fit
        assert Baseline.make(kind).fit(counts, y).to_dict() != ref.to_dict()
    # the order of the index does not matter (up to rounding), a list works too
    np.testing.assert_allclose(fit_baseline(kind, counts, y, list(train[::-1])).predict(counts),
                               ref.predict(counts), rtol=1e-12, atol=1e-12)


def test_fit_baseline_index_errors():
    counts, y = np.eye(3), np.arange(3.0)
    with pytest.raises(ValueError, match="integer indices"):
        fit_baseline("mean", counts, y, np.array([True, False, True]))
    with pytest.raises(ValueError, match="outside"):
        fit_baseline("mean", counts, y, [0, 3])
    with pytest.raises(ValueError, match="outside"):
        fit_baseline("mean", counts, y, [-1])
    with pytest.raises(ValueError, match="same rows"):
        fit_baseline("mean", counts, y[:2], [0])
    with pytest.raises(ValueError, match="zero structures"):
        fit_baseline("mean", counts, y, np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="finite"):           # a NaN inside the training rows is an error
        fit_baseline("mean", counts, _poisoned(y, [1], np.nan), [0, 1])
    assert Baseline.make("mean").fit(counts[:2], y[:2]).predict(counts[:3]) == pytest.approx([0.5] * 3)
    np.testing.assert_array_equal(Baseline.make("none").fit(counts, y).predict(counts), 0.0)


def test_grid_search_fold_baselines_see_training_rows_only(problem):
    """Per-fold baselines: rows outside the folds may be NaN, validation targets do not enter the fit.

    Validation targets follow another linear model than the training targets, so a baseline fitted on the
    training and validation rows of a fold (or on the whole pool) gives other predictions; the loss table
    must equal a brute-force computation whose baselines see each fold's training rows only.
    """
    X, y = problem
    n_pool = 100
    rng = np.random.default_rng(9)
    counts = rng.integers(0, 5, size=(n_pool, 3)).astype(float)
    used = rng.permutation(n_pool)[:70]
    folds = [(used[:50], used[50:]), (used[20:], used[:20])]
    unused = np.setdiff1d(np.arange(n_pool), used)
    yy = y[:n_pool] + counts @ np.array([10.0, -3.0, 7.0])
    yy[used[50:]] += counts[used[50:]] @ np.array([4.0, 9.0, -6.0])   # validation rows of fold 0
    y_pool, cnt_pool = _poisoned(yy, unused, np.nan), _poisoned(counts, unused, np.nan)
    ls, regs = 2.0, 2.0 ** np.arange(-10, -1)

    def kernels(scales):
        return {s: _gauss(X[:n_pool], X[:n_pool], s) for s in scales}

    res = grid_search(kernels, y_pool, folds, ls_start=ls, reg_start=regs[0], ls_bounds=(1, 1),
                      reg_bounds=(-10, -2), baseline="dressed_atoms", counts=cnt_pool)
    K = _gauss(X[:n_pool], X[:n_pool], ls)
    expected = {}
    for reg in regs:
        errs = []
        for tr, va in folds:
            b = Baseline.make("dressed_atoms").fit(counts[tr], yy[tr])
            p = predict(K[np.ix_(va, tr)], fit(K[np.ix_(tr, tr)], yy[tr] - b.predict(counts[tr]), reg))
            errs.append(p + b.predict(counts[va]) - yy[va])
        expected[float(reg)] = float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))
    assert len(res.table) == len(regs)
    for row in res.table:
        assert row["loss"] == pytest.approx(expected[row["reg"]], rel=1e-7)
    # the check has teeth: a fold-0 baseline that also saw its validation rows predicts differently
    tr0, va0 = folds[0]
    leaky = Baseline.make("dressed_atoms").fit(counts[np.concatenate([tr0, va0])], yy[np.concatenate([tr0, va0])])
    honest = Baseline.make("dressed_atoms").fit(counts[tr0], yy[tr0])
    assert np.abs(leaky.predict(counts[va0]) - honest.predict(counts[va0])).max() > 1.0


def test_baseline_errors():
    with pytest.raises(ValueError, match="unknown baseline"):
        Baseline.make("linear")
    with pytest.raises(RuntimeError, match="before fit"):
        Baseline.make("mean").predict(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="1-D"):
        Baseline.make("mean").fit(np.zeros((3, 1)), np.zeros(2))
    b = Baseline.make("dressed_atoms").fit(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="columns"):
        b.predict(np.zeros((2, 4)))
    for kind in BASELINE_KINDS:
        f = Baseline.make(kind).fit(np.eye(3), np.arange(3.0))
        assert Baseline.from_dict(f.to_dict()).to_dict() == f.to_dict()


def test_module_exports():
    assert set(krr.__all__) >= {"fit", "predict", "EigenSolver", "grid_search", "KRRError", "GridResult"}
