"""The run directory: its layout, atomic writes, locks, provenance and the HDF5 files in it.

Layout::

    runs/<name>/
      run.yaml                   resolved config, seed, versions, host, format version, stage status
      data.h5                    structures, targets, all split indices (written once by ``prepare``)
      cache/representations/<hash>.h5   one file per representation (per-atom rows + offsets, or matrix)
      cache/kernels/<hash>.h5           one file per kernel block (representation, kernel params, rows, cols)
      tune/study.db  tune/best.yaml  tune/trials.csv
      curve/<size>-<draw>.yaml   finished learning-curve points (resume unit)
      curve.yaml  timings.yaml  plots/*.png|svg

Why one HDF5 file per cache entry rather than one shared ``representations.h5`` with a group each: HDF5
files are not crash-safe under in-place modification, so a kill while appending one entry could corrupt
every finished entry of a shared file.  A per-entry file is written to a temporary name and renamed, so
an entry is either complete or absent; datasets carry HDF5's Fletcher-32 checksum, so a damaged entry is
detected on read, reported, deleted and recomputed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import platform
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import yaml

from . import __version__
from .errors import RepbenchError, ResourceError, RunDirError
from .structures import StructureSet, TargetInfo

FORMAT_VERSION = 2
#: older run.yaml format versions that the commands upgrade in place (:mod:`repbench.migrate`)
UPGRADABLE = (1,)


# --------------------------------------------------------------------------- file-system errors
class FilesystemError(RunDirError):
    """A file or folder cannot be written: a read-only file system, missing permissions, a full disk.

    Nothing in the input is wrong, and nothing finished is lost: the command can be re-run once the cause
    is gone.  (``tune`` does not count a trial that stopped for this reason.)
    """


class DiskFullError(ResourceError, FilesystemError):
    """The disk (or the user's quota) is full."""


#: errno values that mean "the file system refused", not "the input is wrong"
FS_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EIO,
             errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EMLINK, errno.ETXTBSY}
_FULL = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded"}


def fs_error(e: OSError, path: str | Path | None = None, hint: str | None = None,
             what: str | None = None, write: bool = True) -> RepbenchError | None:
    """The one-line error for an :class:`OSError` raised while repbench wrote ``path`` (else the error's own
    file name), or None when ``e`` is not a file-system refusal (:data:`FS_ERRNOS`).  ``what``: how to name
    the file in the message (default: its name); ``write=False``: the operation is not known to be a write
    (the command line's last resort), so the message and hint do not claim it was."""
    if not isinstance(e, OSError) or e.errno not in FS_ERRNOS:
        return None
    p = Path(path if path is not None else (os.fsdecode(e.filename) if e.filename else "."))
    name, folder = what or p.name or str(p), p.parent if p.name else p
    if e.errno in _FULL:
        return DiskFullError(f"{_FULL[e.errno]} while writing {name}; nothing was half-written",
                             where=str(folder),
                             hint=hint or "free some disk space and re-run; finished work is kept")
    if e.errno == errno.EROFS:
        return FilesystemError(f"cannot write {name}: the file system is read-only", where=str(folder),
                               hint=hint or "make it writable, or copy the run directory to a writable place "
                                            "and work on the copy")
    if e.errno in (errno.EACCES, errno.EPERM) and not write:
        return FilesystemError(f"cannot use {name}: permission denied", where=str(folder),
                               hint=hint or "check its permissions and those of its folders (ls -l), then "
                                            "re-run")
    if e.errno in (errno.EACCES, errno.EPERM):
        return FilesystemError(f"cannot write {name}: permission denied", where=str(folder),
                               hint=hint or "make it writable for this user (chmod u+w), or copy the run "
                                            "directory to a writable place and work on the copy")
    if e.errno == errno.ELOOP and p.is_symlink():
        return link_error(p)
    verb = "write" if write else "use"
    return FilesystemError(f"cannot {verb} {name}: {e.strerror or e}", where=str(folder),
                           hint=hint or "check the folder and the disk, then re-run; finished work is kept")


def link_error(p: Path) -> RunDirError:
    return RunDirError(f"{p.name} is a symbolic link; repbench never follows a link for a file it writes or "
                       "locks", where=str(p.parent),
                       hint=f"remove the link ({p}); repbench re-creates the file")


def safe_open(path: str | Path, flags: int, mode: int = 0o644, what: str | None = None) -> int:
    """``os.open`` for the files repbench creates in a run directory (locks, temporary files): never through
    a symbolic link (``O_NOFOLLOW``), never a FIFO or device (``O_NONBLOCK`` and a regular-file check), not
    inherited by child processes.  Errors are one-line :class:`~repbench.errors.RepbenchError`\\ s."""
    path = Path(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise link_error(path) from None
        raise fs_error(e, path, what=what) or e from None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise RunDirError(f"{path.name} is not a regular file", where=str(path.parent),
                          hint=f"remove it ({path}); repbench re-creates it")
    return fd


# --------------------------------------------------------------------------- signals
class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs (exit status 143)."""


_SIGNALLED: list[int] = []  # SIGINT / SIGTERM received while :func:`interruptible` handlers were installed
_DEFERRING = [0]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_for(signum, frame):
    _SIGNALLED.append(signum)
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def signalled() -> int | None:
    """The first SIGINT or SIGTERM received under :func:`interruptible`, or None."""
    return _SIGNALLED[-1] if _SIGNALLED else None


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Handlers for a command: SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated` (both are
    recorded, :func:`signalled`), so that every stage cleans up the same way for both.  An interrupt that
    Python had to drop because it arrived inside a finaliser ("Exception ignored ... KeyboardInterrupt")
    is not printed; it stays recorded, so the caller can still exit with 130 / 143.  Restores the previous
    handlers on exit; a no-op outside the main thread."""
    if not _main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise_for) for s in (signal.SIGINT, signal.SIGTERM)}
    old_hook = sys.unraisablehook
    n = len(_SIGNALLED)

    def hook(u):
        if isinstance(u.exc_value, KeyboardInterrupt):
            return
        old_hook(u)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        for s, h in old.items():
            signal.signal(s, h)
        del _SIGNALLED[n:]


def _deliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL or handler is None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt()
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a file is written, then deliver them.

    An interrupt that lands inside h5py (or any finaliser it runs) is otherwise dropped by Python with
    "Exception ignored ... KeyboardInterrupt" and the command goes on as if nothing happened.  The first
    signal is held until the block ends (the file is then complete, or removed on error) and delivered to
    the previous handler; a second one is delivered at once.  A no-op outside the main thread.
    """
    if not _main_thread() or _DEFERRING[0]:
        yield
        return
    pending: list[int] = []
    old: dict = {}

    def hold(signum, frame):
        if pending:  # asked twice: stop now
            for s, h in old.items():
                signal.signal(s, h)
            _deliver(signum, old[signum])
        pending.append(signum)

    for s in (signal.SIGINT, signal.SIGTERM):
        old[s] = signal.signal(s, hold)
    _DEFERRING[0] += 1
    try:
        yield
    finally:
        _DEFERRING[0] -= 1
        for s, h in old.items():
            signal.signal(s, h)
        if pending:
            _deliver(pending[0], old[pending[0]])


# --------------------------------------------------------------------------- atomic writes
def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def tmp_prefix(name: str) -> str:
    """Prefix of a temporary file or folder for ``name``: ``.<name>.<host>-<pid>.`` (see clean_stale_tmp)."""
    return f".{name}.{_HOST}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def clean_stale_tmp(folder: str | Path, name: str | None = None) -> int:
    """Remove the temporary files and folders that killed writers left under ``folder`` (recursively).

    Only entries named by :func:`tmp_prefix` whose process is gone are removed: this host and a pid that
    no longer runs (another host's files, or a live process's, are never touched).  ``name``: only
    temporaries of that target name, and only directly in ``folder``.  Symbolic links to folders are not
    followed (a link itself may be removed, never what it points to).  Returns how many were removed.
    """
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return 0
    if name:
        found = list(folder.glob(f".{name}.*.tmp"))
    else:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            found += [Path(dirpath) / f for f in dirnames + filenames if f.endswith(".tmp")]
    n = 0
    for p in found:
        m = _TMP_NAME.match(p.name)
        if not m or m["host"] != _HOST or (name and m["name"] != name) or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            n += 1
    return n


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    On any error (including a full disk) the temporary file is removed and ``path`` is left as it was;
    a file-system refusal (full disk, read-only, no permission) is one clear
    :class:`FilesystemError`.  SIGINT and SIGTERM are held until the file is complete
    (:func:`deferred_signals`).  The temporary file is created exclusively (never through a link) and
    renamed over ``path`` (a link there is replaced, its target never written).  A temporary file left by
    a killed process is removed by the next stage on the run directory (:func:`clean_stale_tmp`).  The
    file gets the usual permissions (0644), not mkstemp's 0600, so that a run directory on a shared
    filesystem can be read by the other users' workers.
    """
    path = Path(path)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _write_error(e, path, existed) or e from None
    tmp = Path(tmp)
    with deferred_signals():
        try:
            os.chmod(tmp, 0o644)
            yield tmp
            fd = safe_open(tmp, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _write_error(e, path, existed) or e from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _write_error(e: OSError, path: Path, existed: bool) -> RepbenchError | None:
    if e.errno in _FULL:
        kept = "the previous file is intact" if existed else "nothing was written"
        return DiskFullError(f"{_FULL[e.errno]} while writing {path.name}; {kept}", where=str(path.parent),
                             hint="free some disk space and re-run; finished work is kept")
    return fs_error(e, path)


def nbytes_of(obj: Any) -> int:
    """Bytes of all numpy arrays in a nested structure (dicts, lists, tuples, dataclasses)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if obj.dtype.kind != "U" else int(obj.size * max(1, obj.itemsize // 4))
    if isinstance(obj, dict):
        return sum(nbytes_of(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes_of(v) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(nbytes_of(getattr(obj, k)) for k in obj.__dataclass_fields__)
    return 0


def check_disk(folder: str | Path, nbytes: int, what: str) -> None:
    """Refuse to start an HDF5 write of ``nbytes`` that the disk cannot hold.

    A YAML or text write that meets a full disk fails cleanly (:func:`atomic_path`), but HDF5 cannot
    recover from a full disk in the middle of a write (h5py 3.16 / HDF5 2.0 even crash the process), so
    HDF5 files are only started when they fit, with a margin for chunk checksums and metadata.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    need = int(nbytes * 1.05) + 2**20
    if need > free:
        raise DiskFullError(f"disk full: writing {what} needs {need / 2**20:.1f} MiB but only "
                            f"{free / 2**20:.1f} MiB are free; nothing was written", where=str(folder),
                            hint="free some disk space and re-run; finished work is kept")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class _Dumper(yaml.SafeDumper):
    pass


def _repr_float(dumper, value):
    if value != value:
        return dumper.represent_scalar("tag:yaml.org,2002:float", ".nan")
    return dumper.represent_scalar("tag:yaml.org,2002:float", repr(float(value)))


_Dumper.add_representer(float, _repr_float)
_Dumper.add_representer(np.float64, _repr_float)
_Dumper.add_representer(np.float32, lambda d, v: _repr_float(d, float(v)))
_Dumper.add_representer(np.int64, lambda d, v: d.represent_int(int(v)))
_Dumper.add_representer(np.int32, lambda d, v: d.represent_int(int(v)))
_Dumper.add_representer(tuple, lambda d, v: d.represent_list(list(v)))


def dump_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=110)


def write_yaml(path: str | Path, obj: Any, header: str = "") -> None:
    """Write YAML atomically (floats written with full precision so they round-trip)."""
    write_text(path, (header + "\n" if header else "") + dump_yaml(obj))


#: Largest YAML document of a run directory read (bytes): run.yaml, best.yaml, curve.yaml, timings.yaml.
MAX_YAML_BYTES = 64 * 2**20


def read_yaml(path: str | Path) -> Any:
    """A YAML document of a run directory: a regular file of at most :data:`MAX_YAML_BYTES` (a FIFO or a
    device is refused unread), parsed by :func:`repbench.config.parse_yaml` (no duplicate keys, no alias
    bombs, bounded nesting); any problem is a :class:`RunDirError` naming the file."""
    from .config import ConfigError, parse_yaml
    from .datasets import read_bytes

    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path.name} is missing", where=str(path.parent))
    hint = "the file was edited or damaged; delete it to recompute"
    raw = read_bytes(path, MAX_YAML_BYTES, error=RunDirError, what=path.name, hint=hint)
    try:
        return parse_yaml(raw.decode("utf-8"), str(path))
    except UnicodeDecodeError as e:
        raise RunDirError(f"{path.name} is not valid YAML ({e.__class__.__name__})", where=str(path),
                          hint=hint) from None
    except ConfigError as e:
        raise RunDirError(f"{path.name} is not valid YAML ({e.message})", where=str(path),
                          hint=hint) from None


# --------------------------------------------------------------------------- locks
#: the stages that hold the run-directory lock shared (and write their pid into .lock-<stage>)
STAGES = ("curve", "tune", "time")


def check_lock_links(run_dir: Path) -> None:
    """Refuse a run directory in which a ``.lock-*`` file is a symbolic link (planted: opening it would
    touch the file it points to)."""
    with contextlib.suppress(OSError):
        for p in sorted(Path(run_dir).glob(".lock-*")):
            if p.is_symlink():
                raise link_error(p)


def _open_lock(run_dir: Path, name: str):
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fs_error(e, run_dir) or e from None
    return os.fdopen(safe_open(run_dir / f".lock-{name}", os.O_RDWR | os.O_CREAT,
                               what=f"in the run directory (its lock file .lock-{name})"), "r+")


def _no_locks(run_dir: Path, e: OSError) -> RunDirError:
    return RunDirError(f"cannot lock the run directory: {e.strerror or e} (the file system does not support "
                       "file locks)", where=str(run_dir),
                       hint="use a run directory on a file system with locks (a local disk, or NFS with "
                            "locking enabled)")


def _holder_text(f) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        f.seek(0)
        return f.read(200).strip()
    return ""


def _claim(f) -> None:
    """Write this process's name (``pid N on HOST``) into a lock file it holds."""
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}")
    f.flush()


def _release(f) -> None:
    """Erase the holder's name from a lock file (only its holder does: a refused process must not)."""
    with contextlib.suppress(OSError):
        f.seek(0)
        f.truncate()


@contextlib.contextmanager
def lock(run_dir: Path, stage: str, wait: bool = False) -> Iterator[None]:
    """Exclusive lock on one stage of a run directory (released when the process dies).

    A second process that tries to run the same stage on the same run directory gets a clear
    :class:`RunDirError` (or waits with ``wait=True``).  The lock file is opened with :func:`safe_open`
    (never through a symbolic link); the holder writes ``pid N on HOST`` into it.
    """
    f = _open_lock(Path(run_dir), stage)
    held = False
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _holder_text(f) or "another process"
            raise RunDirError(f"another repbench {stage} is already running on this run directory "
                              f"({holder})", where=str(run_dir),
                              hint="wait for it to finish, or use another run directory") from None
        except OSError as e:
            raise _no_locks(run_dir, e) from None
        held = True
        _claim(f)
        yield
    finally:
        if held:
            _release(f)
        f.close()


def _live_holders(run_dir: Path) -> list[tuple[str, str]]:
    """(stage, "pid N on HOST") of the stage locks that name a live process (on another host: any)."""
    out = []
    for p in sorted(Path(run_dir).glob(".lock-*")):
        stage = p.name[len(".lock-"):]
        if stage == "run" or p.is_symlink() or not p.is_file():
            continue
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = p.read_text()[:200].strip()
            m = re.match(r"pid (\d+) on (\S+)", text)
            if m and (m[2] != socket.gethostname() or _pid_alive(int(m[1]))):
                out.append((stage, text))
    out.sort(key=lambda h: (h[0] not in STAGES + ("prepare",), h[0]))
    return out


@contextlib.contextmanager
def run_lock(run_dir: Path, stage: str, exclusive: bool = False) -> Iterator[None]:
    """The run-directory lock (``.lock-run``): ``curve``, ``tune`` and ``time`` hold it shared while they
    run (see :func:`stage_lock`); ``prepare`` holds it exclusive while it replaces or updates a run
    directory, so that it never pulls files away under a running stage, and no stage starts while it
    works.  Never waits: the refused process gets one clear error naming the holder."""
    run_dir = Path(run_dir)
    check_lock_links(run_dir)
    f = _open_lock(run_dir, "run")
    held = False
    try:
        try:
            fcntl.flock(f, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as e:
            if not isinstance(e, BlockingIOError):
                raise _no_locks(run_dir, e) from None
            if exclusive:
                holders = _live_holders(run_dir)
                who, holder = holders[0] if holders else ("curve, tune or time", "another process")
            else:
                who, holder = "prepare", _holder_text(f) or "another process"
            raise RunDirError(f"another repbench {who} is already running on this run directory ({holder})",
                              where=str(run_dir),
                              hint=f"wait for it to finish (or stop it), then re-run `repbench {stage}`; "
                                   "nothing was changed") from None
        held = True
        if exclusive:
            _claim(f)
        yield
    finally:
        if held and exclusive:
            _release(f)
        f.close()


@contextlib.contextmanager
def stage_lock(run_dir: Path, stage: str) -> Iterator[None]:
    """What ``curve``, ``tune`` and ``time`` hold while they run: the run-directory lock (shared, so that
    ``prepare --force`` waits for them) and their own stage lock (one process per stage)."""
    with run_lock(run_dir, stage), lock(run_dir, stage):
        yield


# --------------------------------------------------------------------------- provenance
def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"repbench": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "dscribe", "ase", "optuna", "h5py", "numba"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count()}


# --------------------------------------------------------------------------- HDF5 helpers
def _h5_write_array(g: h5py.Group, name: str, arr: np.ndarray) -> None:
    arr = np.asarray(arr)
    if arr.dtype.kind == "U":
        g.create_dataset(name, data=arr.astype(object), dtype=h5py.string_dtype())
    elif arr.size == 0:
        g.create_dataset(name, data=arr)
    else:
        g.create_dataset(name, data=arr, fletcher32=True, chunks=True)


def write_structures(g: h5py.Group, s: StructureSet) -> None:
    """Store a :class:`StructureSet` in an HDF5 group."""
    for k in ("z", "positions", "offsets", "cells", "pbc", "ids", "parts"):
        _h5_write_array(g, k, getattr(s, k))
    tg = g.create_group("targets")
    for k, v in s.targets.items():
        _h5_write_array(tg, k, v)
        info = s.target_info[k]
        tg[k].attrs.update({"unit": info.unit, "extensive": info.extensive, "description": info.description})
    g.attrs["name"] = s.name
    g.attrs["source"] = s.source
    g.attrs["content_hash"] = s.content_hash()


def read_structures(g: h5py.Group) -> StructureSet:
    """Read a :class:`StructureSet` written by :func:`write_structures`."""
    targets, info = {}, {}
    for k, ds in g["targets"].items():
        targets[k] = ds[()]
        info[k] = TargetInfo(unit=str(ds.attrs["unit"]), extensive=bool(ds.attrs["extensive"]),
                             description=str(ds.attrs.get("description", "")))
    s = StructureSet(
        name=str(g.attrs["name"]), z=g["z"][()], positions=g["positions"][()], offsets=g["offsets"][()],
        cells=g["cells"][()], pbc=g["pbc"][()], ids=g["ids"].asstr()[()], parts=g["parts"].asstr()[()],
        targets=targets, target_info=info, source=str(g.attrs["source"]),
    )
    return s


# --------------------------------------------------------------------------- the run directory
@dataclass
class RunDir:
    """A run directory (see the module docstring for its layout)."""

    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    # paths
    @property
    def run_yaml(self) -> Path:
        return self.path / "run.yaml"

    @property
    def data_h5(self) -> Path:
        return self.path / "data.h5"

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    @property
    def curve_dir(self) -> Path:
        return self.path / "curve"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def learning_curve_plot(self) -> Path:
        """Stem of the run's own learning-curve figure (``.png`` and ``.svg`` are added)."""
        return self.plots / "learning_curve"

    @property
    def study_db(self) -> Path:
        return self.tune_dir / "study.db"

    @property
    def best_yaml(self) -> Path:
        return self.tune_dir / "best.yaml"

    @property
    def trials_csv(self) -> Path:
        return self.tune_dir / "trials.csv"

    @property
    def curve_yaml(self) -> Path:
        return self.path / "curve.yaml"

    @property
    def timings_yaml(self) -> Path:
        return self.path / "timings.yaml"

    def point_path(self, size: int, draw: int) -> Path:
        """The finished learning-curve point (size, draw)."""
        return self.curve_dir / f"{int(size)}-{int(draw)}.yaml"

    def predictions_path(self, size: int, draw: int) -> Path:
        """Per-structure test predictions of the learning-curve point (size, draw)."""
        return self.curve_dir / f"{int(size)}-{int(draw)}.predictions.npz"

    @property
    def representation_cache(self) -> Path:
        return self.cache / "representations"

    @property
    def kernel_cache(self) -> Path:
        return self.cache / "kernels"

    #: results of a run (removed by ``prepare --force``; caches are kept)
    RESULT_NAMES = ("tune", "curve", "curve.yaml", "timings.yaml", "plots")

    def result_paths(self) -> list[Path]:
        return [self.path / n for n in self.RESULT_NAMES]

    def exists(self) -> bool:
        return self.run_yaml.exists()

    # run.yaml
    def read_meta(self) -> dict:
        if not self.path.is_dir():
            raise RunDirError("run directory not found", where=str(self.path),
                              hint="create it with `repbench prepare CONFIG`")
        if not self.run_yaml.exists():
            raise RunDirError("not a run directory (run.yaml is missing)", where=str(self.path),
                              hint="create it with `repbench prepare CONFIG`")
        meta = read_yaml(self.run_yaml)
        if not isinstance(meta, dict) or "config" not in meta:
            raise RunDirError("run.yaml is damaged (no config section)", where=str(self.run_yaml),
                              hint="re-create the run with `repbench prepare CONFIG --force`")
        fv = meta.get("format_version")
        if fv in UPGRADABLE:
            raise RunDirError(f"run.yaml has format version {fv} (an older repbench); it is upgraded in place "
                              "by the repbench commands", where=str(self.run_yaml),
                              hint="run a repbench command on it, e.g. `repbench report RUN`, or call "
                                   "repbench.migrate.open_run(path) from Python")
        if fv != FORMAT_VERSION:
            raise RunDirError(f"run.yaml has format version {fv!r}; this repbench ({__version__}) reads "
                              f"version {FORMAT_VERSION}", where=str(self.run_yaml),
                              hint="re-create the run with `repbench prepare CONFIG --force`, or use the "
                                   f"repbench version recorded in it ({meta.get('versions', {}).get('repbench')})")
        return meta

    def config(self):
        """The run's validated config (as stored in run.yaml)."""
        from . import config as cfg
        from .errors import ConfigError

        meta = self.read_meta()
        try:
            return cfg.from_dict(meta["config"], str(self.run_yaml))
        except ConfigError as e:
            raise RunDirError(f"the config stored in run.yaml is invalid: {e.message}",
                              where=str(self.run_yaml), hint="re-create the run with `repbench prepare`") from None

    def study_name(self, cfg) -> str:
        """The optuna study of ``cfg``'s search space: as recorded in run.yaml (``studies``), else
        ``<name>-<study hash[:8]>``."""
        sh = cfg.study_hash()
        studies = self.read_meta().get("studies") or {}
        return str(studies.get(sh) or f"{cfg.name}-{sh[:8]}")

    def update_config(self, cfg, changed: list[str]) -> None:
        """Replace the config in run.yaml by ``cfg`` (same data scope; under the run-yaml lock) and record
        which keys changed in ``config_history``."""
        with lock(self.path, "run-yaml", wait=True):
            meta = self.read_meta()
            meta["config"] = cfg.to_dict()
            meta["config_file"] = str(cfg.file)
            meta["config_hash"] = cfg.hash()
            meta["study_hash"] = cfg.study_hash()
            hist = meta.get("config_history") if isinstance(meta.get("config_history"), list) else []
            meta["config_history"] = (hist + [{"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                               "changed": list(changed)}])[-50:]
            write_yaml(self.run_yaml, meta)

    def last_config_change(self) -> list[str]:
        """Key paths changed by the last config update (``config_history``), or []."""
        hist = self.read_meta().get("config_history")
        return list(hist[-1].get("changed", [])) if isinstance(hist, list) and hist else []

    def record_seconds(self, stage: str, seconds: float) -> None:
        """Add the wall time of a stage's last run to its status in run.yaml (``seconds``)."""
        with lock(self.path, "run-yaml", wait=True):
            meta = self.read_meta()
            entry = meta.setdefault("status", {}).setdefault(stage, {"state": "done"})
            if isinstance(entry, dict):
                entry["seconds"] = round(float(seconds), 3)
                write_yaml(self.run_yaml, meta)

    def update_status(self, stage: str, status: str, **extra) -> None:
        """Record a stage's status in run.yaml (atomic rewrite, under the run-yaml lock)."""
        with lock(self.path, "run-yaml", wait=True):
            meta = self.read_meta()
            meta.setdefault("status", {})[stage] = {"state": status,
                                                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
            write_yaml(self.run_yaml, meta)

    # data.h5
    def write_data(self, structures: StructureSet, splits, meta: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        check_disk(self.path, nbytes_of(structures) + nbytes_of(splits), "data.h5")
        with atomic_path(self.data_h5) as tmp:
            with h5py.File(tmp, "w") as f:
                write_structures(f.create_group("structures"), structures)
                write_splits(f.create_group("splits"), splits)
                f.attrs.update({k: str(v) for k, v in meta.items()})

    def read_data(self):
        """(structures, splits, attrs) from data.h5; a clear error if missing or damaged."""
        if not self.data_h5.exists():
            raise RunDirError("data.h5 is missing", where=str(self.path),
                              hint="re-run `repbench prepare CONFIG --run-dir DIR` to recreate it")
        from .datasets import UnsafeHDF5, open_h5
        from .errors import DataError

        try:
            # checked before anything is read: a regular file; no links, external storage or virtual
            # datasets; no dataset declaring more than the file holds (see repbench.datasets.check_h5)
            with open_h5(self.data_h5, error=RunDirError, what="data.h5") as f:
                s, sp, attrs = read_structures(f["structures"]), read_splits(f["splits"]), dict(f.attrs)
            check_splits(sp, len(s))
            return s, sp, attrs
        except UnsafeHDF5 as e:
            raise RunDirError(f"data.h5 is not a file repbench wrote: {e}; nothing was read from it",
                              where=str(self.data_h5),
                              hint="repbench never writes HDF5 links, external storage or virtual datasets; "
                                   "re-create it with `repbench prepare CONFIG --force`") from None
        except DataError as e:
            raise RunDirError(f"data.h5 is damaged: {e.message}", where=str(self.data_h5),
                              hint="re-create it with `repbench prepare CONFIG --force`") from None
        except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise RunDirError(f"data.h5 is damaged or truncated ({e.__class__.__name__}: {e})",
                              where=str(self.data_h5),
                              hint="re-create it with `repbench prepare CONFIG --force`") from None


def write_splits(g: h5py.Group, sp) -> None:
    g.create_dataset("test", data=sp.test)
    g.create_dataset("pool", data=sp.pool)
    tr = g.create_group("train")
    for size, draws in sp.train.items():
        gs = tr.create_group(str(size))
        for d, idx in enumerate(draws):
            gs.create_dataset(str(d), data=idx)
            for k, (a, b) in enumerate(sp.inner[size][d]):
                gs.create_dataset(f"inner/{d}/{k}/train", data=a)
                gs.create_dataset(f"inner/{d}/{k}/val", data=b)
    tu = g.create_group("tune")
    for k, (a, b) in enumerate(sp.tune_folds):
        tu.create_dataset(f"{k}/train", data=a)
        tu.create_dataset(f"{k}/val", data=b)


def check_splits(sp, n: int) -> None:
    """Raise ``ValueError`` unless every index array of ``sp`` is a 1-D integer array within ``[0, n)``
    (a damaged or crafted data.h5 would otherwise fail later, deep inside a computation)."""
    def check(a, name: str) -> None:
        a = np.asarray(a)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise ValueError(f"splits/{name} is not a list of indices (shape {a.shape}, {a.dtype})")
        if a.size and (int(a.min()) < 0 or int(a.max()) >= n):
            raise ValueError(f"splits/{name} holds indices outside the {n} structures")

    check(sp.test, "test")
    check(sp.pool, "pool")
    for size, draws in sp.train.items():
        for d, idx in enumerate(draws):
            check(idx, f"train/{size}/{d}")
        for d, folds in enumerate(sp.inner.get(size, [])):
            for k, (a, b) in enumerate(folds):
                check(a, f"train/{size}/inner/{d}/{k}/train")
                check(b, f"train/{size}/inner/{d}/{k}/val")
    for k, (a, b) in enumerate(sp.tune_folds):
        check(a, f"tune/{k}/train")
        check(b, f"tune/{k}/val")


def read_splits(g: h5py.Group):
    from .splits import Splits

    train, inner = {}, {}
    for size in sorted(g["train"], key=int):
        gs = g["train"][size]
        draws = sorted((k for k in gs if k != "inner"), key=int)
        train[int(size)] = [gs[d][()] for d in draws]
        inner[int(size)] = []
        for d in draws:
            folds = []
            if "inner" in gs and d in gs["inner"]:
                for k in sorted(gs["inner"][d], key=int):
                    folds.append((gs["inner"][d][k]["train"][()], gs["inner"][d][k]["val"][()]))
            inner[int(size)].append(folds)
    tune = [(g["tune"][k]["train"][()], g["tune"][k]["val"][()]) for k in sorted(g["tune"], key=int)]
    return Splits(test=g["test"][()], pool=g["pool"][()], train=train, tune_folds=tune, inner=inner)
