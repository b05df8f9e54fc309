"""A user's own representation with no package: a throwaway module next to the config, named in
``representation.python``, tuned and run end to end by ``repbench run`` on a QM9 subset."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import yaml
from click.testing import CliRunner

from repbench.cli import main

MODULE = textwrap.dedent('''
    """Smeared histograms of neighbour distances per element (one row per atom)."""
    import numpy as np

    ELEMENTS = (1, 6, 7, 8, 9)


    def radial_histogram(atoms_list, n_bins=8, r_max=5.0, width=0.3):
        rows = []
        centres = np.linspace(0.5, r_max, n_bins)
        for atoms in atoms_list:
            d = atoms.get_all_distances()
            z = atoms.numbers
            for i in range(len(atoms)):
                blocks = []
                for e in ELEMENTS:
                    dj = d[i, (z == e) & (np.arange(len(atoms)) != i)]
                    g = np.exp(-((dj[:, None] - centres[None, :]) / width) ** 2) * (dj[:, None] < r_max)
                    blocks.append(g.sum(axis=0))
                onehot = (np.array(ELEMENTS) == z[i]).astype(float)
                rows.append(np.concatenate([onehot * 3.0] + blocks))
        return np.array(rows)
''')

CONFIG = {
    "name": "own-function",
    "seed": 1,
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 220},
    "splits": {"test": 60, "train_sizes": [40, 120], "draws": 1, "tune_train": 60, "tune_val": 30,
               "inner_folds": 2},
    "representation": {"python": {"function": "my_descriptors:radial_histogram", "kind": "local",
                                  "n_bins": {"int": [4, 10]}, "r_max": 4.0}},
    "kernel": {"atom_kernel": "gaussian"},
    "tune": {"trials": 3, "n_startup_trials": 2},
    "time": {"repeats": 1, "n_structures": 10},
}


def test_user_function_is_tuned_and_gives_a_learning_curve(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_descriptors.py").write_text(MODULE)
    cfg = project / "own.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    elsewhere = tmp_path / "elsewhere"  # the module is found next to the config, not in the cwd
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = elsewhere / "runs" / "own"
    r = CliRunner().invoke(main, ["run", str(cfg), "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    best = yaml.safe_load((run / "tune" / "best.yaml").read_text())
    params = best["representation"]["python"]
    assert isinstance(params["n_bins"], int) and 4 <= params["n_bins"] <= 10
    assert params["function"] == "my_descriptors:radial_histogram" and params["version"]
    curve = yaml.safe_load((run / "curve.yaml").read_text())
    maes = [s["mean_report"]["mae"] for s in curve["sizes"]]
    assert [s["size"] for s in curve["sizes"]] == [40, 120]
    assert all(math.isfinite(m) for m in maes) and maes[1] < maes[0], maes
    assert curve["representation"] == "python"
    timings = yaml.safe_load((run / "timings.yaml").read_text())
    assert timings["representation_timing"]["dim"] == 5 + 5 * params["n_bins"]
    # an edited function is never served the old cache: re-running the run directory refuses
    (project / "my_descriptors.py").write_text(MODULE.replace("onehot * 3.0", "onehot * 2.0"))
    for p in (run / "curve").glob("*.yaml"):
        p.unlink()
    r = CliRunner().invoke(main, ["curve", str(run)])
    assert r.exit_code == 2 and "changed" in r.output, r.output
    # ... and the config run again picks up the new source as a new version (a new study)
    r = CliRunner().invoke(main, ["run", str(cfg), "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((run / "tune" / "best.yaml").read_text())["representation"]["python"]["version"] \
        != params["version"]
