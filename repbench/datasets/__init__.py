"""Dataset readers: every reader returns one :class:`~repbench.structures.StructureSet`.

The readers are registered by name in :data:`READERS` (``repbench datasets list`` shows them): ``qm9``
(qm9pack), ``qm9-raw`` (figshare files), ``nmd18`` (Kaggle folder), ``ba10`` (extended XYZ or the original
layout) and ``file`` (any ASE-readable file); plugins add more through the entry-point group
``repbench.datasets`` (docs/extending.md).

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
from dataclasses import dataclass
from typing import Callable, Iterator

from ..errors import DataError
from ..registry import Registry, expects
from ..structures import StructureSet


@dataclass(frozen=True)
class DatasetReader:
    """A registered dataset reader (one per name in the :data:`READERS` registry).

    load: ``load(path, **options) -> StructureSet``; ``options`` are the config keys of ``dataset`` this
        reader takes besides ``path`` (e.g. ``target_key``); others are not passed.
    summary: one line for ``repbench datasets list``.  how_to_get: the hint of a missing-path error.
    needs_path: whether ``dataset.path`` is required.
    """

    load: Callable[..., StructureSet]
    summary: str
    how_to_get: str
    needs_path: bool = True
    options: tuple[str, ...] = ()


#: name (``dataset.name`` in a config) -> :class:`DatasetReader`; built-ins here, one per reader module;
#: plugins through the entry-point group ``repbench.datasets``.
READERS: Registry = Registry("dataset", {
    "qm9": "repbench.datasets.qm9:QM9_READER",
    "qm9-raw": "repbench.datasets.qm9:QM9_RAW_READER",
    "nmd18": "repbench.datasets.nmd18:READER",
    "ba10": "repbench.datasets.ba10:READER",
    "file": "repbench.datasets.asefile:READER",
}, check=expects(DatasetReader, instance=True, hint="see docs/extending.md (Add your dataset reader)"))


def reader(name: str) -> DatasetReader:
    """The reader registered as ``name`` (a :class:`DataError` naming the allowed names if unknown)."""
    if not isinstance(name, str) or name not in READERS:
        raise DataError(f"unknown dataset {name!r}", where="dataset.name",
                        hint="choose one of: " + ", ".join(READERS.names()))
    return READERS.get_component(name, file="dataset.name")


def how_to_get(name: str) -> str:
    """Where to get dataset ``name`` (the hint of a missing-file error)."""
    return reader(name).how_to_get


def load_dataset(name: str, path: str | os.PathLike | None = None, **options) -> StructureSet:
    """Read dataset ``name`` (a name of :data:`READERS`) from ``path`` into a :class:`StructureSet`.

    Options (only those the reader declares are passed; the others are ignored):

    target_key, target_unit, target_extensive: for ``file``: the ``atoms.info`` key of the target
        (``"energy"`` also finds a calculator's energy), its unit (energy units such as Hartree,
        kcal/mol, meV are converted to eV; ``<energy unit>/atom`` with ``target_extensive`` is converted
        to eV per structure) and whether it scales with system size.
    format: for ``file``: the ASE format name if ASE cannot guess it from the file name.
    cache_dir: for ``qm9``: folder of the converted-CSV cache (default ``$REPBENCH_CACHE_DIR`` or
        ``~/.cache/repbench``).
    exclude: for ``qm9-raw``: gdb ids to leave out, as a path to a list in the format of
        ``uncharacterized.txt`` or an iterable of ints; ``None`` uses ``uncharacterized.txt`` when it lies
        next to the data; ``False`` excludes nothing.

    Raises
    ------
    DataError: unknown dataset, missing file, or a file that cannot be read (naming file and line).
    """
    r = reader(name)
    if path is None and r.needs_path:
        raise DataError(f"dataset {name!r} needs a path", where="dataset.path", hint=r.how_to_get)
    return r.load(path, **{k: v for k, v in options.items() if k in r.options})


# --------------------------------------------------------------------------- helpers for the readers
def require_path(path: str | os.PathLike, dataset: str, *, kind: str = "any") -> Path:
    """``path`` as a :class:`Path`; raises :class:`DataError` with a how-to-get hint if it does not exist.

    ``kind`` is ``"file"``, ``"dir"`` or ``"any"``.
    """
    p = Path(path).expanduser()
    if not p.exists():
        what = {"dir": "folder", "file": "file"}.get(kind, "file or folder")
        raise DataError(f"{what} not found", where=str(p),
                        hint=how_to_get(dataset))
    if kind == "dir" and not p.is_dir():
        raise DataError(f"dataset {dataset!r} needs a folder, this is a file", where=str(p),
                        hint=how_to_get(dataset))
    if kind == "file" and p.is_dir():
        raise DataError(f"dataset {dataset!r} needs a file, this is a folder", where=str(p),
                        hint=how_to_get(dataset))
    return p


def read_text(path: Path, dataset: str) -> str:
    """The text of ``path`` (UTF-8, undecodable bytes replaced); unreadable files raise :class:`DataError`."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", where=str(path),
                        hint=how_to_get(dataset)) from None


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


__all__ = ["READERS", "DatasetReader", "reader", "how_to_get", "load_dataset", "require_path", "read_text",
           "cache_root", "atomic_file", "ENERGY_UNITS"]
