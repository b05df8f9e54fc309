"""Plugins: the example package in examples/plugin, installed into a temporary folder, and broken plugins.

Nothing is installed into the environment running the tests: the plugin goes into ``<tmp>/site`` with
``pip install --target`` and every check runs ``python -m repbench`` in a subprocess with that folder on
``PYTHONPATH`` (``importlib.metadata`` finds the ``*.dist-info`` there, so the entry points are seen).
Where pip cannot build the package (setuptools < 70.1 without the ``wheel`` package, no network), the
pip test skips with the reason, and the other tests install the package the way pip would for a pure
Python package: its modules plus a ``.dist-info`` with ``METADATA`` and ``entry_points.txt`` written from
``pyproject.toml``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"
DIST = "repbench-example-plugin"
NAME = "coulomb_eigen"


def _env(*paths: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("COLUMNS", "200")
    return env


def _repbench(args: list[str], env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repbench", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _pip_install(src: Path, site: Path) -> tuple[bool, str]:
    """``pip install --no-deps --no-build-isolation --target site src`` offline; (ok, last error line)."""
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "--disable-pip-version-check", "--no-input", "--quiet",
                          "--target", str(site), str(src)],
                         capture_output=True, text=True, timeout=300)
    if res.returncode == 0:
        return True, ""
    lines = [ln.strip() for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    why = next((ln for ln in lines if "bdist_wheel" in ln or "No module named" in ln),
               lines[-1] if lines else f"exit status {res.returncode}")
    return False, why


def _install_by_hand(src: Path, site: Path) -> None:
    """What pip does for a pure-Python package: copy the modules, write METADATA and entry_points.txt."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.loads((src / "pyproject.toml").read_text())
    project = meta["project"]
    where = meta.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get("where", ["."])
    for pkg_root in (src / w for w in where):
        for pkg in pkg_root.iterdir():
            if pkg.is_dir() and (pkg / "__init__.py").exists():
                shutil.copytree(pkg, site / pkg.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    groups = project.get("entry-points", {})
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in groups.items()))


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """(site folder with the example plugin installed, how: "pip" or the reason pip could not build it)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    # build from a copy: an in-tree setuptools build writes build/ and *.egg-info next to the sources
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    ok, why = _pip_install(src, site)
    if not ok:
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir()
        _install_by_hand(src, site)
    return site, "pip" if ok else why


def test_pip_installs_the_example_plugin(plugin_site):
    site, how = plugin_site
    if how != "pip":
        pytest.skip(f"pip cannot build examples/plugin offline here ({how}); needs setuptools>=70.1 or the "
                    "'wheel' package. The other plugin tests use a by-hand install of the same files")
    infos = list(site.glob("repbench_example_plugin-*.dist-info"))
    assert len(infos) == 1
    assert "coulomb_eigen = repbench_example_plugin.coulomb:CoulombEigenspectrum" in \
        (infos[0] / "entry_points.txt").read_text()
    assert (site / "repbench_example_plugin" / "coulomb.py").exists()


def test_representations_lists_the_plugin(plugin_site, tmp_path):
    site, _ = plugin_site
    env = _env(site)
    res = _repbench(["representations", "--format", "yaml"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in yaml.safe_load(res.stdout)}
    assert rows[NAME]["package"] == DIST
    assert rows[NAME]["kind"] == "global"
    assert rows[NAME]["parameters"] == {"n_atoms_max": 29, "distance_power": 1.0}
    assert rows["soap"]["package"] == "repbench"
    table = _repbench(["representations"], env, tmp_path)
    assert table.returncode == 0, table.stderr
    line = next(ln for ln in table.stdout.splitlines() if NAME in ln)
    assert "global" in line and DIST in line


def test_plugin_config_error_names_the_key(plugin_site, tmp_path):
    site, _ = plugin_site
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "qm9", "target": "U0_atomization", "subset": 150},
                                   "splits": {"test": 20, "train_sizes": [20, 40]},
                                   "representation": {NAME: {"n_atoms_max": 0}},
                                   "kernel": {"kind": "gaussian"}}))
    res = _repbench(["prepare", str(cfg), "--run-dir", str(tmp_path / "run")], _env(site), tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert f"representation.{NAME}.n_atoms_max" in res.stderr
    assert not (tmp_path / "run").exists()


def test_plugin_dataset_reader(plugin_site, tmp_path):
    """The plugin's ``xyz-folder`` reader: listed, read by `datasets show`, errors naming file and line."""
    from ase.build import molecule
    import ase.io

    site, _ = plugin_site
    env = _env(site)
    res = _repbench(["datasets", "list"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "xyz-folder" in ln)
    assert DIST in line
    data = tmp_path / "data"
    data.mkdir()
    rows = ["id,energy,gap"]
    for i, name in enumerate(["H2O", "CH4", "NH3", "CH3OH"]):
        ase.io.write(data / f"m{i}.xyz", molecule(name))
        rows.append(f"m{i},{-10.0 - i},{0.5 * i}")
    (data / "targets.csv").write_text("\n".join(rows) + "\n")
    res = _repbench(["datasets", "show", "xyz-folder", "--path", str(data)], env, tmp_path)
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "4 structures" in out and "energy" in out and "gap" in out
    (data / "targets.csv").write_text("\n".join(rows + ["m9,1.0,abc"]) + "\n")
    res = _repbench(["datasets", "show", "xyz-folder", "--path", str(data)], env, tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "targets.csv, line 6" in " ".join(res.stderr.split())


def test_plugin_passes_the_contract_tests(plugin_site):
    """tests/test_contract.py picks the installed plugin up from the registry, like a built-in."""
    site, _ = plugin_site
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", NAME,
                          str(ROOT / "tests" / "test_contract.py")], env=_env(site), cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and " failed" not in res.stdout


QM9_CONFIG = {
    "name": "plugin",
    "seed": 0,
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 150},
    "splits": {"test": 50, "train_sizes": [25, 50], "draws": 1, "tune_train": 40, "tune_val": 20,
               "inner_folds": 2},
    "representation": {NAME: {"n_atoms_max": 29, "distance_power": {"uniform": [0.5, 2.0]}}},
    "kernel": {"kind": "gaussian"},
    "tune": {"trials": 3, "n_startup_trials": 2},
    "time": {"repeats": 1, "n_structures": 10},
}


def test_run_with_the_plugin_on_qm9(plugin_site, tmp_path):
    """`repbench run` tunes, fits and times the plugin's representation on a small QM9 subset."""
    site, _ = plugin_site
    cfg = tmp_path / "plugin.yaml"
    cfg.write_text(yaml.safe_dump(QM9_CONFIG, sort_keys=False))
    rd = tmp_path / "run"
    res = _repbench(["run", str(cfg), "--run-dir", str(rd)], _env(site), tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    best = yaml.safe_load((rd / "tune" / "best.yaml").read_text())
    assert 0.5 <= _find(best, "distance_power") <= 2.0
    curve = yaml.safe_load((rd / "curve.yaml").read_text())
    sizes = curve["sizes"]
    assert [s["size"] for s in sizes] == [25, 50]
    for s in sizes:
        assert len(s["draws"]) == 1
        for metric in ("mae", "rmse"):
            assert math.isfinite(s["mean"][metric]) and s["mean"][metric] > 0
    # a meaningful model: QM9 atomisation energies spread by about 10 eV (standard deviation); with 50
    # training molecules this gives about 0.8 eV (19 kcal/mol) MAE, 2 eV leaves room for other subsets
    assert sizes[-1]["mean"]["mae"] < 2.0
    assert (rd / "timings.yaml").exists()


def _find(doc, key):
    """The value of ``key`` anywhere in a nested YAML document."""
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for v in doc.values():
            found = _find(v, key)
            if found is not None:
                return found
    elif isinstance(doc, list):
        for v in doc:
            found = _find(v, key)
            if found is not None:
                return found
    return None


# ------------------------------------------------------------------ broken and clashing plugins
def _fake_dist(site: Path, dist: str, eps: str, modules: dict[str, str]) -> None:
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(eps)
    for name, text in modules.items():
        (site / f"{name}.py").write_text(text)


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("broken") / "site"
    _fake_dist(site, "broken-plugin", "[repbench.representations]\nbroken_rep = broken_plugin_mod:Rep\n",
               {"broken_plugin_mod": "raise ImportError('libfoo.so.1: cannot open shared object file')\n"})
    _fake_dist(site, "notarep-plugin", "[repbench.representations]\nnot_a_rep = notarep_mod:Thing\n",
               {"notarep_mod": "class Thing:\n    '''Not a Representation.'''\n"})
    # a plugin that claims a built-in name: ignored (built-ins win), with a warning
    _fake_dist(site, "greedy-plugin", "[repbench.representations]\nsoap = greedy_mod:SOAP\n",
               {"greedy_mod": "raise RuntimeError('must never be imported')\n"})
    return site


def test_listing_survives_broken_plugins(broken_site, tmp_path):
    env = _env(broken_site)
    res = _repbench(["representations", "--format", "yaml"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    rows = {r["name"]: r for r in yaml.safe_load(res.stdout)}
    assert rows["broken_rep"]["package"] == "broken-plugin"
    assert rows["broken_rep"]["kind"] == "?"
    assert rows["broken_rep"]["summary"].startswith("broken plugin:")
    assert "ImportError" in rows["broken_rep"]["summary"] and "libfoo" in rows["broken_rep"]["summary"]
    assert rows["not_a_rep"]["summary"].startswith("broken plugin:")
    assert rows["soap"]["package"] == "repbench" and rows["soap"]["kind"].startswith("local")
    assert "greedy-plugin" in res.stderr and "soap" in res.stderr   # the ignored clash is reported
    for name in ("mbtr", "sf"):
        assert rows[name]["package"] == "repbench"
    table = _repbench(["representations"], env, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "broken_rep" in table.stdout and "broken plugin" in table.stdout


@pytest.mark.parametrize("name, says", [
    ("broken_rep", ["broken-plugin", "cannot be loaded", "ImportError", "libfoo"]),
    ("not_a_rep", ["not_a_rep", "not a subclass"]),
])
def test_config_naming_a_broken_plugin_is_one_error_line(broken_site, tmp_path, name, says):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "qm9", "target": "U0_atomization", "subset": 100},
                                   "splits": {"test": 20, "train_sizes": [20, 40]},
                                   "representation": {name: {}}, "kernel": {"kind": "gaussian"}}))
    res = _repbench(["prepare", str(cfg), "--run-dir", str(tmp_path / "run")], _env(broken_site), tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr
    text = " ".join(res.stderr.split())   # rich may wrap the one logical line
    for s in says:
        assert s in text, res.stderr
    assert not (tmp_path / "run").exists()


def test_config_naming_the_builtin_is_unaffected_by_a_clashing_plugin(broken_site, tmp_path):
    cfg = tmp_path / "soap.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"name": "qm9", "target": "U0_atomization", "subset": 100},
                                   "splits": {"test": 20, "train_sizes": [20, 40]},
                                   "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1}},
                                   "kernel": {"atom_kernel": "gaussian"}}))
    res = _repbench(["prepare", str(cfg), "--run-dir", str(tmp_path / "run")], _env(broken_site), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "must never be imported" not in res.stderr


# ------------------------------------------------------------------ the example representation itself
@pytest.fixture(scope="module")
def coulomb():
    """The example plugin's module, imported from its source folder (no entry point, no registry)."""
    sys.path.insert(0, str(PLUGIN / "src"))
    try:
        import repbench_example_plugin.coulomb as mod
    finally:
        sys.path.remove(str(PLUGIN / "src"))
    return mod


def test_coulomb_eigen_is_invariant(coulomb):
    from ase.build import molecule

    cls = coulomb.CoulombEigenspectrum
    params = cls.validate(cls.example_params(False), "representation.coulomb_eigen")
    assert cls.validate(params, "representation.coulomb_eigen") == params
    rep = cls(params, ["H", "C", "N", "O"], False)
    mols = [molecule("CH3CH2OH"), molecule("H2O"), molecule("CH3CONH2")]
    x = rep.compute_atoms(mols)
    assert x.shape == (3, rep.dim) and x.dtype == np.float64
    rng = np.random.default_rng(0)
    moved = []
    for m in mols:
        m = m.copy()
        m.rotate(rng.uniform(0, 360), rng.normal(size=3))
        m.translate(rng.normal(size=3) * 5)
        moved.append(m[rng.permutation(len(m))])
    np.testing.assert_allclose(rep.compute_atoms(moved), x, rtol=1e-10, atol=1e-10)
    out = np.empty((3, rep.dim), dtype=np.float32)
    rep.compute_into(mols, out)
    np.testing.assert_array_equal(out, x.astype(np.float32))
    # water: 3 eigenvalues, padded; the largest is dominated by oxygen's 0.5 * 8**2.4
    assert np.all(x[1, 3:] == 0) and x[1, 0] > 0.5 * 8 ** 2.4
    # two atoms: the eigenvalues of [[a, c], [c, b]]
    h2 = molecule("H2")
    r = np.linalg.norm(h2.positions[0] - h2.positions[1])
    np.testing.assert_allclose(rep.compute_atoms([h2])[0, :2], [0.5 + 1 / r, 0.5 - 1 / r], rtol=1e-12)


def test_coulomb_eigen_refuses_crystals_and_big_molecules(coulomb):
    from ase.build import molecule

    from repbench.errors import ConfigError

    cls = coulomb.CoulombEigenspectrum
    assert cls.example_params(True) is None
    with pytest.raises(ConfigError, match="molecules only"):
        cls(cls.validate(None, "representation.coulomb_eigen"), [1, 6], True)
    rep = cls(cls.validate({"n_atoms_max": 4}, "representation.coulomb_eigen"), [1, 6, 8], False)
    with pytest.raises(ValueError, match="n_atoms_max"):
        rep.compute_atoms([molecule("CH3CH2OH")])
    with pytest.raises(ConfigError) as err:
        cls.validate({"distance_power": -1}, "representation.coulomb_eigen")
    assert err.value.where == "representation.coulomb_eigen.distance_power"
