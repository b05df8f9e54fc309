"""BA10-18: binary alloys AgCu, AlFe, AlMg, AlNi, AlTi, CoNi, CuFe, CuNi, FeV, NbNi.

All fcc/bcc/hcp superstructures with up to 8 atoms per cell, 1,595 per alloy, 15,950 in all; unrelaxed,
VASP PBE (Nyshadham et al., npj Comput. Mater. 5, 51, 2019).  Two file layouts are read, detected per
structure:

* extended XYZ (as the dataset circulates)::

      2
      Lattice="1.89 1.89 0.0 -1.89 1.89 3.78 0.0 -1.89 1.89" Properties=species:S:1:pos:R:3
      lattice_type=fcc total_energy_eV=-6.028325 formation_enthalpy_eV=0.290519 pbc="T T T" name=AgCu-3
      Ag 0.0 0.0 0.0
      Cu 0.0 1.89 1.89

  (the comment is one line);
* the original ``ba10-18.xyz`` layout: the comment line holds ``name``, ``lattice``, ``te``, ``fe`` (as
  ``key=value`` pairs, or as those four values in that order) and the three cell vectors follow the atom
  lines as the last three lines of each structure (readme.txt: "The last three lines of each structure
  contain the unit cell basis vectors").

Targets, both in eV **per cell** (extensive):

* ``total_energy``: the DFT total energy;
* ``formation_enthalpy``: the readme calls it "te minus sum of free atom energies"; the values are per
  cell and relative to the pure fcc elements of the same alloy (checked on the shared fragment:
  ``fe(AgCu-3) = te(AgCu-3) - te(Ag, fcc) - te(Cu, fcc)`` to 1e-6 eV), so they are stored as they are.

ids are the ``name`` fields (``AgCu-3``); ``meta["lattice_types"]`` counts fcc/bcc/hcp.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from ..errors import DataError
from ..structures import StructureSet, TargetInfo, atomic_number
from . import DatasetReader, read_text, require_path
from .xyz import parse_comment, parse_float, properties_columns

_TE_KEYS = ("total_energy_eV", "total_energy", "te")
_FE_KEYS = ("formation_enthalpy_eV", "formation_enthalpy", "fe")
_LATTICE_KEYS = ("lattice_type", "lattice")


def _first(kv: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        if k in kv:
            return kv[k]
    return None


def parse_ba10(text: str, where: str):
    """Yield ``(name, lattice type, cell (3, 3), z, positions, total energy, formation enthalpy)``.

    See the module docstring for the two layouts; ``where`` names the file in error messages, which also
    give the line.
    """
    lines = text.splitlines()
    n_lines = len(lines)
    i = 0
    k = 0
    while i < n_lines:
        head = lines[i].strip()
        if not head:
            i += 1
            continue
        start = i + 1
        try:
            n = int(head)
        except ValueError:
            raise DataError(f"expected the number of atoms of structure {k}, found {head[:40]!r}",
                            where=f"{where}:{start}", hint="each structure starts with a line holding the "
                            "atom count; check the line counts of the structure before") from None
        if n < 1:
            raise DataError(f"structure {k} has {n} atoms", where=f"{where}:{start}",
                            hint="fix the atom count")
        if i + 1 >= n_lines:
            raise DataError(f"truncated structure {k}: the file ends after its atom count",
                            where=f"{where}:{start}", hint="the file was cut short")
        comment = lines[i + 1]
        cwhere = f"{where}:{start + 1}"
        kv = parse_comment(comment)
        extended = "Lattice" in kv
        n_rec = 2 + n + (0 if extended else 3)
        if i + n_rec > n_lines:
            cell_lines = "" if extended else " and 3 cell-vector lines"
            raise DataError(f"truncated structure {k}: it declares {n} atoms{cell_lines}, so {n_rec} lines, "
                            f"but the file ends after {n_lines - i}", where=f"{where}:{start}",
                            hint="the file was cut short, or the atom count is wrong")
        # properties
        if kv:
            name = kv.get("name")
            lattice = _first(kv, _LATTICE_KEYS) or ""
            te_s, fe_s = _first(kv, _TE_KEYS), _first(kv, _FE_KEYS)
        else:  # original layout, positional: name lattice te fe
            tok = comment.split()
            if len(tok) < 4:
                raise DataError(f"structure {k}: expected 'name lattice te fe' or key=value pairs, found "
                                f"{comment[:60]!r}", where=cwhere, hint="see the dataset's readme.txt")
            name, lattice, te_s, fe_s = tok[:4]
        if te_s is None or fe_s is None:
            raise DataError(f"structure {k} has no total energy or formation enthalpy", where=cwhere,
                            hint="expected total_energy_eV= and formation_enthalpy_eV= (or te= and fe=)")
        te = parse_float(te_s, "total energy", cwhere)
        fe = parse_float(fe_s, "formation enthalpy", cwhere)
        if not (np.isfinite(te) and np.isfinite(fe)):
            raise DataError(f"structure {k} ({name}): NaN or infinite energy", where=cwhere,
                            hint="remove the structure or fix its value")
        # atoms
        if extended and "Properties" in kv:
            c_sp, c_pos, n_col = properties_columns(kv["Properties"], cwhere)
        else:
            c_sp, c_pos, n_col = 0, 1, 4
        z = np.empty(n, dtype=np.int32)
        pos = np.empty((n, 3))
        for a in range(n):
            li = i + 2 + a
            t = lines[li].split()
            lwhere = f"{where}:{li + 1}"
            if len(t) < n_col:
                raise DataError(f"truncated structure {k}: expected atom line {a + 1} of {n} ('El x y z'), "
                                f"found {lines[li][:60]!r}", where=lwhere,
                                hint=f"the structure starting at line {start} declares {n} atoms; the file "
                                     "is damaged or the count is wrong")
            z[a] = atomic_number(t[c_sp], where=lwhere)
            pos[a] = [parse_float(v, "coordinate", lwhere) for v in t[c_pos:c_pos + 3]]
        # cell
        if extended:
            vals = kv["Lattice"].split()
            if len(vals) != 9:
                raise DataError(f"Lattice holds {len(vals)} numbers, not 9", where=cwhere,
                                hint='write Lattice="a1x a1y a1z a2x a2y a2z a3x a3y a3z"')
            cell = np.array([parse_float(v, "Lattice value", cwhere) for v in vals]).reshape(3, 3)
        else:
            cell = np.empty((3, 3))
            for c in range(3):
                li = i + 2 + n + c
                t = lines[li].split()
                lwhere = f"{where}:{li + 1}"
                if len(t) != 3:
                    raise DataError(f"structure {k}: expected cell vector {c + 1} of 3 ('x y z'), found "
                                    f"{lines[li][:60]!r}", where=lwhere,
                                    hint="in the original layout the last three lines of each structure are "
                                         "the cell vectors; or the atom count is wrong")
                cell[c] = [parse_float(v, "cell vector component", lwhere) for v in t]
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(cell))):
            raise DataError(f"structure {k}: non-finite coordinate or cell", where=f"{where}:{start}",
                            hint="fix the value")
        yield (name if name is not None else str(k)), lattice, cell, z, pos, te, fe
        i += n_rec
        k += 1


def load_ba10(path: str | os.PathLike) -> StructureSet:
    """BA10-18 from ``path`` (either layout, see the module docstring)."""
    p = require_path(path, "ba10", kind="file")
    recs = list(parse_ba10(read_text(p, "ba10"), str(p)))
    if not recs:
        raise DataError("no structures in the file", where=str(p), hint="is this ba10-18.xyz?")
    counts = np.array([len(r[3]) for r in recs])
    targets = {"total_energy": np.array([r[5] for r in recs]),
               "formation_enthalpy": np.array([r[6] for r in recs])}
    info = {
        "total_energy": TargetInfo(unit="eV", extensive=True, description="DFT (PBE) total energy per cell"),
        "formation_enthalpy": TargetInfo(unit="eV", extensive=True,
                                         description="formation enthalpy per cell, relative to the pure fcc "
                                                     "elements"),
    }
    meta = {"dataset": "ba10", "lattice_types": dict(Counter(r[1] for r in recs))}
    return StructureSet(name="ba10", z=np.concatenate([r[3] for r in recs]),
                        positions=np.concatenate([r[4] for r in recs]),
                        offsets=np.concatenate([[0], np.cumsum(counts)]),
                        cells=np.array([r[2] for r in recs]),
                        pbc=np.ones((len(recs), 3), dtype=bool), ids=[r[0] for r in recs], targets=targets,
                        target_info=info, source=str(p), meta=meta)


READER = DatasetReader(
    load=lambda path: load_ba10(path),
    summary="BA10-18 binary alloys (15,950 fcc/bcc/hcp cells): extended XYZ or original layout",
    how_to_get=("download ba10-18.xyz from https://qmml.org/datasets.html (Nyshadham et al. 2019) and give "
                "the file"))
