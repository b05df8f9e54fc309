"""The public Python API for users who script (the CLI is built on the same pieces).

Example::

    from ase.build import molecule
    from repbench import api

    mols = [molecule("H2O"), molecule("CH4"), molecule("NH3")]
    X = api.representation(mols, {"soap": {"r_cut": 4.0, "n_max": 4, "l_max": 3, "sigma": 0.5}})
    K = api.kernel(X, length_scale=2.0)                 # 3 x 3 local Gaussian kernel
    model = api.KRR(regularization=1e-6).fit(K, [-14.2, -24.0, -19.5])
    model.predict(api.kernel(X, X, length_scale=2.0))   # kernel rows: structures to predict x training

All energies in the units you give; positions in Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import kernels as _kernels
from . import krr as _krr
from .baselines import Baseline
from .representations import Features, compute, make_representation
from .structures import StructureSet

__all__ = ["representation", "kernel", "KRR", "Features", "structures_from_ase"]


def structures_from_ase(atoms_list: Sequence, name: str = "ase") -> StructureSet:
    """A :class:`StructureSet` (no targets) from a list of :class:`ase.Atoms`."""
    return StructureSet.from_ase(name, list(atoms_list), targets={}, target_info={})


def representation(atoms_list: Sequence, spec: dict, *, species: Sequence[int | str] | None = None,
                   n_workers: int | None = None, progress: bool = False) -> Features:
    """Compute a representation (``{"soap": {...}}``, ``{"sf": {...}}`` or ``{"mbtr": {...}}``; the keys are
    those of the config's ``representation`` section) for a list of :class:`ase.Atoms`.

    ``species`` defaults to the elements present; give the elements of your whole dataset so that features
    of different calls line up.  Local representations return per-atom rows + offsets, global ones a matrix.
    """
    s = structures_from_ase(atoms_list)
    from .structures import atomic_number

    sp = s.elements if species is None else sorted({atomic_number(str(x)) for x in species})
    rep = make_representation(spec, sp, s.periodic)
    return compute(rep, s, n_workers=n_workers, progress=progress)


def kernel(A: Features, B: Features | None = None, *, kind: str = "gaussian", length_scale: float = 1.0,
           zeta: float = 2.0, normalize: bool = False, dtype: str = "float64") -> np.ndarray:
    """Kernel matrix between two feature sets (``B=None``: A x A, symmetric).

    Local features: K(a, b) = sum over atom pairs of the atom kernel ``kind`` (gaussian
    exp(-d^2 / 2 l^2), laplacian exp(-d / l), polynomial (x.y / |x||y|)^zeta), divided by n_a n_b when
    ``normalize``.  Global features: gaussian or laplacian of the vector distance.
    """
    dt = np.float32 if dtype == "float32" else np.float64
    if A.offsets is not None:
        return _kernels.local_kernel(A.values, A.offsets, None if B is None else B.values,
                                     None if B is None else B.offsets, atom_kernel=kind,
                                     length_scales=[length_scale], zeta=zeta, normalize=normalize, dtype=dt)[0]
    return _kernels.global_kernel(A.values, None if B is None else B.values, kind=kind,
                                  length_scales=[length_scale], dtype=dt)[0]


@dataclass
class KRR:
    """Kernel ridge regression on a precomputed kernel: alpha = (K + regularization I)^-1 (y - baseline).

    ``baseline``: "none", "mean" or "dressed_atoms" (then pass element ``counts`` to fit and predict).
    """

    regularization: float = 1e-8
    baseline: str = "none"
    alpha_: np.ndarray | None = field(default=None, repr=False)
    baseline_: Baseline | None = field(default=None, repr=False)

    def fit(self, K: np.ndarray, y, counts: np.ndarray | None = None) -> "KRR":
        y = np.asarray(y, dtype=np.float64)
        c = np.zeros((len(y), 1)) if counts is None else np.asarray(counts, dtype=np.float64)
        self.baseline_ = Baseline.make(self.baseline).fit(c, y)
        self.alpha_ = _krr.fit(K, y - self.baseline_.predict(c), self.regularization)
        return self

    def predict(self, K_test_train: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        if self.alpha_ is None:
            raise RuntimeError("call fit() first")
        c = np.zeros((K_test_train.shape[0], 1)) if counts is None else np.asarray(counts, dtype=np.float64)
        return _krr.predict(K_test_train, self.alpha_) + self.baseline_.predict(c)
