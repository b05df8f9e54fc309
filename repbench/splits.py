"""Deterministic, stratified outer and inner splits.

Protocol (after Langer, Goessmann & Rupp 2022):

* **Outer test set**: a fixed set of ``splits.test`` structures, or the dataset's predefined test part.
  The rest is the *pool* from which everything else is drawn: the test set is never seen by tuning or
  training.
* **Training draws**: for each draw, the largest training size is drawn from the pool; every smaller
  size is drawn from the next larger one (nested), so one kernel of the largest draw serves all sizes.
* **Tuning splits** (``repbench tune``): a tuning set of ``tune_train + tune_val`` structures drawn from
  the pool, and ``inner_folds`` shuffle-splits of it into train/validation.
* **Inner splits of a training draw** (KRR refinement in ``repbench curve``): ``inner_folds``
  shuffle-splits of the draw itself.

Draws are stratified by target value: the candidates are sorted by target, cut into ``k`` strata of equal
size, and one structure is drawn at random from each (so a small training set spans the target range).
Every draw comes from its own ``numpy.random.Generator`` seeded with ``(seed, purpose, ...)``, so splits do
not depend on the order in which they are made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError

_PURPOSE = {"subset": 1, "test": 2, "train": 3, "tune": 4, "inner": 5}


def rng_for(seed: int, purpose: str, *more: int) -> np.random.Generator:
    """An independent generator for one purpose (``subset``, ``test``, ``train``, ``tune``, ``inner``)."""
    return np.random.default_rng([int(seed), _PURPOSE[purpose], *[int(m) for m in more]])


def stratified_sample(rng: np.random.Generator, candidates: np.ndarray, values: np.ndarray | None,
                      k: int) -> np.ndarray:
    """Draw ``k`` of ``candidates`` (indices); stratified by ``values[candidates]`` when values is given.

    The candidates are sorted by value (ties broken by index), cut into ``k`` contiguous strata whose sizes
    differ by at most one, and one member of each stratum is chosen uniformly.  Returns sorted indices.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    n = len(candidates)
    if k > n:
        raise ValueError(f"cannot draw {k} from {n}")
    if k == n:
        return np.sort(candidates)
    if values is None:
        return np.sort(rng.choice(candidates, size=k, replace=False))
    order = candidates[np.lexsort((candidates, values[candidates]))]
    edges = (np.arange(k + 1) * n) // k
    sizes = np.diff(edges)
    picks = edges[:-1] + (rng.random(k) * sizes).astype(np.int64)
    return np.sort(order[picks])


def shuffle_splits(rng: np.random.Generator, items: np.ndarray, values: np.ndarray | None, folds: int,
                   val_fraction: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, val) splits of ``items``; validation sets stratified, of size round(f * n)."""
    items = np.asarray(items, dtype=np.int64)
    n_val = max(1, int(round(val_fraction * len(items))))
    if n_val >= len(items):
        raise ValueError("validation split would leave no training data")
    out = []
    for _ in range(folds):
        val = stratified_sample(rng, items, values, n_val)
        train = np.setdiff1d(items, val, assume_unique=True)
        out.append((train, val))
    return out


@dataclass
class Splits:
    """All split indices of a run (indices into the run's structure set)."""

    test: np.ndarray
    pool: np.ndarray
    train: dict[int, list[np.ndarray]]             # size -> one index array per draw
    tune_folds: list[tuple[np.ndarray, np.ndarray]]
    inner: dict[int, list[list[tuple[np.ndarray, np.ndarray]]]] = field(default_factory=dict)

    @property
    def tune_set(self) -> np.ndarray:
        return np.unique(np.concatenate([np.concatenate(f) for f in self.tune_folds]))

    def all_training_indices(self) -> np.ndarray:
        """Every index that tuning or training can see (for leak checks)."""
        parts = [self.tune_set]
        for draws in self.train.values():
            parts.extend(draws)
        return np.unique(np.concatenate(parts))


def make_splits(n: int, values: np.ndarray | None, *, seed: int, test: int | None,
                predefined_test: np.ndarray | None, train_sizes: list[int], draws: int,
                tune_train: int | None, tune_val: int | None, inner_folds: int, inner_val_fraction: float,
                where: str = "splits", excluded: np.ndarray | None = None) -> Splits:
    """Compute all splits of a run from its settings (pure function of its arguments).

    excluded: structures that are neither test nor pool (the larger structures left over by a size
    extrapolation split): no training draw or tuning set contains them.
    """
    all_idx = np.arange(n, dtype=np.int64)
    if excluded is not None and len(excluded):
        all_idx = np.setdiff1d(all_idx, excluded)
    if predefined_test is not None and len(predefined_test):
        test_idx = np.sort(np.asarray(predefined_test, dtype=np.int64))
    else:
        n_test = test if test is not None else max(1, n // 5)
        if n_test >= n - 1:
            raise ConfigError(f"{where}.test: {n_test} test structures leave no training pool "
                              f"(the dataset has {n})", hint="use a smaller test set or a larger subset")
        test_idx = stratified_sample(rng_for(seed, "test"), all_idx, values, n_test)
    pool = np.setdiff1d(all_idx, test_idx)
    sizes = sorted(train_sizes)
    if sizes[-1] > len(pool):
        raise ConfigError(f"{where}.train_sizes: the largest training size {sizes[-1]} exceeds the "
                          f"{len(pool)} structures left outside the test set",
                          hint=f"use sizes up to {len(pool)} or a larger dataset subset")
    train: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    inner: dict[int, list] = {s: [] for s in sizes}
    for d in range(draws):
        rng = rng_for(seed, "train", d)
        current = pool
        for s in reversed(sizes):
            current = stratified_sample(rng, current, values, s)
            train[s].append(current)
        for s in sizes:
            if s >= 4:
                inner[s].append(shuffle_splits(rng_for(seed, "inner", s, d), train[s][d], values,
                                               inner_folds, inner_val_fraction))
            else:
                inner[s].append([])
    # tuning set: from the pool only
    t_train = tune_train if tune_train is not None else sizes[-1]
    t_val = tune_val if tune_val is not None else max(1, int(round(t_train * inner_val_fraction
                                                                   / (1 - inner_val_fraction))))
    if t_train + t_val > len(pool):
        raise ConfigError(f"{where}.tune_train + tune_val = {t_train + t_val} exceeds the {len(pool)} "
                          "structures outside the test set", hint="use smaller tuning sets")
    rng = rng_for(seed, "tune")
    tune_set = stratified_sample(rng, pool, values, t_train + t_val)
    folds = shuffle_splits(rng, tune_set, values, inner_folds, t_val / (t_train + t_val))
    return Splits(test=test_idx, pool=pool, train=train, tune_folds=folds, inner=inner)


def subset_indices(n: int, k: int, seed: int, predefined_test: np.ndarray | None = None) -> np.ndarray:
    """Deterministic random subset of ``k`` of ``n`` structures (used by ``dataset.subset``).

    When the dataset has a predefined test part, the subset is drawn from the training part only and the
    whole test part is kept.
    """
    rng = rng_for(seed, "subset")
    if predefined_test is not None and len(predefined_test):
        train_part = np.setdiff1d(np.arange(n), predefined_test)
        k = min(k, len(train_part))
        return np.sort(np.concatenate([rng.choice(train_part, size=k, replace=False), predefined_test]))
    if k >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


# --------------------------------------------------------------------------- out-of-distribution test sets
def group_labels(structures, group_by: str) -> np.ndarray:
    """One label (a string) per structure for ``splits.group_by``.

    ``composition``: the reduced formula (Al2O3 and Al4O6 are one group); ``elements``: the set of elements
    (a BA10 alloy system such as AgCu); a label the reader provides (NMD18: ``spacegroup``); or a target
    of the dataset (its values as labels).
    """
    from math import gcd

    from .structures import SYMBOLS

    labels = (structures.meta.get("labels") or {}) if isinstance(structures.meta, dict) else {}
    if group_by in labels:
        return np.asarray(labels[group_by]).astype(str)
    if group_by in structures.targets:
        return np.array([f"{v:g}" for v in structures.targets[group_by]])
    if group_by in ("composition", "elements"):
        out = []
        for i in range(len(structures)):
            z = structures.z[structures.offsets[i]:structures.offsets[i + 1]]
            el, cnt = np.unique(z, return_counts=True)
            if group_by == "elements":
                out.append("".join(SYMBOLS[e] for e in el))
                continue
            g = 0
            for c in cnt:
                g = gcd(g, int(c))
            out.append("".join(f"{SYMBOLS[e]}{c // g if c // g > 1 else ''}" for e, c in zip(el, cnt)))
        return np.array(out)
    raise ConfigError(f"splits.group_by: {group_by!r} is neither composition, elements, a label of the dataset "
                      "nor one of its targets",
                      hint="allowed: composition, elements, " + ", ".join([*labels, *structures.targets]))


def group_test(labels: np.ndarray, *, seed: int, test_groups: list[str] | None, holdout: int) -> np.ndarray:
    """Indices of the structures in the held-out groups: ``test_groups`` if given, else ``holdout`` groups
    drawn with the seed.  Every structure of a held-out group is in the test set, none in training."""
    labels = np.asarray(labels).astype(str)
    groups = np.unique(labels)
    if test_groups is not None:
        unknown = [g for g in test_groups if g not in set(groups)]
        if unknown:
            raise ConfigError(f"splits.test_groups: no structure has group {unknown[0]!r}",
                              hint="groups in the data: " + ", ".join(groups[:20])
                                   + (" ..." if len(groups) > 20 else ""))
        held = np.array(sorted(set(test_groups)))
    else:
        if holdout >= len(groups):
            raise ConfigError(f"splits.holdout_groups: {holdout} of {len(groups)} groups would leave none for "
                              "training", hint=f"use at most {len(groups) - 1}")
        held = np.sort(rng_for(seed, "test").choice(groups, size=holdout, replace=False))
    test = np.nonzero(np.isin(labels, held))[0].astype(np.int64)
    if len(test) >= len(labels) - 1:
        raise ConfigError("splits.test_groups: the held-out groups hold (almost) every structure",
                          hint="hold out fewer or smaller groups")
    return test


def size_test(sizes: np.ndarray, *, max_train_size: int, n_test: int | None, values: np.ndarray | None,
              seed: int) -> np.ndarray:
    """Size extrapolation: the test set is drawn (stratified, ``n_test`` or all) from the structures larger
    than ``max_train_size``; every structure larger than it is kept out of training and tuning."""
    sizes = np.asarray(sizes)
    large = np.nonzero(sizes > max_train_size)[0].astype(np.int64)
    if len(large) == 0:
        raise ConfigError(f"splits.max_train_size: no structure is larger than {max_train_size}",
                          hint=f"the largest has {int(sizes.max())}; use a smaller max_train_size")
    if len(large) >= len(sizes) - 1:
        raise ConfigError(f"splits.max_train_size: almost no structure has at most {max_train_size}",
                          hint="use a larger max_train_size")
    if n_test is not None and n_test < len(large):
        return stratified_sample(rng_for(seed, "test"), large, values, n_test)
    return large
