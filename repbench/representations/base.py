"""Common interface of all representations, parameter validation helpers, and the parallel driver.

A :class:`Representation` turns structures into feature arrays.  *Local* representations (SOAP, SF) give
one row per atom, stacked in structure order, with row offsets per structure; *global* ones (MBTR) give one
row per structure.  Either way the result is a :class:`Features`.

:func:`compute` is the one entry point for whole datasets.  It splits the structures into chunks; this
process computes chunks straight into the (private) output array while a pool of forked worker processes
computes the others into a scratch array in shared memory (an anonymous ``MAP_SHARED`` mapping, so nothing
large is pickled back and ``/dev/shm`` limits do not apply), whose rows this process copies into the output
and releases as each chunk arrives; it shows a progress bar.  Every structure is computed by itself, so the result does not
depend on the number of workers or on the chunking: it is bit-identical for 1 and for N workers.  Atoms of
periodic structures that lie outside their cell are moved in by whole lattice vectors first
(:func:`wrap_into_cell`), so that features do not depend on which periodic image of an atom a file gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
import mmap
import multiprocessing
import numbers
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError, RepbenchError
from ..progress import progress_lines
from ..structures import SYMBOLS, StructureSet, atomic_number


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Features:
    """The result of computing a representation.

    values: local: ``(n_atoms_total, dim)`` per-atom rows in structure order; global: ``(n_structures, dim)``.
    offsets: local: ``(n_structures + 1,)`` int64 row offsets (structure ``i`` is
        ``values[offsets[i]:offsets[i+1]]``); global: ``None``.
    """

    values: np.ndarray
    offsets: np.ndarray | None = None

    @property
    def local(self) -> bool:
        return self.offsets is not None

    @property
    def n_structures(self) -> int:
        return len(self.offsets) - 1 if self.offsets is not None else self.values.shape[0]

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return self.n_structures

    def structure(self, i: int) -> np.ndarray:
        """The rows of structure ``i`` (local: ``(n_atoms_i, dim)``; global: ``(dim,)``)."""
        if self.offsets is None:
            return self.values[i]
        return self.values[self.offsets[i]:self.offsets[i + 1]]


# ---------------------------------------------------------------------------------------------- validation
#: Folder of the config file being validated (None outside config validation).  Representations that name
#: files (``representation.python.function: my_module:f`` with ``my_module.py`` next to the config) resolve
#: relative names against it; see :func:`config_dir`.
_CONFIG_DIR: contextvars.ContextVar = contextvars.ContextVar("repbench_config_dir", default=None)


def config_dir():
    """The folder of the config file being validated, or None (then: the current directory)."""
    return _CONFIG_DIR.get()


@contextlib.contextmanager
def validating_config(folder):
    """Within this block :func:`config_dir` returns ``folder`` (the config validator sets it)."""
    token = _CONFIG_DIR.set(folder)
    try:
        yield
    finally:
        _CONFIG_DIR.reset(token)


def _typename(value) -> str:
    return "null" if value is None else type(value).__name__


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_mapping(value, where: str, allowed=None, *, none_ok: bool = True) -> dict:
    """``value`` as a dict (``None`` -> ``{}`` when ``none_ok``); unknown keys are errors."""
    if value is None and none_ok:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping, got {_typename(value)} {value!r}", where=where,
                          hint=f"allowed keys: {', '.join(allowed)}" if allowed else "")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"keys must be strings, got {key!r}", where=where)
    if allowed is not None:
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}", where=_join(where, unknown[0]),
                              hint=f"allowed keys: {', '.join(allowed)}")
    return dict(value)


def as_int(value, where: str, lo: int | None = None, hi: int | None = None, hint: str = "") -> int:
    """An integer in ``[lo, hi]`` (integral floats such as ``8.0`` are accepted; booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            not isinstance(value, numbers.Integral) and not float(value).is_integer()):
        raise ConfigError(f"expected an integer, got {_typename(value)} {value!r}", where=where,
                          hint=hint or _range_hint(lo, hi, "integer"))
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{v} is out of range", where=where, hint=hint or _range_hint(lo, hi, "integer"))
    return v


def as_float(value, where: str, lo: float | None = None, hi: float | None = None, *,
             lo_open: bool = False, hint: str = "") -> float:
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``); booleans and strings are errors."""
    desc = _range_hint(lo, hi, "number", lo_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"expected a number, got {_typename(value)} {value!r}", where=where,
                          hint=hint or desc)
    v = float(value)
    if not math.isfinite(v) or (lo is not None and (v < lo or (lo_open and v == lo))) or (
            hi is not None and v > hi):
        raise ConfigError(f"{v!r} is out of range", where=where, hint=hint or desc)
    return v


def as_bool(value, where: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"expected true or false, got {_typename(value)} {value!r}", where=where,
                          hint="allowed: true, false")
    return bool(value)


def as_choice(value, where: str, choices) -> str:
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"invalid value {value!r}", where=where,
                          hint="allowed: " + ", ".join(str(c) for c in choices))
    return value


def as_list(value, where: str, *, min_len: int = 1, unique: bool = True, item=None) -> list:
    """A list (a scalar is not accepted); ``item(x, where_i)`` converts each entry."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list, got {_typename(value)} {value!r}", where=where,
                          hint=f"write e.g. [{value!r}]" if isinstance(value, (int, float, str)) else "")
    if len(value) < min_len:
        raise ConfigError(f"needs at least {min_len} entr{'y' if min_len == 1 else 'ies'}", where=where)
    out = [item(x, f"{where}[{i}]") if item else x for i, x in enumerate(value)]
    if unique and len(set(out)) != len(out):
        dup = next(x for x in out if out.count(x) > 1)
        raise ConfigError(f"duplicate entry {dup!r}", where=where, hint="list each value once")
    return out


def _range_hint(lo, hi, what, lo_open=False) -> str:
    if lo is not None and hi is not None:
        return f"allowed: {what} {'>' if lo_open else '>='} {lo} and <= {hi}"
    if lo is not None:
        return f"allowed: {what} {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"allowed: {what} <= {hi}"
    return f"allowed: {what}"


def normalize_species(species, where: str = "species") -> list[int]:
    """Sorted unique atomic numbers from atomic numbers and/or chemical symbols."""
    if species is None or isinstance(species, (str, bytes)) or len(species) == 0:
        raise ConfigError("a non-empty list of elements is needed", where=where)
    out = set()
    for s in species:
        if isinstance(s, str):
            try:
                out.add(atomic_number(s))
            except DataError as e:
                raise ConfigError(e.message, where=where, hint=e.hint) from None
        else:
            z = as_int(s, where, 1, len(SYMBOLS) - 1, hint="atomic numbers 1..118 or chemical symbols")
            out.add(z)
    return sorted(out)


def dscribe_error(exc: Exception, where: str, hint: str = "") -> ConfigError:
    """A dscribe ValueError/KeyError raised for a parameter combination, as a :class:`ConfigError`."""
    msg = exc.args[0] if exc.args else str(exc)
    return ConfigError(f"rejected by dscribe: {msg}", where=where, hint=hint)


def check_json(value, where: str):
    """``value`` if it is plain YAML/JSON data (None, bool, int, float, str, lists and string-keyed
    mappings of these), else a :class:`ConfigError` naming ``where`` (the key path).

    For free-form parameters (a user function's keyword arguments, a dscribe constructor's keywords) that
    end up in run.yaml and in cache keys.  Tuples become lists.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [check_json(x, f"{where}[{i}]") for i, x in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"keys must be strings, got {k!r}", where=where)
            out[k] = check_json(v, _join(where, k))
        return out
    raise ConfigError(f"expected plain data (number, string, boolean, list or mapping), got "
                      f"{_typename(value)} {value!r}", where=where)


# ---------------------------------------------------------------------------------------------- interface
class Representation(ABC):
    """A representation with validated parameters for a fixed list of species.

    Subclasses set ``kind`` and ``local`` and implement :meth:`validate`, :meth:`compute_atoms` and
    :attr:`dim`.  ``params`` passed to ``__init__`` must already be validated (``validate`` output).
    """

    kind: str = ""
    local: bool = True

    @classmethod
    def local_for(cls, params: dict | None) -> bool:
        """Whether this representation with (validated or raw) ``params`` gives one row per atom.

        The config uses it to pick the kernel family before anything is built; override it when a
        parameter switches between local and global (SOAP's ``average``).
        """
        return bool(cls.local)

    @classmethod
    def parameters(cls) -> dict:
        """The parameters with their defaults, for listings (``repbench representations``) and docs.

        Default: ``validate(None)``; representations with required parameters override it.
        """
        try:
            return cls.validate(None, f"representation.{cls.kind}")
        except ConfigError:
            return {}

    @classmethod
    def kind_label(cls) -> str:
        """"local", "global", or how the parameters decide it (for listings)."""
        try:
            return "local" if cls.local_for(cls.parameters()) else "global"
        except Exception:  # noqa: BLE001 - a listing must not fail on one representation
            return "local" if cls.local else "global"

    @classmethod
    def identity_params(cls, params: dict) -> dict:
        """The parameters as far as they decide results (config hashes use this); default: all of them.

        Override to leave out keys that only say where something is (a file path), not what it is.
        """
        return params

    @classmethod
    def summary(cls) -> str:
        """One line saying what the representation is (the first line of the class docstring)."""
        return ((cls.__doc__ or "").strip().splitlines() or [""])[0]

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        """Small, fast parameters for molecules (``periodic=False``) or crystals (``periodic=True``), or
        None when the representation does not apply to that kind of system.

        ``tests/test_contract.py`` runs every registered representation with them (invariance to rotation,
        translation, atom order and lattice shifts; determinism; shapes); a representation that returns
        None for both makes that test fail.  The parameters must be invariant ones (e.g. a sorted or
        eigenspectrum Coulomb matrix, not the unsorted one).
        """
        return None

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        self.where = where or f"representation.{self.kind}"  # key path for errors found when building
        self.params = params
        self.species = normalize_species(species)
        self.periodic = bool(periodic)

    # -- parameters
    @classmethod
    @abstractmethod
    def validate(cls, params: dict | None, where: str) -> dict:
        """Fill defaults and check keys, types and ranges; raise :class:`ConfigError` naming ``where.key``.

        The result is JSON-able, and validating it again returns it unchanged.
        """

    def params_canonical(self) -> dict:
        """All parameters including defaults (JSON-able, key order irrelevant), for hashing."""
        import copy

        return copy.deepcopy(self.params)

    def describe(self) -> dict:
        """Everything besides the structures that determines the array: kind, params, species, periodic,
        and the dscribe version that computes it."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            dscribe_version = version("dscribe")
        except PackageNotFoundError:  # pragma: no cover
            dscribe_version = "unknown"
        return {"kind": self.kind, "params": self.params_canonical(), "species": list(self.species),
                "periodic": self.periodic, "dscribe": dscribe_version}

    # -- computing
    @property
    @abstractmethod
    def dim(self) -> int:
        """Number of features per row (see :meth:`fit_dim` for representations that only know it after
        computing a structure)."""

    def fit_dim(self, atoms_list: list) -> int:
        """Make :attr:`dim` known and return it; ``atoms_list`` holds the first structure(s) to compute.

        :func:`compute` calls it in this process before it allocates the output and before it forks, so
        the workers inherit the known width.  Call it before reading :attr:`dim` of a representation
        whose width depends on what it computes (a user's Python function); for all others it just
        returns :attr:`dim` (the default).  With an empty list and an unknown width it returns 0.
        """
        return int(self.dim)

    def compute_atoms(self, atoms_list: list) -> np.ndarray:
        """Features of one chunk in this process: local -> per-atom rows stacked; global -> one row each.

        Subclasses implement this or :meth:`compute_into` (or both); by default it allocates the rows and
        calls :meth:`compute_into`.
        """
        if type(self).compute_into is Representation.compute_into:
            raise NotImplementedError(f"{type(self).__name__} implements neither compute_atoms nor compute_into")
        rows = sum(len(a) for a in atoms_list) if self.local else len(atoms_list)
        out = np.empty((rows, self.dim))
        self.compute_into(atoms_list, out)
        return out

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        """Write the rows of ``atoms_list`` into ``out`` (exactly the right number of rows).

        Subclasses may override this to avoid a temporary copy; the values must equal
        :meth:`compute_atoms` bit for bit.
        """
        if type(self).compute_atoms is Representation.compute_atoms:
            raise NotImplementedError(f"{type(self).__name__} implements neither compute_atoms nor compute_into")
        out[...] = self.compute_atoms(atoms_list)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r}, species={self.species}, periodic={self.periodic})"


# ---------------------------------------------------------------------------------------------- driver
#: Jobs of running :func:`compute` calls, looked up by forked workers (they inherit this dict).
_JOBS: dict[int, dict] = {}
_JOB_IDS = itertools.count()
_JOBS_LOCK = threading.Lock()

#: Below this many structures one process is used by default (forking costs ~10-50 ms).
MIN_STRUCTURES_PER_WORKER = 16
#: Default cap on workers.
MAX_DEFAULT_WORKERS = 32
#: With ``n_workers=None`` the first chunk is timed in-process and workers are started only if the rest
#: is estimated to finish sooner with them (:func:`parallel_pays`).  This process computes its share of
#: the chunks straight into the private output; the ``n_workers - 1`` forked workers compute theirs into a
#: shared scratch mapping, whose rows this process then copies into the output.  The workers' rows cost
#: the page faults of fresh shared memory (anonymous shared memory gets no transparent huge pages, a
#: private numpy array does) and the copy: ``(SHARED_SECONDS_PER_MB + COPY_SECONDS_PER_MB) x MB of the
#: workers' rows``, spread over all ``n_workers`` processes like the compute time.  Calibrated on this
#: project's 2-core machine (QM9 SOAP of 1,000 molecules, 830 MB of output: a fresh shared mapping's
#: 200,000 faults of 4 KiB cost 0.49 s of system time, 0.6 ms per MB; copying into the private output
#: 0.1 ms per MB; small jobs: SOAP of 200 molecules 0.15 s single-process, SF k=2 of 4,000 molecules 0.34
#: s, MBTR k=2 of 800 molecules 0.24 s); starting a fork pool costs ~35 ms.  So small jobs, and jobs whose
#: output is large for their compute time, stay in this process.
POOL_START_SECONDS = 0.035
SHARED_SECONDS_PER_MB = 0.0006
COPY_SECONDS_PER_MB = 0.0001
PARALLEL_GAIN = 0.95


def parallel_pays(rest_seconds: float, n_workers: int, out_bytes: int) -> bool:
    """Whether ``n_workers`` processes (this one and ``n_workers - 1`` forked workers) finish
    ``rest_seconds`` of single-process work writing ``out_bytes`` of output sooner than this process
    alone (see :data:`POOL_START_SECONDS`)."""
    worker_mb = out_bytes / 1e6 * (n_workers - 1) / n_workers
    overhead = (SHARED_SECONDS_PER_MB + COPY_SECONDS_PER_MB) * worker_mb
    parallel = (rest_seconds + overhead) / n_workers + POOL_START_SECONDS
    return parallel < PARALLEL_GAIN * rest_seconds


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def default_workers(n_structures: int) -> int:
    """``available_cpus()`` capped at 32, and fewer for small inputs (1 below 32 structures)."""
    return max(1, min(available_cpus(), MAX_DEFAULT_WORKERS, n_structures // MIN_STRUCTURES_PER_WORKER))


def _default_chunk_size(n: int, n_workers: int) -> int:
    # enough chunks for load balancing and a live progress bar, few enough to keep dispatch negligible
    return max(1, min(200, math.ceil(n / (16 * n_workers))))


def _shared_array(shape: tuple, dtype) -> np.ndarray:
    """A zeroed array in an anonymous shared mapping, inherited writable by forked children (its pages
    are allocated when first written; :func:`_release_rows` gives them back)."""
    nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def _release_rows(shared: np.ndarray, r0: int, r1: int) -> None:
    """Give the memory pages wholly inside rows ``r0:r1`` of a :func:`_shared_array` back to the system
    (``MADV_REMOVE``; where the platform lacks it the pages stay until the mapping is freed)."""
    buf = shared.base
    while isinstance(buf, np.ndarray):  # the reshaped view's base is the flat array over the mapping
        buf = buf.base
    if isinstance(buf, memoryview):     # ... whose base is a memoryview of the mmap
        buf = buf.obj
    remove = getattr(mmap, "MADV_REMOVE", None)
    if remove is None or not isinstance(buf, mmap.mmap) or shared.ndim != 2:
        return
    row = shared.shape[1] * shared.itemsize
    page = mmap.PAGESIZE
    start = -(-(r0 * row) // page) * page
    stop = (r1 * row) // page * page
    if stop > start:
        with contextlib.suppress(OSError):
            buf.madvise(remove, start, stop - start)


#: Fractional tolerance of :func:`wrap_into_cell`.
WRAP_EPS = 1e-9


def wrap_into_cell(atoms_list: list) -> list:
    """Move atoms of periodic structures that lie outside their cell back in by whole lattice vectors
    (in place; returns ``atoms_list``).

    dscribe (2.1) assumes positions inside the cell when it builds the periodic images: an atom given one
    or more lattice vectors away (as in unwrapped MD trajectories) gets wrong neighbours, so SOAP, ACSF, MBTR
    and LMBTR changed by up to 20% (kernel, relative) when one atom was moved by a lattice vector
    (``tests/test_contract.py``).  Only atoms with a fractional coordinate outside [-eps, 1 - eps) along a
    periodic direction move, by ``-floor(fractional + eps)`` cell vectors (``eps`` = :data:`WRAP_EPS`, as in
    ase's ``Atoms.wrap``: an atom on a face of the cell goes to the face at 0 whichever side of it rounding
    put it); all other positions stay bit for bit.
    """
    for atoms in atoms_list:
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if not pbc.any():
            continue
        pos = atoms.positions
        frac = atoms.cell.scaled_positions(pos)
        shift = np.where(pbc[None, :], np.floor(frac + WRAP_EPS), 0.0)
        moved = np.any(shift != 0, axis=1)
        if moved.any():
            new = pos.copy()
            new[moved] -= shift[moved] @ np.asarray(atoms.cell)
            atoms.positions = new
    return atoms_list


@contextlib.contextmanager
def _holding(lock, while_waiting, every: float):
    """Hold ``lock``, calling ``while_waiting()`` every ``every`` seconds until it is free: a process
    killed while it held the lock must not block the others for ever (``while_waiting`` raises or
    exits when it sees that)."""
    while not lock.acquire(timeout=every):
        while_waiting()
    try:
        yield
    finally:
        lock.release()


def _claim(job: dict, locked) -> int | None:
    """The next chunk nobody has taken (this process and the workers share the counter), or None.
    ``locked()``: holds the job's lock (:func:`_holding`)."""
    with locked():
        i = job["next"].value
        if i >= len(job["order"]):
            return None
        job["next"].value = i + 1
    return job["order"][i]


def _worker_start(parent: int) -> None:
    """Pool initializer: the worker dies with its parent.  On Linux ``PR_SET_PDEATHSIG`` has the kernel
    send SIGKILL when the parent dies, also while the worker waits idle on the pool's task pipe (which its
    siblings keep open, so it would never see end-of-file); elsewhere the worker loop's parent check
    remains."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG = 1 (Linux)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _worker_loop(token: int) -> int:
    """In a forked worker: compute chunks of job ``token`` into its shared rows until none are left (or
    the job is stopped), marking each done; returns how many it computed."""
    job = _JOBS[token]

    def stop_if_abandoned() -> None:
        if os.getppid() != job["parent"]:
            # the parent is gone (killed): exit instead of computing the rest for nobody and then waiting
            # on the pool's task pipe (or on a lock the parent died holding) for ever
            os._exit(1)

    def while_waiting() -> None:
        stop_if_abandoned()
        if job["stop"][0]:  # the parent failed, maybe holding the lock: no more chunks
            os._exit(1)

    def locked():
        return _holding(job["lock"], while_waiting, 1.0)

    k = 0
    while not job["stop"][0] and (c := _claim(job, locked)) is not None:
        _compute_chunk(job, c, job["shared"])
        with locked():  # the lock orders the rows' writes before the flag for the reader
            job["done"][c] = 1
        k += 1
        stop_if_abandoned()
    return k


def _compute_chunk(job: dict, c: int, out: np.ndarray) -> tuple[int, int]:
    """Compute chunk ``c`` of ``job`` and write its rows into ``out`` (the output's full shape)."""
    rep: Representation = job["rep"]
    structures: StructureSet = job["structures"]
    idx = job["index"]
    a, b = job["chunks"][c]
    r0, r1 = job["row_offsets"][a], job["row_offsets"][b]
    atoms = wrap_into_cell(structures.to_ase(idx[a:b]))
    try:
        rep.compute_into(atoms, out[r0:r1])
    except RepbenchError as exc:
        # an error the user can fix (e.g. a user function returning NaN): keep it one clear error
        ids = structures.ids[idx[a:b]]
        first, last = str(ids[0]), str(ids[-1])
        where = f" (structures {first!r}..{last!r})" if len(ids) > 1 else f" (structure {first!r})"
        raise type(exc)(exc.message + where, where=exc.where, hint=exc.hint) from None
    except Exception as exc:
        ids = structures.ids[idx[a:b]]
        raise RuntimeError(f"{rep.kind}: computing structures {ids[0]!r}..{ids[-1]!r} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
    return c, b - a


def _progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    console = Console(stderr=True)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("structures"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, disable=not (enabled and console.is_terminal), transient=False,
                    auto_refresh=False)


def _run_pool(job: dict, chunks: list[int], n_workers: int, out: np.ndarray, advance) -> None:
    """Compute ``chunks`` of ``job`` with this process and ``n_workers - 1`` forked workers.

    All take the next chunk from one shared counter.  This process computes its chunks straight into
    ``out``; the workers compute theirs into ``job["shared"]`` (a :func:`_shared_array` of ``out``'s
    shape) and flag them done, and this process copies their rows into ``out`` and releases their pages
    between its own chunks (pages a chunk shares with a neighbour stay until the end), so that shared
    memory holds little more than the chunks not yet copied.  (Nothing passes through the
    pool's task queue while this process computes: its feeder threads need the GIL, which a computing
    process holds most of the time.)
    """
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("fork")
    shared = job["shared"]
    offsets = job["row_offsets"]
    job["order"] = list(chunks)
    job["parent"] = os.getpid()
    job["next"] = ctx.Value("q", 0, lock=False)
    job["lock"] = ctx.Lock()
    job["done"] = done = _shared_array((max(1, len(job["chunks"])),), np.int8)  # 1: rows ready, 2: copied
    job["stop"] = _shared_array((1,), np.int8)  # set (without the lock) when this process fails

    workers: list = []

    def check_workers() -> None:
        for w in workers:
            if w.done() and w.exception() is not None:
                raise w.exception()

    def locked():  # a worker killed while it held the lock: the pool's BrokenProcessPool, not a hang
        return _holding(job["lock"], check_workers, 0.5)

    def collect() -> None:
        with locked():
            ready = np.flatnonzero(done == 1)
            done[ready] = 2
        for c in ready:
            a, b = job["chunks"][c]
            r0, r1 = offsets[a], offsets[b]
            out[r0:r1] = shared[r0:r1]
            _release_rows(shared, r0, r1)
            advance(b - a)

    # A killed worker (e.g. out of memory) raises BrokenProcessPool instead of hanging as multiprocessing.Pool
    # would.  With fork, the executor forks all workers at the first submit, before its own thread starts.
    pool = ProcessPoolExecutor(n_workers - 1, mp_context=ctx, initializer=_worker_start,
                               initargs=(job["parent"],))
    try:
        workers += [pool.submit(_worker_loop, job["token"]) for _ in range(n_workers - 1)]
        while (c := _claim(job, locked)) is not None:
            advance(_compute_chunk(job, c, out)[1])
            collect()
            check_workers()
        while True:
            finished, running = wait(workers, timeout=0.02, return_when=FIRST_EXCEPTION)
            collect()
            for w in finished:
                w.result()  # a worker's error
            if not running:
                break
        collect()
    except BaseException:
        job["stop"][0] = 1  # the workers stop after their current chunk, even if the lock is never free
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def check_species(rep: Representation, structures: StructureSet, idx: np.ndarray) -> None:
    """Raise :class:`DataError` if a selected structure holds an element the representation lacks."""
    bad_atoms = np.nonzero(~np.isin(structures.z, rep.species))[0]
    if len(bad_atoms) == 0:
        return
    bad_structs = np.unique(np.searchsorted(structures.offsets, bad_atoms, side="right") - 1)
    hit = np.intersect1d(bad_structs, idx)
    if len(hit):
        s = int(hit[0])
        a, b = structures.offsets[s], structures.offsets[s + 1]
        extra = sorted(set(structures.z[a:b].tolist()) - set(rep.species))
        raise DataError(
            f"structure {structures.ids[s]!r} contains {', '.join(SYMBOLS[z] for z in extra)}, which the "
            f"{rep.kind} representation was not set up for ({len(hit)} structure(s) in all)",
            where=structures.source or structures.name,
            hint=f"species are {', '.join(SYMBOLS[z] for z in rep.species)}; build the representation with "
                 "the elements of the whole dataset")


def compute(rep: Representation, structures: StructureSet, index=None, *, n_workers: int | None = None,
            chunk_size: int | None = None, progress: bool = True, dtype=np.float64) -> Features:
    """Compute ``rep`` for ``structures`` (all, or those in ``index`` in that order).

    n_workers: processes.  Default (None): up to the available CPUs (capped at 32; 1 below 32 structures);
        the first chunk is computed and timed in this process and a pool is started only if the rest is
        estimated to finish sooner with it (:func:`parallel_pays`: pool start and shared-memory costs
        against the compute time saved).  With more than one, this process and a fork-context pool of
        ``n_workers - 1`` workers compute the chunks (the workers' rows pass through a shared anonymous
        mapping).  The result does not depend on it.
    chunk_size: structures per chunk (default: about 16 chunks per worker, at most 200 structures).
    progress: show a rich progress bar on stderr (only when stderr is a terminal).
    dtype: float64 (default) or float32; dscribe computes in float64, rows are rounded when written.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, not {dtype}")
    idx = np.arange(len(structures), dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError("index must be one-dimensional")
    if len(idx) and (idx.min() < 0 or idx.max() >= len(structures)):
        raise IndexError(f"index out of range for {len(structures)} structures")
    n = len(idx)
    check_species(rep, structures, idx)

    counts = structures.n_atoms[idx] if n else np.zeros(0, np.int64)
    atom_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    row_offsets = atom_offsets if rep.local else np.arange(n + 1, dtype=np.int64)
    # in this process, before allocating and forking: the width of representations that learn it by
    # computing the first structure (a user's Python function)
    dim = rep.fit_dim(wrap_into_cell(structures.to_ase(idx[:1])) if n else [])
    shape = (int(row_offsets[-1]), int(dim))

    auto = n_workers is None
    n_workers = default_workers(n) if auto else max(1, int(n_workers))
    if chunk_size is None:
        chunk_size = _default_chunk_size(n, n_workers)
    chunk_size = max(1, int(chunk_size))
    chunks = [(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]
    n_workers = min(n_workers, len(chunks)) if chunks else 1
    if n_workers > 1 and "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        n_workers = 1
    if n_workers > 1 and multiprocessing.current_process().daemon:
        # a daemonic process (a Dask worker under its nanny, a multiprocessing pool's worker) may not start
        # processes: compute here; the cluster's own workers are the parallelism there
        n_workers = 1

    # the output is private to this process (transparent huge pages); forked workers write into a shared
    # scratch mapping made just before they start (its page faults: SHARED_SECONDS_PER_MB)
    out = np.empty(shape, dtype=dtype)
    job = {"rep": rep, "structures": structures, "index": idx, "chunks": chunks, "row_offsets": row_offsets}
    with _JOBS_LOCK:
        token = next(_JOB_IDS)
        job["token"] = token
        _JOBS[token] = job
    try:
        tasks = list(range(len(chunks)))
        # auto_refresh=False: no refresh thread, so forking below is safe
        with _progress_bar(progress) as bar:
            task = bar.add_task(rep.kind, total=n)
            ticker = progress_lines(f"representation {rep.kind}", n, "structures") if progress else None

            def advance(k: int) -> None:
                bar.advance(task, k)
                bar.refresh()
                if ticker is not None:
                    ticker.advance(k)

            if n_workers > 1 and auto:
                # time the first chunk here; fork only if the rest would finish sooner with workers
                t0 = time.perf_counter()
                advance(_compute_chunk(job, tasks[0], out)[1])
                per_structure = (time.perf_counter() - t0) / (chunks[0][1] - chunks[0][0])
                tasks = tasks[1:]
                if not parallel_pays(per_structure * (n - chunks[0][1]), n_workers, out.nbytes):
                    n_workers = 1
            n_workers = min(n_workers, len(tasks) + 1)
            if n_workers == 1:
                for c in tasks:
                    advance(_compute_chunk(job, c, out)[1])
            else:
                bar.update(task, description=f"{rep.kind} ({n_workers} workers)")
                job["shared"] = _shared_array(shape, dtype)
                _run_pool(job, tasks, n_workers, out, advance)
    finally:
        with _JOBS_LOCK:
            _JOBS.pop(token, None)
    return Features(values=out, offsets=atom_offsets if rep.local else None)
