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
import stat
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator

import numpy as np

from ..errors import DataError
from ..registry import Registry, expects
from ..structures import StructureSet, check_geometry


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
    DataError: unknown dataset, missing file, or a file that cannot be read (naming file and line); a
        file that is not a regular file or is larger than :data:`MAX_DATA_BYTES`; structures that no
        representation can use (:func:`~repbench.structures.check_geometry`: two atoms at one position,
        periodic and non-periodic structures mixed, a degenerate or absurd cell, absurd coordinates).
    """
    r = reader(name)
    if path is None and r.needs_path:
        raise DataError(f"dataset {name!r} needs a path", where="dataset.path", hint=r.how_to_get)
    s = r.load(path, **{k: v for k, v in options.items() if k in r.options})
    check_geometry(s)
    return s


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


# --------------------------------------------------------------------------- bounded, regular-file reads
#: The largest data file a reader reads (bytes).  Readers hold a file's text in memory, so a bigger file
#: (or a device such as /dev/zero) is refused before anything is read.
MAX_DATA_BYTES = 2 * 2**30
#: The largest uncompressed total a ``qm9-raw`` archive may hold (the real one holds about 0.4 GB).
MAX_ARCHIVE_BYTES = 4 * 2**30


def _size_text(n: int) -> str:
    if n < 10 * 2**20:
        return f"{n} bytes"
    for unit, f in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{n} bytes"


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: str | os.PathLike, max_bytes: int, *, error: type = DataError, what: str = "file",
                  hint: str = "") -> os.stat_result:
    """``os.stat`` of ``path`` if it is a regular file (links followed) of at most ``max_bytes``; else
    ``error`` naming it.  Nothing is opened: a FIFO, a device or a socket is refused before any read, so
    it can neither hang repbench nor feed it endless data."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} not found", where=str(path), hint=hint or "check the path") from None
    except OSError as e:
        raise error(f"cannot read the {what}: {e.strerror or e}", where=str(path), hint=hint) from None
    _check_stat(st, path, max_bytes, error, what, hint)
    return st


def _check_stat(st: os.stat_result, path, max_bytes: int, error: type, what: str, hint: str = "") -> None:
    if not stat.S_ISREG(st.st_mode):
        raise error(f"the {what} is {_kind_of(st.st_mode)}, not a regular file", where=str(path),
                    hint="give a regular file; repbench does not read pipes, devices or sockets")
    if st.st_size > max_bytes:
        raise error(f"the {what} holds {_size_text(st.st_size)}, more than the {_size_text(max_bytes)} "
                    "repbench reads", where=str(path),
                    hint=hint or "is this the right file? split a larger data set into several files")


def open_regular(path: str | os.PathLike, max_bytes: int = MAX_DATA_BYTES, *, error: type = DataError,
                 what: str = "file", hint: str = "") -> IO[bytes]:
    """Open ``path`` for binary reading if it is a regular file of at most ``max_bytes`` (else ``error``,
    a :class:`~repbench.errors.RepbenchError` subclass, naming it).

    The one way repbench's readers and the config loader open a user's file: the file is checked with
    ``stat`` before it is opened, opened without blocking (a FIFO swapped in meanwhile cannot hang the
    open) and checked again on the open descriptor.  Read at most ``max_bytes + 1`` bytes from it (see
    :func:`read_bytes`): a regular file can grow after the check.
    """
    check_regular(path, max_bytes, error=error, what=what, hint=hint)
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_NOCTTY", 0))
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise error(f"cannot read the {what}: {e.strerror or e}", where=str(path), hint=hint) from None
    try:
        _check_stat(os.fstat(fd), path, max_bytes, error, what, hint)
        if getattr(os, "O_NONBLOCK", 0):
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike, max_bytes: int = MAX_DATA_BYTES, *, error: type = DataError,
               what: str = "file", hint: str = "") -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` (see :func:`open_regular`)."""
    with open_regular(path, max_bytes, error=error, what=what, hint=hint) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"cannot read the {what}: {e.strerror or e}", where=str(path), hint=hint) from None
    if len(data) > max_bytes:
        raise error(f"the {what} grew beyond the {_size_text(max_bytes)} repbench reads while it was read",
                    where=str(path), hint="is another program writing it?")
    return data


def read_text(path: Path, dataset: str, max_bytes: int = MAX_DATA_BYTES) -> str:
    """The text of ``path`` (UTF-8, undecodable bytes replaced); unreadable files, files that are not
    regular files (FIFOs, devices) and files larger than ``max_bytes`` raise :class:`DataError`."""
    return read_bytes(path, max_bytes, hint=how_to_get(dataset)).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- HDF5 files repbench reads
class UnsafeHDF5(Exception):
    """An HDF5 file uses a feature repbench never writes and that could make a read reach outside the
    file (an external link, external storage, a virtual dataset) or run code (a filter plugin)."""


class OversizedHDF5(ValueError):
    """An HDF5 file declares more data than it can hold (a crafted or damaged file): reading it would try
    to allocate the declared size."""


#: Objects (groups and datasets) an HDF5 file of repbench may hold; more means a crafted or looping file.
MAX_H5_OBJECTS = 2_000_000
#: Largest attribute repbench reads (bytes).
MAX_H5_ATTRIBUTE = 2**20
_H5_SLACK = 2**20


def _h5_check_attrs(obj, name: str) -> None:
    import h5py

    for a in obj.attrs:
        aid = obj.attrs.get_id(a)
        dt = aid.dtype
        if h5py.check_ref_dtype(dt) is not None or (dt.kind in ("O", "V")
                                                    and h5py.check_string_dtype(dt) is None):
            raise UnsafeHDF5(f"attribute {a!r} of {name or '/'} has an unexpected data type ({dt})")
        n = int(np.prod(aid.shape, dtype=np.float64)) if aid.shape else 1
        if n * max(dt.itemsize, 1) > MAX_H5_ATTRIBUTE:
            raise OversizedHDF5(f"attribute {a!r} of {name or '/'} declares {_size_text(n * dt.itemsize)}")


def check_h5(f, file_size: int | None = None) -> None:
    """Check an open HDF5 file before anything is read from it.

    Raises :class:`UnsafeHDF5` for an external or soft link, a dataset with external storage, a virtual
    dataset, a filter other than Fletcher-32 (repbench writes none of these) or a reference data type; and
    :class:`OversizedHDF5` when the datasets declare more bytes than the file holds (``file_size``,
    default: the file's size on disk) or an attribute is larger than :data:`MAX_H5_ATTRIBUTE`.  Nothing is
    followed or read but the file's own metadata.
    """
    import h5py

    if file_size is None:
        file_size = os.path.getsize(f.filename)
    allowed_filters = {h5py.h5z.FILTER_FLETCHER32}
    declared = 0
    seen = 0
    stack: list[tuple[Any, str]] = [(f, "")]
    while stack:
        g, gname = stack.pop()
        _h5_check_attrs(g, gname)
        for key in g:
            name = f"{gname}/{key}"
            seen += 1
            if seen > MAX_H5_OBJECTS:
                raise OversizedHDF5(f"more than {MAX_H5_OBJECTS} objects")
            link = g.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise UnsafeHDF5(f"{name} is an external link to {link.filename}:{link.path}")
            if not isinstance(link, h5py.HardLink):
                raise UnsafeHDF5(f"{name} is a {type(link).__name__}, not a plain group or dataset")
            obj = g[key]
            if isinstance(obj, h5py.Group):
                stack.append((obj, name))
                continue
            if not isinstance(obj, h5py.Dataset):
                raise UnsafeHDF5(f"{name} is a {type(obj).__name__}")
            dcpl = obj.id.get_create_plist()
            if dcpl.get_layout() == h5py.h5d.VIRTUAL:
                raise UnsafeHDF5(f"{name} is a virtual dataset")
            if dcpl.get_external_count() > 0:
                raise UnsafeHDF5(f"{name} has external storage (its data lie in another file)")
            for i in range(dcpl.get_nfilters()):
                code = dcpl.get_filter(i)[0]
                if code not in allowed_filters:
                    raise UnsafeHDF5(f"{name} uses HDF5 filter {code}")
            dt = obj.dtype
            if h5py.check_ref_dtype(dt) is not None or (dt.kind in ("O", "V")
                                                        and h5py.check_string_dtype(dt) is None):
                raise UnsafeHDF5(f"{name} has an unexpected data type ({dt})")
            _h5_check_attrs(obj, name)
            shape = obj.shape
            n = 0 if shape is None else float(np.prod(shape, dtype=np.float64))
            nbytes = n * max(dt.itemsize, 1)
            declared += nbytes
            if declared > file_size + _H5_SLACK:
                raise OversizedHDF5(f"{name} declares shape {shape} ({_size_text(int(min(nbytes, 2**62)))}) "
                                    f"but the file holds {_size_text(file_size)}")


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, *, max_bytes: int | None = None, error: type = DataError,
            what: str = "HDF5 file") -> Iterator[Any]:
    """An HDF5 file repbench wrote, opened read-only after :func:`check_regular` and :func:`check_h5`.

    A file that is not a regular file raises ``error``; :class:`UnsafeHDF5` and :class:`OversizedHDF5`
    propagate (the caller decides: refuse, or treat as damaged); h5py's own errors (``OSError`` for a
    truncated or non-HDF5 file) propagate as they are.
    """
    import h5py

    st = check_regular(path, max_bytes if max_bytes is not None else 2**62, error=error, what=what)
    with h5py.File(path, "r") as f:
        check_h5(f, st.st_size)
        yield f


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
