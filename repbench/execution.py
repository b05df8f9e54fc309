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

``dask[distributed]`` is an optional extra: ``pip install "repbench[dask]"``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Callable, Iterator, Sequence

from .errors import RepbenchError

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
        except BaseException:
            client.cancel(futures)
            raise
    return results


__all__ = ["run_tasks", "client_for", "mask_address", "blas_threads", "same_blas_threads"]
