"""``repbench tune``: optuna TPE over the representation and kernel search space.

* Storage: ``sqlite:///RUN/tune/study.db`` by default (SQLite commits are atomic: a killed worker loses
  at most its running trial), or any optuna RDB URL (``--storage postgresql://...``) shared by workers on
  many machines.  ``optuna-dashboard sqlite:///RUN/tune/study.db`` reads it as it stands.
* Each trial: sample the leaves, build the representation on the tuning set (cached by hash), then the
  KRR local grid search (length scale and regularisation, log2 grids) on the inner folds; the loss is the
  validation RMSE (or MAE) in the modelled unit.  The refined KRR values are stored with the trial.
* A trial that raises (impossible combination, out of memory, ``--trial-timeout``) is recorded as FAIL
  with the reason in its ``error`` attribute; the study goes on.  Trials left RUNNING by a killed worker
  are marked failed (``interrupted``) when ``repbench tune`` starts again on the run directory's own
  study (it holds the run's tune lock, so no live worker owns them); in a shared ``--storage`` study
  optuna's heartbeat fails them after a grace period and retries them with the same parameters
  (optuna's ``RetryHeartbeatStaleTrialCallback``); they do not count towards ``--trials``.
* ``--trials N`` means: the study holds N finished trials (complete or failed with a reason).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import space
from .config import Config, thaw
from .documents import Best, write_best
from .errors import ConfigError, RepbenchError, RunDirError
from .models.resolve import trial_model
from .rundir import RunDir, clean_stale_tmp, lock, write_text
from .workspace import Workspace

log = logging.getLogger("repbench")

HEARTBEAT_S = 10
GRACE_S = 40


class TrialTimeout(Exception):
    pass


@contextmanager
def _alarm(seconds: float | None):
    if not seconds:
        yield
        return

    def handler(signum, frame):
        raise TrialTimeout(f"trial exceeded --trial-timeout {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def default_storage(run: RunDir) -> str:
    return f"sqlite:///{run.study_db.resolve()}"


def _storage(url: str):
    import optuna

    from optuna import storages

    kwargs = {}
    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # optuna >= 4.9
        kwargs["heartbeat_stale_trial_callback"] = storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    else:
        kwargs["failed_trial_callback"] = storages.RetryFailedTrialCallback(max_retry=3)
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    try:
        for attempt in range(6):
            try:
                return storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                           **kwargs)
            except Exception as e:  # noqa: BLE001
                # workers that open a new storage at the same moment race to create its tables
                # ("UNIQUE constraint failed: alembic_version...", "already exists", "locked"): try again
                transient = any(m in str(e) for m in ("UNIQUE constraint", "already exists", "is locked",
                                                      "duplicate key"))
                if not transient or attempt == 5:
                    raise
                time.sleep(0.2 * (attempt + 1))
    except ImportError as e:
        raise RepbenchError(f"cannot open the optuna storage {url!r}: {e}",
                            hint="for PostgreSQL install the driver: pip install 'repbench[postgres]'") from None
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises many kinds
        first = (str(e).strip().splitlines() or [""])[0]  # sqlalchemy adds the SQL and a link on more lines
        if url.startswith("sqlite:///"):
            raise RunDirError(f"cannot open the tuning study: {first}",
                              where=url[len("sqlite:///"):],
                              hint="the file is damaged or not an optuna study; move it away to start a new "
                                   "study (its trials are lost)") from None
        raise RepbenchError(f"cannot open the optuna storage {url!r}: {e.__class__.__name__}: {first}",
                            hint="check the URL, that the database exists and the server is reachable") from None


def _quiet_optuna() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def open_study(run: RunDir, cfg: Config, storage: str | None = None):
    import optuna

    _quiet_optuna()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage(run)
    if storage is None:
        run.tune_dir.mkdir(parents=True, exist_ok=True)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.tune["n_startup_trials"],
                                         multivariate=True, group=True, constant_liar=True)
    # processes of this run directory create a new storage and study one after the other
    with lock(run.path, "tune-study", wait=True):
        st = _storage(url)
        study = optuna.create_study(study_name=run.study_name(cfg), storage=st, sampler=sampler,
                                    direction="minimize", load_if_exists=True)
        study.set_user_attr("study_hash", cfg.study_hash())
        study.set_user_attr("loss", cfg.tune["loss"])
    return study


def search_space(cfg: Config) -> dict:
    """The tunable part of a config: representation and kernel (with their leaves)."""
    return {"representation": thaw(cfg.representation), "kernel": thaw(cfg.kernel)}


def _counted(study) -> tuple[int, int, int]:
    """(complete, failed-with-reason, running) trials of a study."""
    from optuna.trial import TrialState

    c = f = r = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            f += 1
        elif t.state == TrialState.RUNNING:
            r += 1
    return c, f, r


def objective_values(ws, cfg: Config, params: dict) -> dict:
    """Evaluate one concrete (representation, kernel) on the tuning folds; returns the trial's record."""
    model = trial_model(cfg, params)
    ws.rep_hash(model.representation)  # builds (validates) the representation for this dataset
    folds = ws.splits.tune_folds
    tune_set = ws.splits.tune_set
    krr_cfg = dict(thaw(cfg.krr))
    krr_cfg["loss"] = cfg.tune["loss"]
    bank = ws.model_bank(model, tune_set)
    res = ws.refine(model, bank, tune_set, folds, krr_cfg)
    return {"loss": float(res.loss), "length_scale": res.ls, "regularization": res.reg,
            "at_bound": list(res.at_bound)}


def worker(run: RunDir, n_trials: int, *, storage: str | None = None, timeout: float | None = None,
           trial_timeout: float | None = None, progress=None, ws=None) -> None:
    """One worker process: ask/evaluate/tell until the study holds ``n_trials`` finished trials."""
    import optuna
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    _quiet_optuna()
    cfg = run.config()
    ws = ws if ws is not None else Workspace(run, cfg, progress=False)
    study = open_study(run, cfg, storage)
    sp = search_space(cfg)
    t_start = time.monotonic()
    trial_timeout = trial_timeout if trial_timeout is not None else cfg.tune["trial_timeout"]
    while True:
        # count and ask under one lock, so that two workers of this run directory cannot both start the
        # last missing trial (the study would end with more trials than --trials)
        with lock(run.path, "tune-study", wait=True):
            fail_stale_trials(study)
            c, f, r = _counted(study)
            if c + f >= n_trials or (timeout is not None and time.monotonic() - t_start > timeout):
                action = "stop"
            elif c + f + r >= n_trials:
                # the remaining trials are running elsewhere: wait until they finish, or until the heartbeat
                # declares them stale (a killed worker) and they are retried
                action = "wait"
            else:
                action = "run"
                trial = study.ask()
                trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if action == "stop":
            break
        if action == "wait":
            time.sleep(2.0)
            continue
        t0 = time.perf_counter()
        try:
            params = space.suggest(trial, sp)
            with _alarm(trial_timeout):
                rec = objective_values(ws, cfg, params)
            if not math.isfinite(rec["loss"]):
                raise FloatingPointError("the validation loss is not finite")
        except KeyboardInterrupt:
            # not counted towards --trials (no "error"): a re-run replaces it
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as e:  # noqa: BLE001 - any failure is recorded, the study goes on
            if isinstance(e, (RepbenchError,)):
                reason = e.format()
            elif isinstance(e, MemoryError):
                reason = "out of memory"
            else:
                reason = f"{e.__class__.__name__}: {e}"
            trial.set_user_attr("error", reason[:2000])
            trial.set_user_attr("duration_s", time.perf_counter() - t0)
            if not isinstance(e, (RepbenchError, TrialTimeout, MemoryError, ConfigError)):
                trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, reason)
            continue
        trial.set_user_attr("length_scale", rec["length_scale"])
        trial.set_user_attr("regularization", rec["regularization"])
        trial.set_user_attr("at_bound", rec["at_bound"])
        trial.set_user_attr("duration_s", time.perf_counter() - t0)
        trial.set_user_attr("concrete", params)
        study.tell(trial, rec["loss"])


def run_tune(run: RunDir, n_trials: int | None = None, *, jobs: int = 1, storage: str | None = None,
             timeout: float | None = None, trial_timeout: float | None = None, show_progress: bool = True,
             console=None) -> dict:
    """Run the study with ``jobs`` worker processes, then write tune/best.yaml and tune/trials.csv."""
    cfg = run.config()
    if not cfg.has_search_space:
        raise ConfigError("the config has no search space: nothing to tune", where=str(run.run_yaml),
                          hint="give a representation or kernel parameter as a leaf such as "
                               "{int: [2, 8]}, or go straight to `repbench curve`")
    n_trials = n_trials or cfg.tune["trials"]
    timeout = timeout if timeout is not None else cfg.tune["timeout"]
    ws = Workspace(run, cfg, progress=False)  # a damaged data.h5 is reported before the study is created
    clean_stale_tmp(run.path)  # temporary files of killed writers
    if storage is None:
        # the study lives in this run directory: one `repbench tune` at a time (its --jobs workers share
        # it); a second one is refused with a clear message instead of racing
        with lock(run.path, "tune"):
            study = open_study(run, cfg, storage)
            _fail_orphans(study)
            return _run_study(run, cfg, study, n_trials, jobs, storage, timeout, trial_timeout,
                              show_progress, console, ws)
    study = open_study(run, cfg, storage)  # create it once before workers race to
    return _run_study(run, cfg, study, n_trials, jobs, storage, timeout, trial_timeout, show_progress, console,
                      ws)


def _fail_orphans(study) -> None:
    """Mark trials left RUNNING by a killed process as failed (not counted; a new trial replaces them).

    Only called while holding the run directory's tune lock, so no live worker can own them.
    """
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


def _run_study(run, cfg, study, n_trials, jobs, storage, timeout, trial_timeout, show_progress, console,
               ws=None):
    if n_trials <= cfg.tune["n_startup_trials"]:
        log.warning("tune: %d trials but tune.n_startup_trials is %d, so every trial is sampled at random and "
                    "TPE never runs; raise tune.trials or lower tune.n_startup_trials in the config",
                    n_trials, cfg.tune["n_startup_trials"])
    if jobs <= 1:
        if show_progress:
            import threading

            stop = threading.Event()
            th = threading.Thread(target=_progress_loop, args=(study, n_trials, stop, console), daemon=True)
            th.start()
            try:
                worker(run, n_trials, storage=storage, timeout=timeout, trial_timeout=trial_timeout, ws=ws)
            finally:
                stop.set()
                th.join()
        else:
            worker(run, n_trials, storage=storage, timeout=timeout, trial_timeout=trial_timeout, ws=ws)
    else:
        _run_workers(run, n_trials, jobs, storage, timeout, trial_timeout, study, show_progress, console)
    return write_outputs(run, cfg, study)


def _run_workers(run, n_trials, jobs, storage, timeout, trial_timeout, study, show_progress, console):
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[v] = str(threads)
    cmd = [sys.executable, "-m", "repbench", "tune", str(run.path), "--worker", "--trials", str(n_trials)]
    if storage:
        cmd += ["--storage", storage]
    if timeout:
        cmd += ["--timeout", str(timeout)]
    if trial_timeout:
        cmd += ["--trial-timeout", str(trial_timeout)]
    procs = [subprocess.Popen(cmd, env=env) for _ in range(jobs)]
    import threading

    stop = threading.Event()
    th = None
    if show_progress:
        th = threading.Thread(target=_progress_loop, args=(study, n_trials, stop, console), daemon=True)
        th.start()
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    finally:
        stop.set()
        if th:
            th.join()
    bad = [c for c in codes if c != 0]
    if bad:
        raise RepbenchError(f"{len(bad)} of {jobs} tune workers exited with an error (status {bad[0]})",
                            where=str(run.path), hint="see the messages above; re-run to continue the study")


def _progress_loop(study, n_trials, stop, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    def refresh(prog, task):
        try:
            c, f, r = _counted(study)
            try:
                best = study.best_value
            except ValueError:
                best = None
            info = f"done {c}  failed {f}  running {r}" + (f"  best {best:.5g}" if best is not None else "")
            prog.update(task, completed=min(c + f, n_trials), info=info)
        except Exception:  # noqa: BLE001 - a busy database must not kill the display
            pass

    with Progress(TextColumn("[bold]tune[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=console, transient=False) as prog:
        task = prog.add_task("tune", total=n_trials, info="")
        while not stop.wait(1.0):
            refresh(prog, task)
        refresh(prog, task)


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name,
               "loss": t.value if t.value is not None else None,
               "length_scale": t.user_attrs.get("length_scale"),
               "regularization": t.user_attrs.get("regularization"),
               "duration_s": t.user_attrs.get("duration_s"),
               "error": t.user_attrs.get("error", "")}
        for k, v in t.params.items():
            row[f"param.{k}"] = v
        rows.append(row)
    return rows


def write_outputs(run: RunDir, cfg: Config, study) -> dict:
    """tune/trials.csv (every trial) and tune/best.yaml (best full configuration, ready for curve)."""
    from optuna.trial import TrialState

    rows = trial_rows(study)
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    run.tune_dir.mkdir(parents=True, exist_ok=True)
    write_text(run.trials_csv, buf.getvalue())
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        raise RepbenchError("no trial completed, so there is no best configuration", where=str(run.path),
                            hint="see the errors in tune/trials.csv")
    best = min(complete, key=lambda t: (t.value, t.number))
    concrete = best.user_attrs["concrete"]
    doc = Best(study_hash=cfg.study_hash(), study=study.study_name, trial=best.number, loss=float(best.value),
               loss_kind=cfg.tune["loss"], loss_unit=target_unit(cfg),
               trials={"complete": len(complete), "total": len(rows)},
               representation=concrete["representation"], kernel=concrete["kernel"],
               krr={"length_scale": best.user_attrs.get("length_scale"),
                    "regularization": best.user_attrs.get("regularization")})
    write_best(run, doc)
    return doc.to_dict()


def target_unit(cfg: Config) -> str:
    """The unit of the tuning loss (the modelled unit)."""
    ds = cfg.dataset
    return "eV" if ds["per"] == "structure" else f"eV/{ds['per']}"


def leaderboard(study, top: int = 15) -> list[dict]:
    rows = [r for r in trial_rows(study)]
    done = sorted([r for r in rows if r["state"] == "COMPLETE"], key=lambda r: (r["loss"], r["number"]))
    return done[:top] + [r for r in rows if r["state"] == "FAIL"]
