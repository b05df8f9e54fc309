"""The KRR refinement stops walking where the validation loss is flat (``krr.flat_tol``): fewer kernel
passes, a loss within the tolerance of the full walk's.

The case: a kernel K0 + N / ls whose harmful perturbation N fades as the length scale grows, with noisy
targets, so the validation loss falls towards its noise floor by ever smaller steps all the way to the
upper bound of the grid (the shape of MBTR's ill-conditioned valley, where the paper's rule walks for many
kernel passes).
"""

from __future__ import annotations

import numpy as np

from repbench import config as C
from repbench.krr import grid_search


def _problem():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, 100)
    y = np.sin(3 * x) + 0.05 * rng.normal(size=100)
    K0 = np.exp(-(x[:, None] - x[None, :]) ** 2 / (2 * 0.3**2))
    G = rng.normal(size=(100, 100))
    N = G @ G.T / 100

    def kernels(ls_list):
        return {ls: K0 + N / ls for ls in ls_list}

    folds = [(np.arange(0, 80), np.arange(80, 100)), (np.arange(20, 100), np.arange(0, 20))]
    return kernels, y, folds


def test_flat_valley_stops_early_at_nearly_the_same_loss():
    kernels, y, folds = _problem()
    kw = dict(ls_start=1.0, reg_start=1e-6, ls_bounds=(-20, 30))
    full = grid_search(kernels, y, folds, **kw)
    flat = grid_search(kernels, y, folds, flat_tol=1e-3, **kw)
    assert not full.stopped_flat and full.at_bound == ["ls_high"]          # walked to the end of the grid
    assert flat.stopped_flat and flat.n_kernel_calls <= full.n_kernel_calls // 2
    assert full.loss <= flat.loss <= full.loss * (1 + 1e-3)


def test_flat_tol_is_a_config_key_that_leaves_other_hashes_alone():
    base = {"name": "f", "dataset": {"name": "qm9", "target": "U0_atomization"},
            "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1}}}
    plain = C.from_dict(base)
    flat = C.from_dict({**base, "krr": {"flat_tol": 1e-4, "lookahead": 4}})
    assert "flat_tol" not in plain.to_dict()["krr"] and flat.to_dict()["krr"]["flat_tol"] == 1e-4
    assert plain.hash() != flat.hash()
