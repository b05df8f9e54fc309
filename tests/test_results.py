"""The committed reference results (results/) stay consistent with the configs and the code.

* fast: every reference run was made with the config file of today (same config hash, same resolved config),
  holds every learning-curve point and its timings, and results/README.md shows exactly what `repbench report`
  prints for these runs (the tables are generated, not hand-edited);
* slow: QM9 MBTR k=2 re-run from the committed tuning result reproduces the committed learning curve.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from repbench import config as C
from repbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
DATASETS = ["qm9", "nmd18"]
REPS = ["soap", "sf2", "sf23", "mbtr2", "mbtr23"]
RUNS = [(ds, rep) for ds in DATASETS for rep in REPS]


@pytest.mark.parametrize("ds,rep", RUNS, ids=[f"{d}-{r}" for d, r in RUNS])
def test_reference_run_matches_its_config(ds, rep, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs name their data relative to the repository root
    run = RESULTS / "runs" / f"{ds}-{rep}"
    meta = yaml.safe_load((run / "run.yaml").read_text())
    cfg = C.load(f"configs/{ds}/small/{rep}.yaml")
    assert meta["config_file"] == f"configs/{ds}/small/{rep}.yaml"
    assert meta["config_hash"] == cfg.hash(), (
        f"configs/{ds}/small/{rep}.yaml changed since results/runs/{ds}-{rep} was made: re-run it "
        "(docs/reproduce.md) or undo the change")
    assert meta["config"] == cfg.to_dict()
    assert {s: v["state"] for s, v in meta["status"].items()} == {"prepare": "done", "curve": "done",
                                                                  "time": "done"}
    best = yaml.safe_load((run / "tune" / "best.yaml").read_text())
    assert best["config_hash"] == cfg.hash()
    assert best["trials"]["complete"] == cfg.tune["trials"]
    curve = yaml.safe_load((run / "curve.yaml").read_text())
    assert [s["size"] for s in curve["sizes"]] == list(cfg.splits["train_sizes"])
    points = sorted(p.name for p in (run / "curve").glob("*.yaml"))
    assert len(points) == len(cfg.splits["train_sizes"]) * cfg.splits["draws"]
    timings = yaml.safe_load((run / "timings.yaml").read_text())
    assert timings["config_hash"] == cfg.hash() and timings["sizes"]


@pytest.mark.parametrize("ds", DATASETS)
def test_results_readme_tables_are_what_report_prints(ds):
    runs = [str(RESULTS / "runs" / f"{ds}-{rep}") for rep in REPS]
    out = CliRunner().invoke(main, ["report", *runs, "--format", "markdown"])
    assert out.exit_code == 0, out.output
    table = out.output.strip()
    assert table.count("\n") == len(REPS) + 1  # header, rule, one row per run
    assert table in (RESULTS / "README.md").read_text(), (
        f"results/README.md: the {ds} table differs from `repbench report results/runs/{ds}-* --format "
        "markdown`; paste the new output")


@pytest.mark.slow
def test_qm9_mbtr2_learning_curve_reproduces(shared_data, tmp_path, monkeypatch):
    """prepare + curve from the committed tune/best.yaml give the committed curve: the same data (hash) and,
    point by point, the same length scale, regularisation and test errors (to 1e-6 relative: BLAS builds may
    round differently)."""
    monkeypatch.chdir(ROOT)
    ref = RESULTS / "runs" / "qm9-mbtr2"
    run = tmp_path / "qm9-mbtr2"
    r = CliRunner().invoke(main, ["prepare", "configs/qm9/small/mbtr2.yaml", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    got_meta, ref_meta = (yaml.safe_load((d / "run.yaml").read_text()) for d in (run, ref))
    assert got_meta["data_hash"] == ref_meta["data_hash"]
    assert got_meta["dataset"]["content_hash"] == ref_meta["dataset"]["content_hash"]
    (run / "tune").mkdir()
    shutil.copy(ref / "tune" / "best.yaml", run / "tune" / "best.yaml")
    r = CliRunner().invoke(main, ["curve", str(run), "--no-plot"])
    assert r.exit_code == 0, r.output
    for p in sorted((ref / "curve").glob("*.yaml")):
        want = yaml.safe_load(p.read_text())
        got = yaml.safe_load((run / "curve" / p.name).read_text())
        assert got["model_hash"] == want["model_hash"], p.name
        assert got["length_scale"] == pytest.approx(want["length_scale"], rel=1e-9), p.name
        assert got["regularization"] == pytest.approx(want["regularization"], rel=1e-9), p.name
        for k, v in want["metrics"].items():
            assert got["metrics"][k] == pytest.approx(v, rel=1e-6), (p.name, k)
