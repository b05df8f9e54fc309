"""repbench's performance benchmark suite: repbench side by side with numpy, qmllib and dscribe.

Run ``python -m benchmarks`` (full, 10-30 minutes on 2 cores), ``python -m benchmarks --quick`` (about two
minutes, smaller sizes) or ``python -m benchmarks --smoke`` (seconds, tiny sizes; what the test suite runs).
Everything is measured in one process and one run, so ratios compare like with like even on a shared
machine; every comparison first asserts that the compared implementations produced the same numbers.
Results go to ``benchmarks/results.yaml`` (``--out``) and a table is printed.  See ``benchmarks/README.md``.
"""

__all__ = ["MODES"]

import repbench  # noqa: E402,F401  (before numpy: sets OPENBLAS_THREAD_TIMEOUT, see repbench/__init__.py)

from .config import MODES  # noqa: E402
