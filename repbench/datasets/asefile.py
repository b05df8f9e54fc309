"""Generic reader: any extended-XYZ or other ASE-readable file, one target from ``atoms.info``.

``ase.io.read(path, index=":", format=format)`` reads the structures; the target of structure ``k`` is
``atoms.info[target_key]``, or else the calculator result of that name (ASE puts an extxyz ``energy=`` or
``free_energy=`` field there, and the energy of a VASP/aims output).

Units: energy units (eV, meV, Hartree/Ha, Ry, kcal/mol, kJ/mol) are converted to eV and stored as ``eV``;
``<energy unit>/atom`` with ``target_extensive=True`` is converted to eV per structure (multiplied by the
number of atoms), as every reader stores extensive energies per structure.  Any other unit is stored as
given.  ids are ``atoms.info["name"]`` or ``["id"]`` when every structure has a unique one, else the
structure index.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..structures import StructureSet, TargetInfo
from . import ENERGY_UNITS, MAX_DATA_BYTES, DatasetReader, check_regular, read_text, require_path
from .xyz import check_counts, check_layout


def convert_unit(values: np.ndarray, n_atoms: np.ndarray, unit: str, extensive: bool
                 ) -> tuple[np.ndarray, str, str]:
    """(values, stored unit, note): energies to eV, per-atom extensive energies to per structure."""
    u = unit.strip()
    base, _, per = u.partition("/")
    low = u.lower()
    if low in ENERGY_UNITS:
        f = ENERGY_UNITS[low]
        return values * f, "eV", "" if f == 1.0 else f" (converted from {u})"
    if per.lower() == "atom" and base.lower() in ENERGY_UNITS:
        f = ENERGY_UNITS[base.lower()]
        if extensive:
            return values * f * n_atoms, "eV", f" (converted from {u} to eV per structure)"
        return values * f, "eV/atom", "" if f == 1.0 else f" (converted from {u})"
    return values, u, ""


def load_ase_file(path: str | os.PathLike, *, target_key: str | None = None, target_unit: str = "eV",
                  target_extensive: bool = True, format: str | None = None) -> StructureSet:
    """Read ``path`` with ASE; see the module docstring.

    ``target_key=None`` loads the structures without targets and lists the numeric ``atoms.info`` keys in
    ``meta["info_keys"]``.  A structure without the key, or with a NaN/infinite value, raises
    :class:`DataError` naming the file and the structure index.
    """
    p = require_path(path, "file", kind="file")
    import ase.io

    text = None
    if _is_xyz(p, format):
        # read once, bounded; the atom counts are checked before ASE loops over them, and ASE parses the
        # text read here (not the path again, which could meanwhile be a FIFO)
        text = read_text(p, "file")
        if not text.strip():
            raise DataError("Empty file: it holds no structures", where=str(p),
                            hint="check the file and its format")
        check_counts(text, p)
        source = io.StringIO(text)
        fmt = format or "extxyz"
    else:  # other formats: ASE opens the path; a FIFO, a device or a too large file is refused first
        check_regular(p, MAX_DATA_BYTES, hint=READER.how_to_get)
        source, fmt = p, format
    try:
        atoms_list = ase.io.read(source, index=":", format=fmt)
    except Exception as e:  # noqa: BLE001 - ASE raises many kinds; all mean "this file cannot be read"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        if text is not None:  # ASE's messages carry no line number: name the broken line if we can
            check_layout(p, text)
        raise DataError(f"ASE cannot read the file: {msg}", where=str(p),
                        hint="check the file, or give its format (dataset.format: extxyz, vasp-out, aims ...)"
                        ) from None
    if not isinstance(atoms_list, list):
        atoms_list = [atoms_list]
    if not atoms_list:
        raise DataError("no structures in the file", where=str(p), hint="check the file and its format")
    for k, a in enumerate(atoms_list):
        if len(a) == 0:
            raise DataError(f"structure {k} has no atoms", where=f"{p}, structure {k}", hint="remove it")

    targets: dict[str, np.ndarray] = {}
    info: dict[str, TargetInfo] = {}
    meta: dict = {"dataset": "file", "format": format or ""}
    if target_key is None:
        keys = set.intersection(*(set(k for k, v in a.info.items() if _is_scalar(v)) for a in atoms_list))
        meta["info_keys"] = sorted(keys)
    else:
        values = np.empty(len(atoms_list))
        for k, a in enumerate(atoms_list):
            values[k] = _target(a, target_key, k, p)
        bad = np.nonzero(~np.isfinite(values))[0]
        if len(bad):
            raise DataError(f"target {target_key!r} is NaN or infinite for structure {int(bad[0])} "
                            f"({len(bad)} structure(s) in all)", where=f"{p}, structure {int(bad[0])}",
                            hint="remove those structures or fix their values")
        n_atoms = np.array([len(a) for a in atoms_list], dtype=np.float64)
        values, unit, note = convert_unit(values, n_atoms, target_unit, target_extensive)
        targets[target_key] = values
        info[target_key] = TargetInfo(unit=unit, extensive=bool(target_extensive),
                                      description=f"atoms.info[{target_key!r}] of {p.name}{note}")
    ids = _ids(atoms_list)
    s = StructureSet.from_ase(p.name, atoms_list, targets=targets, target_info=info, ids=ids, source=str(p))
    s.meta.update(meta)
    return s


def _is_xyz(p: Path, format: str | None) -> bool:
    if format is not None:
        return format in ("xyz", "extxyz")
    return p.suffix.lower() in (".xyz", ".extxyz")


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _target(atoms, key: str, k: int, p: Path) -> float:
    v = atoms.info.get(key)
    if v is None and atoms.calc is not None:  # extxyz stores energy=, free_energy= ... in a calculator
        v = getattr(atoms.calc, "results", {}).get(key)
        if v is None and key == "energy":
            try:
                v = atoms.get_potential_energy()
            except Exception:  # noqa: BLE001 - a calculator without a stored energy
                v = None
    if v is None:
        avail = sorted(atoms.info)
        raise DataError(f"structure {k} has no {key!r} value", where=f"{p}, structure {k}",
                        hint=f"keys of this structure: {', '.join(avail) if avail else 'none'}; set "
                             f"dataset.target_key")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise DataError(f"structure {k}: {key} = {v!r} is not a number", where=f"{p}, structure {k}",
                        hint="the target must be one number per structure") from None


def _ids(atoms_list: list) -> np.ndarray:
    for key in ("name", "id"):
        vals = [a.info.get(key) for a in atoms_list]
        if all(v is not None for v in vals) and len(set(map(str, vals))) == len(vals):
            return np.array([str(v) for v in vals])
    return np.arange(len(atoms_list)).astype(str)


READER = DatasetReader(
    load=lambda path, **o: load_ase_file(path, **o),
    options=("target_key", "target_unit", "target_extensive", "format"),
    summary="any extended-XYZ or ASE-readable file; target from atoms.info[target_key]",
    how_to_get="give an existing extended-XYZ (or other ASE-readable) file")
