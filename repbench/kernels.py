"""Kernel matrices between structures: local (sums over atom pairs) and global (one vector per structure).

Pure numerics, no I/O.  Every function returns an array of shape ``(n_ls, nA, nB)``: one kernel matrix per
requested length scale, all computed from one pass over the squared distances.

Local kernels
-------------
``XA`` holds one row per atom, all structures one after another; ``offA`` (``nA + 1`` integers) says that
structure ``a`` owns rows ``offA[a]:offA[a+1]``.  The kernel between two structures is the sum of an atom
kernel over all atom pairs,

    K(A, B) = sum_{i in A} sum_{j in B} k(x_i, x_j)          (divided by n_A * n_B when ``normalize``)

with the atom kernels

    gaussian    exp(-|x - y|^2 / (2 s^2))
    laplacian   exp(-|x - y| / s)                          (Euclidean distance)
    polynomial  (x.y / (|x| |y|))^zeta                       (no length scale)

How it is computed (the hot path):

1. Atoms are cut into blocks of consecutive rows that follow structure boundaries (a structure larger than a
   block is split over several blocks; partial sums are accumulated, so any block size gives the same
   result up to rounding).  The block size follows from ``block_bytes`` (the atom-pair block plus any
   converted input rows), so memory does not grow with the number of structures beyond the output.  For
   low-dimensional features (d <= 1024) blocks are kept cache-sized (<= 1024 x 1024 atoms).
2. Per pair of blocks one GEMM gives ``G = X_I X_J^T``; ``D2 = |x|^2 + |y|^2 - 2 G`` (clipped at 0).
   Float64 C-contiguous input is used in place (blocks are views, no copies).  When rows must be copied
   anyway (float32 GEMM, other input dtype, h5py-like input) they are also shifted by the feature mean:
   distances do not change and the cancellation error of the formula shrinks with the norms.
3. A fused numba kernel (``prange`` over the row structures of the block) evaluates the atom kernel for
   every requested length scale on the same ``D2`` and sums over the atoms of each structure pair.  Its
   ``exp`` is an inlined, vectorisable implementation (max error 1.5 ulp; arguments below -708 give 0
   instead of a subnormal number).  Length scales whose coefficients differ by exact powers of two (a log2
   grid ``ls0 * 2**k``) reuse the exponentials by squaring (relative error <= 2^10 ulp).  This keeps the
   cost of low-dimensional features (ACSF: the GEMM is cheap and the exponentials dominate) at a few ns
   per atom pair, and several length scales at little more than one.
4. Laplacian: squared distances below 1e-6 (float32: 1e-3) of ``|x|^2 + |y|^2`` are recomputed directly,
   since the square root would amplify their rounding error (symmetry-equivalent atoms).
5. For a train x train kernel (``XB=None``) only the blocks on and above the diagonal are computed (and in
   diagonal blocks only the structure pairs on and above the diagonal); the result is mirrored, so it is
   exactly symmetric.

The BLAS library runs the GEMM with its own threads, numba runs the fused part with its threads; the two
alternate and never run at the same time.  numba's workqueue threading layer is selected on import (unless
``NUMBA_THREADING_LAYER`` is set): with the OpenMP layer, OpenBLAS GEMMs that follow a parallel region ran
up to 20x slower here, and it is not fork-safe.  The workqueue layer is not thread-safe: calls of the
fused kernels from several Python threads are serialised by a lock.

float32
-------
``dtype=np.float32`` does the GEMM in float32 (about twice as fast); norms, distances, exponentials and sums
stay in float64.  The only extra error is that of the float32 GEMM: an absolute error in ``D2`` of about
``eps32 * sqrt(d) * |x||y|`` (after centring), i.e. a relative error of each atom-pair term of about
``eps32 * sqrt(d) * |x||y| / (2 s^2)``.  For length scales of a quarter of the median atom distance and
above this stays below :data:`FLOAT32_REL_ERROR_BOUND` = 1e-4 (max |K32 - K64| / max |K64|).  Measured on
SOAP (r_cut 5, n_max 8, l_max 6, CHNOF; d = 5740) of small organic molecules: Gaussian 2.2e-6 at s =
median/4, 1e-7 at the median; Laplacian 2.4e-7; polynomial 8e-7.  The error grows as 1/s^2 for smaller
length scales: use float64 there.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

# numba's OpenMP threading layer (its default choice here) makes the OpenBLAS GEMM that alternates with
# the fused kernels up to 20x slower (measured: a 420 x 420 x 100 GEMM 0.42 ms alone, 9.6 ms once an
# OpenMP parallel region has run), and GNU OpenMP is not fork-safe (a forked worker process that runs a
# kernel is terminated by numba).  The workqueue layer has neither problem.  Respect an explicit choice.
if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

# The workqueue layer must not be entered from two threads at once (e.g. optuna with n_jobs > 1 runs
# trials in threads): fused kernels are serialised by this lock (the GEMMs still run concurrently).
_NUMBA_LOCK = threading.Lock()

__all__ = [
    "ATOM_KERNELS",
    "GLOBAL_KERNELS",
    "FLOAT32_REL_ERROR_BOUND",
    "local_kernel",
    "global_kernel",
    "kernel_flops",
    "median_length_scale",
]

ATOM_KERNELS = ("gaussian", "laplacian", "polynomial")
GLOBAL_KERNELS = ("gaussian", "laplacian")

#: Relative error (max |K32 - K64| / max |K64|) that ``dtype=np.float32`` stays within for length scales
#: at or above a quarter of the median atom distance (see the module docstring; measured: a few 1e-6).
FLOAT32_REL_ERROR_BOUND = 1e-4

_MODES = {"gaussian": 0, "laplacian": 1, "polynomial": 2}

# --------------------------------------------------------------------------------------------------------
# numba building blocks
# --------------------------------------------------------------------------------------------------------


@intrinsic
def _i64_as_f64(typingctx, x):  # pragma: no cover - compiled
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _f64_as_i64(typingctx, x):  # pragma: no cover - compiled
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def _fma(typingctx, a, b, c):  # pragma: no cover - compiled
    """Explicit fused multiply-add (allowed without fastmath: it is an operation, not a reordering)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # upper bits of ln 2 (trailing zeros: n * _LN2_HI is exact)
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low mantissa bits
_SHIFT_BITS = 0x4338000000000000
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12 = (
    1.0 / math.factorial(k) for k in range(13)
)


@njit(inline="always", fastmath=False, cache=True)
def _exp_neg(x):  # pragma: no cover - compiled
    """exp(x) for x <= 0 without a library call, so that loops over it vectorise.

    Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Taylor polynomial of degree 12 (truncation < 2e-17),
    scaling by 2^n through the exponent bits.  Max error about 1.5 ulp.  x < -708 returns 0.
    """
    xc = max(x, -708.0)
    t = _fma(xc, _LOG2E, _SHIFT)
    nf = t - _SHIFT
    r = _fma(nf, -_LN2_LO, _fma(nf, -_LN2_HI, xc))
    p = _fma(r, _C12, _C11)
    p = _fma(r, p, _C10)
    p = _fma(r, p, _C9)
    p = _fma(r, p, _C8)
    p = _fma(r, p, _C7)
    p = _fma(r, p, _C6)
    p = _fma(r, p, _C5)
    p = _fma(r, p, _C4)
    p = _fma(r, p, _C3)
    p = _fma(r, p, _C2)
    p = _fma(r, p, _C1)
    p = _fma(r, p, _C0)
    bits = (_f64_as_i64(t) - _SHIFT_BITS + 1023) << 52
    res = p * _i64_as_f64(bits)
    return res if x >= -708.0 else 0.0


#: Squared distances below this fraction of |x|^2 + |y|^2 are recomputed directly (in float64) for the
#: Laplacian kernel: there the rounding error of |x|^2 + |y|^2 - 2 x.y (about eps of the norms) would be
#: amplified by the square root (near-duplicate atoms: symmetry-equivalent atoms in molecules and
#: crystals; 1.4% of the atom pairs of a set of small organic molecules).  Keyed by the GEMM itemsize.
_REFINE_REL = {8: 1e-6, 4: 1e-3}


@njit(inline="always", fastmath=False, cache=True)
def _sqdist(x, y):  # pragma: no cover - compiled
    """|x - y|^2 in float64 with eight partial sums (instruction-level parallelism without fastmath)."""
    d = x.size
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
    m = 0
    while m + 8 <= d:
        e0 = np.float64(x[m]) - np.float64(y[m])
        e1 = np.float64(x[m + 1]) - np.float64(y[m + 1])
        e2 = np.float64(x[m + 2]) - np.float64(y[m + 2])
        e3 = np.float64(x[m + 3]) - np.float64(y[m + 3])
        e4 = np.float64(x[m + 4]) - np.float64(y[m + 4])
        e5 = np.float64(x[m + 5]) - np.float64(y[m + 5])
        e6 = np.float64(x[m + 6]) - np.float64(y[m + 6])
        e7 = np.float64(x[m + 7]) - np.float64(y[m + 7])
        t0 += e0 * e0
        t1 += e1 * e1
        t2 += e2 * e2
        t3 += e3 * e3
        t4 += e4 * e4
        t5 += e5 * e5
        t6 += e6 * e6
        t7 += e7 * e7
        m += 8
    while m < d:
        e0 = np.float64(x[m]) - np.float64(y[m])
        t0 += e0 * e0
        m += 1
    return ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7))


@njit(inline="always", fastmath=False, cache=True)
def _refine_small(buf, x, ys, nx, nys, tau):  # pragma: no cover - compiled
    """Recompute buf[j] = |x - ys[j]|^2 directly where buf[j] < tau (|x|^2 + |y_j|^2)."""
    for j in range(buf.size):
        if buf[j] < tau * (nx + nys[j]):
            buf[j] = _sqdist(x, ys[j])


@njit(inline="always", fastmath=False, cache=True)
def _ipow(g, n):  # pragma: no cover - compiled
    """g**n for a positive integer n by repeated squaring (exact sign, no library call)."""
    if n == 2:
        return g * g
    r = 1.0
    b = g
    while n > 0:
        if n & 1:
            r *= b
        b *= b
        n >>= 1
    return r


#: Squares of values below this would be subnormal (slow on x86) or 0: they are set to 0, like _exp_neg does
#: for arguments below -708.
_SQRT_TINY = 1.4916681462400413e-154


@njit(inline="always", fastmath=False, cache=True)
def _sq(v):  # pragma: no cover - compiled
    return v * v if v >= _SQRT_TINY else 0.0


@njit(inline="always", fastmath=False, cache=True)
def _square_into(e, acc, m):  # pragma: no cover - compiled
    """e <- e^(2^m) element-wise (m >= 1) and acc += e, in one pass for m <= 3."""
    w = e.size
    if m == 1:
        for j in range(w):
            v = _sq(e[j])
            e[j] = v
            acc[j] += v
    elif m == 2:
        for j in range(w):
            v = _sq(_sq(e[j]))
            e[j] = v
            acc[j] += v
    elif m == 3:
        for j in range(w):
            v = _sq(_sq(_sq(e[j])))
            e[j] = v
            acc[j] += v
    else:
        for _ in range(m - 1):
            for j in range(w):
                e[j] = _sq(e[j])
        for j in range(w):
            v = _sq(e[j])
            e[j] = v
            acc[j] += v


@njit(inline="always", fastmath=False, cache=True)
def _segment_sum(a, j0, j1):  # pragma: no cover - compiled
    """sum(a[j0:j1]) with four partial sums (a fixed order: deterministic)."""
    t0 = t1 = t2 = t3 = 0.0
    j = j0
    while j + 4 <= j1:
        t0 += a[j]
        t1 += a[j + 1]
        t2 += a[j + 2]
        t3 += a[j + 3]
        j += 4
    while j < j1:
        t0 += a[j]
        j += 1
    return (t0 + t1) + (t2 + t3)


@njit(parallel=True, fastmath=False, cache=True)
def _local_block(G, xa, xb, na, nb, rseg, r0, cseg, c0, coef, order, nsq, mode, izeta, zeta, diag, tau,
                 out):  # pragma: no cover - compiled
    """Atom kernel on one GEMM block and sums over atoms of each structure pair, accumulated into ``out``.

    G (ra, cb): x_i . y_j (float32 or float64) of the rows xa (ra, d) and xb (cb, d); na (ra,), nb (cb,):
    squared norms (float64), inverse norms for the polynomial kernel;
    rseg / cseg: local atom boundaries of the row / column structures in the block (which are structures
    r0 + s / c0 + t of the whole set); coef: per length scale 1/(2 s^2) (gaussian) or 1/s (laplacian);
    mode 0/1/2 = gaussian/laplacian/polynomial; izeta > 0: integer zeta (else the float ``zeta``);
    diag: G is the Gram matrix of one block with itself: only structure pairs t >= s, t == s at half weight
    (the caller adds the transpose).
    """
    # Loops run over views from index 0 so that numba can prove indices non-negative (no wrap-around
    # selects) and LLVM vectorises them.
    nrs = rseg.size - 1
    ncs = cseg.size - 1
    n_ls = coef.size
    cb = G.shape[1]
    for p in prange(nrs):
        # interleave the order (0, n-1, 1, n-2, ...) so that statically scheduled chunks get similar work
        s = p // 2 if p % 2 == 0 else nrs - 1 - p // 2
        i0 = rseg[s]
        i1 = rseg[s + 1]
        if i1 == i0:
            continue
        tfirst = s if diag else 0
        j0 = cseg[tfirst]
        w = cb - j0
        acc = np.zeros((n_ls, w))
        buf = np.empty(w)
        ebuf = np.empty(w)
        nbv = nb[j0:]
        for i in range(i0, i1):
            gi = G[i, j0:]
            nai = na[i]
            if mode == 2:  # na, nb hold inverse norms: cosines
                a0 = acc[0]
                for j in range(w):
                    buf[j] = np.float64(gi[j]) * nai * nbv[j]
                if izeta > 0:
                    for j in range(w):
                        a0[j] += _ipow(buf[j], izeta)
                else:
                    for j in range(w):
                        g = buf[j]
                        a0[j] += g**zeta if g > 0.0 else 0.0
                continue
            for j in range(w):
                d2 = nai + nbv[j] - 2.0 * np.float64(gi[j])
                buf[j] = d2 if d2 > 0.0 else 0.0
            if diag:
                buf[i - j0] = 0.0  # the atom with itself
            if mode == 1:
                _refine_small(buf, xa[i], xb[j0:], nai, nbv, tau)
                for j in range(w):
                    buf[j] = math.sqrt(buf[j])
            for q in range(n_ls):
                k = order[q]
                ak = acc[k]
                if nsq[q] == 0:
                    c = -coef[k]
                    for j in range(w):
                        v = _exp_neg(c * buf[j])
                        ebuf[j] = v
                        ak[j] += v
                else:  # coef[k] = 2^nsq * previous coefficient: square the previous values
                    _square_into(ebuf, ak, nsq[q])
        for k in range(n_ls):
            ak = acc[k]
            for t in range(tfirst, ncs):
                tot = _segment_sum(ak, cseg[t] - j0, cseg[t + 1] - j0)
                if diag and t == s:
                    tot *= 0.5
                out[k, r0 + s, c0 + t] += tot


@njit(parallel=True, fastmath=False, cache=True)
def _global_block(G, xa, xb, na, nb, r0, c0, coef, order, nsq, mode, diag, tau,
                  out):  # pragma: no cover - compiled
    """Gaussian (mode 0) / Laplacian (mode 1) kernel of one GEMM block written into ``out``."""
    ra, cb = G.shape
    n_ls = coef.size
    for i in prange(ra):
        buf = np.empty(cb)
        nai = na[i]
        gi = G[i]
        for j in range(cb):
            d2 = nai + nb[j] - 2.0 * np.float64(gi[j])
            buf[j] = d2 if d2 > 0.0 else 0.0
        if diag:
            buf[i] = 0.0
        if mode == 1:
            _refine_small(buf, xa[i], xb, nai, nb, tau)
            for j in range(cb):
                buf[j] = math.sqrt(buf[j])
        ebuf = np.empty(cb)
        for q in range(n_ls):
            k = order[q]
            o = out[k, r0 + i, c0:c0 + cb]
            if nsq[q] == 0:
                c = -coef[k]
                for j in range(cb):
                    v = _exp_neg(c * buf[j])
                    ebuf[j] = v
                    o[j] = v
            else:
                o[:] = 0.0
                _square_into(ebuf, o, nsq[q])


@njit(cache=True)
def _mirror_upper(M, r0, r1):  # pragma: no cover - compiled
    """M[i, j] = M[j, i] for r0 <= j < i < r1 (copy the upper triangle of a diagonal block down)."""
    for i in range(r0 + 1, r1):
        for j in range(r0, i):
            M[i, j] = M[j, i]


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------


def kernel_flops(n_atoms_a: int, n_atoms_b: int | None, dim: int, *, symmetric: bool = False) -> float:
    """GEMM flop count of a kernel, for reporting GFLOP/s.

    The nominal count ``2 * n_atoms_a * n_atoms_b * dim`` (pass ``n_atoms_b=None`` for train x train).  With
    ``symmetric=True`` the count actually performed when only the upper half is computed,
    ``n_atoms_a * (n_atoms_a + 1) * dim`` (diagonal blocks are done in full, so this is a lower bound).
    For global kernels pass the number of structures.
    """
    nb = n_atoms_a if n_atoms_b is None else n_atoms_b
    if symmetric:
        return float(n_atoms_a) * (n_atoms_a + 1) * dim
    return 2.0 * n_atoms_a * nb * dim


def _check_length_scales(length_scales: Sequence[float] | float) -> np.ndarray:
    ls = np.atleast_1d(np.asarray(length_scales, dtype=np.float64)).ravel()
    if ls.size == 0:
        raise ValueError("length_scales is empty")
    if not np.all(np.isfinite(ls)) or np.any(ls <= 0):
        raise ValueError(f"length scales must be positive and finite, got {ls.tolist()}")
    return ls


def _coefficients(kind: str, ls: np.ndarray) -> np.ndarray:
    if kind == "gaussian":
        return 1.0 / (2.0 * ls * ls)
    if kind == "laplacian":
        return 1.0 / ls
    return np.zeros(1)


#: At most this many squarings in a row before an exponential is computed afresh (relative error of a
#: squared value grows as 2^m ulp: 2^10 ulp = 2e-13).
_MAX_SQUARINGS = 10


def _squaring_chain(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of the length scales (ascending coefficient) and, for each, how many squarings of the previous
    values give its exponentials: exp(-2^m c x) = exp(-c x)^(2^m).  0 means an exponential is computed.

    Only exact power-of-two ratios of the coefficients qualify, which is what length scales on a log2 grid
    (``ls0 * 2**k``) give: then several length scales cost little more than one even when the
    exponentials dominate (low-dimensional features).
    """
    order = np.argsort(coef, kind="stable").astype(np.int64)
    nsq = np.zeros(order.size, dtype=np.int64)
    run = 0
    for q in range(1, order.size):
        prev, cur = coef[order[q - 1]], coef[order[q]]
        if prev > 0:
            m, = np.frexp(np.float64(cur / prev))[1:]
            m = int(m) - 1  # cur / prev = 2^m if it is a power of two
            if 1 <= m and run + m <= _MAX_SQUARINGS and np.ldexp(prev, m) == cur:
                nsq[q] = m
                run += m
                continue
        run = 0
    return order, nsq


def _check_offsets(off: Any, n_rows: int, name: str) -> np.ndarray:
    off = np.asarray(off)
    if off.ndim != 1 or off.size < 1 or not np.issubdtype(off.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array of structure offsets (n_structures + 1)")
    off = off.astype(np.int64)
    if off[0] != 0 or off[-1] != n_rows:
        raise ValueError(f"{name} must start at 0 and end at the number of atom rows ({n_rows}), "
                         f"got {off[0]} .. {off[-1]}")
    if np.any(np.diff(off) <= 0):
        raise ValueError(f"{name}: every structure must have at least one atom (offsets strictly increasing)")
    return off


def _partition(off: np.ndarray, cap: int) -> list[tuple[int, int, int, int]]:
    """Blocks of at most ``cap`` consecutive atoms that end on structure boundaries where possible.

    Returns ``(a0, a1, s0, s1)``: atoms a0:a1, touching structures s0:s1.  A structure with more than
    ``cap`` atoms is split into pieces of ``cap`` atoms.
    """
    cap = max(1, int(cap))
    n = off.size - 1
    n_atoms = int(off[-1])
    if n_atoms > cap:  # balance: the same number of blocks, about equal in size
        n_blocks = -(-n_atoms // cap)
        largest = int(np.max(np.diff(off)))
        # every greedy block then holds at least n_atoms / n_blocks atoms: at most n_blocks blocks
        cap = min(cap, -(-n_atoms // n_blocks) + largest)
    blocks = []
    s = 0
    while s < n:
        a0 = int(off[s])
        if off[s + 1] - a0 > cap:  # one large structure: split it
            end = int(off[s + 1])
            for b0 in range(a0, end, cap):
                blocks.append((b0, min(b0 + cap, end), s, s + 1))
            s += 1
            continue
        # the furthest structure end within cap
        e = int(np.searchsorted(off, a0 + cap, side="right")) - 1
        e = max(e, s + 1)
        blocks.append((a0, int(off[e]), s, e))
        s = e
    return blocks


def _local_segments(off: np.ndarray, blk: tuple[int, int, int, int]) -> np.ndarray:
    a0, a1, s0, s1 = blk
    return np.clip(off[s0:s1 + 1] - a0, 0, a1 - a0).astype(np.int64)


class _Rows:
    """Row blocks of a feature matrix (ndarray, or any row-sliceable array such as an h5py dataset) as the
    GEMM needs them: in ``dtype`` and, when ``shift`` is set, minus that vector; with their squared norms.

    A C-contiguous ndarray already in ``dtype`` and not shifted is used in place (blocks are views);
    otherwise a block is converted into a buffer owned by this object.  Squared norms (float64, of the rows
    as the GEMM sees them) are computed when a block is first fetched and shared with :meth:`twin`.
    """

    def __init__(self, X: Any, dtype: np.dtype):
        self.X = X
        self.dtype = np.dtype(dtype)
        self.n, self.d = X.shape
        self.in_place = isinstance(X, np.ndarray) and X.dtype == self.dtype and X.flags.c_contiguous
        self.shift: np.ndarray | None = None
        self._buf: np.ndarray | None = None
        self.sq = np.zeros(self.n)
        self._have: set[tuple[int, int]] = set()

    def copies(self) -> bool:
        return not self.in_place or self.shift is not None

    def twin(self) -> _Rows:
        """The same rows with a buffer of their own (to hold a second block of the same matrix)."""
        t = _Rows.__new__(_Rows)
        t.__dict__.update(self.__dict__)
        t._buf = None
        return t  # shares sq and _have

    def get(self, a0: int, a1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows a0:a1 for the GEMM and their squared norms."""
        if not self.copies():
            x = self.X[a0:a1]
        else:
            raw = np.asarray(self.X[a0:a1])
            if self._buf is None or self._buf.shape[0] < a1 - a0:
                self._buf = np.empty((a1 - a0, self.d), dtype=self.dtype)
            x = self._buf[: a1 - a0]
            if self.shift is None:
                np.copyto(x, raw, casting="unsafe")
            else:
                np.subtract(raw, self.shift, out=x, casting="unsafe")
        if (a0, a1) not in self._have:
            self.sq[a0:a1] = np.einsum("ij,ij->i", x, x, dtype=np.float64)
            self._have.add((a0, a1))
        return x, self.sq[a0:a1]

    def column_sum(self, chunk: int) -> np.ndarray:
        tot = np.zeros(self.d)
        for a0 in range(0, self.n, chunk):
            tot += np.asarray(self.X[a0:min(a0 + chunk, self.n)]).sum(axis=0, dtype=np.float64)
        return tot


def _prepare(XA: Any, XB: Any, dtype: np.dtype, distance: bool, block_bytes: int, always_shift: bool = False
             ) -> tuple[_Rows, _Rows]:
    """Row sources for A and B (``XB=None``: train x train, B is a twin of A).

    For distance kernels the features are shifted by their mean whenever they have to be copied anyway
    (float32 GEMM, other input dtype or layout, or ``always_shift``): distances do not change and the
    cancellation error of |x|^2 + |y|^2 - 2 x.y shrinks with the norms.
    """
    rowsA = _Rows(XA, dtype)
    rowsB = rowsA.twin() if XB is None else _Rows(XB, dtype)
    if distance and (always_shift or not (rowsA.in_place and rowsB.in_place)):
        chunk = max(1, min(4096, (block_bytes // 4) // max(8 * XA.shape[1], 1)))
        if XB is None:
            shift = rowsA.column_sum(chunk) / rowsA.n
        else:
            shift = (rowsA.column_sum(chunk) + rowsB.column_sum(chunk)) / (rowsA.n + rowsB.n)
        rowsA.shift = rowsB.shift = shift
    return rowsA, rowsB


def _inv_sqrt(sq: np.ndarray) -> np.ndarray:
    return np.divide(1.0, np.sqrt(sq), out=np.zeros_like(sq), where=sq > 0)


#: For features of at most this dimension the block of atom-pair products is kept at most
#: _SMALL_DIM_BLOCK^2 elements so that it stays in cache between the GEMM and the fused pass (measured for
#: d = 100, 2 cores: 3.0-3.5 ns per atom pair with 768-1024 atom blocks, 3.8-4.5 with 64-256 MB blocks).
#: Larger dimensions use the whole memory budget: there the GEMM dominates and likes large blocks.
_SMALL_DIM = 1024
_SMALL_DIM_BLOCK = 1024


def _block_sizes(na: int, nb: int, d: int, itemsize: int, budget: int, copy_a: bool, copy_b: bool,
                 symmetric: bool) -> tuple[int, int]:
    """Row/column atom counts per block so that G (ra x cb) plus copied inputs fit in ``budget`` bytes."""
    elems = max(budget // itemsize, 64)
    ca = d if copy_a else 0
    cbd = d if copy_b else 0
    # square blocks: m^2 + (ca + cbd) m <= elems
    w = ca + cbd
    m = int((-w + math.sqrt(w * w + 4.0 * elems)) / 2.0)
    if d <= _SMALL_DIM:
        # the GEMM is cheap per element: keep G in the last-level cache for the fused pass
        m = min(m, _SMALL_DIM_BLOCK)
    m = max(m, 8)
    if symmetric:
        return m, m
    gcap = m * m if d <= _SMALL_DIM else elems
    if na <= m:
        ra = na
        cb = min(int((elems - ca * ra) / max(ra + cbd, 1)), gcap // max(ra, 1))
        return ra, max(min(cb, nb), 8)
    if nb <= m:
        cb = nb
        ra = min(int((elems - cbd * cb) / max(cb + ca, 1)), gcap // max(cb, 1))
        return max(min(ra, na), 8), cb
    return m, m


# --------------------------------------------------------------------------------------------------------
# local kernel
# --------------------------------------------------------------------------------------------------------


def local_kernel(
    XA: Any,
    offA: Any,
    XB: Any = None,
    offB: Any = None,
    *,
    atom_kernel: str = "gaussian",
    length_scales: Sequence[float] | float = (1.0,),
    zeta: float = 2.0,
    normalize: bool = False,
    dtype: Any = np.float64,
    block_bytes: int = 256 * 2**20,
    engine: str = "numba",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Sum-over-atom-pairs kernel between the structures of A and B; shape ``(n_ls, nA, nB)``, float64.

    Parameters
    ----------
    XA, offA : per-atom features ``(n_atoms_A, d)`` (ndarray, or anything that slices rows into arrays,
        e.g. an h5py dataset: only one block is read at a time) and structure offsets ``(nA + 1,)``.
    XB, offB : the same for B; ``XB=None`` means B = A (train x train): only the upper blocks are computed
        and the result is exactly symmetric.
    atom_kernel : "gaussian" | "laplacian" | "polynomial" (see module docstring).
    length_scales : one or several length scales, all computed from one pass over the distances.  Ignored
        for "polynomial" (then ``n_ls = 1``).
    zeta : exponent of the polynomial kernel.  Integer values are computed exactly (any sign of x.y);
        for non-integer values negative cosines count as 0.
    normalize : divide K(A, B) by n_atoms(A) * n_atoms(B).
    dtype : float64 (default) or float32 for the GEMM (see module docstring for the error); the sums are
        always accumulated in float64.
    block_bytes : memory for one block of atom-pair products plus the copied input rows it needs.
    engine : "numba" (fused exp + segment sums) or "numpy" (reference: exp + ``np.add.reduceat``).
    progress : called as ``progress(done, total)`` (atom pairs) after every block.
    """
    if atom_kernel not in _MODES:
        raise ValueError(f"unknown atom kernel {atom_kernel!r}; allowed: {', '.join(ATOM_KERNELS)}")
    if engine not in ("numba", "numpy"):
        raise ValueError(f"unknown engine {engine!r}; allowed: numba, numpy")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    mode = _MODES[atom_kernel]
    poly = mode == 2
    ls = np.ones(1) if poly else _check_length_scales(length_scales)
    coef = _coefficients(atom_kernel, ls)
    order, nsq = _squaring_chain(coef)
    zeta = float(zeta)
    if poly and not (np.isfinite(zeta) and zeta > 0):
        raise ValueError(f"zeta must be positive, got {zeta}")
    izeta = int(zeta) if poly and zeta == int(zeta) else 0

    symmetric = XB is None
    if XA.ndim != 2:
        raise ValueError(f"XA must be 2-D (atoms x features), got shape {XA.shape}")
    offA = _check_offsets(offA, XA.shape[0], "offA")
    if symmetric:
        if offB is not None:
            raise ValueError("offB given without XB")
        XB, offB = XA, offA
    else:
        if offB is None:
            raise ValueError("XB given without offB")
        if XB.ndim != 2 or XB.shape[1] != XA.shape[1]:
            raise ValueError(f"XB must be 2-D with {XA.shape[1]} features, got shape {XB.shape}")
        offB = _check_offsets(offB, XB.shape[0], "offB")
    nA, nB = offA.size - 1, offB.size - 1
    d = XA.shape[1]

    # --- row sources (a pass over the data for the shift when the rows are copied anyway) --------------
    rowsA, rowsB = _prepare(XA, None if symmetric else XB, dtype, not poly, int(block_bytes))

    # --- blocks ----------------------------------------------------------------------------------------
    ra, cb = _block_sizes(XA.shape[0], XB.shape[0], d, dtype.itemsize, int(block_bytes),
                          rowsA.copies(), rowsB.copies(), symmetric)
    if engine == "numpy":  # the reference path holds a few float64 temporaries of the block
        ra, cb = max(8, ra // 2), max(8, cb // 2)
    bA = _partition(offA, ra)
    bB = bA if symmetric else _partition(offB, cb)

    tau = _REFINE_REL[dtype.itemsize]
    out = np.zeros((ls.size, nA, nB))
    total = XA.shape[0] * XB.shape[0] if not symmetric else XA.shape[0] * (XA.shape[0] + 1) // 2
    done = 0
    gbuf = np.empty(max(b[1] - b[0] for b in bA) * max(b[1] - b[0] for b in bB), dtype=dtype)
    for I, blkA in enumerate(bA):
        xa, na_blk = rowsA.get(blkA[0], blkA[1])
        if poly:  # the fused pass turns x.y into cosines with the inverse norms
            na_blk = _inv_sqrt(na_blk)
        segA = _local_segments(offA, blkA)
        for J in range(I if symmetric else 0, len(bB)):
            blkB = bB[J]
            diag = symmetric and I == J
            if diag:
                xb, nb_blk, segB = xa, na_blk, segA
            else:
                xb, nb_blk = rowsB.get(blkB[0], blkB[1])  # rowsB has its own buffer
                if poly:
                    nb_blk = _inv_sqrt(nb_blk)
                segB = _local_segments(offB, blkB)
            G = gbuf[: xa.shape[0] * xb.shape[0]].reshape(xa.shape[0], xb.shape[0])
            np.matmul(xa, xb.T, out=G)
            if engine == "numba":
                with _NUMBA_LOCK:
                    _local_block(G, xa, xb, na_blk, nb_blk, segA, blkA[2], segB, blkB[2], coef, order, nsq,
                                 mode, izeta, zeta, diag, tau, out)
            else:
                _local_block_numpy(G, xa, xb, na_blk, nb_blk, segA, blkA[2], segB, blkB[2], coef, mode, izeta,
                                   zeta, diag, tau, out)
            if progress is not None:
                m = xa.shape[0]
                done += m * (m + 1) // 2 if diag else m * xb.shape[0]
                progress(min(done, total), total)
    if symmetric:
        for k in range(out.shape[0]):
            out[k] += out[k].T
    if normalize:
        # one division by the (exact, commutative) product keeps a symmetric kernel exactly symmetric
        out /= np.multiply.outer(np.diff(offA).astype(np.float64), np.diff(offB).astype(np.float64))[None]
    return out


def _local_block_numpy(G, xa, xb, na, nb, rseg, r0, cseg, c0, coef, mode, izeta, zeta, diag, tau, out):
    """Reference implementation of :func:`_local_block` with numpy (exp + np.add.reduceat)."""
    G = G.astype(np.float64)
    if mode == 2:
        G = G * na[:, None] * nb[None, :]
        if izeta > 0:
            vals = [G**izeta]
        else:
            vals = [np.where(G > 0, np.maximum(G, 0.0) ** zeta, 0.0)]
    else:
        D = na[:, None] + nb[None, :] - 2.0 * G
        np.maximum(D, 0.0, out=D)
        if diag:
            np.fill_diagonal(D, 0.0)
        if mode == 1:
            ii, jj = np.nonzero(D < tau * (na[:, None] + nb[None, :]))
            if ii.size:
                diff = xa[ii].astype(np.float64) - xb[jj].astype(np.float64)
                D[ii, jj] = np.einsum("ij,ij->i", diff, diff)
            np.sqrt(D, out=D)
        vals = [np.exp(-c * D) for c in coef]
    rstart = rseg[:-1]
    cstart = cseg[:-1]
    nrs, ncs = rstart.size, cstart.size
    for k, E in enumerate(vals):
        S = np.add.reduceat(np.add.reduceat(E, rstart, axis=0), cstart, axis=1)
        if diag:
            S = np.triu(S)
            S[np.diag_indices(nrs)] *= 0.5
        out[k, r0:r0 + nrs, c0:c0 + ncs] += S


# --------------------------------------------------------------------------------------------------------
# global kernel
# --------------------------------------------------------------------------------------------------------


def global_kernel(
    A: Any,
    B: Any = None,
    *,
    kind: str = "gaussian",
    length_scales: Sequence[float] | float = (1.0,),
    dtype: Any = np.float64,
    block_bytes: int = 256 * 2**20,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Gaussian exp(-|x-y|^2/(2 s^2)) or Laplacian exp(-|x-y|/s) kernel between rows of A and B.

    Returns ``(n_ls, nA, nB)`` float64, all length scales from one blocked pass over the squared distances.
    ``B=None``: A x A, only upper blocks computed, exactly symmetric.  ``dtype=np.float32`` does the GEMM
    in float32.
    """
    if kind not in GLOBAL_KERNELS:
        raise ValueError(f"unknown global kernel {kind!r}; allowed: {', '.join(GLOBAL_KERNELS)}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    ls = _check_length_scales(length_scales)
    coef = _coefficients(kind, ls)
    order, nsq = _squaring_chain(coef)
    mode = _MODES[kind]
    symmetric = B is None
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D (structures x features), got shape {A.shape}")
    if not symmetric and (B.ndim != 2 or B.shape[1] != A.shape[1]):
        raise ValueError(f"B must be 2-D with {A.shape[1]} features, got shape {B.shape}")
    Bx = A if symmetric else B
    nA, nB, d = A.shape[0], Bx.shape[0], A.shape[1]
    # global vectors are few: always centre (precision), the copies cost little
    rowsA, rowsB = _prepare(A, B, dtype, True, int(block_bytes), always_shift=True)
    ra, cb = _block_sizes(nA, nB, d, dtype.itemsize, int(block_bytes), True, True, symmetric)
    out = np.empty((ls.size, nA, nB))
    gbuf = np.empty(min(ra, nA) * min(cb, nB), dtype=dtype)
    total = nA * nB if not symmetric else nA * (nA + 1) // 2
    done = 0
    for r0 in range(0, nA, ra):
        r1 = min(r0 + ra, nA)
        xa, na_blk = rowsA.get(r0, r1)
        for c0 in range(r0 if symmetric else 0, nB, cb):
            c1 = min(c0 + cb, nB)
            if symmetric and c0 == r0:
                xb, nb_blk = xa, na_blk
            else:
                xb, nb_blk = rowsB.get(c0, c1)  # rowsB has its own buffer
            G = gbuf[: (r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0)
            np.matmul(xa, xb.T, out=G)
            with _NUMBA_LOCK:
                _global_block(G, xa, xb, na_blk, nb_blk, r0, c0, coef, order, nsq, mode,
                              symmetric and c0 == r0, _REFINE_REL[dtype.itemsize], out)
            if symmetric:
                for k in range(ls.size):
                    if c0 == r0:
                        _mirror_upper(out[k], r0, r1)
                    else:
                        out[k, c0:c1, r0:r1] = out[k, r0:r1, c0:c1].T
            if progress is not None:
                m = r1 - r0
                done += m * (m + 1) // 2 if (symmetric and c0 == r0) else m * (c1 - c0)
                progress(min(done, total), total)
    return out


# --------------------------------------------------------------------------------------------------------
# length-scale heuristic
# --------------------------------------------------------------------------------------------------------


def median_length_scale(X: Any, *, max_rows: int = 2000, seed: int = 0) -> float:
    """Median Euclidean distance between rows of ``X`` (atoms for local, structures for global kernels).

    A common starting point for the length-scale search (:func:`repbench.krr.grid_search` takes it as
    ``ls_start``).  At most ``max_rows`` rows, drawn with a fixed seed, are used.  Returns 1.0 if all rows
    coincide.
    """
    n = X.shape[0]
    if n < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(n, max_rows), replace=False))
    x = np.asarray(X[idx] if isinstance(X, np.ndarray) else np.stack([np.asarray(X[i]) for i in idx]),
                   dtype=np.float64)
    x = x - x.mean(axis=0)
    sq = np.einsum("ij,ij->i", x, x)
    D2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    iu = np.triu_indices(x.shape[0], 1)
    med = float(np.sqrt(max(np.median(D2[iu]), 0.0)))
    return med if med > 0 else 1.0
