"""Out-of-distribution splits: whole groups held out of training, and size extrapolation; tuning never sees
the test part; the random strategy keeps its config hashes."""

from __future__ import annotations

import numpy as np
import pytest

from repbench import config as C
from repbench.errors import ConfigError
from repbench.prepare import build, size_counts
from repbench.splits import group_labels

BASE = {"name": "s", "seed": 3, "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 600},
        "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1}},
        "splits": {"train_sizes": [50, 100], "draws": 2, "tune_train": 60, "tune_val": 20, "inner_folds": 2}}


def _cfg(**splits):
    return C.from_dict({**BASE, "splits": {**BASE["splits"], **splits}})


def _seen(sp) -> np.ndarray:
    return np.unique(np.concatenate([sp.pool, sp.all_training_indices()]))


def test_random_strategy_keeps_its_hash():
    assert _cfg().hash() == _cfg(strategy="random").hash()
    assert "strategy" not in _cfg().to_dict()["splits"]


@pytest.mark.parametrize("group_by", ["composition", "elements"])
def test_group_split_holds_whole_groups_out(group_by):
    cfg = _cfg(strategy="group", group_by=group_by, holdout_groups=2)
    s, sp = build(cfg)
    labels = group_labels(s, group_by)
    held = set(labels[sp.test])
    assert len(held) == 2 and set(np.nonzero(np.isin(labels, list(held)))[0]) == set(sp.test)
    assert not held & set(labels[_seen(sp)])          # no training draw, tuning set or pool member shares one
    assert s.meta["split_strategy"]["test_groups"] == sorted(held)
    s2, sp2 = build(cfg)                               # deterministic from the seed
    assert np.array_equal(sp.test, sp2.test)


def test_named_test_groups_and_errors():
    s, sp = build(_cfg(strategy="group", group_by="elements", test_groups=["HCNO"]))
    assert set(group_labels(s, "elements")[sp.test]) == {"HCNO"}
    with pytest.raises(ConfigError, match="no structure has group 'XYZ'"):
        build(_cfg(strategy="group", group_by="elements", test_groups=["XYZ"]))
    with pytest.raises(ConfigError, match="group_by"):
        build(_cfg(strategy="group", group_by="colour"))
    with pytest.raises(ConfigError, match="does not apply"):
        _cfg(strategy="random", group_by="composition")
    with pytest.raises(ConfigError, match="does not apply"):
        _cfg(strategy="group", group_by="composition", max_train_size=4)


def test_size_extrapolation_trains_small_and_tests_large():
    cfg = _cfg(strategy="size", size_by="heavy_atoms", max_train_size=8, test=80)
    s, sp = build(cfg)
    n = size_counts(s, "heavy_atoms")
    assert len(sp.test) == 80 and (n[sp.test] > 8).all()
    assert (n[_seen(sp)] <= 8).all()                   # nothing larger is ever trained or tuned on
    with pytest.raises(ConfigError, match="max_train_size"):
        build(_cfg(strategy="size", max_train_size=99))


def test_nmd18_space_group_labels(shared_data):
    cfg = C.from_dict({"name": "g", "seed": 0,
                       "dataset": {"name": "nmd18", "path": str(shared_data / "nmd18"),
                                   "target": "formation_energy", "per": "cation"},
                       "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1}},
                       "splits": {"strategy": "group", "group_by": "spacegroup", "test_groups": ["12"],
                                  "train_sizes": [100], "draws": 1, "tune_train": 50, "tune_val": 20}})
    s, sp = build(cfg)
    labels = group_labels(s, "spacegroup")
    assert set(labels) >= {"12", "33", "167", "194", "206", "227"}
    assert set(labels[sp.test]) == {"12"} and "12" not in set(labels[_seen(sp)])


def test_group_split_never_puts_a_group_in_both_parts():
    """Property test over random label sets and seeds (the test part and everything training or tuning sees
    never share a group)."""
    from repbench.splits import group_test, make_splits

    rng = np.random.default_rng(0)
    for case in range(40):
        n = int(rng.integers(60, 200))
        labels = rng.integers(0, int(rng.integers(3, 12)), n).astype(str)
        holdout = int(rng.integers(1, len(set(labels))))
        try:
            test = group_test(labels, seed=case, test_groups=None, holdout=holdout)
        except ConfigError:
            continue  # the held-out groups would leave no training data: refused, not split wrongly
        pool_size = n - len(test)
        if pool_size < 30:
            continue
        sp = make_splits(n, None, seed=case, test=None, predefined_test=test, train_sizes=[10, 20], draws=2,
                         tune_train=10, tune_val=5, inner_folds=2, inner_val_fraction=0.2)
        assert not set(labels[sp.test]) & set(labels[_seen(sp)]), case
        assert len(set(labels[sp.test])) == holdout
