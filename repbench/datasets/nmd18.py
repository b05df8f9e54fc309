"""NMD18: the NOMAD 2018 Kaggle challenge "Predicting transparent conductors".

(Al_x Ga_y In_z)2O3 crystals, 10 to 80 atoms per cell (Sutton et al., npj Comput. Mater. 5, 111, 2019).
``path`` is the competition's folder::

    train.csv                 id, spacegroup, number_of_total_atoms, percent_atom_al/ga/in, lattice ...,
                              formation_energy_ev_natom, bandgap_energy_ev
    train/<id>/geometry.xyz   FHI-aims geometry: 3 ``lattice_vector x y z`` + ``atom x y z El`` lines
    test.csv, test/<id>/geometry.xyz       optional: the 600 test crystals (ids restart at 1)
    labeled_test.csv                       optional: the test part with the two target columns

Structures get ids ``train/<id>`` and ``test/<id>`` and ``parts`` ``train``/``test``.

The test part is loaded only when its labels are available (``labeled_test.csv``, or target columns in
``test.csv``): a structure without targets cannot be used to fit or to score, and NaN targets would make
every target unusable (``StructureSet.check_target``).  Without labels the test part is skipped; how many
were skipped is recorded in ``meta["n_test_unlabelled"]``.

Targets:

* ``formation_energy`` (eV per cell, extensive): the Kaggle column ``formation_energy_ev_natom`` is per
  *cation* (the competition scored meV/cation) and is multiplied by the number of Al/Ga/In atoms;
  ``per: cation`` in a config recovers the Kaggle value.
* ``bandgap`` (eV, intensive).

Each geometry is checked against its CSV row: number of atoms, and cation fractions
``percent_atom_al/ga/in`` (to 1e-3, the CSV rounds to 4 digits) and the O fraction (3/5).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..structures import StructureSet, TargetInfo, atomic_number
from . import MAX_DATA_BYTES, DatasetReader, how_to_get, open_regular, read_text, require_path

#: Atomic numbers of the cations and of oxygen.
AL, GA, IN, O = 13, 31, 49, 8
_FE_COL, _BG_COL = "formation_energy_ev_natom", "bandgap_energy_ev"
_COMPOSITION_TOL = 1e-3


def read_aims_geometry(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an FHI-aims ``geometry.in``-style file.

    Returns ``(cell (3, 3) Angstrom rows = lattice vectors, z (n,), positions (n, 3) Angstrom)``.
    ``atom`` lines are Cartesian, ``atom_frac`` lines fractional; comments (``#``) and other keywords
    (``initial_moment`` ...) are ignored.  Errors name the file and line.
    """
    text = read_text(path, "nmd18")
    cell, z, pos, frac = [], [], [], []
    for ln, line in enumerate(text.splitlines(), 1):
        t = line.split("#", 1)[0].split()
        if not t:
            continue
        key = t[0]
        where = f"{path}:{ln}"
        if key in ("lattice_vector", "atom", "atom_frac"):
            want = 4 if key == "lattice_vector" else 5
            if len(t) < want:
                raise DataError(f"truncated {key!r} line: expected {want - 1} values, found {len(t) - 1}",
                                where=where, hint="write 'lattice_vector x y z' or 'atom x y z El'")
            try:
                xyz = [float(v) for v in t[1:4]]
            except ValueError:
                bad = next(v for v in t[1:4] if not _is_number(v))
                raise DataError(f"non-numeric coordinate {bad!r}", where=where,
                                hint="coordinates are decimal numbers in Angstrom") from None
            if not all(np.isfinite(xyz)):
                raise DataError("non-finite coordinate", where=where, hint="fix the value")
            if key == "lattice_vector":
                cell.append(xyz)
            else:
                z.append(atomic_number(t[4], where=where))
                pos.append(xyz)
                frac.append(key == "atom_frac")
    if len(cell) != 3:
        raise DataError(f"expected 3 lattice_vector lines, found {len(cell)}", where=str(path),
                        hint="NMD18 crystals are periodic; the file may be truncated")
    if not z:
        raise DataError("no atom lines", where=str(path), hint="the file may be truncated")
    cell_a = np.array(cell)
    pos_a = np.array(pos)
    frac_a = np.array(frac)
    if frac_a.any():
        pos_a[frac_a] = pos_a[frac_a] @ cell_a
    return cell_a, np.array(z, dtype=np.int32), pos_a


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> tuple[list[str], dict[str, tuple[int, dict[str, str]]]]:
    """(header, id -> (line number, row dict)) of a Kaggle CSV (a regular file of bounded size)."""
    raw = open_regular(path, MAX_DATA_BYTES, hint=how_to_get("nmd18"))
    with io.TextIOWrapper(raw, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            return _csv_rows(reader, path)
        except csv.Error as e:
            raise DataError(f"malformed CSV: {e}", where=f"{path}:{reader.line_num}",
                            hint="the file is damaged; fix it or download it again") from None
        except OSError as e:
            raise DataError(f"cannot read the file: {e.strerror or e}", where=str(path)) from None


def _csv_rows(reader, path: Path) -> tuple[list[str], dict[str, tuple[int, dict[str, str]]]]:
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    header = [h.strip() for h in next(reader, [])]
    if "id" not in header:
        raise DataError("no 'id' column", where=f"{path}:1", hint="is this the Kaggle NOMAD 2018 CSV?")
    for row in reader:
        if not row or not any(row):
            continue
        if len(row) != len(header):
            raise DataError(f"row has {len(row)} fields, the header {len(header)}",
                            where=f"{path}:{reader.line_num}", hint="the file is truncated or damaged")
        r = dict(zip(header, (v.strip() for v in row)))
        if r["id"] in rows:
            raise DataError(f"id {r['id']} appears twice (first at line {rows[r['id']][0]})",
                            where=f"{path}:{reader.line_num}", hint="ids must be unique")
        rows[r["id"]] = (reader.line_num, r)
    return header, rows


def _number(r: dict[str, str], col: str, where: str) -> float:
    try:
        return float(r[col])
    except KeyError:
        raise DataError(f"missing column {col!r}", where=where,
                        hint="is this the Kaggle NOMAD 2018 CSV?") from None
    except ValueError:
        raise DataError(f"{col} = {r[col]!r} is not a number", where=where, hint="fix the value") from None


def _read_part(folder: Path, part: str, rows: dict[str, tuple[int, dict[str, str]]], csv_path: Path):
    """Read and check the geometries of one part; returns lists of (id, cell, z, pos, fe, bg)."""
    out = []
    for sid, (ln, r) in rows.items():
        where = f"{csv_path}:{ln}"
        geo = folder / part / sid / "geometry.xyz"
        if not geo.exists():
            raise DataError(f"geometry of {part} id {sid} not found: {geo}", where=where,
                            hint="the folder must hold <part>/<id>/geometry.xyz for every CSV row; "
                                 + how_to_get("nmd18"))
        cell, z, pos = read_aims_geometry(geo)
        n_total = _number(r, "number_of_total_atoms", where)
        if len(z) != n_total:
            raise DataError(f"{geo} holds {len(z)} atoms but number_of_total_atoms = "
                            f"{r['number_of_total_atoms']}", where=where,
                            hint="the geometry does not belong to this row, or one is damaged")
        counts = {e: int(np.count_nonzero(z == e)) for e in (AL, GA, IN, O)}
        n_cat = counts[AL] + counts[GA] + counts[IN]
        if n_cat + counts[O] != len(z) or n_cat == 0:
            raise DataError(f"{geo} holds elements other than Al, Ga, In, O, or no cations", where=where,
                            hint="NMD18 crystals are (Al,Ga,In)2O3")
        for e, col in ((AL, "percent_atom_al"), (GA, "percent_atom_ga"), (IN, "percent_atom_in")):
            want = _number(r, col, where)
            if abs(counts[e] / n_cat - want) > _COMPOSITION_TOL:
                raise DataError(f"{geo} has cation fraction {counts[e] / n_cat:.4f} for "
                                f"{col[-2:].capitalize()}, the CSV {col} = {r[col]}", where=where,
                                hint="the geometry does not belong to this row, or one is damaged")
        if abs(counts[O] / len(z) - 0.6) > _COMPOSITION_TOL:
            raise DataError(f"{geo} has {counts[O]} O of {len(z)} atoms, not the 3/5 of a sesquioxide",
                            where=where, hint="the geometry is damaged")
        fe = _number(r, _FE_COL, where) * n_cat
        bg = _number(r, _BG_COL, where)
        if not (np.isfinite(fe) and np.isfinite(bg)):
            raise DataError(f"NaN or infinite target for {part} id {sid}", where=where, hint="fix the value")
        out.append((f"{part}/{sid}", cell, z, pos, fe, bg))
    return out


def load_nmd18(path: str | os.PathLike) -> StructureSet:
    """NMD18 from the Kaggle folder ``path`` (see the module docstring)."""
    p = require_path(path, "nmd18")
    if p.is_file():  # the user pointed at train.csv
        p = p.parent
    train_csv = p / "train.csv"
    if not train_csv.exists():  # (a FIFO or folder of that name is refused by the reader, naming it)
        raise DataError("train.csv not found in this folder", where=str(p), hint=how_to_get("nmd18"))
    header, rows = _read_csv(train_csv)
    needed = ("number_of_total_atoms", "percent_atom_al", "percent_atom_ga", "percent_atom_in",
              _FE_COL, _BG_COL)
    for col in needed:
        if col not in header:
            raise DataError(f"missing column {col!r}", where=f"{train_csv}:1",
                            hint="is this the Kaggle train.csv?")
    records = [(r, "train") for r in _read_part(p, "train", rows, train_csv)]
    meta: dict = {"dataset": "nmd18", "n_train": len(records), "n_test": 0, "n_test_unlabelled": 0,
                  "unit_note": (f"formation_energy: the Kaggle column {_FE_COL} is in eV per cation (Al/Ga/In "
                                "atom), not per atom as its name says; `per: cation` reproduces the "
                                "competition's unit (meV/cation)")}

    test_csv, labelled = p / "test.csv", p / "labeled_test.csv"
    if test_csv.is_file() or labelled.is_file():
        t_rows: dict[str, tuple[int, dict[str, str]]] = {}
        t_header: list[str] = []
        csv_for_errors = test_csv if test_csv.is_file() else labelled
        if test_csv.is_file():
            t_header, t_rows = _read_csv(test_csv)
        if labelled.is_file():
            l_header, l_rows = _read_csv(labelled)
            t_header = list(dict.fromkeys(t_header + l_header))
            for sid, (ln, r) in l_rows.items():
                base = t_rows.get(sid, (ln, {}))[1]
                t_rows[sid] = (ln, {**base, **r})
            csv_for_errors = labelled
        if _FE_COL in t_header and _BG_COL in t_header:
            test = _read_part(p, "test", t_rows, csv_for_errors)
            records += [(r, "test") for r in test]
            meta["n_test"] = len(test)
            meta["test_labels"] = str(csv_for_errors)
        else:
            meta["n_test_unlabelled"] = len(t_rows)
            meta["note"] = (f"test part ({len(t_rows)} structures) has no labels (no labeled_test.csv): "
                            "not loaded")
            meta["test_unlabelled_file"] = str(csv_for_errors)
            meta["test_missing_columns"] = [c for c in (_FE_COL, _BG_COL) if c not in t_header]

    recs = [r for r, _ in records]
    # group labels for `splits.strategy: group` (space group number of the Kaggle tables)
    part_rows = {"train": rows, "test": t_rows if meta["n_test"] else {}}
    meta["labels"] = {"spacegroup": np.array([
        str(part_rows[part].get(r[0].split("/", 1)[1], (0, {}))[1].get("spacegroup", "")).strip()
        for r, part in records])}
    counts = np.array([len(r[2]) for r in recs])
    z = np.concatenate([r[2] for r in recs])
    targets = {"formation_energy": np.array([r[4] for r in recs]), "bandgap": np.array([r[5] for r in recs])}
    info = {
        "formation_energy": TargetInfo(unit="eV", extensive=True,
                                       description="formation energy per cell (Kaggle value per cation x "
                                                   "number of Al/Ga/In atoms)"),
        "bandgap": TargetInfo(unit="eV", extensive=False, description="band gap"),
    }
    return StructureSet(name="nmd18", z=z, positions=np.concatenate([r[3] for r in recs]),
                        offsets=np.concatenate([[0], np.cumsum(counts)]),
                        cells=np.array([r[1] for r in recs]),
                        pbc=np.ones((len(recs), 3), dtype=bool), ids=[r[0] for r in recs], targets=targets,
                        target_info=info, parts=[part for _, part in records], source=str(p), meta=meta)


READER = DatasetReader(
    load=lambda path: load_nmd18(path),
    summary="NOMAD 2018 Kaggle (Al,Ga,In)2O3 crystals: folder with train.csv and train/<id>/geometry.xyz",
    how_to_get=("download the data of the Kaggle competition 'nomad2018-predict-transparent-conductors' "
                "(train.csv, train/<id>/geometry.xyz, optionally test.csv, test/) and give the folder"))
