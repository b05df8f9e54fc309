"""Scoped validity: editing a finished run's config continues the run instead of throwing work away.

* execution settings (``tune.trials``, ``time.repeats``, ``kernel.block_mb``) decide nothing stored:
  ``repbench run`` again reuses data.h5, the study, every finished curve point, the caches and the timings;
* a new search space starts a second study in the same study.db and keeps data.h5 and the caches;
* a change of the dataset or splits is refused, naming the key;
* a run directory written by the previous format (one hash for everything) is upgraded in place and its
  results stay valid.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner

from repbench.cache import STATS
from repbench.cli import main
from repbench.migrate import open_run
from repbench.models.resolve import resolve_model
from repbench.rundir import RunDir

HERE = Path(__file__).resolve().parent

CONFIG = {
    "name": "scopes",
    "seed": 0,
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 160},
    "splits": {"test": 40, "train_sizes": [30, 60], "draws": 2, "tune_train": 50, "tune_val": 20,
               "inner_folds": 2},
    "representation": {"soap": {"r_cut": 3.0, "n_max": {"choice": [2, 3]}, "l_max": 1, "sigma": 0.5}},
    "kernel": {"atom_kernel": "gaussian"},
    "tune": {"trials": 4, "n_startup_trials": 4},
    "time": {"repeats": 1, "n_structures": 10},
}


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(*args) -> str:
    r = CliRunner().invoke(main, list(map(str, args)))
    assert r.exit_code == 0, r.output
    return r.output


def _trials(run: RunDir) -> dict:
    url = f"sqlite:///{run.study_db}"
    return {s.study_name: [(t.number, t.params, t.value) for t in optuna.load_study(
        study_name=s.study_name, storage=url).get_trials()] for s in optuna.get_all_study_summaries(url)}


def _snapshot(run: RunDir) -> dict:
    """(inode, mtime_ns, bytes) of everything stored that must not be rewritten."""
    files = [run.data_h5, run.timings_yaml, *sorted(run.curve_dir.glob("*.yaml")),
             *sorted(run.cache.rglob("*.h5"))]
    return {str(p.relative_to(run.path)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in files}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = tmp_path_factory.mktemp("scopes")
    cfg_path = _write(work / "scopes.yaml", CONFIG)
    run = work / "run"
    _run("run", cfg_path, "--run-dir", run)
    return work, cfg_path, run


@pytest.fixture
def copy(finished, tmp_path):
    work, cfg_path, run = finished
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_execution_settings_reuse_everything(copy, tmp_path):
    run = RunDir(copy)
    before, trials_before = _snapshot(run), _trials(run)
    (study, trials), = trials_before.items()
    assert {t[1]["representation.soap.n_max"] for t in trials} == {2, 3}, "precondition: both options tried"
    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["tune"]["trials"] = 6
    cfg["time"]["repeats"] = 2
    cfg["kernel"]["block_mb"] = 64
    STATS.clear()
    out = _run("run", _write(tmp_path / "edited.yaml", cfg), "--run-dir", copy)
    assert "execution settings only" in out and "tune.trials" in out and "kernel.block_mb" in out
    assert _snapshot(run) == before  # data.h5, every curve point, every cache entry, timings: untouched
    after = _trials(run)
    assert list(after) == [study] and after[study][:4] == trials  # the same study, continued
    assert len(after[study]) == 6
    # the two new trials re-used cached representations and kernels; the curve computed nothing
    assert STATS["representations.computed"] == 0 and STATS["kernels.computed"] == 0
    assert "time: up to date" in out
    meta = run.read_meta()
    assert meta["config"]["tune"]["trials"] == 6
    assert set(meta["config_history"][-1]["changed"]) == {"tune.trials", "time.repeats", "kernel.block_mb"}


def test_new_search_space_starts_second_study_and_keeps_data(copy, tmp_path):
    run = RunDir(copy)
    data = (run.data_h5.stat().st_ino, run.data_h5.stat().st_mtime_ns)
    caches = {p.name for p in run.representation_cache.glob("*.h5")}
    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["representation"]["soap"]["n_max"] = {"choice": [2, 4]}
    STATS.clear()
    out = _run("run", _write(tmp_path / "space.yaml", cfg), "--run-dir", copy)
    assert "new study" in out
    studies = _trials(run)
    assert len(studies) == 2 and all(len(t) == 4 for t in studies.values())
    assert (run.data_h5.stat().st_ino, run.data_h5.stat().st_mtime_ns) == data
    assert caches <= {p.name for p in run.representation_cache.glob("*.h5")}  # old entries kept
    best = yaml.safe_load(run.best_yaml.read_text())
    assert best["study_hash"] == run.config().study_hash() and best["study"] in studies


def test_data_edit_is_refused_naming_the_key(copy, tmp_path):
    before = _snapshot(RunDir(copy))
    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["splits"]["test"] = 30
    r = CliRunner().invoke(main, ["run", str(_write(tmp_path / "data.yaml", cfg)), "--run-dir", str(copy)])
    assert r.exit_code == 2
    assert "splits.test" in r.output and "--force" in r.output and "Traceback" not in r.output
    assert _snapshot(RunDir(copy)) == before


def test_format1_run_directory_is_upgraded_in_place(tmp_path):
    """A run directory of the previous format (one config hash for everything): every finished result
    stays valid under the new scopes; the old study keeps its name."""
    run_path = tmp_path / "old"
    shutil.copytree(HERE / "fixtures" / "format1-run", run_path)
    old = yaml.safe_load((run_path / "run.yaml").read_text())
    assert old["format_version"] == 1
    run = open_run(run_path)
    meta = run.read_meta()
    assert meta["format_version"] == 2
    cfg = run.config()
    assert meta["studies"] == {cfg.study_hash(): f"{old['name']}-{old['config_hash'][:8]}"}
    assert run.study_name(cfg) == f"{old['name']}-{old['config_hash'][:8]}"
    model_hash = resolve_model(run, cfg).hash(cfg)
    points = sorted(run.curve_dir.glob("*.yaml"))
    assert len(points) == 8
    assert all(yaml.safe_load(p.read_text())["model_hash"] == model_hash for p in points)
    assert yaml.safe_load(run.curve_yaml.read_text())["model_hash"] == model_hash
    assert yaml.safe_load(run.timings_yaml.read_text())["model_hash"] == model_hash
    # the numbers are untouched
    for p in points:
        a = yaml.safe_load(p.read_text())
        b = yaml.safe_load((HERE / "fixtures" / "format1-run" / "curve" / p.name).read_text())
        assert a["metrics"] == b["metrics"] and a["length_scale"] == b["length_scale"]
    r = CliRunner().invoke(main, ["report", str(run_path), "--format", "csv"])
    assert r.exit_code == 0, r.output
