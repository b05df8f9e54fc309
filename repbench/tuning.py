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
* A failure that has nothing to do with the trial's parameters (a full disk, a read-only file system) stops
  ``tune`` with one clear error; the trial is marked interrupted and not counted, so the re-run after the
  cause is gone continues the study.  Storage errors tell apart a damaged study (the only case where moving
  it away is advised) from one that is merely unreachable (missing folder, full disk, read-only, server
  down).  A storage URL's password is masked (``***``) in every message; ``tune --jobs`` hands the URL to
  its workers in the environment, not on their command line.
* SIGINT / SIGTERM: a worker marks its running trial interrupted (not counted) and exits; ``tune --jobs``
  forwards the signal to its workers, waits for them, then marks any trial they left running as
  interrupted, so the study is consistent when the command exits (130 / 143).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import re
import shutil
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
from .progress import ProgressLines, progress_interval
from .rundir import (DiskFullError, FilesystemError, RunDir, Terminated, clean_stale_tmp, fs_error, lock,
                     run_lock, signalled, stage_lock, write_text)
from .workspace import Workspace

log = logging.getLogger("repbench")

HEARTBEAT_S = 10
GRACE_S = 40
#: seconds the workers of ``tune --jobs`` get to record their interrupted trials before they are killed
STOP_WORKERS_S = 30
#: the environment variable that hands ``--storage`` to the workers of ``tune --jobs`` (off the command line)
STORAGE_ENV = "REPBENCH_TUNE_STORAGE"
PARENT_ENV = "REPBENCH_TUNE_PARENT"
#: longest --timeout / --trial-timeout accepted (about three years; setitimer overflows far above)
MAX_SECONDS = 1e8


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


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``scheme://user:***@host/db``, ``?password=***``)."""
    url = re.sub(r"(://[^/@:]*):([^/]*)@", r"\1:***@", str(url))  # greedy: a password may hold "@"
    return re.sub(r"(?i)\b(password|passwd|pwd)=[^&;\s]*", r"\1=***", url)


def scrub(text: str, url: str | None) -> str:
    """``text`` with ``url`` and its password masked (sqlalchemy and drivers may quote either)."""
    text = str(text)
    if not url:
        return text
    from urllib.parse import unquote

    text = text.replace(url, mask_url(url))
    secrets = re.findall(r"://[^/@:]*:([^/]*)@", url)
    secrets += re.findall(r"(?i)\b(?:password|passwd|pwd)=([^&;\s]*)", url)
    for sec in secrets:
        for v in {sec, unquote(sec)}:
            if len(v) >= 3:
                text = text.replace(v, "***")
    return text


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///"):].split("?", 1)[0])


def _chain(e: BaseException) -> list[BaseException]:
    out = []
    while e is not None and e not in out and len(out) < 8:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _first_line(e: BaseException) -> str:
    # sqlalchemy adds the SQL and a link on more lines; the driver's own message is the most specific
    for x in reversed(_chain(e)):
        line = (str(x).strip().splitlines() or [""])[0]
        if line:
            return line
    return e.__class__.__name__


def storage_error(url: str, e: BaseException, opening: bool) -> RepbenchError:
    """One clear error for a storage that failed: damaged (only then is moving it away advised) or merely
    unreachable (missing folder, full disk, read-only, locked, server down); the password masked."""
    text = scrub(" | ".join(str(x) for x in _chain(e)), url).lower()
    first = scrub(_first_line(e), url)
    path = _sqlite_path(url)
    where = str(path) if path else mask_url(url)
    doing = "cannot open the tuning study" if opening else "cannot write the tuning study"
    intact = ("the study and its finished trials are intact" if not opening or path is None or path.exists()
              else "no trial is lost")
    resume = f"then re-run `repbench tune`: {intact}"
    if any(m in text for m in ("disk is full", "no space left", "disk quota")):
        return DiskFullError(f"{doing}: disk full", where=where,
                             hint=f"free some disk space, {resume}")
    if any(m in text for m in ("readonly database", "read-only file system", "read only file system")):
        return FilesystemError(f"{doing}: the file or its folder is read-only", where=where,
                               hint=f"make {path.parent if path else 'it'} and the study file writable (or "
                                    f"copy the run directory to a writable place), {resume}")
    if "database is locked" in text:
        return RunDirError(f"{doing}: the database is locked by another process", where=where,
                           hint=f"wait for the other process (or stop it), {resume}")
    if path is not None:
        folder = path.parent
        if not folder.is_dir():
            return RunDirError(f"{doing}: the folder {folder} does not exist", where=where,
                               hint="create the folder, or give another --storage path; nothing was written")
        if "unable to open database file" in text or "permission denied" in text:
            if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
                return FilesystemError(f"{doing}: permission denied", where=where,
                                       hint=f"make {folder} and the study file readable and writable for "
                                            f"this user, {resume}")
            return RunDirError(f"{doing}: {first}", where=where,
                               hint=f"check that the file and its folder can be read and written, {resume}")
        damaged = path.exists() and (not _sqlite_header(path) or any(
            m in text for m in ("malformed", "file is not a database", "not a database", "corrupt")))
        if damaged:
            return RunDirError(f"{doing}: the file is damaged or not an SQLite database ({first})",
                               where=where,
                               hint="the trials in it cannot be read: move it away to start a new study, or "
                                    "try `sqlite3 FILE .recover` on a copy")
        if opening:
            return RunDirError(f"{doing}: {first}", where=where,
                               hint="the file is an SQLite database but not an optuna study this "
                                    "repbench reads; give another --storage path, or move the file away to "
                                    "start a new study")
        return RunDirError(f"{doing}: {first}", where=where, hint=f"see the message, {resume}")
    verb = "cannot open" if opening else "cannot write"
    return RepbenchError(f"{verb} the optuna storage {mask_url(url)}: {e.__class__.__name__}: {first}",
                         where="--storage",
                         hint="check the URL, that the database exists and the server is reachable; "
                              "finished trials are kept in the database")


def _sqlite_header(path: Path) -> bool:
    """The file starts like an SQLite database (an empty file is one SQLite has not written yet)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return True  # unreadable is not damaged
    return head == b"" or head == b"SQLite format 3\x00"


def _is_storage_error(e: BaseException) -> bool:
    import optuna
    import sqlalchemy.exc

    return isinstance(e, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError))


@contextmanager
def storage_errors(url: str, opening: bool = False):
    """Turn a storage failure (sqlalchemy, optuna) inside the block into one clear error."""
    try:
        yield
    except RepbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises many kinds
        if not _is_storage_error(e):
            raise
        raise storage_error(url, e, opening) from None


def _storage(url: str):
    import optuna  # noqa: F401

    from optuna import storages

    path = _sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise RunDirError(f"cannot open the tuning study: the folder {path.parent} does not exist",
                          where=str(path),
                          hint="create the folder, or give another --storage path; nothing was written")
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
        raise RepbenchError(f"cannot open the optuna storage {mask_url(url)}: {scrub(e, url)}",
                            where="--storage",
                            hint="for PostgreSQL install the driver: pip install 'repbench[postgres]'") from None
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises many kinds
        raise storage_error(url, e, opening=True) from None


def _quiet_optuna() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def _check_study_file(run: RunDir) -> None:
    """The run's own study file must be the run's: a planted symbolic link is never opened."""
    for p in (run.tune_dir, run.study_db):
        if p.is_symlink():
            raise RunDirError(f"{p.relative_to(run.path)} is a symbolic link; repbench opens no link for the "
                              "run's study", where=str(run.path),
                              hint=f"remove the link ({p}), or give the study's location with --storage "
                                   "sqlite:///PATH")


def open_study(run: RunDir, cfg: Config, storage: str | None = None):
    import optuna

    _quiet_optuna()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage(run)
    if storage is None:
        _check_study_file(run)
        try:
            run.tune_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise fs_error(e, run.tune_dir) or e from None
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.tune["n_startup_trials"],
                                         multivariate=True, group=True, constant_liar=True)
    # processes of this run directory create a new storage and study one after the other
    with lock(run.path, "tune-study", wait=True), storage_errors(url, opening=True):
        st = _storage(url)
        study = optuna.create_study(study_name=run.study_name(cfg), storage=st, sampler=sampler,
                                    pruner=make_pruner(cfg), direction="minimize", load_if_exists=True)
        study.set_user_attr("study_hash", cfg.study_hash())
        study.set_user_attr("loss", cfg.tune["loss"])
    return study


def show_study(run: RunDir, cfg: Config, storage: str | None = None):
    """The study for reading (``tune --show``): creates no file, storage or study, and writes nothing."""
    import optuna

    _quiet_optuna()
    url = storage or default_storage(run)
    if storage is None:
        _check_study_file(run)
        if not run.study_db.is_file():
            raise RunDirError("no tuning study yet", where=str(run.path),
                              hint=f"run `repbench tune {run.path}` first")
    with storage_errors(url, opening=True):
        st = _storage(url)
        try:
            return optuna.load_study(study_name=run.study_name(cfg), storage=st)
        except KeyError:
            raise RunDirError(f"the storage holds no study {run.study_name(cfg)!r} for this run's search "
                              "space",
                              where=str(run.study_db) if storage is None else "--storage",
                              hint=f"run `repbench tune {run.path}` first") from None


def search_space(cfg: Config) -> dict:
    """The tunable part of a config: representation and kernel (with their leaves)."""
    return {"representation": thaw(cfg.representation), "kernel": thaw(cfg.kernel)}


def make_pruner(cfg: Config):
    """optuna's pruner for multi-fidelity tuning (``tune.fidelity``): successive halving or Hyperband over
    the training-set size of the rungs (reduction factor 2), else none."""
    import optuna

    fid = cfg.tune.get("fidelity")
    kind = cfg.tune.get("pruner", "none") if fid else "none"
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=int(fid[0]), reduction_factor=2)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=int(fid[0]), reduction_factor=2)
    return optuna.pruners.NopPruner()


#: Validation structures of a rung below the full size (at least; all if the fold has fewer).
MIN_RUNG_VALIDATION = 50


def rungs(cfg: Config, n_train: int) -> list[int]:
    """Training-set sizes (per fold) at which a trial is evaluated: ``tune.fidelity`` below the folds'
    training size, then the full size."""
    return sorted({int(r) for r in (cfg.tune.get("fidelity") or []) if int(r) < n_train} | {int(n_train)})


def _counted(study, trials=None) -> tuple[int, int, int]:
    """(finished: complete or pruned, failed-with-reason, running) trials of a study (or of ``trials``, its
    trials already read)."""
    from optuna.trial import TrialState

    c = f = r = 0
    for t in (study.get_trials(deepcopy=False) if trials is None else trials):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            c += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            f += 1
        elif t.state == TrialState.RUNNING:
            r += 1
    return c, f, r


def objective_values(ws, cfg: Config, params: dict, trial=None) -> dict:
    """Evaluate one concrete (representation, kernel) on the tuning folds; returns the trial's record.

    With ``tune.fidelity`` the trial is first evaluated cheaply at growing training-set sizes (rungs), then
    on the full folds: at a rung of ``r`` training structures, the first fold only, its training part
    subsampled to ``r`` and its validation part to the same fraction (at least 50 structures, or all),
    stratified and seeded per rung, so that every trial of the study sees the same subsets at a rung.  The
    validation loss at each rung is reported to optuna; a trial that the pruner stops raises
    ``optuna.TrialPruned`` with the rung recorded.  The representation is computed once per structure and
    trial: each rung computes only the structures the earlier rungs did not (a pruned trial pays for the
    structures of its rungs, not for the whole tuning set).  ``tune.kernel_dtype`` computes the trial
    kernels in that precision (float32: about twice as fast; the learning curve keeps the config's dtype).
    """
    from .splits import rng_for, stratified_sample
    from .workspace import concat_features

    model = trial_model(cfg, params, kernel_dtype=cfg.tune.get("kernel_dtype"))
    ws.rep_hash(model.representation)  # builds (validates) the representation for this dataset
    folds = ws.splits.tune_folds
    krr_cfg = dict(thaw(cfg.krr))
    krr_cfg["loss"] = cfg.tune["loss"]
    n_train = min(len(tr) for tr, _ in folds)
    steps = rungs(cfg, n_train)
    values = ws.y if cfg.splits["stratify"] else None
    have_idx, have = np.empty(0, dtype=np.int64), None
    for r in steps:
        if r == steps[-1]:
            sub = folds
        else:
            tr, va = folds[0]
            n_va = min(len(va), max(MIN_RUNG_VALIDATION, math.ceil(len(va) * r / n_train)))
            sub = [(stratified_sample(rng_for(cfg.seed, "tune", 100, r), tr, values, r),
                    stratified_sample(rng_for(cfg.seed, "tune", 200, r), va, values, n_va))]
        rows = np.unique(np.concatenate([np.concatenate(f) for f in sub]))
        new = np.setdiff1d(rows, have_idx, assume_unique=True)
        if len(new):  # without fidelity: all rows at once, the cache entry a plain bank would use
            have = concat_features(have, ws.features(model.representation, new))
            have_idx = np.concatenate([have_idx, new])
        bank = ws.model_bank(model, rows, features=have, features_index=have_idx)
        res = ws.refine(model, bank, rows, sub, krr_cfg)
        if trial is not None and r != steps[-1]:
            import optuna

            trial.report(float(res.loss), step=int(r))
            if trial.should_prune():
                trial.set_user_attr("rung", int(r))
                raise optuna.TrialPruned(f"pruned at training size {r}")
    if trial is not None:
        trial.set_user_attr("rung", int(steps[-1]))
    return {"loss": float(res.loss), "length_scale": res.ls, "regularization": res.reg,
            "at_bound": list(res.at_bound)}


def _cpu_seconds() -> float:
    """CPU seconds of this process (all its threads) and of its finished child processes (the
    representation workers), for the trials' ``cpu_s``."""
    u = os.times()
    return u.user + u.system + u.children_user + u.children_system


def check_seconds(value, name: str, where: str = "") -> float | None:
    """``value`` if it is a usable number of seconds (above 0, finite, at most :data:`MAX_SECONDS`) or None;
    otherwise a :class:`ConfigError` naming ``name`` (``--trial-timeout``, ``tune.trial_timeout`` ...)."""
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
        and 0 < value <= MAX_SECONDS
    if not ok:
        option = name.startswith("--")
        raise ConfigError(f"{'' if option else name + ': '}{value!r} is not a number of seconds above 0 and "
                          f"at most {MAX_SECONDS:g}", where=name if option else where,
                          hint=f"give e.g. {name} 600{' ' if option else ': '}or leave it out for no limit")
    return float(value)


def _env_failure(e: BaseException) -> RepbenchError | None:
    """The error for a trial failure that has nothing to do with its parameters (a full disk, a read-only
    file system, missing permissions), or None."""
    if isinstance(e, FilesystemError):
        return e
    if isinstance(e, OSError):
        return fs_error(e)
    return None


@contextmanager
def _signals_ignored():
    """While an interrupted trial is recorded or the workers are stopped: a second SIGINT / SIGTERM must
    not break the record (the first one is already being acted on)."""
    old = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _die_with_parent() -> None:
    """A worker of ``tune --jobs`` gets SIGTERM when its parent dies, even by SIGKILL (Linux), so that it
    never runs on as an orphan; if the parent is already gone it stops at once."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if str(os.getppid()) != parent:
        raise Terminated()


def worker(run: RunDir, n_trials: int, *, storage: str | None = None, timeout: float | None = None,
           trial_timeout: float | None = None, progress=None, ws=None) -> None:
    """One worker process: ask/evaluate/tell until the study holds ``n_trials`` finished trials."""
    from optuna import TrialPruned
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    _die_with_parent()
    _quiet_optuna()
    cfg = run.config()
    trial_timeout = check_seconds(trial_timeout, "--trial-timeout") if trial_timeout is not None else \
        check_seconds(cfg.tune["trial_timeout"], "tune.trial_timeout", str(run.run_yaml))
    timeout = check_seconds(timeout, "--timeout")
    ws = ws if ws is not None else Workspace(run, cfg, progress=False)
    study = open_study(run, cfg, storage)
    url = storage or default_storage(run)
    sp = search_space(cfg)
    t_start = time.monotonic()
    while True:
        if signalled():  # an interrupt that Python dropped inside a finaliser: stop here all the same
            raise Terminated() if signalled() == signal.SIGTERM else KeyboardInterrupt()
        # count and ask under one lock, so that two workers of this run directory cannot both start the
        # last missing trial (the study would end with more trials than --trials)
        with lock(run.path, "tune-study", wait=True), storage_errors(url):
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
        t0, c0 = time.perf_counter(), _cpu_seconds()
        try:
            params = space.suggest(trial, sp)
            with _alarm(trial_timeout):
                rec = objective_values(ws, cfg, params, trial)
            if not math.isfinite(rec["loss"]):
                raise FloatingPointError("the validation loss is not finite")
        except TrialPruned:
            with storage_errors(url):
                trial.set_user_attr("duration_s", time.perf_counter() - t0)
                trial.set_user_attr("cpu_s", _cpu_seconds() - c0)
                study.tell(trial, state=TrialState.PRUNED)
            continue
        except KeyboardInterrupt:
            # not counted towards --trials (no "error"): a re-run replaces it
            with _signals_ignored(), contextlib.suppress(Exception):
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as e:  # noqa: BLE001 - any failure is recorded, the study goes on
            env = _env_failure(e)
            if env is not None:
                # not the parameters' fault: not counted (no "error"); stop with one clear line, so that the
                # re-run after the cause is gone continues the study instead of finding it used up
                with storage_errors(url):
                    trial.set_user_attr("interrupted", True)
                    trial.set_user_attr("stopped_by", scrub(env.format(), storage)[:2000])
                    study.tell(trial, state=TrialState.FAIL)
                raise type(env)(f"{env.message}; trial {trial.number} was stopped and is not counted",
                                where=env.where,
                                hint=(env.hint + "; " if env.hint else "")
                                + f"`repbench tune {run.path}` then continues the study") from None
            if isinstance(e, (RepbenchError,)):
                reason = e.format()
            elif isinstance(e, MemoryError):
                reason = "out of memory"
            else:
                reason = f"{e.__class__.__name__}: {e}"
            reason = scrub(reason, storage)
            with storage_errors(url):
                trial.set_user_attr("error", reason[:2000])
                trial.set_user_attr("duration_s", time.perf_counter() - t0)
                trial.set_user_attr("cpu_s", _cpu_seconds() - c0)
                if not isinstance(e, (RepbenchError, TrialTimeout, MemoryError, ConfigError)):
                    trial.set_user_attr("traceback", scrub(traceback.format_exc()[-4000:], storage))
                study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, reason)
            continue
        with storage_errors(url):
            trial.set_user_attr("length_scale", rec["length_scale"])
            trial.set_user_attr("regularization", rec["regularization"])
            trial.set_user_attr("at_bound", rec["at_bound"])
            trial.set_user_attr("duration_s", time.perf_counter() - t0)
            trial.set_user_attr("cpu_s", _cpu_seconds() - c0)
            trial.set_user_attr("concrete", params)
            study.tell(trial, rec["loss"])


def run_tune(run: RunDir, n_trials: int | None = None, *, jobs: int = 1, storage: str | None = None,
             timeout: float | None = None, trial_timeout: float | None = None, show_progress: bool = True,
             console=None) -> dict:
    """Run the study with ``jobs`` worker processes, then write tune/best.yaml and tune/trials.csv.

    ``timeout`` / ``trial_timeout`` (and the config's) are checked before anything starts.
    """
    cfg = run.config()
    if not cfg.has_search_space:
        raise ConfigError("the config has no search space: nothing to tune", where=str(run.run_yaml),
                          hint="give a representation or kernel parameter as a leaf such as "
                               "{int: [2, 8]}, or go straight to `repbench curve`")
    n_trials = n_trials or cfg.tune["trials"]
    timeout = check_seconds(timeout, "--timeout") if timeout is not None else \
        check_seconds(cfg.tune["timeout"], "tune.timeout", str(run.run_yaml))
    trial_timeout = check_seconds(trial_timeout, "--trial-timeout") if trial_timeout is not None else \
        check_seconds(cfg.tune["trial_timeout"], "tune.trial_timeout", str(run.run_yaml))
    if storage is None:
        # the study lives in this run directory: one `repbench tune` at a time (its --jobs workers share
        # it); a second one is refused with a clear message instead of racing.  The shared run-directory
        # lock keeps `prepare --force` away while it runs.
        with stage_lock(run.path, "tune"):
            ws = Workspace(run, cfg, progress=False)  # a damaged data.h5 is reported before the study
            clean_stale_tmp(run.path)  # temporary files of killed writers
            study = open_study(run, cfg, storage)
            with storage_errors(default_storage(run)):
                _fail_orphans(study)
            try:
                return _run_study(run, cfg, study, n_trials, jobs, storage, timeout, trial_timeout,
                                  show_progress, console, ws)
            except KeyboardInterrupt:
                # the workers are gone and this process holds the tune lock: whatever they left running
                # is failed as interrupted (not counted), so the study is consistent when we exit
                with _signals_ignored(), contextlib.suppress(Exception):
                    _fail_orphans(study)
                raise
    with run_lock(run.path, "tune"):
        ws = Workspace(run, cfg, progress=False)
        clean_stale_tmp(run.path)
        study = open_study(run, cfg, storage)  # create it once before workers race to
        return _run_study(run, cfg, study, n_trials, jobs, storage, timeout, trial_timeout, show_progress,
                          console, ws)


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
            th = threading.Thread(target=_progress_loop, args=(study, n_trials, stop, console, timeout),
                                  daemon=True)
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
    with storage_errors(storage or default_storage(run)):
        return write_outputs(run, cfg, study, ws)


def _stop_workers(procs: list, sig: int) -> None:
    """Forward ``sig`` to the workers, give them :data:`STOP_WORKERS_S` to record their interrupted trials,
    then kill what is left; returns when every worker has exited."""
    with _signals_ignored():
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.send_signal(sig)
        deadline = time.monotonic() + STOP_WORKERS_S
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _run_workers(run, n_trials, jobs, storage, timeout, trial_timeout, study, show_progress, console):
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[v] = str(threads)
    env[PARENT_ENV] = str(os.getpid())
    cmd = [sys.executable, "-m", "repbench", "tune", str(run.path), "--worker", "--trials", str(n_trials)]
    if storage:
        env[STORAGE_ENV] = storage  # not on the command line, where `ps` would show its password
    if timeout:
        cmd += ["--timeout", str(timeout)]
    if trial_timeout:
        cmd += ["--trial-timeout", str(trial_timeout)]
    procs = []
    import threading

    stop = threading.Event()
    th = None
    forwarders: list[threading.Thread] = []
    seen: dict[str, int] = {}
    seen_lock = threading.Lock()
    if sys.stderr.isatty():  # the workers' messages go through a pipe: wrap them at our terminal's width
        env.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    try:
        for i in range(jobs):
            procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, errors="replace"))
            forwarders.append(threading.Thread(target=_forward_unique,
                                               args=(procs[-1].stderr, seen, seen_lock, i), daemon=True))
            forwarders[-1].start()
        if show_progress:
            th = threading.Thread(target=_progress_loop, args=(study, n_trials, stop, console, timeout),
                                  daemon=True)
            th.start()
        codes = [p.wait() for p in procs]
    except BaseException as e:
        # SIGINT / SIGTERM (or any failure here): the workers stop too, and are waited for
        ctrl_c = isinstance(e, KeyboardInterrupt) and not isinstance(e, Terminated)
        _stop_workers(procs, signal.SIGINT if ctrl_c else signal.SIGTERM)
        raise
    finally:
        stop.set()
        if th:
            th.join()
        deadline = time.monotonic() + 5  # one deadline for all (a forked grandchild may hold a pipe open)
        for f in forwarders:
            f.join(timeout=max(0.0, deadline - time.monotonic()))
    interrupted = [c for c in codes if c in (130, 143, -signal.SIGINT, -signal.SIGTERM)]
    if interrupted and signalled():
        raise Terminated() if signalled() == signal.SIGTERM else KeyboardInterrupt()
    bad = [c for c in codes if c != 0]
    if bad:
        raise RepbenchError(f"{len(bad)} of {jobs} tune workers exited with an error (status {bad[0]})",
                            where=str(run.path), hint="see the messages above; re-run to continue the study")


#: lines of a worker's stderr that are dropped when another worker already printed them (once the trial
#: numbers, which differ per worker, are set aside): the problem reports, not tracebacks or progress
_SHARED_PROBLEM = re.compile(r"^\s*(error|warning|interrupted)\b", re.IGNORECASE)
_TRIAL_NUMBER = re.compile(r"\btrial \d+\b")
_MAX_SEEN = 1000


def _forward_unique(stream, seen: dict, seen_lock, worker: int = 0) -> None:
    """Copy a tune worker's stderr to ours, except a problem line (``error: ...``, ``warning: ...``) that
    another worker already printed, trial numbers aside: N workers that meet the same problem (a full disk,
    an unreachable storage) report it once, not N times.  Everything else passes unchanged.  The pipe is
    drained to its end even when our stderr fails (a closed pipe, a full disk), so a worker never blocks on
    a full pipe."""
    broken = False
    for line in stream:
        if _SHARED_PROBLEM.match(line):
            key = _TRIAL_NUMBER.sub("trial #", line)
            with seen_lock:
                first = seen.setdefault(key, worker) if len(seen) < _MAX_SEEN else seen.get(key, worker)
            if first != worker:
                continue
        if broken:
            continue
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            broken = True  # keep draining
    stream.close()


def _progress_loop(study, n_trials, stop, console, timeout=None):
    """The tune display: a rich bar on a terminal; in a batch log (``> log``) a plain line about every minute
    with the trials finished, pruned, failed, the best loss and an estimate of the time left."""
    if not console.is_terminal:
        return _progress_log(study, n_trials, stop, timeout)
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


def _progress_log(study, n_trials, stop, timeout=None):
    """Plain progress lines for a batch log: ``tune: 3/12 trials done (study 8/17: 2 pruned, 0 failed,
    1 running; best 0.0291), 4m10s elapsed, ~12m30s left`` (the estimate from this process's trials so far,
    capped by ``--timeout``)."""
    from optuna.trial import TrialState

    def counts():  # (finished, pruned, failed, running, best complete loss)
        ts = study.get_trials(deepcopy=False)  # one read of the storage per line
        done, failed, running = _counted(study, ts)
        best = min((t.value for t in ts if t.state == TrialState.COMPLETE and t.value is not None), default=None)
        return done + failed, sum(t.state == TrialState.PRUNED for t in ts), failed, running, best

    def try_counts(attempts: int):  # a busy database must not kill the display
        for i in range(attempts):
            try:
                return counts()
            except Exception:  # noqa: BLE001
                time.sleep(0.2 * (i + 1 < attempts))
        return None

    start = (try_counts(1) or (0,))[0]
    # the rich bar is drawn on the output console when it is a terminal; otherwise these lines go to stderr
    lines = ProgressLines("tune", max(0, n_trials - start), "trials", progress_interval(), sys.stderr)
    if timeout is not None:
        lines.deadline = time.monotonic() + timeout
    while True:
        stopping = stop.wait(1.0)
        state = try_counts(5 if stopping else 1)  # the final count is retried past a busy database
        if state is not None:
            done, pruned, failed, running, best = state
            lines.detail = (f"study {done}/{n_trials}: {pruned} pruned, {failed} failed, {running} running"
                            + (f"; best {best:.5g}" if best is not None else ""))
            if done - start > lines.done:
                lines.advance(done - start - lines.done)
            lines.tick()
        if stopping:
            lines.close()
            return


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name,
               "loss": t.value if t.value is not None else None,
               "length_scale": t.user_attrs.get("length_scale"),
               "regularization": t.user_attrs.get("regularization"),
               "duration_s": t.user_attrs.get("duration_s"),
               "cpu_s": t.user_attrs.get("cpu_s"),
               "rung": t.user_attrs.get("rung"),
               "error": t.user_attrs.get("error", "")}
        for k, v in t.params.items():
            row[f"param.{k}"] = v
        rows.append(row)
    return rows


def write_outputs(run: RunDir, cfg: Config, study, ws: Workspace | None = None) -> dict:
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
        c, f, r = _counted(study)
        more = c + f + max(c + f, 1)
        raise RepbenchError(f"no trial completed, so there is no best configuration: all {c + f} finished "
                            "trials of the study failed", where=str(run.path),
                            hint=f"see the errors in tune/trials.csv; once their cause is fixed, run "
                                 f"more trials with `repbench tune {run.path} --trials {more}`, or change "
                                 "the search space")
    best = min(complete, key=lambda t: (t.value, t.number))
    concrete = best.user_attrs["concrete"]
    doc = Best(study_hash=cfg.study_hash(), study=study.study_name, trial=best.number, loss=float(best.value),
               loss_kind=cfg.tune["loss"], loss_unit=target_unit(cfg, run, ws),
               trials={"complete": len(complete), "total": len(rows)},
               representation=concrete["representation"], kernel=concrete["kernel"],
               krr={"length_scale": best.user_attrs.get("length_scale"),
                    "regularization": best.user_attrs.get("regularization")})
    write_best(run, doc)
    return doc.to_dict()


def target_unit(cfg: Config, run: RunDir | None = None, ws: Workspace | None = None) -> str:
    """The unit of the tuning loss: the modelled unit of the run's target (eV, eV/atom, eV/cation, ...)."""
    from .targets import target_model

    ds = cfg.dataset
    if ws is not None:
        return ws.target.unit
    if run is not None:
        structures = run.read_data()[0]
        return target_model(structures, ds["target"], ds["per"]).unit
    unit = ds.get("target_unit") or "eV"  # no data at hand: the configured unit
    return unit if ds["per"] == "structure" else f"{unit}/{ds['per']}"


def leaderboard(study, top: int = 15) -> list[dict]:
    rows = [r for r in trial_rows(study)]
    done = sorted([r for r in rows if r["state"] == "COMPLETE"], key=lambda r: (r["loss"], r["number"]))
    pruned = sorted([r for r in rows if r["state"] == "PRUNED"], key=lambda r: r["number"])
    return done[:top] + pruned + [r for r in rows if r["state"] == "FAIL"]
