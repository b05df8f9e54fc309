"""The model layer: a model = representation + kernel + regressor (+ baseline).

* :mod:`.kernel`: the kernel registry and THE kernel dispatch (:func:`~.kernel.kernel_matrices`).
* :mod:`.regressor`: the regressor registry (KRR by default) with the fit / predict contract.
* :mod:`.model`: :class:`~.model.Model`, the concrete model, and its identity (what results depend on).
* :mod:`.resolve`: which model a run uses (``tune/best.yaml`` or the config), resolved in one place.

Stages (tune, curve, time) and the Python API go through this layer; none of them calls a kernel
function or KRR directly.
"""

from .kernel import KERNELS, Kernel, kernel_matrices
from .model import Model
from .regressor import KRR, REGRESSORS, Regressor

__all__ = ["KERNELS", "Kernel", "kernel_matrices", "Model", "KRR", "REGRESSORS", "Regressor"]
