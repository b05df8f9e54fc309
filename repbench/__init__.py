"""repbench: benchmark representations of molecules and materials with kernel ridge regression."""

import os as _os

# OpenBLAS's worker threads busy-wait for about 2**28 cycles (~0.1 s) after every BLAS call before they
# sleep.  The local kernel alternates GEMM blocks with numba passes (exp + segment sums) on the same cores, so
# on a 2-core machine a spinning BLAS thread takes a core from numba: SF-sized kernels (d ~ 100) ran at
# 4.3 ns per atom pair with the default and 3.3 ns with a short timeout; large GEMMs (SOAP) are unaffected
# (benchmarks/README.md).  OpenBLAS reads this when it is loaded, i.e. at numpy's import: effective for the
# CLI and for `import repbench` before numpy; a value the user set wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
