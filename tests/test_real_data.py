"""Real-data sanity of the numerical core and the learning curve (slow: minutes on 2 cores).

QM9 atomisation energies, dressed-atom baseline, KRR values from the grid search:
* SOAP (r_cut 5, n_max 6, l_max 4, sigma 0.5), 1,000 training / 500 test molecules: MAE <= 5 kcal/mol
  (an independent reference implementation measured 4.0);
* SF and MBTR beat the element-count-only linear model (~19 kcal/mol) by at least a factor of 2;
* the learning-curve error decreases with training size for SOAP, SF and MBTR;
* NMD18 with a predefined test part: the curve reports the error on exactly those structures.
"""

import csv
import shutil

import numpy as np
import pytest
import yaml

from repbench.baselines import Baseline
from repbench.curve import run_curve
from repbench.prepare import prepare
from repbench.rundir import RunDir, read_yaml
from repbench.targets import KCAL_MOL_EV

pytestmark = pytest.mark.slow

SPLITS = {"test": 500, "train_sizes": [100, 300, 1000], "draws": 1, "tune_train": 100, "tune_val": 50,
          "inner_folds": 2}
REPS = {
    "soap": ({"soap": {"r_cut": 5.0, "n_max": 6, "l_max": 4, "sigma": 0.5}}, {"atom_kernel": "gaussian"}, 5.0),
    "sf23": ({"sf": {"k": [2, 3], "radial": {"scheme": "rad_shifted", "n": 12, "cutoff": 6.0},
                     "angular": {"eta": [0.005, 0.05], "zeta": [1.0, 4.0], "lambda": [-1, 1]}}},
             {"atom_kernel": "gaussian"}, 9.5),
    "mbtr23": ({"mbtr": {"k": [2, 3]}}, {"kind": "gaussian"}, 9.5),
}


def _run(tmp_path, name, rep, kernel, splits=SPLITS, dataset=None):
    cfg = {"name": name, "seed": 0,
           "dataset": dataset or {"name": "qm9", "target": "U0_atomization", "subset": 1600},
           "splits": splits, "representation": rep, "kernel": kernel}
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    rd, _ = prepare(p, run_dir=tmp_path / name)
    return rd, run_curve(rd, progress=False)


@pytest.mark.parametrize("name", list(REPS))
def test_qm9_learning_curve(tmp_path, name):
    rep, kernel, bound = REPS[name]
    rd, doc = _run(tmp_path, name, rep, kernel)
    maes = [s["mean_report"]["mae"] for s in doc["sizes"]]
    print(f"{name}: MAE [kcal/mol] at {[s['size'] for s in doc['sizes']]}: {[round(m, 3) for m in maes]}")
    assert maes[0] > maes[1] > maes[2], maes            # error decreases with training size
    assert maes[2] <= bound, (name, maes)
    # the element-count-only linear model on the same split, for the record
    ws_s, sp, _ = RunDir(rd.path).read_data()
    y = ws_s.targets["U0_atomization"]
    counts = ws_s.element_counts()
    tr, te = sp.train[1000][0], sp.test
    b = Baseline.make("dressed_atoms").fit(counts[tr], y[tr])
    mae_counts = np.mean(np.abs(b.predict(counts[te]) - y[te])) / KCAL_MOL_EV
    print(f"element counts only: {mae_counts:.2f} kcal/mol")
    assert mae_counts > 15
    assert maes[2] * 2 <= mae_counts


def test_nmd18_predefined_test_part(tmp_path, shared_data):
    """A Kaggle-layout folder whose test part (with labels) is 100 structures; the curve's test set must be
    exactly those."""
    src = shared_data / "nmd18"
    dst = tmp_path / "nmd18"
    (dst / "train").mkdir(parents=True)
    (dst / "test").mkdir()
    with open(src / "train.csv") as f:
        rows = list(csv.DictReader(f))
    head = list(rows[0].keys())
    train_rows, test_rows = rows[:500], rows[500:600]
    for part, part_rows in (("train", train_rows), ("test", test_rows)):
        for i, r in enumerate(part_rows, start=1):
            shutil.copytree(src / "train" / r["id"], dst / part / str(i))
            r = dict(r, id=str(i))
            part_rows[i - 1] = r
    with open(dst / "train.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=head)
        w.writeheader()
        w.writerows(train_rows)
    with open(dst / "test.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[h for h in head if h not in ("formation_energy_ev_natom",
                                                                      "bandgap_energy_ev")])
        w.writeheader()
        w.writerows([{k: v for k, v in r.items() if k in w.fieldnames} for r in test_rows])
    with open(dst / "labeled_test.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=head)
        w.writeheader()
        w.writerows(test_rows)
    rd, doc = _run(tmp_path, "nmd", {"soap": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5}},
                   {"atom_kernel": "gaussian", "normalize": True},
                   splits={"train_sizes": [100, 400], "draws": 1, "tune_train": 100, "tune_val": 50},
                   dataset={"name": "nmd18", "path": str(dst), "target": "formation_energy", "per": "cation"})
    s, sp, _ = RunDir(rd.path).read_data()
    assert doc["test_set"] == {"size": 100, "kind": "predefined", "strategy": "random"}
    assert sorted(s.ids[sp.test]) == sorted(f"test/{i}" for i in range(1, 101))
    assert doc["report_unit"] == "meV/cation"
    pts = read_yaml(rd.curve_dir / "400-0.yaml")
    assert pts["n_test"] == 100
    print("NMD18 MAE [meV/cation]:", [s["mean_report"]["mae"] for s in doc["sizes"]])
    assert doc["sizes"][-1]["mean_report"]["mae"] < doc["sizes"][0]["mean_report"]["mae"]
