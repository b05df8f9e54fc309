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


# ---------------------------------------------------------------------------------------------- row blocks
# A large kernel can be computed as row blocks (blocks of whole structures) in other processes and put
# together (repbench.execution.kernel_blocks runs them as Dask tasks).  Pure functions: split, one block,
# assemble.


def structure_rows(f: Features, r0: int, r1: int) -> Features:
    """Structures ``r0:r1`` of ``f`` (a view of consecutive rows: no copy)."""
    if f.offsets is None:
        return Features(values=f.values[r0:r1])
    off = np.asarray(f.offsets, dtype=np.int64)
    return Features(values=f.values[off[r0]:off[r1]], offsets=off[r0:r1 + 1] - off[r0])


def blocks_agree(params: dict, dtype: str | None = None) -> bool:
    """Whether row blocks reproduce :func:`kernel_matrices` to float64 rounding (about 1e-15 relative):
    the GEMM runs in float64.  Not bit for bit: BLAS rounds an element by its place in the product's tiles,
    and the global kernels centre the rows by the mean of the input they see.  With a float32 GEMM a block
    would differ by float32 rounding (about 1e-7), so such kernels are computed in one piece."""
    return (dtype or params.get("dtype", "float64")) == "float64"


def row_blocks(n_rows: int, n_cols: int | None, block_structures: int) -> list[tuple[int, int]]:
    """Consecutive structure ranges ``(r0, r1)`` covering ``0:n_rows``, each about ``block_structures**2``
    structure pairs of the kernel (one block if the kernel is no larger).  ``n_cols=None``: the symmetric
    kernel (a x a), of which a block computes rows r0:r1 against columns r0: only (the upper part, ``n(n +
    1)/2`` pairs in all), so the boundaries balance that work: the first blocks hold fewer rows."""
    n_rows = int(n_rows)
    symmetric = n_cols is None
    pairs = n_rows * (n_rows + 1) / 2 if symmetric else n_rows * int(n_cols)
    n_blocks = int(max(1, min(n_rows, np.ceil(pairs / max(1, int(block_structures)) ** 2))))
    if not symmetric:
        edges = np.linspace(0, n_rows, n_blocks + 1).round().astype(int)
    else:
        r = np.arange(n_rows + 1, dtype=np.float64)
        work = r * n_rows - r * (r - 1) / 2  # upper-triangle pairs in rows 0:r
        targets = work[-1] * np.arange(n_blocks + 1) / n_blocks
        edges = np.searchsorted(work, targets, side="left")
        edges[0], edges[-1] = 0, n_rows
    edges = np.unique(edges)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def kernel_block(a: Features, b: Features | None, params: dict, length_scales: Sequence[float], n_rows: int,
                 *, dtype: str | None = None, block_mb: int | None = None) -> list[np.ndarray]:
    """One row block: the kernel of the first ``n_rows`` structures of ``a`` against ``b``, one matrix
    per length scale.

    ``b=None``: the upper part of the symmetric kernel of ``a`` (``a`` holds the structures from the
    block's first row to the end): columns ``0:n_rows`` are the (exactly symmetric) kernel of the block's
    own structures, the columns after them the block against the rest, each structure pair summed with the
    row structure first, as the symmetric :func:`kernel_matrices` sums it.  Shape ``(n_rows, len(a))``.
    """
    kw = {"dtype": dtype, "block_mb": block_mb}
    if b is not None:
        return kernel_matrices(structure_rows(a, 0, n_rows), b, params, length_scales, **kw)
    own = structure_rows(a, 0, n_rows)
    diag = kernel_matrices(own, None, params, length_scales, **kw)
    if n_rows == a.n_structures:
        return diag
    rest = kernel_matrices(own, structure_rows(a, n_rows, a.n_structures), params, length_scales, **kw)
    return [np.ascontiguousarray(np.hstack([d, r])) for d, r in zip(diag, rest)]


def assemble_blocks(blocks: Sequence[tuple[tuple[int, int], list[np.ndarray]]], n_rows: int,
                    n_cols: int | None = None) -> list[np.ndarray]:
    """The kernel matrices from their row blocks ``((r0, r1), matrices)``.  ``n_cols=None``: symmetric
    blocks (rows r0:r1, columns r0:), mirrored into the lower triangle: the result is exactly symmetric,
    as :func:`kernel_matrices` makes it (each block's own square is symmetric already)."""
    n_ls = len(blocks[0][1])
    out = [np.empty((n_rows, n_rows if n_cols is None else n_cols)) for _ in range(n_ls)]
    for (r0, r1), mats in blocks:
        for o, m in zip(out, mats):
            if n_cols is None:
                o[r0:r1, r0:] = m
                o[r1:, r0:r1] = m[:, r1 - r0:].T
            else:
                o[r0:r1] = m
    return out


__all__ = ["Kernel", "KERNELS", "NO_LENGTH_SCALE", "kernel_names", "kernel_name", "kernel_of",
           "has_length_scale", "kernel_matrices", "structure_rows", "blocks_agree", "row_blocks",
           "kernel_block", "assemble_blocks"]
