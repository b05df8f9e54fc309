"""A concrete model: representation + kernel + regressor (+ baseline) with fixed parameters.

``Model`` holds no arrays; the workspace (:mod:`repbench.workspace`) computes features and kernels for it
and caches them.  Its :meth:`Model.identity` is what learning-curve points depend on (execution settings
such as ``kernel.block_mb`` are not part of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..baselines import Baseline
from ..canonical import canonical_hash, thaw
from .kernel import NO_LENGTH_SCALE, Kernel, kernel_of
from .regressor import REGRESSORS, Regressor

if TYPE_CHECKING:
    from ..config import Config

#: kernel keys that are execution settings (they change how, not what, is computed)
KERNEL_EXECUTION_KEYS = ("block_mb",)


def _kernel_identity(kernel: dict) -> dict:
    return {k: v for k, v in thaw(kernel).items() if k not in KERNEL_EXECUTION_KEYS}


@dataclass(frozen=True)
class Model:
    """A concrete model (no search-space leaves).

    representation: ``{name: params}``; kernel: the kernel section (``atom_kernel``/``kind``, ``zeta``,
    ``normalize``, ``dtype``); regressor: ``{name: params}``; baseline: none | mean | dressed_atoms;
    length_scale / regularization: the starting (or fixed) KRR values (None: unknown, refine finds them);
    source: where it came from ("tune/best.yaml", "config", "trial").
    """

    representation: dict
    kernel: dict
    regressor: dict = field(default_factory=lambda: {"krr": {}})
    baseline: str = "dressed_atoms"
    length_scale: float | None = None
    regularization: float | None = None
    source: str = "config"

    @classmethod
    def from_config(cls, cfg: "Config", *, representation: dict | None = None, kernel: dict | None = None,
                    length_scale: float | None = None, regularization: float | None = None,
                    source: str = "config") -> "Model":
        """The config's model, with concrete representation/kernel values where given."""
        return cls(representation=thaw(representation if representation is not None else cfg.representation),
                   kernel=_kernel_identity(kernel if kernel is not None else cfg.kernel),
                   regressor=thaw(cfg.regressor), baseline=cfg.krr["baseline"],
                   length_scale=length_scale, regularization=regularization, source=source)

    # ----------------------------------------------------------------- parts
    @property
    def representation_name(self) -> str:
        return next(iter(self.representation))

    @property
    def kernel_component(self) -> Kernel:
        return kernel_of(self.kernel)

    @property
    def has_length_scale(self) -> bool:
        return self.kernel_component.length_scale

    def kernel_key(self, length_scale: float | None) -> float:
        """The key under which a kernel bank stores this model's kernel at ``length_scale``."""
        return float(length_scale) if self.has_length_scale else NO_LENGTH_SCALE

    @property
    def regressor_class(self) -> type[Regressor]:
        name = next(iter(self.regressor))
        return REGRESSORS.get_component(name, where="regressor")

    def make_regressor(self, regularization: float) -> Regressor:
        params = dict(next(iter(self.regressor.values())) or {})
        return self.regressor_class(regularization, **params)

    def make_baseline(self) -> Baseline:
        return Baseline.make(self.baseline)

    # ----------------------------------------------------------------- identity
    def identity(self) -> dict:
        """What results computed with this model depend on (JSON-able)."""
        return {"representation": self.representation, "kernel": _kernel_identity(self.kernel),
                "regressor": self.regressor, "baseline": self.baseline,
                "length_scale": self.length_scale if self.has_length_scale else None,
                "regularization": self.regularization}

    def hash(self, cfg: "Config") -> str:
        """Scope of learning-curve points: the data, this model and the refinement settings."""
        krr = {k: v for k, v in thaw(cfg.krr).items() if k not in ("length_scale", "regularization")}
        return canonical_hash({"data": cfg.data_hash(), "model": self.identity(), "krr": krr,
                               "curve": thaw(cfg.curve)})

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "representation": self.representation, "kernel": self.kernel,
                "regressor": self.regressor, "baseline": self.baseline, "length_scale": self.length_scale,
                "regularization": self.regularization}

    # ----------------------------------------------------------------- fitting
    def fit_predict_std(self, K_train: np.ndarray, K_test_train: np.ndarray, y_train: np.ndarray,
                        counts_train: np.ndarray, counts_test: np.ndarray, regularization: float,
                        K_test_diag: np.ndarray | None = None):
        """Fit baseline + regressor on the training rows and predict the test rows (modelled units), with the
        predictive standard deviation where the regressor gives one (else None) and the fitted regressor:
        (predictions, std, regressor)."""
        b = self.make_baseline().fit(counts_train, y_train)
        reg = self.make_regressor(regularization).fit(K_train, y_train - b.predict(counts_train))
        offset = b.predict(counts_test)
        if reg.has_std and K_test_diag is not None:
            pred, std = reg.predict(K_test_train, return_std=True, K_test_diag=K_test_diag)
            return pred + offset, std, reg
        return reg.predict(K_test_train) + offset, None, reg
