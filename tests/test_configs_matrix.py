"""The benchmark matrix in configs/: {qm9, nmd18, ba10} x {soap, sf2, sf23, mbtr2, mbtr23}, full and small, and
the representations beyond the paper's (Step 9): QM9 x {lmbtr2, lmbtr23, soap_avg, cm, fchl19, soap_featomic}
and NMD18 x {lmbtr2, lmbtr23, soap_avg, sine, ewald, soap_featomic}.

* every config in configs/ loads and validates (search spaces included);
* the matrix is complete, and each reduced-budget config keeps its full sibling's design (dataset, target,
  per, representation kind and body orders, kernel, baseline) with a smaller budget;
* the new configs: the same design rules, the twins of the local-or-global comparison (LMBTR of MBTR,
  averaged SOAP of SOAP) tune the same parameters as their twin, and each small config has the splits, trials,
  baseline and time section of its dataset's small family (comparisons at equal budget);
* each small config prepares a run directory (QM9 always; NMD18 and BA10 with $REPBENCH_SHARED_DATA);
  BA10's full file is not in the shared data, so the BA10 configs are prepared on the 12-structure fragment
  with the splits shrunk to fit;
* slow: the full NMD18 configs prepare on the shared data, and the representations of the NMD18 and BA10
  search spaces (every option and both ends of every range) compute on real periodic cells.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from repbench import config as cfgmod
from repbench import space
from repbench.prepare import prepare
from repbench.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DATASETS = ("qm9", "nmd18", "ba10")
REPS = ("soap", "sf2", "sf23", "mbtr2", "mbtr23")
# Step 9: representations beyond the paper's, per dataset (BA10: none yet)
NEW = {"qm9": ("lmbtr2", "lmbtr23", "soap_avg", "cm", "fchl19", "soap_featomic"),
       "nmd18": ("lmbtr2", "lmbtr23", "soap_avg", "sine", "ewald", "soap_featomic")}
NEW_PAIRS = [(ds, rep) for ds, reps in NEW.items() for rep in reps]
# the twin each new representation is compared with at equal budget (the same tuned parameters)
TWIN = {"lmbtr2": "mbtr2", "lmbtr23": "mbtr23", "soap_avg": "soap"}
ALL = sorted(CONFIGS.rglob("*.yaml"))
SMALL = [(ds, rep) for ds in DATASETS for rep in REPS]
K = {"soap": None, "sf2": [2], "sf23": [2, 3], "mbtr2": [2], "mbtr23": [2, 3], "lmbtr2": [2], "lmbtr23": [2, 3],
     "soap_avg": None, "cm": None, "fchl19": None, "sine": None, "ewald": None, "soap_featomic": None}
KIND = {"soap": "soap", "sf2": "sf", "sf23": "sf", "mbtr2": "mbtr", "mbtr23": "mbtr", "lmbtr2": "lmbtr",
        "lmbtr23": "lmbtr", "soap_avg": "soap", "cm": "coulomb_matrix", "fchl19": "fchl19",
        "sine": "sine_matrix", "ewald": "ewald_matrix", "soap_featomic": "soap_featomic"}
LOCAL = {"soap": True, "sf2": True, "sf23": True, "mbtr2": False, "mbtr23": False, "lmbtr2": True,
         "lmbtr23": True, "soap_avg": False, "cm": False, "fchl19": True, "sine": False, "ewald": False,
         "soap_featomic": True}
TARGETS = {"qm9": ("U0_atomization", "structure"), "nmd18": ("formation_energy", "cation"),
           "ba10": ("formation_enthalpy", "atom")}
# where the shared data folder keeps each dataset (BA10: only a fragment is there)
SHARED = {"nmd18": "nmd18", "ba10": "ba10/ba10-18_fragment12.extxyz"}
# splits that fit the 12-structure BA10 fragment
FRAGMENT_SPLITS = {"test": 3, "train_sizes": [4, 8], "draws": 2, "tune_train": 6, "tune_val": 2,
                   "inner_folds": 2}


def _path(ds: str, rep: str, small: bool) -> Path:
    return CONFIGS / ds / ("small" if small else "") / f"{rep}.yaml"


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _missing_package(path: Path) -> str | None:
    """Why the config's representation cannot be used here (fchl19 without qmllib), or None."""
    import yaml

    from repbench.representations import REPRESENTATIONS

    for name in (yaml.safe_load(path.read_text()).get("representation") or {}):
        missing = getattr(REPRESENTATIONS[name], "missing_dependency", None) if name in REPRESENTATIONS else None
        reason = missing() if missing else None
        if reason:
            return reason
    return None


def _name(path: Path) -> str:
    """The run name of a config (read from the file when its representation's package is missing)."""
    if _missing_package(path):
        import yaml

        return yaml.safe_load(path.read_text())["name"]
    return cfgmod.load(path).name


def _skip_without_package(path: Path) -> None:
    """Configs of a representation whose optional package is missing (fchl19 without qmllib) skip."""
    reason = _missing_package(path)
    if reason:
        pytest.skip(f"{_rel(path)}: {reason}")


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_config_loads(path):
    _skip_without_package(path)
    cfg = cfgmod.load(path)
    assert cfg.name and cfg.hash()
    if path.parent.name == "small" or path.parent.parent == CONFIGS:
        ds = path.parent.parent.name if path.parent.name == "small" else path.parent.name
        assert cfg.dataset["name"] == ds
        assert cfg.name == f"{ds}-small-{path.stem}" if path.parent.name == "small" else f"{ds}-{path.stem}"
        assert cfg.has_search_space, "benchmark configs tune their representation"


def test_matrix_complete():
    missing = [_rel(_path(ds, rep, small)) for ds in DATASETS for rep in REPS for small in (False, True)
               if not _path(ds, rep, small).exists()]
    missing += [_rel(_path(ds, rep, small)) for ds, rep in NEW_PAIRS for small in (False, True)
                if not _path(ds, rep, small).exists()]
    assert not missing
    names = [_name(p) for p in ALL]
    assert len(names) == len(set(names)), "run names (default run directories) must differ"


@pytest.mark.parametrize("ds,rep", SMALL + NEW_PAIRS, ids=[f"{d}-{r}" for d, r in SMALL + NEW_PAIRS])
def test_design(ds, rep):
    """Target, representation and kernel follow the protocol; the small config only shrinks the budget."""
    _skip_without_package(_path(ds, rep, True))
    full, small = cfgmod.load(_path(ds, rep, False)), cfgmod.load(_path(ds, rep, True))
    for cfg in (full, small):
        assert (cfg.dataset["target"], cfg.dataset["per"]) == TARGETS[ds]
        assert cfg.rep_kind == KIND[rep]
        assert cfg.is_local is LOCAL[rep]
        if K[rep] is not None:
            assert cfg.rep_params["k"] == K[rep]
        if cfg.is_local:
            assert cfg.kernel["atom_kernel"] == "gaussian"
            # count-normalised sum kernel for per-atom / per-cation targets, plain sum for molecules
            assert cfg.kernel["normalize"] is (ds != "qm9")
        else:
            assert cfg.kernel["kind"] == "gaussian"
        assert cfg.krr["baseline"] == "dressed_atoms"
        assert cfg.tune["loss"] == "rmse"
        assert cfg.splits["stratify"]
        sizes = cfg.splits["train_sizes"]
        ratios = np.diff(np.log(sizes))
        assert len(sizes) >= 4 and ratios.max() / ratios.min() < 1.5, f"log-spaced sizes, got {sizes}"
    for key in ("name", "target", "per", "path"):
        assert full.dataset[key] == small.dataset[key], key
    assert full.kernel == small.kernel
    assert full.krr == small.krr
    assert [k for k, _ in space.find_leaves(full.rep_params)] == [k for k, _ in space.find_leaves(small.rep_params)]
    assert small.splits["train_sizes"][-1] < full.splits["train_sizes"][-1]
    assert small.tune["trials"] < full.tune["trials"]
    if ds in ("qm9", "ba10"):
        assert full.splits["train_sizes"][-1] == 10000   # the paper's largest training set


@pytest.mark.parametrize("ds,rep", NEW_PAIRS, ids=[f"{d}-{r}" for d, r in NEW_PAIRS])
def test_new_small_configs_at_equal_budget(ds, rep):
    """A new small config differs from its dataset's small family only in the representation (and the kernel
    family that goes with it): same dataset subset, splits, seed, baseline, trials, startup trials and time
    section, so that its learning curve compares with theirs at equal budget."""
    _skip_without_package(_path(ds, rep, True))
    new = cfgmod.load(_path(ds, rep, True))
    for old_rep in REPS:
        old = cfgmod.load(_path(ds, old_rep, True))
        assert new.dataset == old.dataset and new.splits == old.splits and new.seed == old.seed
        assert new.krr == old.krr and new.tune == old.tune and new.time == old.time and new.curve == old.curve
        if LOCAL[old_rep] is LOCAL[rep]:
            assert new.kernel == old.kernel
    assert new.name == f"{ds}-small-{rep}"
    if rep in TWIN:       # the local/global twin tunes the same parameters as its sibling
        twin = cfgmod.load(_path(ds, TWIN[rep], True))
        leaves = [k for k, _ in space.find_leaves(new.rep_params)]
        twin_leaves = [k for k, _ in space.find_leaves(twin.rep_params)]
        if rep == "soap_avg":
            assert leaves == twin_leaves + ["average"]
            assert {k: v for k, v in new.rep_params.items() if k != "average"} == \
                {k: v for k, v in twin.rep_params.items() if k != "average"}, "same SOAP search space"
        else:
            assert leaves == twin_leaves
    if rep == "soap_avg":
        assert new.rep_params["average"] == {"choice": ["inner", "outer"]}


def test_bandgap_configs():
    """The paper's second NMD18 target: same splits and SOAP search space as the formation-energy configs."""
    for small in (False, True):
        fe = cfgmod.load(_path("nmd18", "soap", small))
        bg = cfgmod.load(_path("nmd18", "soap-bandgap", small))
        assert (bg.dataset["target"], bg.dataset["per"]) == ("bandgap", "structure")
        assert bg.splits == fe.splits and bg.representation == fe.representation
        assert bg.kernel["normalize"] is True and bg.krr["baseline"] == "mean"


_READ: dict = {}


@pytest.fixture
def read_once(monkeypatch):
    """Read each dataset once per session (the five configs of a dataset share it; NMD18 is 2,400 files)."""
    import repbench.prepare as prep

    real = prep.load_dataset

    def cached(name, path=None, **kw):
        key = (name, str(path), tuple(sorted(kw.items())))
        if key not in _READ:
            _READ[key] = real(name, path, **kw)
        return _READ[key]

    monkeypatch.setattr(prep, "load_dataset", cached)


def _prepare(cfg: cfgmod.Config, tmp_path: Path, dataset: dict | None = None, splits: dict | None = None):
    d = cfg.to_dict()
    d["dataset"].update(dataset or {})
    d["splits"].update(splits or {})
    cfg = cfgmod.from_dict(d, cfg.file)
    rd, what = prepare(cfg.file, run_dir=tmp_path / cfg.name, cfg=cfg)
    assert what == "created"
    s, sp, meta = RunDir(rd.path).read_data()
    assert len(np.intersect1d(sp.test, sp.pool)) == 0
    for size, draws in sp.train.items():
        assert len(draws) == cfg.splits["draws"] and all(len(t) == size for t in draws)
        assert all(len(np.intersect1d(t, sp.test)) == 0 for t in draws)
    return rd, s, sp


@pytest.mark.parametrize("rep", REPS + NEW["qm9"])
def test_prepare_small_qm9(tmp_path, read_once, rep):
    _skip_without_package(_path("qm9", rep, True))
    cfg = cfgmod.load(_path("qm9", rep, True))
    rd, s, sp = _prepare(cfg, tmp_path)
    assert len(s) == cfg.dataset["subset"]
    assert len(sp.test) == cfg.splits["test"]


@pytest.mark.parametrize("rep", REPS + ("soap-bandgap",) + NEW["nmd18"])
def test_prepare_small_nmd18(tmp_path, read_once, shared_data, rep):
    cfg = cfgmod.load(_path("nmd18", rep, True))
    rd, s, sp = _prepare(cfg, tmp_path, dataset={"path": str(shared_data / SHARED["nmd18"])})
    assert len(s) >= 2400
    assert len(sp.test) == (cfg.splits["test"] if not (s.parts == "test").any() else (s.parts == "test").sum())


@pytest.mark.parametrize("rep", REPS)
def test_prepare_small_ba10(tmp_path, read_once, shared_data, rep):
    """The full ba10-18.xyz is not in the shared data: prepare on the fragment with splits that fit it."""
    cfg = cfgmod.load(_path("ba10", rep, True))
    _prepare(cfg, tmp_path, dataset={"path": str(shared_data / SHARED["ba10"])}, splits=FRAGMENT_SPLITS)


def test_relative_data_paths():
    """NMD18/BA10 configs point at ../shared/data/..., which resolves from the repo root (the cwd CI uses)."""
    for ds in ("nmd18", "ba10"):
        for rep in REPS + NEW.get(ds, ()):
            for small in (False, True):
                p = cfgmod.load(_path(ds, rep, small)).dataset["path"]
                assert p.startswith("../shared/data/") or Path(p).is_absolute(), p


@pytest.mark.slow
@pytest.mark.parametrize("rep", REPS + NEW["nmd18"])
def test_prepare_full_nmd18(tmp_path, read_once, shared_data, rep):
    """The full NMD18 configs fit the Kaggle training part alone (drawn test set of 600, sizes <= 1,600)."""
    cfg = cfgmod.load(_path("nmd18", rep, False))
    _prepare(cfg, tmp_path, dataset={"path": str(shared_data / SHARED["nmd18"])})


def _instances(rep_spec: dict):
    """Every option and both ends of every range of a representation search space (others at their first)."""
    seen, out = set(), []
    for inst in space.extremes(rep_spec):
        key = repr(inst)
        if key not in seen:
            seen.add(key)
            out.append(inst)
    return out


PERIODIC = [(d, r) for d in ("nmd18", "ba10") for r in REPS + NEW.get(d, ())]


@pytest.mark.slow
@pytest.mark.parametrize("ds,rep", PERIODIC, ids=[f"{d}-{r}" for d, r in PERIODIC])
def test_search_space_computes_on_real_cells(shared_data, ds, rep):
    """Every extreme of the periodic search spaces (small and full) computes on real cells: finite features,
    no dscribe error for periodic systems (e.g. a weighting that does not cut off)."""
    from repbench.datasets import load_dataset
    from repbench.representations import compute, make_representation

    s = load_dataset(ds, shared_data / SHARED[ds])
    order = np.argsort(np.diff(s.offsets), kind="stable")
    few = s.subset(np.sort(order[:2]))          # the two smallest cells: cheap, still periodic
    assert few.periodic
    for small in (True, False):
        cfg = cfgmod.load(_path(ds, rep, small))
        for inst in _instances(copy.deepcopy(cfg.rep_params)):
            rep_obj = make_representation({cfg.rep_kind: inst}, s.elements, True)
            f = compute(rep_obj, few, n_workers=1, progress=False)
            assert f.n_structures == 2 and np.isfinite(f.values).all(), (cfg.file, inst)
