"""Splits: deterministic, stratified, and no test index ever reaches tuning or training."""

import numpy as np
import pytest

from repbench.errors import ConfigError
from repbench.splits import make_splits, shuffle_splits, stratified_sample, subset_indices, rng_for


def _splits(n=1000, seed=0, predefined=None, **kw):
    rng = np.random.default_rng(123)
    values = rng.normal(size=n)
    args = dict(seed=seed, test=200, predefined_test=predefined, train_sizes=[50, 100, 400], draws=3,
                tune_train=300, tune_val=100, inner_folds=3, inner_val_fraction=0.2)
    args.update(kw)
    return values, make_splits(n, values, **args)


def test_deterministic_from_seed():
    _, a = _splits(seed=5)
    _, b = _splits(seed=5)
    _, c = _splits(seed=6)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.train[100][2], b.train[100][2])
    assert not np.array_equal(a.test, c.test)


def test_no_test_index_reaches_training_or_tuning():
    _, sp = _splits()
    test = set(sp.test.tolist())
    assert len(test) == 200
    assert test.isdisjoint(sp.all_training_indices().tolist())
    assert test.isdisjoint(sp.pool.tolist())
    for size, draws in sp.inner.items():
        for folds in draws:
            for tr, va in folds:
                assert test.isdisjoint(tr.tolist()) and test.isdisjoint(va.tolist())
    for tr, va in sp.tune_folds:
        assert test.isdisjoint(tr.tolist()) and test.isdisjoint(va.tolist())
        assert set(tr.tolist()).isdisjoint(va.tolist())
        assert len(tr) == 300 and len(va) == 100


def test_nested_draws_and_inner_splits_within_draw():
    _, sp = _splits()
    for d in range(3):
        assert set(sp.train[50][d]) <= set(sp.train[100][d]) <= set(sp.train[400][d])
        for s in (50, 100, 400):
            assert len(np.unique(sp.train[s][d])) == s
            for tr, va in sp.inner[s][d]:
                assert set(tr) | set(va) == set(sp.train[s][d])
                assert set(tr).isdisjoint(va)
    assert not np.array_equal(sp.train[400][0], sp.train[400][1])


def test_predefined_test_part_is_the_test_set():
    pre = np.arange(900, 1000)
    _, sp = _splits(predefined=pre)
    assert np.array_equal(sp.test, pre)
    assert set(pre.tolist()).isdisjoint(sp.all_training_indices().tolist())


def test_stratified_sample_covers_the_range():
    values = np.arange(10000, dtype=float)
    idx = stratified_sample(rng_for(0, "test"), np.arange(10000), values, 10)
    # one from each decile
    assert np.array_equal(np.sort(idx // 1000), np.arange(10))


def test_shuffle_splits_sizes():
    folds = shuffle_splits(rng_for(0, "inner"), np.arange(100), None, 4, 0.25)
    assert len(folds) == 4 and all(len(v) == 25 and len(t) == 75 for t, v in folds)


def test_too_large_training_size_is_a_config_error():
    with pytest.raises(ConfigError, match="train_sizes"):
        _splits(train_sizes=[50, 900])


def test_subset_keeps_predefined_test():
    pre = np.arange(90, 100)
    idx = subset_indices(100, 20, 0, pre)
    assert set(pre) <= set(idx) and len(idx) == 30
