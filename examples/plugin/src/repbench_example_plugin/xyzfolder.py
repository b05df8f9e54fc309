"""Dataset reader ``xyz-folder``: one structure file per structure and a CSV of targets.

Layout of ``dataset.path``::

    my_data/
      targets.csv     a header line "id,<target>[,<target> ...]", then one line per structure
      <id>.xyz        the structure of each id (any format ASE reads from the file name: .xyz, .extxyz,
                      .cif, POSCAR files as <id>.vasp, ...; the first file named <id>.* is read)

Every column but ``id`` is a target.  ``dataset.target_unit`` [eV] is the unit of the target columns
(energy units are converted to eV), ``dataset.target_extensive`` [true] whether they scale with the number
of atoms.  Every problem raises a :class:`~repbench.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import glob
import math

import numpy as np

from repbench.datasets import ENERGY_UNITS, DatasetReader, require_path
from repbench.errors import DataError
from repbench.structures import StructureSet, TargetInfo

HOW_TO_GET = "give a folder holding targets.csv (id,<target>,...) and one structure file <id>.xyz per id"


def load_xyz_folder(path, *, target_unit: str = "eV", target_extensive: bool = True) -> StructureSet:
    """Read the folder ``path`` (see the module docstring)."""
    import ase.io

    folder = require_path(path, "xyz-folder", kind="dir")
    table = folder / "targets.csv"
    if not table.exists():
        raise DataError("targets.csv not found", where=str(folder), hint=HOW_TO_GET)
    with open(table, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0].strip() != "id" or len(rows[0]) < 2:
        raise DataError("the first line must be 'id,<target>[,...]'", where=f"{table}, line 1", hint=HOW_TO_GET)
    names = [c.strip() for c in rows[0][1:]]
    factor, unit = ENERGY_UNITS.get(target_unit.strip().lower()), target_unit
    if factor is not None:
        unit = "eV"
    ids, atoms_list, values = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{table}, line {line}"
        if len(row) != len(names) + 1:
            raise DataError(f"expected {len(names) + 1} columns, found {len(row)}", where=where,
                            hint="one id and one value per target on every line")
        sid = row[0].strip()
        if sid in ids:
            raise DataError(f"duplicate id {sid!r}", where=where, hint="ids must be unique")
        try:
            vals = [float(v) for v in row[1:]]
        except ValueError:
            raise DataError(f"a target of {sid!r} is not a number: {row[1:]}", where=where) from None
        if not all(math.isfinite(v) for v in vals):
            raise DataError(f"a target of {sid!r} is NaN or infinite", where=where,
                            hint="remove the line or fix the value")
        files = sorted(p for p in folder.glob(f"{glob.escape(sid)}.*") if p.name != "targets.csv")
        if not files:
            raise DataError(f"no structure file {sid}.* for id {sid!r}", where=where, hint=HOW_TO_GET)
        try:
            atoms = ase.io.read(files[0])
        except Exception as e:  # noqa: BLE001 - ASE raises many kinds; all mean "cannot read"
            raise DataError(f"ASE cannot read the file: {e}", where=str(files[0])) from None
        if len(atoms) == 0:
            raise DataError("the structure has no atoms", where=str(files[0]))
        ids.append(sid)
        atoms_list.append(atoms)
        values.append(vals)
    if not ids:
        raise DataError("targets.csv lists no structures", where=str(table), hint=HOW_TO_GET)
    v = np.array(values, dtype=np.float64) * (factor if factor is not None else 1.0)
    targets = {n: v[:, j] for j, n in enumerate(names)}
    info = {n: TargetInfo(unit=unit, extensive=bool(target_extensive), description=f"column {n!r} of {table}")
            for n in names}
    return StructureSet.from_ase(folder.name, atoms_list, targets=targets, target_info=info,
                                 ids=np.array(ids), source=str(folder))


READER = DatasetReader(
    load=lambda path, **o: load_xyz_folder(path, **o),
    options=("target_unit", "target_extensive"),
    summary="a folder with targets.csv (id,<target>,...) and one structure file <id>.xyz per id",
    how_to_get=HOW_TO_GET)
