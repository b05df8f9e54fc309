"""Kernel components: the registry of kernels and the one place where a kernel matrix is dispatched.

A kernel component turns two feature sets (:class:`~repbench.representations.Features`) into kernel
matrices, one per requested length scale.  Built-ins wrap the numerics of :mod:`repbench.kernels`:

============  =====================  ===================  ============
name          local (atom kernel)    global (vectors)     length scale
============  =====================  ===================  ============
gaussian      yes                    yes                  yes
laplacian     yes                    yes                  yes
polynomial    yes                    no                   no (``zeta``)
============  =====================  ===================  ============

In a config, a local representation names its kernel in ``kernel.atom_kernel``, a global one in
``kernel.kind``.  Plugins register a :class:`Kernel` instance under the entry-point group
``repbench.kernels``.  ``tune``, ``curve``, ``time`` and the Python API all call :func:`kernel_matrices`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import kernels as K
from ..errors import ConfigError
from ..registry import Registry, expects
from ..representations.base import Features

#: Stand-in length scale for kernels without one (a key for caches and grid searches).
NO_LENGTH_SCALE = 1.0


@dataclass(frozen=True)
class Kernel:
    """A kernel between structures.

    name: the config name.  local / global_: whether it applies to per-atom features (as an atom kernel
    summed over atom pairs) or to one vector per structure.  length_scale: whether it has one (the KRR
    refinement searches it).  summary: one line for ``repbench kernels``.
    """

    name: str
    local: bool
    global_: bool
    length_scale: bool
    summary: str

    def matrices(self, a: Features, b: Features | None, length_scales: Sequence[float], params: dict,
                 *, dtype=np.float64, block_bytes: int = 256 * 2**20) -> list[np.ndarray]:
        """Kernel matrices ``(len(a), len(b))`` (``b=None``: a x a, symmetric), one per length scale.

        ``params``: the config's kernel section (``zeta``, ``normalize`` for local kernels).
        """
        if a.offsets is not None:
            if not self.local:
                raise ConfigError(f"kernel {self.name!r} is not defined for local (per-atom) features",
                                  where="kernel.atom_kernel", hint="choose a local kernel")
            mats = K.local_kernel(a.values, a.offsets, None if b is None else b.values,
                                  None if b is None else b.offsets, atom_kernel=self.name,
                                  length_scales=list(length_scales), zeta=params.get("zeta", 2.0),
                                  normalize=bool(params.get("normalize", False)), dtype=dtype,
                                  block_bytes=block_bytes)
        else:
            if not self.global_:
                raise ConfigError(f"kernel {self.name!r} is not defined for global (per-structure) features",
                                  where="kernel.kind", hint="choose a global kernel")
            mats = K.global_kernel(a.values, None if b is None else b.values, kind=self.name,
                                   length_scales=list(length_scales), dtype=dtype, block_bytes=block_bytes)
        return [np.ascontiguousarray(m, dtype=np.float64) for m in mats]


#: name -> :class:`Kernel`; plugins through the entry-point group ``repbench.kernels``.
KERNELS: Registry = Registry("kernel", {
    "gaussian": Kernel("gaussian", True, True, True, "exp(-|x - y|^2 / (2 s^2))"),
    "laplacian": Kernel("laplacian", True, True, True, "exp(-|x - y| / s)"),
    "polynomial": Kernel("polynomial", True, False, False,
                         "(x.y / (|x| |y|))^zeta of per-atom vectors (the usual SOAP kernel)"),
}, check=expects(Kernel, instance=True))


def kernel_names(local: bool) -> list[str]:
    """Names of the registered kernels for local (atom kernel) or global features."""
    return [n for n in KERNELS.names() if (KERNELS[n].local if local else KERNELS[n].global_)]


def kernel_name(params: dict) -> str:
    """The kernel named by a kernel config section (``atom_kernel`` for local, ``kind`` for global)."""
    return params["atom_kernel"] if "atom_kernel" in params else params["kind"]


def kernel_of(params: dict) -> Kernel:
    """The :class:`Kernel` named by a kernel config section."""
    return KERNELS.get_component(kernel_name(params), where="kernel")


def has_length_scale(params: dict) -> bool:
    return kernel_of(params).length_scale


def kernel_matrices(a: Features, b: Features | None, params: dict, length_scales: Sequence[float], *,
                    dtype: str | None = None, block_mb: int | None = None) -> list[np.ndarray]:
    """THE kernel dispatch: matrices for each length scale (ignored by kernels without one).

    ``params``: a kernel config section; ``dtype`` / ``block_mb`` default to its ``dtype`` / ``block_mb``.
    """
    kern = kernel_of(params)
    dt = np.float32 if (dtype or params.get("dtype", "float64")) == "float32" else np.float64
    block = int(block_mb if block_mb is not None else params.get("block_mb", 256)) * 2**20
    ls = list(length_scales) if kern.length_scale else [NO_LENGTH_SCALE]
    return kern.matrices(a, b, ls, params, dtype=dt, block_bytes=block)


__all__ = ["Kernel", "KERNELS", "NO_LENGTH_SCALE", "kernel_names", "kernel_name", "kernel_of",
           "has_length_scale", "kernel_matrices"]
