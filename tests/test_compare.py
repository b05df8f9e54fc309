"""Comparisons users can trust: stored per-structure predictions, paired comparisons of runs, the
predictive standard deviation and its calibration, honest warnings and refusals.

Two small QM9 runs with fixed (untuned) models on the same data: SOAP and SF k=2.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from repbench.cli import main
from repbench.compare import compare
from repbench.documents import read_predictions
from repbench.rundir import RunDir
from repbench.stats import paired_difference

BASE = {
    "seed": 0,
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 220},
    "splits": {"test": 60, "train_sizes": [40, 100], "draws": 2, "inner_folds": 2},
    "kernel": {"atom_kernel": "gaussian"},
    "time": {"repeats": 1, "n_structures": 10},
}
REPS = {"soap": {"soap": {"r_cut": 3.5, "n_max": 3, "l_max": 2, "sigma": 0.5}},
        "soap2": {"soap": {"r_cut": 4.5, "n_max": 3, "l_max": 2, "sigma": 0.5}},
        "sf": {"sf": {"radial": {"n": 6}}}}


def _run(work, name, rep, **edits):
    cfg = {**yaml.safe_load(yaml.safe_dump(BASE)), "name": name, "representation": REPS[rep]}
    for k, v in edits.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    (work / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(main, ["run", str(work / f"{name}.yaml"), "--run-dir", str(work / name)])
    assert r.exit_code == 0, r.output
    return work / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("compare")
    return {"soap": _run(work, "c-soap", "soap"), "sf": _run(work, "c-sf", "sf"), "work": work}


def test_points_store_predictions_that_reproduce_their_metrics(runs):
    rd = RunDir(runs["soap"])
    curve = yaml.safe_load(rd.curve_yaml.read_text())
    for entry in curve["sizes"]:
        for d in entry["draws"]:
            p = read_predictions(rd, entry["size"], d["draw"], curve["model_hash"])
            assert p is not None and p["test"].shape == p["pred"].shape == (60,)
            err = p["pred"] - p["y"]
            assert np.abs(err).mean() == pytest.approx(d["mae"], rel=1e-12)
            assert np.sqrt((err**2).mean()) == pytest.approx(d["rmse"], rel=1e-12)
            assert np.all(p["std"] > 0)


def test_uncertainty_and_calibration_are_recorded(runs):
    curve = yaml.safe_load(RunDir(runs["soap"]).curve_yaml.read_text())
    for entry in curve["sizes"]:
        u = entry["uncertainty"]
        assert 0 <= u["coverage_68"] <= u["coverage_95"] <= 1 and u["mean_std"] > 0 and np.isfinite(u["nll"])
    assert (runs["soap"] / "plots" / "calibration.png").exists()
    assert curve["test_set"]["strategy"] == "random"


def test_paired_comparison_equals_the_statistics_of_the_stored_predictions(runs):
    rows = compare([runs["soap"], runs["sf"]], metric="mae", n_boot=500, seed=3)
    assert [r["size"] for r in rows] == [40, 100]
    a, b = RunDir(runs["soap"]), RunDir(runs["sf"])
    ca, cb = (yaml.safe_load(x.curve_yaml.read_text()) for x in (a, b))
    f = ca["report_factor"]
    for r in rows:
        pa = [read_predictions(a, r["size"], d, ca["model_hash"]) for d in (0, 1)]
        pb = [read_predictions(b, r["size"], d, cb["model_hash"]) for d in (0, 1)]
        want = paired_difference(pa[0]["y"] * f, np.stack([p["pred"] for p in pa]) * f,
                                 np.stack([p["pred"] for p in pb]) * f, n_boot=500, seed=3)
        assert (r["diff"], r["ci_low"], r["ci_high"]) == pytest.approx((want.diff, want.lo, want.hi))
        # the pooled MAE of a run is the mean of its draws' MAEs (equal test sets)
        entry = next(e for e in ca["sizes"] if e["size"] == r["size"])
        assert r["mae_a"] == pytest.approx(entry["mean_report"]["mae"], rel=1e-12)
        assert r["verdict"] in ("a better", "b better", "not resolved")
        assert r["resolved"] == (r["ci_low"] > 0 or r["ci_high"] < 0)


def test_compare_cli_and_report_compare(runs):
    for args in (["compare", str(runs["soap"]), str(runs["sf"]), "--format", "yaml"],
                 ["report", "--compare", str(runs["soap"]), str(runs["sf"]), "--format", "yaml"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
        rows = yaml.safe_load(r.output)
        assert len(rows) == 2 and {"diff", "ci_low", "ci_high", "verdict"} <= set(rows[0])


def test_ranking_orders_runs_and_uses_the_paired_intervals(runs):
    """`compare --ranking`: runs in order of their error, each against the next with the same interval as
    the pair's `compare` row (sign turned where the pair was computed the other way round), and the count
    of resolved pairs; --size selects a size and an absent size is one clear error."""
    from repbench.compare import ranking

    third = _run(runs["work"], "c-soap2", "soap2")  # a third run of the same data: SOAP, wider cutoff
    paths = [runs["soap"], runs["sf"], third]
    rows = ranking(paths, n_boot=400, seed=1, sizes=[100])
    pairs = compare(paths, n_boot=400, seed=1, sizes=[100])
    assert [r["rank"] for r in rows] == [1, 2, 3] and {r["size"] for r in rows} == {100}
    assert [r["mae"] for r in rows] == sorted(r["mae"] for r in rows)
    assert rows[0]["resolved_pairs"] == sum(p["resolved"] for p in pairs) and rows[0]["pairs"] == 3
    for r in rows[:-1]:
        p = next(p for p in pairs if {p["a"], p["b"]} == {r["run"], r["next"]})
        sign = 1 if p["a"] == r["run"] else -1
        assert r["diff"] == pytest.approx(sign * p["diff"]) and r["diff"] <= 0
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(sorted((sign * p["ci_low"], sign * p["ci_high"]))))
        assert r["resolved"] == p["resolved"]
    assert rows[-1]["next"] == "" and rows[-1]["diff"] is None
    r = CliRunner().invoke(main, ["compare", *map(str, paths), "--ranking", "--size", "100", "--format", "markdown"])
    assert r.exit_code == 0 and "| 1 | " in r.output and "pairs resolved at size 100" in r.output, r.output
    r = CliRunner().invoke(main, ["compare", *map(str, paths), "--ranking", "--size", "77"])
    assert r.exit_code == 2 and "training size 77" in r.output and "Traceback" not in r.output, r.output


def test_runs_of_different_data_are_not_paired(runs):
    other = _run(runs["work"], "c-seed1", "sf", splits={"test": 50})
    r = CliRunner().invoke(main, ["compare", str(runs["soap"]), str(other)])
    assert r.exit_code == 2 and "different data" in r.output and "Traceback" not in r.output


def test_runs_without_predictions_are_refused_with_a_way_forward(runs, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(runs["sf"], old)
    for p in (old / "curve").glob("*.npz"):
        p.unlink()
    r = CliRunner().invoke(main, ["compare", str(runs["soap"]), str(old)])
    assert r.exit_code == 2 and "no per-structure test predictions" in r.output and "re-run" in r.output


def test_report_refuses_to_mix_targets(runs, tmp_path):
    other = _run(tmp_path, "c-homo", "sf", dataset={"target": "HOMO", "per": "structure"})
    r = CliRunner().invoke(main, ["report", str(runs["soap"]), str(other)])
    assert r.exit_code == 2 and "cannot share one table" in r.output


def test_bound_warning_names_the_key(tmp_path):
    """A grid that cannot reach the optimum: the refined regularisation sits on its bound, the points
    record it and curve.yaml carries one warning naming krr.reg_bounds."""
    run = _run(tmp_path, "bound", "sf", krr={"reg_bounds": [-3, -2], "reg_start": -2.0})
    curve = yaml.safe_load((run / "curve.yaml").read_text())
    assert any("krr.reg_bounds" in w for w in curve["warnings"]), curve["warnings"]
    assert all(e.get("at_bound") for e in curve["sizes"])
    point = yaml.safe_load((run / "curve" / "40-0.yaml").read_text())
    assert set(point["at_bound"]) & {"reg_low", "reg_high"}


def test_bound_warnings_fire_only_at_a_bound():
    from repbench import config as C
    from repbench.curve import warnings_for
    from repbench.documents import CurvePoint

    cfg = C.from_dict({**BASE, "name": "w", "representation": REPS["sf"]})

    def point(size, bounds, condition=10.0):
        m = {"rmse": 1.0, "mae": 1.0, "maxae": 1.0, "r2": 0.9}
        return CurvePoint("h", size, 0, 60, 1.0, 1e-6, 0.1, m, m, 1.0, bounds, condition)

    assert warnings_for(cfg, {(40, 0): point(40, []), (100, 0): point(100, [])}) == []
    w = warnings_for(cfg, {(40, 0): point(40, ["ls_high"]), (100, 0): point(100, [])})
    assert len(w) == 1 and "upper bound of krr.ls_bounds (2^20)" in w[0] and "1 of 2 points" in w[0]
    w = warnings_for(cfg, {(40, 0): point(40, [], condition=1e15)})
    assert len(w) == 1 and "ill-conditioned" in w[0] and "krr.reg_bounds" in w[0]
