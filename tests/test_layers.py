"""The layering of the package (import-linter contracts in pyproject.toml, [tool.importlinter]):

* no stage module (prepare, tuning, curve, timing, report) imports another;
* layers run one way: commands -> stages -> workspace -> model resolution -> store -> config;
* numerics (kernels, KRR, baselines, splits, representations, kernel/regressor components) import no I/O,
  store, stage or command module (nor h5py, yaml, optuna).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter", reason="import-linter is a test dependency: pip install -e '.[test]'")
    r = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                        "sys.exit(lint_imports_command())"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Contracts: 3 kept, 0 broken." in out, out


def test_contracts_cover_every_stage():
    """A new stage module must be added to the independence contract (it would otherwise escape it)."""
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    independent = set(next(c for c in conf if c["type"] == "independence")["modules"])
    stages = {"repbench.prepare", "repbench.tuning", "repbench.curve", "repbench.timing", "repbench.report",
              "repbench.compare"}
    assert stages <= independent
