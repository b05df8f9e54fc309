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

from .baselines import Baseline
from .models.kernel import kernel_matrices
from .models.regressor import REGRESSORS
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
    params = ({"atom_kernel": kind, "zeta": zeta, "normalize": normalize} if A.offsets is not None
              else {"kind": kind})
    return kernel_matrices(A, B, params, [length_scale], dtype=dtype)[0]


@dataclass
class KRR:
    """Kernel ridge regression on a precomputed kernel: alpha = (K + regularization I)^-1 (y - baseline).

    ``baseline``: "none", "mean" or "dressed_atoms" (then pass element ``counts`` to fit and predict).
    """

    regularization: float = 1e-8
    baseline: str = "none"
    regressor: str = "krr"
    regressor_: object | None = field(default=None, repr=False)
    baseline_: Baseline | None = field(default=None, repr=False)

    @property
    def alpha_(self) -> np.ndarray | None:
        return getattr(self.regressor_, "alpha_", None)

    def fit(self, K: np.ndarray, y, counts: np.ndarray | None = None) -> "KRR":
        y = np.asarray(y, dtype=np.float64)
        c = np.zeros((len(y), 1)) if counts is None else np.asarray(counts, dtype=np.float64)
        self.baseline_ = Baseline.make(self.baseline).fit(c, y)
        self.regressor_ = REGRESSORS[self.regressor](self.regularization).fit(K, y - self.baseline_.predict(c))
        return self

    def predict(self, K_test_train: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        if self.regressor_ is None:
            raise RuntimeError("call fit() first")
        c = np.zeros((K_test_train.shape[0], 1)) if counts is None else np.asarray(counts, dtype=np.float64)
        return self.regressor_.predict(K_test_train) + self.baseline_.predict(c)
