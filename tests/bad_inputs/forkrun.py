"""Run many ``repbench`` command lines quickly, each in its own process.

``python -m repbench`` spends 1-3 s importing numpy, h5py, ase, dscribe and sklearn before it can report
a bad input; for a corpus of ~100 cases that is minutes.  This server imports all that once and then
forks one child per command line.  Each child is a real process: it runs exactly what
``python -m repbench ARGS`` runs (``repbench.cli.main`` with ``sys.argv``), in its own working directory,
with its own stdout/stderr files, and its exit status is the real one (an uncaught exception prints a
traceback and exits 1, as the interpreter does).  tests/test_bad_inputs.py also checks on a sample that
the results equal those of ``python -m repbench``.

Protocol: one JSON object per line on stdin ``{"args": [...], "cwd": ..., "out": path, "err": path}``;
one JSON line per job on stdout ``{"rc": int}``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def _preload() -> None:
    import repbench.cli  # noqa: F401
    import repbench.curve  # noqa: F401
    import repbench.prepare  # noqa: F401
    import repbench.report  # noqa: F401
    import repbench.timing  # noqa: F401
    import repbench.tuning  # noqa: F401
    import repbench.workspace  # noqa: F401
    import repbench.datasets.asefile  # noqa: F401
    import repbench.datasets.ba10  # noqa: F401
    import repbench.datasets.nmd18  # noqa: F401
    import repbench.datasets.qm9  # noqa: F401
    # imported lazily by repbench, so imported here once (what makes the forks fast)
    import ase.io  # noqa: F401
    import ase.io.extxyz  # noqa: F401
    import dscribe.descriptors  # noqa: F401
    import optuna  # noqa: F401
    import optuna.storages  # noqa: F401
    import rich.progress  # noqa: F401


def _child(job: dict) -> int:
    os.chdir(job["cwd"])
    for fd, path in ((1, job["out"]), (2, job["err"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.argv = ["repbench", *job["args"]]
    from repbench.cli import main

    try:
        main(prog_name="repbench")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - what the interpreter would do with an uncaught exception
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def serve() -> None:
    _preload()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        out.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(job)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
