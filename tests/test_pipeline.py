"""End to end on a small real QM9 subset: prepare -> curve -> time -> report, caches and resumption."""

import csv
import io

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from repbench.cache import STATS
from repbench.cli import main
from repbench import report as rep

FIXED = {
    "name": "pipe",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 300},
    "splits": {"test": 60, "train_sizes": [25, 50, 100], "draws": 2, "tune_train": 60, "tune_val": 20,
               "inner_folds": 2},
    "representation": {"soap": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5}},
    "kernel": {"atom_kernel": "gaussian"},
    "time": {"repeats": 1, "n_structures": 20, "sizes": [25, 50, 100]},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    cfg = tmp / "pipe.yaml"
    cfg.write_text(yaml.safe_dump(FIXED))
    rd = tmp / "run"
    r = CliRunner()
    res = r.invoke(main, ["prepare", str(cfg), "--run-dir", str(rd)])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["curve", str(rd)])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["time", str(rd)])
    assert res.exit_code == 0, res.output
    return rd


def test_curve_yaml_content(run_dir):
    doc = yaml.safe_load((run_dir / "curve.yaml").read_text())
    assert [s["size"] for s in doc["sizes"]] == [25, 50, 100]
    assert doc["report_unit"] == "kcal/mol" and doc["unit"] == "eV"
    for s in doc["sizes"]:
        assert len(s["draws"]) == 2
        maes = [d["mae"] for d in s["draws"]]
        assert s["mean"]["mae"] == pytest.approx(np.mean(maes), rel=1e-12)
        assert s["mean_report"]["mae"] == pytest.approx(np.mean(maes) * doc["report_factor"], rel=1e-12)
        assert all(d["regularization"] > 0 and d["length_scale"] > 0 for d in s["draws"])
    assert (run_dir / "plots" / "learning_curve.png").stat().st_size > 1000
    # error decreases from the smallest to the largest size (dressed atoms + SOAP on real QM9)
    assert doc["sizes"][-1]["mean"]["mae"] < doc["sizes"][0]["mean"]["mae"]


def test_rerun_curve_computes_nothing(run_dir):
    STATS.clear()
    res = CliRunner().invoke(main, ["curve", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert STATS["kernels.computed"] == 0 and STATS["representations.computed"] == 0


def test_resume_after_lost_points(run_dir):
    before = yaml.safe_load((run_dir / "curve.yaml").read_text())
    (run_dir / "curve" / "50-1.yaml").unlink()
    (run_dir / "curve" / "100-0.yaml").unlink()
    STATS.clear()
    res = CliRunner().invoke(main, ["curve", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert STATS["representations.computed"] == 0   # served by the cache
    assert STATS["kernels.computed"] == 0           # kernels of those draws are cached too
    after = yaml.safe_load((run_dir / "curve.yaml").read_text())
    assert after == before


def test_timings_yaml(run_dir):
    doc = yaml.safe_load((run_dir / "timings.yaml").read_text())
    r = doc["representation_timing"]
    assert r["structures"] == 20 and r["per_structure_s"] > 0 and r["per_atom_s"] < r["per_structure_s"]
    assert [s["train_size"] for s in doc["sizes"]] == [25, 50, 100]
    for s in doc["sizes"]:
        for k in ("kernel_train_train", "kernel_test_train", "krr_fit", "krr_predict"):
            assert 0 < s[k]["min_s"] <= s[k]["median_s"]
    assert doc["hardware"]["cores"] >= 1 and doc["hardware"]["cpu"] is not None
    assert "dscribe" in doc["versions"]


def test_report_numbers_equal_yaml(run_dir):
    records = rep.collect([run_dir])
    out = CliRunner().invoke(main, ["report", str(run_dir), "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.output)))
    curve = yaml.safe_load((run_dir / "curve.yaml").read_text())
    for s in curve["sizes"]:
        assert float(rows[0][f"mae@{s['size']}"]) == s["mean_report"]["mae"]
    y = yaml.safe_load(CliRunner().invoke(main, ["report", str(run_dir), "--format", "yaml"]).output)
    assert y["rows"][0]["mae@100"] == curve["sizes"][-1]["mean_report"]["mae"]
    md = CliRunner().invoke(main, ["report", str(run_dir), "--format", "markdown"]).output
    assert md.startswith("| run |")
    assert records[0]["timings"] is not None
