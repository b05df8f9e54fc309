"""Smoke test of the benchmark suite: ``python -m benchmarks --smoke`` runs every section at tiny sizes.

It checks that the suite runs end to end, that every comparison's equality assertion passed (no failed
section) and that the results file holds what benchmarks/README.md describes.  The speeds at these sizes
mean nothing; the targets are judged by the full run (benchmarks/results.yaml).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    pytest.importorskip("qm9pack")
    out = tmp_path_factory.mktemp("bench") / "results.yaml"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    return proc, out


def test_smoke_runs_and_every_check_passes(smoke):
    proc, out = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = yaml.safe_load(out.read_text())
    assert res["meta"]["mode"] == "smoke"
    assert res["meta"]["failed_sections"] == []
    for sec in ("matmul", "representations", "local_kernel", "curve", "float32", "memory", "length_scales", "krr",
                "peers"):
        assert sec in res and "error" not in res[sec], sec
    # the loads and the environment are recorded beside the numbers
    assert "load_1min_at_start" in res["meta"] and res["meta"]["blas"] is not None


def test_smoke_results_content(smoke):
    proc, out = smoke
    if proc.returncode != 0:
        pytest.skip("smoke run failed (see the other test)")
    res = yaml.safe_load(out.read_text())
    # every target is judged, with a value and a detail
    assert set(res["targets"]) == {"local_kernel_fraction", "length_scales_8_vs_1", "sflike_ns_per_pair",
                                   "curve_vs_largest", "representations_vs_dscribe", "many_regularisations"}
    for t in res["targets"].values():
        assert isinstance(t["met"], bool) and t["value"] is not None and t["detail"]
    lk = res["local_kernel"]["sizes"][-1]
    assert lk["train x train"]["gflops"] > 0 and 0 < lk["train x train"]["fraction_of_matmul"]
    # equality of compared implementations was asserted and is recorded
    assert res["curve"]["max_rel_difference_sliced_vs_direct"] <= 1e-8
    assert res["peers"]["dscribe_average_kernel"]["max_elementwise_rel_difference"] <= 1e-8
    if res["peers"]["qmllib"]["available"]:
        assert res["peers"]["qmllib"]["max_elementwise_rel_difference"] <= 1e-8
    else:
        assert res["peers"]["qmllib"]["reason"]
    for name in ("SOAP", "SF k=2", "SF k=2,3", "MBTR k=2", "MBTR k=2,3"):
        r = res["representations"][name]
        assert r["repbench"]["structures_per_s"] > 0 and r["dscribe n_jobs=1"]["structures_per_s"] > 0
    assert res["krr"]["20_regularisations"]["max_rel_prediction_difference"] <= 1e-6
    for s in res["float32"]["krr"]["settings"]:
        assert abs(s["mae_difference_kcal_mol"]) < 1.0
    assert all(r["peak_mb"] > 0 for r in res["memory"]["runs"])
