"""Where independent work units run: in this process, or as tasks on a Dask cluster (an execution setting).

A stage hands :func:`run_tasks` a picklable function and its argument tuples; each result comes back to
the calling process (the *client*), which writes it exactly as a local run would, so a Dask run and a
local run leave identical files.  The function runs on the workers: they import repbench (the same
version) and open the run directory by its path, so the run directory must be on a filesystem that the
workers share with the client (the HPC case; see docs/dask.md for a dask-jobqueue example).

``scheduler``:

* ``None``: in this process, one unit after another (the default).
* ``"tcp://host:8786"`` (any address ``dask.distributed.Client`` accepts): an existing cluster.
* ``"local"`` or ``"local:N"``: a throwaway ``LocalCluster`` of N worker processes on this machine (for
  trying the Dask path; on one machine the default is as fast).

A large kernel can itself be spread over the cluster: :func:`kernel_blocks` computes it as row blocks
(blocks of whole structures), one Dask task each, and puts them together in the calling process; the
result is the kernel that :func:`repbench.models.kernel.kernel_matrices` computes in one piece, to float64
rounding (see :func:`repbench.models.kernel.blocks_agree`).

``dask[distributed]`` is an optional extra: ``pip install "repbench[dask]"``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import RepbenchError
from .models.kernel import (assemble_blocks, blocks_agree, kernel_block, kernel_matrices, row_blocks,
                            structure_rows)
from .representations.base import Features

log = logging.getLogger("repbench")

def blas_threads() -> int | None:
    """The BLAS thread count of this process (None if unknown).  Stages pass it to their tasks, which
    run under the same limit (:func:`same_blas_threads`): LAPACK factorisations round differently with
    other thread counts, and a Dask run should write what a local run writes."""
    try:
        import numpy  # noqa: F401 - loads BLAS
        from threadpoolctl import threadpool_info

        counts = [p.get("num_threads") for p in threadpool_info() if p.get("user_api") == "blas"]
    except Exception:  # noqa: BLE001 - threadpoolctl missing or confused
        return None
    return max(counts) if counts else None


@contextlib.contextmanager
def same_blas_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads (no change for None)."""
    if not n:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(n), user_api="blas"):
        yield


def _import_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise RepbenchError("--scheduler needs Dask", hint='pip install "repbench[dask]"') from None
    return distributed


def mask_address(address: str) -> str:
    """The scheduler address with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(//[^:/@]+:)[^@/]+@", r"\1***@", address)


@contextlib.contextmanager
def client_for(scheduler: str) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``scheduler`` (closed, with its local cluster, on exit)."""
    distributed = _import_distributed()
    cluster = None
    m = re.fullmatch(r"local(?::(\d+))?", scheduler)
    try:
        if m:
            n = int(m.group(1) or 2)
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(scheduler, timeout="30s")
    except (OSError, TimeoutError, ValueError) as e:
        if cluster is not None:
            cluster.close()
        raise RepbenchError(f"cannot reach the Dask scheduler {mask_address(scheduler)}: "
                            f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                            hint="check the address (tcp://host:8786) and that the scheduler runs, or use "
                                 "--scheduler local") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(fn: Callable[..., Any], args: Sequence[tuple], *, scheduler: str | None = None,
              on_result: Callable[[Any], None] | None = None) -> list[Any]:
    """Run ``fn(*a)`` for every ``a`` in ``args``; call ``on_result`` in this process as each finishes.

    Returns the results in the order they finished.  A task that raises a :class:`RepbenchError` re-raises
    it here (one clear error); finished results have already been handed to ``on_result`` (and written).
    A task whose workers died more often than ``distributed.scheduler.allowed-failures`` (Dask re-runs it
    until then) is a :class:`RepbenchError` naming it.
    """
    results: list[Any] = []
    if scheduler is None:
        for a in args:
            r = fn(*a)
            if on_result is not None:
                on_result(r)
            results.append(r)
        return results
    distributed = _import_distributed()
    with client_for(scheduler) as client:
        futures = [client.submit(fn, *a, pure=False) for a in args]
        try:
            for fut in distributed.as_completed(futures):
                r = fut.result()
                if on_result is not None:
                    on_result(r)
                results.append(r)
        except distributed.KilledWorker as e:
            client.cancel(futures)
            task, _, allowed = (list(e.args) + [None, None, None])[:3]
            times = "too often" if allowed is None else f"more than {allowed} times"
            raise RepbenchError(f"Dask gave up on task {task}: the workers that ran it died {times} "
                                "(distributed.scheduler.allowed-failures); the points finished before are "
                                "written", hint="check the workers' logs (out of memory?), give them more "
                                "memory or use a smaller --block-structures, and re-run: only what is "
                                "missing is computed") from None
        except BaseException:
            client.cancel(futures)
            raise
    return results


#: Default of ``repbench curve --block-structures``: with a scheduler, a kernel of more than this squared
#: structure pairs is computed as row blocks of about that many pairs, one Dask task each.
BLOCK_STRUCTURES = 2000


def _fresh(f: Features | None) -> Features | None:
    if f is None:
        return None
    return Features(values=np.array(f.values, copy=True, order="C"),
                    offsets=None if f.offsets is None else np.array(f.offsets, dtype=np.int64))


def kernel_block_task(a: Features, b: Features | None, params: dict, length_scales: Sequence[float],
                      n_rows: int, threads: int | None = None, dtype: str | None = None,
                      block_mb: int | None = None) -> list[np.ndarray]:
    """One row block of a kernel (:func:`repbench.models.kernel.kernel_block`), as a Dask task runs it:
    under the client's BLAS thread count, on fresh copies of its rows (where the rows lay in memory, a
    view into the caller's array or a received message, otherwise moved single elements by an ulp)."""
    a, b = _fresh(a), _fresh(b)
    with same_blas_threads(threads):
        return kernel_block(a, b, params, length_scales, n_rows, dtype=dtype, block_mb=block_mb)


def in_dask_worker() -> bool:
    """Whether this runs inside a Dask task (on a worker)."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


@contextlib.contextmanager
def _block_client(scheduler: Any) -> Iterator[Any]:
    """The client that block tasks go to: ``"worker"`` (from inside a Dask task: the cluster it runs on,
    its thread seceded while it waits), a ``Client``, or an address for :func:`client_for`."""
    if scheduler == "worker":
        from distributed import worker_client

        with worker_client() as client:
            yield client
    elif isinstance(scheduler, str):
        with client_for(scheduler) as client:
            yield client
    else:
        yield scheduler


def kernel_blocks(a: Features, b: Features | None, params: dict, length_scales: Sequence[float], *,
                  scheduler: Any = None, block_structures: int = BLOCK_STRUCTURES, threads: int | None = None,
                  dtype: str | None = None, block_mb: int | None = None,
                  task: Callable[..., list[np.ndarray]] = kernel_block_task) -> list[np.ndarray]:
    """The kernel matrices of ``a`` against ``b`` (``b=None``: a x a, symmetric), one per length scale,
    computed as row blocks (whole structures of ``a``) of about ``block_structures**2`` structure pairs,
    each a task on ``scheduler``.

    ``scheduler``: None (the blocks one after another here), a ``distributed.Client``, a scheduler address
    (:func:`client_for`) or ``"worker"`` (called inside a Dask task: its own cluster).  Symmetric kernels
    are cut into blocks of equal work (rows r0:r1 against columns r0:) and mirrored (exactly symmetric).
    Each task receives only the rows it needs.  The result equals ``kernel_matrices(a, b, params,
    length_scales)`` to float64 rounding (about 1e-15 relative; not bit for bit: BLAS rounds by tile
    position); the same blocks computed here or on a worker of the same machine gave the same bits in
    our checks (each task copies its rows, see :func:`kernel_block_task`).  Where
    ``a`` fits in one block, or the GEMM runs in float32
    (:func:`~repbench.models.kernel.blocks_agree`), the kernel is computed here in one piece.  A task
    whose worker dies is re-run by Dask (up to ``distributed.scheduler.allowed-failures`` times).
    ``threads``: the BLAS thread count every block runs under (default: this process's, see
    :func:`blas_threads`).  ``task``: the function a block runs (:func:`kernel_block_task`; tests wrap it).
    """
    n = a.n_structures
    if threads is None:
        threads = blas_threads()
    spans = row_blocks(n, None if b is None else b.n_structures, block_structures)
    if len(spans) < 2 or not blocks_agree(params, dtype):
        with same_blas_threads(threads):
            return kernel_matrices(a, b, params, length_scales, dtype=dtype, block_mb=block_mb)
    ls = list(length_scales)
    # each task gets rows r0:r1 of a (symmetric: r0: to the end) and the columns
    args = [(structure_rows(a, r0, n if b is None else r1), b, params, ls, r1 - r0, threads, dtype, block_mb)
            for r0, r1 in spans]
    if scheduler is None:
        mats = [task(*x) for x in args]
    else:
        _import_distributed()
        with _block_client(scheduler) as client:
            futures = [client.submit(task, *x, pure=False) for x in args]
            try:
                mats = client.gather(futures)
            except BaseException:
                client.cancel(futures)
                raise
    return assemble_blocks(list(zip(spans, mats)), n, None if b is None else b.n_structures)


__all__ = ["run_tasks", "client_for", "mask_address", "blas_threads", "same_blas_threads", "kernel_blocks",
           "kernel_block_task", "in_dask_worker", "BLOCK_STRUCTURES"]
