"""Content-keyed HDF5 caches of representations and kernels inside a run directory.

One entry = one HDF5 file ``<dir>/<key>.h5`` holding named arrays (with Fletcher-32 checksums) and a
``key_spec`` attribute with the canonical JSON of what determined it.  Keys are hashes of that spec
(dataset hash, representation parameters, kernel parameters, row/column index sets) — never of the arrays.
Entries are written to a temporary file and renamed, so concurrent writers and kills are harmless; an entry
that fails to read (truncated, bad checksum, wrong spec) is reported, deleted and treated as missing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from .config import canonical_hash
from .datasets import UnsafeHDF5, open_h5
from .errors import RunDirError
from .rundir import atomic_path, check_disk

log = logging.getLogger("repbench")

#: How often each cache computed or served an entry in this process (tests count these).
STATS: Counter = Counter()


def index_id(idx: np.ndarray) -> str:
    """A short hash identifying an index set (order matters)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


class ArrayCache:
    """A folder of HDF5 entries; see the module docstring."""

    def __init__(self, folder: str | Path, name: str):
        self.folder = Path(folder)
        self.name = name

    def key(self, spec: dict) -> str:
        return canonical_hash(spec, 24)

    def path(self, spec: dict) -> Path:
        return self.folder / f"{self.key(spec)}.h5"

    def get(self, spec: dict, shapes: dict[str, tuple | None] | None = None) -> dict[str, np.ndarray] | None:
        """The arrays stored for ``spec``, or None (missing, or damaged: then deleted, to be recomputed).

        ``shapes``: arrays the entry must hold, with their expected shapes (``None``: any shape); an entry
        that lacks one or holds another shape is as damaged as one with a bad checksum.
        """
        p = self.path(spec)
        if not p.exists():
            STATS[f"{self.name}.miss"] += 1
            return None
        try:
            # checked before anything is read: a regular file; no links, external storage or virtual
            # datasets; no array declaring more than the file holds (repbench.datasets.check_h5)
            with open_h5(p, what=f"{self.name} cache entry") as f:
                stored = json.loads(f.attrs["key_spec"])
                if stored != json.loads(json.dumps(spec, sort_keys=True, default=str)):
                    raise ValueError("stored key does not match")
                for k, shape in (shapes or {}).items():  # shapes first: nothing is read from a wrong one
                    if k not in f:
                        raise ValueError(f"array {k!r} is missing")
                    if shape is not None and f[k].shape != tuple(shape):
                        raise ValueError(f"array {k!r} has shape {f[k].shape}, expected {tuple(shape)}")
                out = {k: f[k][()] for k in f.keys()}
        except UnsafeHDF5 as e:
            raise RunDirError(f"the {self.name} cache entry is not a file repbench wrote: {e}; nothing was "
                              "read from it", where=str(p),
                              hint="delete it (repbench never writes HDF5 links, external storage or virtual "
                                   "datasets); it is then recomputed") from None
        except Exception as e:  # noqa: BLE001 - any failure means the entry cannot be trusted
            log.warning("cache entry %s is damaged (%s: %s); recomputing it", p, e.__class__.__name__, e)
            STATS[f"{self.name}.corrupt"] += 1
            p.unlink(missing_ok=True)
            return None
        STATS[f"{self.name}.hit"] += 1
        return out

    def put(self, spec: dict, arrays: dict[str, np.ndarray]) -> None:
        STATS[f"{self.name}.put"] += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        check_disk(self.folder, sum(np.asarray(v).nbytes for v in arrays.values()),
                   f"the {self.name} cache entry {self.key(spec)}.h5")
        with atomic_path(self.path(spec)) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["key_spec"] = json.dumps(spec, sort_keys=True, default=str)
                for k, v in arrays.items():
                    v = np.asarray(v)
                    if v.size:
                        f.create_dataset(k, data=v, fletcher32=True, chunks=True)
                    else:
                        f.create_dataset(k, data=v)
