"""Step 10, item 6: papercuts a reader of the outputs tripped over (units, plots, notes, warnings)."""

import logging
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from repbench import plots
from repbench import report as rep
from repbench.cli import main
from repbench.datasets import load_dataset
from repbench.targets import target_model

_HEADER = ("id,spacegroup,number_of_total_atoms,percent_atom_al,percent_atom_ga,percent_atom_in,"
           "lattice_vector_1_ang,lattice_vector_2_ang,lattice_vector_3_ang,lattice_angle_alpha_degree,"
           "lattice_angle_beta_degree,lattice_angle_gamma_degree")
_LABELS = ",formation_energy_ev_natom,bandgap_energy_ev"


def _nmd18(folder: Path, n_train: int = 24, n_test: int = 0, test_labels: bool = False) -> Path:
    """A tiny synthetic NMD18 folder: Al2O3/Ga2O3 cells of 5 atoms (2 cations), like the Kaggle layout."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        if not n:
            continue
        labelled = part == "train" or test_labels
        lines = [_HEADER + (_LABELS if labelled else "")]
        for i in range(1, n + 1):
            cation = "Al" if i % 2 else "Ga"
            a = 4.0 + 0.5 * rng.random()
            pos = rng.random((5, 3)) * a
            geo = folder / part / str(i) / "geometry.xyz"
            geo.parent.mkdir(parents=True)
            geo.write_text("".join(f"lattice_vector {' '.join(f'{a if j == k else 0.0:.6f}' for k in range(3))}\n"
                                   for j in range(3))
                           + "".join(f"atom {x:.6f} {y:.6f} {z:.6f} {el}\n"
                                     for (x, y, z), el in zip(pos, [cation] * 2 + ["O"] * 3)))
            pct = (1.0, 0.0) if cation == "Al" else (0.0, 1.0)
            row = f"{i},33,5.0,{pct[0]},{pct[1]},0.0,{a:.4f},{a:.4f},{a:.4f},90,90,90"
            if labelled:
                row += f",{0.1 + 0.05 * rng.random():.4f},{2.0 + rng.random():.4f}"
            lines.append(row)
        (folder / f"{part}.csv").write_text("\n".join(lines) + "\n")
    return folder


# ---------------------------------------------------------------------------- 1. intensive report unit
def test_intensive_periodic_target_is_not_per_cell(tmp_path):
    s = load_dataset("nmd18", _nmd18(tmp_path / "nmd"))
    gap = target_model(s, "bandgap", "structure")
    assert (gap.unit, gap.report_unit, gap.report_factor) == ("eV", "meV", 1000.0)
    # the extensive cases keep their units exactly
    fe = target_model(s, "formation_energy", "structure")
    assert (fe.unit, fe.report_unit, fe.report_factor) == ("eV", "meV/cell", 1000.0)
    fc = target_model(s, "formation_energy", "cation")
    assert (fc.unit, fc.report_unit) == ("eV/cation", "meV/cation")


# ---------------------------------------------------------------------------- 2. tuning loss unit
def test_tuning_loss_unit_is_the_modelled_unit(tmp_path):
    from repbench.tuning import target_unit

    s = load_dataset("nmd18", _nmd18(tmp_path / "nmd"))
    for per, want in (("cation", "eV/cation"), ("atom", "eV/atom"), ("structure", "eV")):
        cfg = SimpleNamespace(dataset={"target": "formation_energy", "per": per, "target_unit": "eV"})
        ws = SimpleNamespace(target=target_model(s, "formation_energy", per))
        assert target_unit(cfg, ws=ws) == want
        run = SimpleNamespace(read_data=lambda: (s, None, {}))
        assert target_unit(cfg, run) == want
    # a target in another unit (a file dataset in Hartree) is labelled with that unit, not eV
    ws = SimpleNamespace(target=SimpleNamespace(unit="Hartree"))
    assert target_unit(SimpleNamespace(dataset={"target": "gap", "per": "structure"}), ws=ws) == "Hartree"


# ---------------------------------------------------------------------------- 3. learning-curve ticks
def _curve(sizes, values, std=None, run="r", draws=2):
    std = std if std is not None else [0.1 * v for v in values]
    return {"run": run, "representation": "soap", "report_unit": "meV", "dataset": "nmd18", "target": "bandgap",
            "per": "structure", "test_set": {"size": 10, "kind": "drawn"},
            "sizes": [{"size": n, "draws": [{"draw": d} for d in range(draws)], "mean_report": {"mae": v},
                       "std_report": {"mae": sd}} for n, v, sd in zip(sizes, values, std)]}


@pytest.mark.parametrize("values", [[40.0, 25.0, 15.0, 9.0], [1.8, 1.6, 1.4, 1.25]])
def test_learning_curve_ticks(tmp_path, monkeypatch, values):
    seen = {}

    def fake_save(fig, path_stem):
        ax = fig.axes[0]
        fig.canvas.draw()
        lo, hi = ax.get_ylim()
        seen["x"] = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        seen["xlabels"] = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        seen["y"] = [t for t in ax.get_yticks() if lo <= t <= hi]
        seen["ylabels"] = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        import matplotlib.pyplot as plt
        plt.close(fig)
        return []

    monkeypatch.setattr(plots, "_save", fake_save)
    sizes = [120, 240, 480, 960]
    plots.learning_curves([_curve(sizes, values)], tmp_path / "lc")
    assert seen["x"] == sizes and seen["xlabels"] == ["120", "240", "480", "960"]
    assert len(seen["y"]) >= 3 and len(seen["ylabels"]) >= 3
    assert all(re.fullmatch(r"[0-9.]+", t) for t in seen["ylabels"])  # plain labels, not 10^x


# ---------------------------------------------------------------------------- 6. coinciding draws
def test_rich_table_says_draws_coincide():
    from rich.console import Console

    recs = [{"curve": _curve([10, 20], [5.0, 3.0], std=[0.5, 0.0], draws=3), "timings": None}]
    con = Console(width=200, record=True)
    con.print(rep.rich_table(recs))
    text = con.export_text()
    assert "3 (draws coincide)" in text and "5 ± 0.5" in text and "± 0 " not in text
    # one draw: no note (the std is simply undefined); markdown/csv/yaml are unchanged
    recs1 = [{"curve": _curve([10], [3.0], std=[0.0], draws=1), "timings": None}]
    con = Console(width=200, record=True)
    con.print(rep.rich_table(recs1))
    assert "coincide" not in con.export_text()
    assert "3 ± 0 " in rep.render(recs, "markdown") and "coincide" not in rep.render(recs, "csv")


# ---------------------------------------------------------------------------- 7. unlabelled test.csv
def test_prepare_warns_about_unlabelled_test_csv(tmp_path, caplog):
    from repbench.prepare import load_structures

    folder = _nmd18(tmp_path / "nmd", n_train=6, n_test=3)
    ds = {"name": "nmd18", "path": str(folder), "target_key": None, "target_unit": "eV",
          "target_extensive": None, "format": None, "subset": None}
    cfg = SimpleNamespace(dataset=ds, file=str(tmp_path / "c.yaml"), seed=0)
    with caplog.at_level(logging.WARNING, logger="repbench"):
        load_structures(cfg)
    warns = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warns) == 1
    assert str(folder / "test.csv") in warns[0]
    assert "formation_energy_ev_natom" in warns[0] and "bandgap_energy_ev" in warns[0]
    # labelled: no warning
    caplog.clear()
    folder2 = _nmd18(tmp_path / "nmd2", n_train=6, n_test=3, test_labels=True)
    with caplog.at_level(logging.WARNING, logger="repbench"):
        load_structures(SimpleNamespace(dataset={**ds, "path": str(folder2)}, file=cfg.file, seed=0))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# ---------------------------------------------------------------------------- 8. per: cation note
def test_datasets_show_names_per_cation(tmp_path):
    res = CliRunner().invoke(main, ["datasets", "show", "nmd18", "--path", str(_nmd18(tmp_path / "nmd"))])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "formation_energy_ev_natom" in flat and "per: cation" in flat and "competition's unit" in flat
    readme = (Path(__file__).parents[1] / "datasets" / "README.md").read_text()
    assert "`per: cation` reproduces the competition's unit" in " ".join(readme.split())


# ---------------------------------------------------------------------------- 5. float32 docs
def test_docs_float32_error_is_the_measured_one():
    root = Path(__file__).parents[1]
    for doc in ("docs/config.md", "README.md"):
        text = (root / doc).read_text()
        assert "~1e-6 relative kernel error" not in text
    assert "up to ~6e-6 (measured)" in (root / "docs" / "config.md").read_text()


# ---------------------------------------------------------------------------- 4. no duplicate plot
def test_run_writes_no_duplicate_learning_curves(tmp_path):
    folder = _nmd18(tmp_path / "nmd", n_train=40)
    cfg = {"name": "pc", "dataset": {"name": "nmd18", "path": str(folder), "target": "bandgap"},
           "splits": {"test": 10, "train_sizes": [10, 20], "draws": 2, "tune_train": 10, "tune_val": 5,
                      "inner_folds": 2},
           "representation": {"sine_matrix": {"n_atoms_max": 5}},
           "kernel": {"kind": "gaussian"},
           "time": {"repeats": 1, "n_structures": 5, "sizes": [10, 20]}}
    path = tmp_path / "pc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rd = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", str(path), "--run-dir", str(rd)])
    assert res.exit_code == 0, res.output
    names = {p.name for p in (rd / "plots").iterdir()}
    assert {"learning_curve.png", "learning_curve.svg", "error_vs_cost.png"} <= names
    assert not {"learning_curves.png", "learning_curves.svg"} & names
    doc = yaml.safe_load((rd / "curve.yaml").read_text())
    assert doc["report_unit"] == "meV"
