"""Local and global kernels against brute-force references (scipy cdist per structure pair)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from repbench.kernels import (
    FLOAT32_REL_ERROR_BOUND,
    global_kernel,
    kernel_flops,
    local_kernel,
    median_length_scale,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny matrices: a second BLAS thread only adds waiting when the (shared) machine is busy."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _structures(rng, n, d, lo=1, hi=9, scale=1.0):
    nat = rng.integers(lo, hi + 1, size=n)
    off = np.concatenate([[0], np.cumsum(nat)]).astype(np.int64)
    # positive, correlated features with a common offset, like SOAP/ACSF vectors
    X = np.abs(rng.normal(size=(off[-1], d))) * scale + 0.5 * rng.random(d)
    return X, off


def brute_local(XA, offA, XB, offB, kind, s=1.0, zeta=2.0, normalize=False):
    """Double loop over structures; atom pairs from the directly computed distances."""
    K = np.zeros((offA.size - 1, offB.size - 1))
    for a in range(offA.size - 1):
        xa = XA[offA[a]:offA[a + 1]]
        for b in range(offB.size - 1):
            xb = XB[offB[b]:offB[b + 1]]
            if kind == "gaussian":
                k = np.exp(-cdist(xa, xb, "sqeuclidean") / (2 * s * s))
            elif kind == "laplacian":
                k = np.exp(-cdist(xa, xb, "euclidean") / s)
            else:
                na = np.linalg.norm(xa, axis=1)[:, None]
                nb = np.linalg.norm(xb, axis=1)[None, :]
                k = ((xa @ xb.T) / (na * nb)) ** zeta
            K[a, b] = k.sum() / (xa.shape[0] * xb.shape[0] if normalize else 1)
    return K


def rel_err(K, R):
    return float(np.max(np.abs(K - R)) / np.max(np.abs(R)))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    XA, offA = _structures(rng, 11, 24)
    XB, offB = _structures(rng, 7, 24)
    s = median_length_scale(XA)
    return XA, offA, XB, offB, s


@pytest.mark.parametrize("kind", ["gaussian", "laplacian", "polynomial"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("symmetric", [True, False])
def test_local_kernel_matches_brute_force(data, kind, normalize, symmetric):
    XA, offA, XB, offB, s = data
    if symmetric:
        K = local_kernel(XA, offA, atom_kernel=kind, length_scales=(s,), normalize=normalize)
        R = brute_local(XA, offA, XA, offA, kind, s, normalize=normalize)
        assert np.array_equal(K[0], K[0].T), "train x train kernel must be exactly symmetric"
    else:
        K = local_kernel(XA, offA, XB, offB, atom_kernel=kind, length_scales=(s,), normalize=normalize)
        R = brute_local(XA, offA, XB, offB, kind, s, normalize=normalize)
    assert K.shape == (1,) + R.shape
    assert rel_err(K[0], R) <= 1e-10
    if kind != "polynomial":  # strictly positive entries: also element-wise
        assert np.max(np.abs(K[0] - R) / R) <= 1e-10


@pytest.mark.parametrize("kind", ["gaussian", "laplacian", "polynomial"])
def test_numpy_engine_agrees(data, kind):
    XA, offA, XB, offB, s = data
    for args in ((XA, offA), (XA, offA, XB, offB)):
        a = local_kernel(*args, atom_kernel=kind, length_scales=(s, 2 * s))
        b = local_kernel(*args, atom_kernel=kind, length_scales=(s, 2 * s), engine="numpy")
        assert rel_err(a, b) <= 1e-12


@pytest.mark.parametrize("zeta", [1, 3, 2.5])
def test_polynomial_zeta(data, zeta):
    XA, offA, XB, offB, _ = data
    K = local_kernel(XA, offA, XB, offB, atom_kernel="polynomial", zeta=zeta, length_scales=(5.0, 7.0))
    assert K.shape[0] == 1  # length scales are ignored
    R = brute_local(XA, offA, XB, offB, "polynomial", zeta=zeta)  # features positive: cosines > 0
    assert rel_err(K[0], R) <= 1e-10


def test_polynomial_integer_zeta_keeps_sign():
    rng = np.random.default_rng(3)
    X, off = _structures(rng, 6, 10)
    X = X - X.mean(axis=0)  # negative cosines occur
    for zeta in (1, 3):
        K = local_kernel(X, off, atom_kernel="polynomial", zeta=zeta)
        R = brute_local(X, off, X, off, "polynomial", zeta=zeta)
        assert (R < 0).any()
        assert rel_err(K[0], R) <= 1e-10


@pytest.mark.parametrize("kind", ["gaussian", "laplacian"])
def test_several_length_scales_equal_single_calls(data, kind):
    """Power-of-two related scales reuse exponentials by squaring (error <= 2^10 ulp); others don't."""
    XA, offA, XB, offB, s = data
    scales = [s / 4, s / 2, s, 2 * s, 8 * s, 3 * s, 2.0**-3 * s]
    for args in ((XA, offA), (XA, offA, XB, offB)):
        for engine in ("numba", "numpy"):
            K = local_kernel(*args, atom_kernel=kind, length_scales=scales, engine=engine)
            assert K.shape[0] == len(scales)
            for i, ls in enumerate(scales):
                single = local_kernel(*args, atom_kernel=kind, length_scales=ls, engine=engine)[0]
                np.testing.assert_allclose(K[i], single, rtol=1e-12, atol=0)
                R = brute_local(*(args if len(args) == 4 else args + args), kind, ls)
                assert rel_err(K[i], R) <= 1e-10


@pytest.mark.parametrize("kind", ["gaussian", "laplacian", "polynomial"])
def test_tiny_blocks_give_the_same_result(data, kind):
    """Blocks smaller than one structure (structures split over blocks) and blocks of a few structures."""
    XA, offA, XB, offB, s = data
    d = XA.shape[1]
    ref_sym = local_kernel(XA, offA, atom_kernel=kind, length_scales=(s, 3 * s))
    ref_rect = local_kernel(XA, offA, XB, offB, atom_kernel=kind, length_scales=(s, 3 * s))
    for m in (2, 3, 7, 13):  # atoms per block side; structures have up to 9 atoms
        bb = 8 * (m * m + 2 * m * d)
        for engine in ("numba", "numpy"):
            K = local_kernel(XA, offA, atom_kernel=kind, length_scales=(s, 3 * s), block_bytes=bb,
                             engine=engine)
            assert np.array_equal(K[-1], K[-1].T)
            assert rel_err(K, ref_sym) <= 1e-12
            K = local_kernel(XA, offA, XB, offB, atom_kernel=kind, length_scales=(s, 3 * s), block_bytes=bb,
                             engine=engine)
            assert rel_err(K, ref_rect) <= 1e-12


def test_one_structure_and_single_atoms():
    rng = np.random.default_rng(5)
    X = rng.random((5, 8))
    off1 = np.array([0, 5])
    K = local_kernel(X, off1, length_scales=1.0)
    np.testing.assert_allclose(K[0], brute_local(X, off1, X, off1, "gaussian"), rtol=1e-12)
    offs = np.arange(6)  # every atom its own structure: the local kernel is the global one
    np.testing.assert_allclose(local_kernel(X, offs, length_scales=0.7),
                               global_kernel(X, length_scales=0.7), rtol=1e-12)


def test_duplicate_atoms_laplacian_exact():
    """Symmetry-equivalent atoms (identical vectors, large norms): no sqrt-amplified rounding error."""
    rng = np.random.default_rng(9)
    base = rng.random((3, 50)) * 100
    X = np.concatenate([base, base[::-1], base])
    off = np.array([0, 3, 6, 9])
    K = local_kernel(X, off, atom_kernel="laplacian", length_scales=1.0)
    R = brute_local(X, off, X, off, "laplacian", 1.0)
    np.testing.assert_allclose(K[0], R, rtol=1e-12)


def test_float32_within_stated_bound(data):
    XA, offA, XB, offB, s = data
    for kind in ("gaussian", "laplacian", "polynomial"):
        for args in ((XA, offA), (XA, offA, XB, offB)):
            k64 = local_kernel(*args, atom_kernel=kind, length_scales=(s / 4, s, 4 * s))
            k32 = local_kernel(*args, atom_kernel=kind, length_scales=(s / 4, s, 4 * s), dtype=np.float32)
            assert rel_err(k32, k64) <= FLOAT32_REL_ERROR_BOUND
            assert rel_err(k32, k64) > 0  # really computed in float32


def test_real_soap_of_small_molecules():
    """SOAP vectors of real molecules (dscribe): brute force, float32 bound, symmetry."""
    ase_build = pytest.importorskip("ase.build")
    dscribe = pytest.importorskip("dscribe.descriptors")
    names = ["CH4", "NH3", "H2O", "C2H6", "CH3OH", "C2H4", "HCN", "CH3CHO", "C6H6", "CH3CONH2", "HCOOH"]
    mols = [ase_build.molecule(n) for n in names]
    soap = dscribe.SOAP(species=["H", "C", "N", "O"], r_cut=5.0, n_max=6, l_max=4, sigma=0.5,
                        periodic=False)
    feats = [soap.create(m) for m in mols]
    X = np.concatenate(feats)
    off = np.concatenate([[0], np.cumsum([f.shape[0] for f in feats])]).astype(np.int64)
    s = median_length_scale(X)
    for kind in ("gaussian", "laplacian", "polynomial"):
        k64 = local_kernel(X, off, atom_kernel=kind, length_scales=(s / 2, s, 2 * s))
        R = brute_local(X, off, X, off, kind, s)
        assert rel_err(k64[1 if kind != "polynomial" else 0], R) <= 1e-10
        k32 = local_kernel(X, off, atom_kernel=kind, length_scales=(s / 2, s, 2 * s), dtype=np.float32)
        assert rel_err(k32, k64) <= FLOAT32_REL_ERROR_BOUND
        assert np.array_equal(k32[0], k32[0].T)
    # normalised, rectangular, float32 input array
    kn = local_kernel(X.astype(np.float32), off, X[: off[4]], off[:5], normalize=True, length_scales=s)
    Rn = brute_local(X.astype(np.float32).astype(np.float64), off, X[: off[4]], off[:5], "gaussian", s,
                     normalize=True)
    assert rel_err(kn[0], Rn) <= 1e-6  # only the float32 storage of X differs


class _RowSource:
    """Array-like with only .shape/.ndim and row slicing, like an h5py dataset."""

    def __init__(self, X):
        self._X = X
        self.shape = X.shape
        self.ndim = X.ndim
        self.reads = 0

    def __getitem__(self, sl):
        assert isinstance(sl, slice)
        self.reads += 1
        return self._X[sl].copy()


def test_array_like_input_read_in_blocks(data):
    XA, offA, XB, offB, s = data
    src = _RowSource(XA)
    K = local_kernel(src, offA, length_scales=s, block_bytes=8 * (20 * 20 + 40 * XA.shape[1]))
    assert src.reads > 2
    assert rel_err(K, local_kernel(XA, offA, length_scales=s)) <= 1e-12


def test_progress_is_reported(data):
    XA, offA, XB, offB, s = data
    calls = []
    local_kernel(XA, offA, XB, offB, length_scales=s, block_bytes=8 * (10 * 10 + 20 * XA.shape[1]),
                 progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 1
    assert calls[-1][0] == calls[-1][1] == XA.shape[0] * XB.shape[0]
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))


def test_input_validation(data):
    XA, offA, XB, offB, s = data
    with pytest.raises(ValueError, match="atom kernel"):
        local_kernel(XA, offA, atom_kernel="cosine")
    with pytest.raises(ValueError, match="offA"):
        local_kernel(XA, offA[:-1])
    with pytest.raises(ValueError, match="at least one atom"):
        local_kernel(XA, np.concatenate([[0, 0], offA[1:]]))
    with pytest.raises(ValueError, match="length scales"):
        local_kernel(XA, offA, length_scales=(0.0,))
    with pytest.raises(ValueError, match="features"):
        local_kernel(XA, offA, XB[:, :5], offB)
    with pytest.raises(ValueError, match="dtype"):
        local_kernel(XA, offA, dtype=np.float16)


# ------------------------------------------------------------------------------------------------ global


@pytest.mark.parametrize("kind", ["gaussian", "laplacian"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_global_kernel_matches_cdist(kind, dtype):
    rng = np.random.default_rng(1)
    A = np.abs(rng.normal(size=(37, 40))) + 3.0
    B = np.abs(rng.normal(size=(23, 40))) + 3.0
    s = median_length_scale(A)
    scales = (s / 3, s, 3 * s)
    metric = "sqeuclidean" if kind == "gaussian" else "euclidean"

    def ref(X, Y, ls):
        D = cdist(X, Y, metric)
        return np.exp(-D / (2 * ls * ls)) if kind == "gaussian" else np.exp(-D / ls)

    tol = 1e-10 if dtype == np.float64 else FLOAT32_REL_ERROR_BOUND
    for bb in (256 * 2**20, 8 * (5 * 5 + 10 * 40)):  # one block / many tiny blocks
        K = global_kernel(A, B, kind=kind, length_scales=scales, dtype=dtype, block_bytes=bb)
        S = global_kernel(A, kind=kind, length_scales=scales, dtype=dtype, block_bytes=bb)
        for i, ls in enumerate(scales):
            assert rel_err(K[i], ref(A, B, ls)) <= tol
            assert rel_err(S[i], ref(A, A, ls)) <= tol
            assert np.array_equal(S[i], S[i].T)
            np.testing.assert_array_equal(np.diag(S[i]), 1.0)


def test_global_kernel_validation():
    A = np.zeros((3, 4))
    with pytest.raises(ValueError, match="global kernel"):
        global_kernel(A, kind="polynomial")
    with pytest.raises(ValueError, match="features"):
        global_kernel(A, np.zeros((2, 5)))


def test_kernel_flops_and_median():
    assert kernel_flops(10, 20, 5) == 2000
    assert kernel_flops(10, None, 5) == 1000
    assert kernel_flops(10, None, 5, symmetric=True) == 550
    X = np.array([[0.0], [1.0], [3.0]])
    assert median_length_scale(X) == pytest.approx(2.0)
    assert median_length_scale(np.ones((4, 2))) == 1.0


def test_concurrent_calls_from_threads(data):
    """numba's workqueue layer must not be entered concurrently: the module serialises the fused kernels."""
    from concurrent.futures import ThreadPoolExecutor

    XA, offA, XB, offB, s = data
    ref = local_kernel(XA, offA, length_scales=s, block_bytes=8 * (10 * 10 + 20 * XA.shape[1]))
    with ThreadPoolExecutor(max_workers=4) as ex:
        futs = [ex.submit(local_kernel, XA, offA, length_scales=s, block_bytes=8 * (10 * 10 + 20 * XA.shape[1]))
                for _ in range(8)]
        for f in futs:
            np.testing.assert_array_equal(f.result(), ref)
