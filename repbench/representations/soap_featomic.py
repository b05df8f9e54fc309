"""SOAP power spectrum computed by featomic (``SoapPowerSpectrum``), one row per atom (local).

A second implementation of SOAP beside ``soap`` (dscribe), for checking one against the other and for
timing.  Needs the optional package featomic (``pip install repbench[featomic]``); without it a config that
names ``soap_featomic`` stops with one error saying so, and ``repbench representations`` still lists it.

Config keys (``representation.soap_featomic``), defaults in brackets; the first four mean what they mean
for ``soap``:

- ``r_cut`` [5.0] cutoff radius in Angstrom; neighbours up to ``r_cut + cutoff_padding`` contribute, as in
  dscribe
- ``n_max`` [8] number of radial basis functions (featomic's ``max_radial`` is ``n_max - 1``)
- ``l_max`` [6] largest spherical-harmonics degree (featomic's ``max_angular``), 0..20
- ``sigma`` [0.5] Gaussian width of the atomic density in Angstrom
- ``rbf`` ["gto"] the radial basis:

  - ``gto``: featomic's own GTO basis, ``R_n(r) = r^n exp(-r^2 / (2 s_n^2))`` with
    ``s_n = R max(sqrt(n), 1) / n_max``, the same for every l, orthonormalised on [0, inf); featomic requires
    its radius ``R`` to be the neighbour cutoff, ``r_cut + cutoff_padding``.  A different basis from
    dscribe's: the features span a different space (see "Compared with dscribe" below).
  - ``dscribe_gto``: dscribe's GTO basis (``SOAP.get_basis_gto``: for each l,
    ``r^l exp(-alpha_nl r^2)`` with ``alpha_nl`` chosen so that it decays to 1e-3 at the n-th of n_max
    points evenly spaced from 1 Angstrom to r_cut, Loewdin-orthonormalised on [0, inf)).  Its radial integral
    with the Gaussian density is analytic; featomic tabulates it as a spline (``featomic.splines``, accuracy
    1e-10) and computes everything else (neighbour lists, spherical harmonics, expansion, power spectrum).
    Building the spline takes about 0.2 s (n_max 8, l_max 6), once per representation.

- ``cutoff_padding`` [null] neighbours up to ``r_cut + cutoff_padding`` contribute.  null: dscribe's
  padding ``sigma * sqrt(2 ln 1000)`` (3.72 sigma, where a neighbour's Gaussian has decayed to 1e-3 at
  r_cut), so that ``soap`` and ``soap_featomic`` see the same neighbours; 0: featomic's own convention.
- ``smoothing`` [0.0] width (Angstrom) of featomic's shifted-cosine cutoff function, ending at the neighbour
  cutoff; 0: a step (no smoothing), as dscribe without ``weighting``.  Must be below the neighbour cutoff.
- ``center_atom_weight`` [1.0] weight of the central atom in its own density (dscribe: ``weighting.w0``,
  1 by default)

Output layout: featomic's blocks (center type, neighbour type 1 <= neighbour type 2) joined along the
columns for every pair of the dataset's elements (zeros where a structure lacks one), in the order
(neighbour 1, neighbour 2, l, n_1, n_2); rows in structure order, one per atom.  Width
``S (S + 1) / 2 x (l_max + 1) x n_max^2`` for S elements (QM9, n_max 8, l_max 6: 6,720; dscribe's 5,740,
because dscribe keeps n_1 <= n_2 only for equal neighbour types).  The numbers are featomic's own, bit for
bit.

Periodic structures are supported (featomic builds the periodic neighbour list from the ase cell, also for
cutoffs larger than the cell); featomic refuses periodicity along some axes only.

Compared with dscribe (``tests/test_featomic.py``; figures in ``benchmarks/README.md``).  Convention
differences, exact and fixed (:func:`to_dscribe_layout` applies them):

1. dscribe's density is ``exp(-r^2 / 2 sigma^2)``, featomic's is normalised to 1 in L2,
   ``(pi sigma^2)^(-3/4) exp(-r^2 / 2 sigma^2)``; dscribe multiplies by ``pi sqrt(8 / (2l + 1))``, featomic by
   ``(-1)^l / sqrt(2l + 1)``.  Together: dscribe = featomic x ``(-1)^l pi sqrt(8) (pi sigma^2)^(3/2)``.
2. featomic multiplies the blocks of two different neighbour types by sqrt(2) (so that the dot product of
   two rows is the SOAP kernel over ordered pairs of elements); dscribe does not.
3. For equal neighbour types dscribe keeps n_1 <= n_2 (the others are equal by symmetry), featomic all.

With ``rbf: dscribe_gto`` and the default padding, featomic's rows mapped this way equal dscribe's ``soap``
rows: largest difference 5.6e-11 of the largest entry on 500 QM9 molecules (r_cut 5, n_max 8, l_max 6,
sigma 0.5), 6.3e-11 on four crystals (cells smaller and larger than the cutoff); the spline's accuracy, 1e-10,
is the limit.  Consequence of 2 and 3: dot products (and Gaussian kernels) of dscribe's rows weight the
cross terms differently from featomic's, which are the SOAP kernel; compare like with like after the map.

With ``rbf: gto`` (featomic's basis) the features are different functions of the structure, not equal up to
the conventions.  Measured on the same 500 QM9 molecules and parameters (dscribe's rows mapped to this
layout, rows l2-normalised; ``benchmarks/``, section soap_featomic):

- atom kernel ``(x.y)^2`` over 2,000 atoms: Pearson r 0.9935, largest difference 0.39, mean 0.018;
- structure kernel (sum over atom pairs, normalised), 112 molecules: r 0.9976, largest difference 0.082;
- a linear map per block (element pair, l; 64 x 64) fitted by least squares on half of the atoms leaves
  3.5% of the other half unexplained (relative Frobenius norm; 135% without a map): the feature spaces are
  close to, not exactly, linear images of each other (the bases span different functions);
- the complete-basis limit: the dot product is the SOAP kernel, which does not depend on the radial basis
  once the basis is complete.  On six small molecules (r_cut 5, l_max 3, sigma 1; largest kernel difference
  / largest entry) featomic's basis converges to it (n_max 14 vs 20: 1.4e-5); dscribe's does not (n_max 10:
  9e-4, n_max 14, the largest it can orthonormalise for r_cut 5: 1.6e-3; its functions end near r_cut, the
  density reaches r_cut + 3.7 sigma).  So no choice of n_max makes the two SOAPs equal.

Speed (same benchmark, one process, one thread each): featomic takes about 2.8x (gto) and 3.5x
(dscribe_gto) dscribe's CPU time for these molecules; figures and the 2-worker runs in
``benchmarks/README.md``.

Parallel computing: featomic runs its own thread pool (rayon), which a forked worker process inherits
without its threads (computing there would hang).  Each forked repbench worker therefore loads a private
copy of featomic's shared library (a fresh pool; about 5 ms) and limits it to one thread (repbench already
runs one process per core) unless ``RAYON_NUM_THREADS`` is set.  The numbers do not depend on the number of
threads or processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings

import numpy as np

from ..errors import ConfigError, DataError
from .base import Representation, as_choice, as_float, as_int, check_mapping

INSTALL_HINT = "pip install repbench[featomic]"
RBFS = ("gto", "dscribe_gto")
DEFAULTS = {"r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5, "rbf": "gto", "cutoff_padding": None,
            "smoothing": 0.0, "center_atom_weight": 1.0}
#: dscribe's cutoff padding in units of sigma (``SOAP.get_cutoff_padding``: a Gaussian decays to 1e-3).
DSCRIBE_PADDING_SIGMAS = math.sqrt(-2.0 * math.log(1e-3))
#: Accuracy of featomic's spline of the dscribe_gto radial integrals (mean relative or absolute error).
SPLINE_ACCURACY = 1e-10
#: Version of this module's numerics, in the cache key; bump it when the numbers change.
NUMERICS_VERSION = 1


# ---------------------------------------------------------------------------------------------- featomic
def featomic_module():
    """The featomic package, or a :class:`ConfigError` saying how to install it."""
    try:
        import featomic
    except ImportError as exc:
        raise ConfigError(f"the soap_featomic representation needs the optional package featomic, which is "
                          f"not installed ({type(exc).__name__}: {exc})",
                          where="representation.soap_featomic", hint=INSTALL_HINT) from None
    return featomic


#: pid of the process whose featomic library (and rayon thread pool) this module uses.
_LIBRARY_PID: list = [None]
#: pid of the process that imported this module (repbench's forked workers have another one).
_MODULE_PID = os.getpid()


def _library_for_this_process() -> None:
    """Make featomic usable in this process.

    featomic's native library keeps one rayon thread pool per process; a process forked after the pool
    started has the pool without its threads, and the first parallel call there waits forever.  In a
    forked child (a pid other than the one that loaded the library) load a private copy of the library
    (a copy of the file: the dynamic loader shares one mapping per file) with its own, not yet started pool,
    and limit that pool to one thread.  The copy's file is removed once loaded.
    """
    pid = os.getpid()
    if _LIBRARY_PID[0] == pid:
        return
    featomic = featomic_module()
    from featomic import _c_lib

    finder = _c_lib._get_library
    if pid != _MODULE_PID:
        # a forked worker: one thread for featomic's pool (repbench runs one process per core)
        os.environ.setdefault("RAYON_NUM_THREADS", "1")
    if pid == _MODULE_PID or (_LIBRARY_PID[0] is None and getattr(finder, "_cached_dll", None) is None):
        finder()  # this process's own library (loaded here, or already by featomic's users in this process)
        _LIBRARY_PID[0] = pid
        return
    # forked from a process that had loaded the library: a private copy with a pool of its own
    import shutil
    import tempfile
    from ctypes import cdll

    try:
        from featomic._c_api import setup_functions
        from featomic.log import _set_logging_callback_impl, default_logging_callback
    except ImportError as exc:  # pragma: no cover - another featomic layout
        raise RuntimeError(f"featomic {featomic.__version__}: cannot load a private copy of its library in a "
                           f"forked worker ({exc}); compute with n_workers=1") from None
    folder = tempfile.mkdtemp(prefix="repbench-featomic-")
    path = os.path.join(folder, os.path.basename(_c_lib._lib_path()))
    try:
        shutil.copyfile(_c_lib._lib_path(), path)
        lib = cdll.LoadLibrary(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    setup_functions(lib)
    _set_logging_callback_impl(lib, default_logging_callback)
    finder._cached_dll = lib
    _LIBRARY_PID[0] = pid


# ---------------------------------------------------------------------------------------------- bases
def neighbour_cutoff(params: dict) -> float:
    """``r_cut + cutoff_padding`` (dscribe's padding when it is null)."""
    pad = params["cutoff_padding"]
    return params["r_cut"] + (DSCRIBE_PADDING_SIGMAS * params["sigma"] if pad is None else pad)


def dscribe_gto_constants(r_cut: float, n_max: int, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """dscribe's GTO exponents ``alphas[l, k]`` and Loewdin coefficients ``betas[l, n, k]``
    (``g_nl(r) = sum_k betas[l, n, k] r^l exp(-alphas[l, k] r^2)``), from dscribe itself."""
    from dscribe.descriptors import SOAP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's LinAlgWarning for a nearly singular basis
        alphas, betas = SOAP.get_basis_gto(None, r_cut, n_max, l_max)
    return np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64)


def _dscribe_gto_hypers(params: dict, cutoff: dict):
    """featomic hyper-parameters whose radial integral is dscribe's GTO basis against the Gaussian density.

    For a neighbour at distance d, the radial integral of ``r^l exp(-a r^2)`` with featomic's Gaussian
    density (width s, normalised to 1 in L2) over r in [0, inf) is

        K (1 + 2 a s^2)^-(l + 3/2) d^l exp(-a d^2 / (1 + 2 a s^2)),   K = 2 sqrt(2) pi^(3/4) s^(3/2)

    (the integral of r^(l+2) exp(-p r^2) i_l(b r) is sqrt(pi) b^l exp(b^2 / 4p) / (2^(l+2) p^(l+3/2))).  It is
    tabulated with a Dirac density (so featomic evaluates it at d) and dscribe's Loewdin coefficients as the
    orthonormalisation matrix.
    """
    from featomic.basis import Explicit, RadialBasis
    from featomic.cutoff import Cutoff, ShiftedCosine, Step
    from featomic.density import DiracDelta
    from featomic.splines import SoapSpliner

    r_cut, n_max, l_max, s = params["r_cut"], params["n_max"], params["l_max"], params["sigma"]
    alphas, betas = dscribe_gto_constants(r_cut, n_max, l_max)
    K = 2.0 * math.sqrt(2.0) * math.pi ** 0.75 * s ** 1.5

    class DscribeGtoIntegral(RadialBasis):
        def __init__(self, l: int):
            super().__init__(max_radial=n_max - 1, radius=cutoff["radius"])
            self.l = l

        def compute_primitive(self, positions, n, *, derivative):
            r = np.asarray(positions, dtype=np.float64)
            a = alphas[self.l, n]
            q = 1.0 + 2.0 * a * s * s
            b = a / q
            c = K * q ** -(self.l + 1.5)
            e = np.exp(-b * r * r)
            if not derivative:
                return c * r ** self.l * e
            lower = self.l * r ** (self.l - 1) if self.l > 0 else 0.0
            return c * (lower - 2.0 * b * r ** (self.l + 1)) * e

        def _get_orthonormalization_matrix(self):
            return betas[self.l].copy()

    width = params["smoothing"]
    cut = Cutoff(radius=cutoff["radius"], smoothing=Step() if width == 0 else ShiftedCosine(width=width))
    basis = Explicit(by_angular={l: DscribeGtoIntegral(l) for l in range(l_max + 1)},
                     spline_accuracy=SPLINE_ACCURACY)
    return SoapSpliner(cutoff=cut, density=DiracDelta(center_atom_weight=params["center_atom_weight"]),
                       basis=basis).get_hypers()


def featomic_hypers(params: dict):
    """The hyper-parameters of featomic's ``SoapPowerSpectrum`` for validated ``params``."""
    width = params["smoothing"]
    cutoff = {"radius": neighbour_cutoff(params),
              "smoothing": {"type": "Step"} if width == 0 else {"type": "ShiftedCosine", "width": width}}
    if params["rbf"] == "dscribe_gto":
        return _dscribe_gto_hypers(params, cutoff)
    return {"cutoff": cutoff,
            "density": {"type": "Gaussian", "width": params["sigma"],
                        "center_atom_weight": params["center_atom_weight"]},
            "basis": {"type": "TensorProduct", "max_angular": params["l_max"],
                      "radial": {"type": "Gto", "max_radial": params["n_max"] - 1}}}


# ---------------------------------------------------------------------------------------------- layouts
def element_pairs(species) -> list[tuple[int, int]]:
    """The (neighbour 1, neighbour 2) column blocks, neighbour 1 <= neighbour 2, in column order."""
    s = sorted(int(z) for z in species)
    return [(a, b) for i, a in enumerate(s) for b in s[i:]]


def dscribe_factor(l, sigma: float):
    """dscribe's power spectrum / featomic's for degree ``l`` (the same density, basis and neighbours):
    ``(-1)^l pi sqrt(8) (pi sigma^2)^(3/2)``."""
    return (-1.0) ** np.asarray(l) * math.pi * math.sqrt(8.0) * (math.pi * sigma * sigma) ** 1.5


def dscribe_columns(species, n_max: int, l_max: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(columns, factors)``: dscribe's SOAP column j is ``factors[j] * featomic_row[columns[j]]``.

    dscribe's order: element pairs (Z1 <= Z2), then l, then n_1, n_2 (n_1 <= n_2 when Z1 == Z2); the
    factor is :func:`dscribe_factor`, divided by sqrt(2) for Z1 != Z2 (featomic's sqrt(2) on cross blocks).
    """
    per_pair = (l_max + 1) * n_max * n_max
    cols, fac = [], []
    for p, (a, b) in enumerate(element_pairs(species)):
        for l in range(l_max + 1):
            f = float(dscribe_factor(l, sigma)) / (math.sqrt(2.0) if a != b else 1.0)
            for n1 in range(n_max):
                for n2 in range(n1 if a == b else 0, n_max):
                    cols.append(p * per_pair + (l * n_max + n1) * n_max + n2)
                    fac.append(f)
    return np.asarray(cols, dtype=np.int64), np.asarray(fac)


def to_dscribe_layout(values: np.ndarray, species, n_max: int, l_max: int, sigma: float) -> np.ndarray:
    """featomic rows (this representation's layout) -> dscribe's SOAP layout and normalisation."""
    cols, fac = dscribe_columns(species, n_max, l_max, sigma)
    return np.asarray(values)[:, cols] * fac


def from_dscribe_layout(x: np.ndarray, species, n_max: int, l_max: int, sigma: float) -> np.ndarray:
    """dscribe SOAP rows -> this representation's layout (the inverse of :func:`to_dscribe_layout`; the
    n_1 > n_2 entries of equal neighbour types are filled by symmetry)."""
    x = np.asarray(x, dtype=np.float64)
    pairs = element_pairs(species)
    per_pair = (l_max + 1) * n_max * n_max
    out = np.empty((x.shape[0], len(pairs) * per_pair))
    cols, fac = dscribe_columns(species, n_max, l_max, sigma)
    out[:, cols] = x / fac
    for p, (a, b) in enumerate(pairs):
        if a != b:
            continue
        blk = out[:, p * per_pair:(p + 1) * per_pair].reshape(-1, l_max + 1, n_max, n_max)
        iu = np.triu_indices(n_max, 1)
        blk[:, :, iu[1], iu[0]] = blk[:, :, iu[0], iu[1]]
    return out


# ------------------------------------------------------------------------------------------ representation
class FeatomicSOAPRepresentation(Representation):
    """SOAP power spectrum (featomic SoapPowerSpectrum; optional: pip install repbench[featomic]), local."""

    kind = "soap_featomic"
    local = True

    @classmethod
    def parameters(cls) -> dict:
        return cls._check(None, "representation.soap_featomic")

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        return {"r_cut": 3.5, "n_max": 3, "l_max": 3, "sigma": 0.5}

    @classmethod
    def _check(cls, params, where: str) -> dict:
        """Keys, types and ranges (no featomic needed)."""
        p = check_mapping(params, where, tuple(DEFAULTS))
        out: dict = {}
        out["rbf"] = as_choice(p.get("rbf", DEFAULTS["rbf"]), f"{where}.rbf", RBFS)
        dscribe = out["rbf"] == "dscribe_gto"
        out["r_cut"] = as_float(p.get("r_cut", DEFAULTS["r_cut"]), f"{where}.r_cut", 1.0 if dscribe else 0.0,
                                lo_open=True,
                                hint="allowed: number > 1 (Angstrom) for rbf dscribe_gto" if dscribe else "")
        out["n_max"] = as_int(p.get("n_max", DEFAULTS["n_max"]), f"{where}.n_max", 2 if dscribe else 1, 20,
                              hint="allowed: integer 2..20 for rbf dscribe_gto" if dscribe else "")
        out["l_max"] = as_int(p.get("l_max", DEFAULTS["l_max"]), f"{where}.l_max", 0, 20)
        out["sigma"] = as_float(p.get("sigma", DEFAULTS["sigma"]), f"{where}.sigma", 0.0, lo_open=True)
        pad = p.get("cutoff_padding", DEFAULTS["cutoff_padding"])
        out["cutoff_padding"] = None if pad is None else as_float(
            pad, f"{where}.cutoff_padding", 0.0,
            hint="allowed: number >= 0 (Angstrom), or null for dscribe's padding sigma * sqrt(2 ln 1000)")
        out["smoothing"] = as_float(p.get("smoothing", DEFAULTS["smoothing"]), f"{where}.smoothing", 0.0)
        rc = neighbour_cutoff(out)
        if out["smoothing"] >= rc:
            raise ConfigError(f"smoothing width {out['smoothing']:g} is not below the neighbour cutoff "
                              f"{rc:.4g} (r_cut + cutoff_padding)", where=f"{where}.smoothing",
                              hint=f"allowed: number >= 0 and < {rc:.4g}")
        out["center_atom_weight"] = as_float(p.get("center_atom_weight", DEFAULTS["center_atom_weight"]),
                                             f"{where}.center_atom_weight", 0.0)
        if dscribe:
            try:
                dscribe_gto_constants(out["r_cut"], out["n_max"], out["l_max"])
            except ValueError as exc:
                raise ConfigError(f"dscribe cannot orthonormalise its GTO basis here: {exc}",
                                  where=f"{where}.n_max", hint="lower n_max or raise r_cut") from None
        return out

    @classmethod
    def validate(cls, params: dict | None, where: str = "representation.soap_featomic") -> dict:
        out = cls._check(params, where)
        try:
            featomic_module()
        except ConfigError as exc:
            raise ConfigError(exc.message, where=where, hint=exc.hint) from None
        if out["rbf"] == "gto":
            # featomic's own checks (basis orthonormalisation, its radial-integral spline), on a dimer
            from ase import Atoms

            try:
                cls._calculator(out).compute([Atoms("HH", positions=[[0, 0, 0], [0, 0, 0.74]])])
            except Exception as exc:  # noqa: BLE001 - featomic raises FeatomicError / ValueError
                raise ConfigError(f"rejected by featomic: {exc}", where=where,
                                  hint="lower n_max or l_max, or change r_cut") from None
        return out

    @staticmethod
    def _calculator(params: dict):
        _library_for_this_process()
        import featomic

        return featomic.SoapPowerSpectrum(**featomic_hypers(params))

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        super().__init__(params, species, periodic, where=where)
        try:
            featomic_module()
        except ConfigError as exc:
            raise ConfigError(exc.message, where=self.where, hint=exc.hint) from None
        self.pairs = element_pairs(self.species)
        n, l = params["n_max"], params["l_max"]
        self._per_pair = (l + 1) * n * n
        self._pair_col = {p: i * self._per_pair for i, p in enumerate(self.pairs)}
        # featomic's property order inside a block: (l, n_1, n_2)
        self._props = np.array([(ll, a, b) for ll in range(l + 1) for a in range(n) for b in range(n)],
                               dtype=np.int32)
        import featomic

        # plain JSON data (dscribe_gto: the spline, built here once, is part of it)
        self._hypers = featomic.hypers_to_json(featomic_hypers(params))
        self._calc = None
        self._calc_pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_calc"] = None   # a handle into featomic's library: rebuilt where it is used
        state["_calc_pid"] = None
        return state

    def params_canonical(self) -> dict:
        return {**super().params_canonical(), "numerics": NUMERICS_VERSION}

    def describe(self) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        d = super().describe()
        for pkg in ("featomic", "metatensor-core"):
            try:
                d[pkg] = version(pkg)
            except PackageNotFoundError:  # pragma: no cover - checked when built
                d[pkg] = "unknown"
        return d

    @property
    def dim(self) -> int:
        return len(self.pairs) * self._per_pair

    def _calculator_here(self):
        pid = os.getpid()
        if self._calc is None or self._calc_pid != pid:
            _library_for_this_process()
            import featomic

            self._calc = featomic.SoapPowerSpectrum(**self._hypers)
            self._calc_pid = pid
        return self._calc

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        counts = [len(a) for a in atoms_list]
        if sum(counts) != len(out):
            raise ValueError(f"{sum(counts)} atoms for {len(out)} rows of output")
        out[...] = 0.0
        if not atoms_list:
            return
        for a in atoms_list:
            pbc = np.asarray(a.pbc, dtype=bool)
            if pbc.any() and not pbc.all():
                raise DataError(f"a structure ({a.get_chemical_formula()}) is periodic along some axes only "
                                f"(pbc {pbc.tolist()}); featomic supports periodicity along all three axes "
                                "or none",
                                where=self.where, hint="use soap (dscribe) for such structures")
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        with warnings.catch_warnings():
            # molecules that carry a cell: featomic sets it to zero (no periodicity), as wanted
            warnings.filterwarnings("ignore", message="periodic boundary conditions are disabled")
            tensor = self._calculator_here().compute(atoms_list)
        for key, block in tensor.items():
            _, a, b = (int(v) for v in key.values)
            props = block.properties.values
            if not np.array_equal(props, self._props):
                raise RuntimeError(f"featomic's block properties {block.properties.names} are not in the "
                                   "expected (l, n_1, n_2) order")
            samples = block.samples.values
            rows = offsets[samples[:, 0]] + samples[:, 1]
            c = self._pair_col[(a, b)]
            out[rows, c:c + self._per_pair] = block.values
