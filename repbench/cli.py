"""The ``repbench`` command line (click).  Thin: parse, call the stage functions, print with rich.

Every error a user can cause is a :class:`repbench.errors.RepbenchError`; it is printed as one line
(what, where, how to fix) and the command exits with status 2, never with a traceback.  So is a file
system that refuses a write (read-only, permission denied, disk full).  SIGINT and SIGTERM stop a command
the same way (finished work is kept, temporary files removed): exit status 130 and 143.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.logging import RichHandler

from . import __version__
from .errors import RepbenchError

# not a terminal (a pipe, a log file): wide enough for the report table
console = Console(stderr=False, width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def _print_error(e: RepbenchError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(e.format())}", highlight=False, soft_wrap=True)


def _interrupted(sig: int | None) -> None:
    import os
    import signal

    if not os.environ.get("REPBENCH_TUNE_PARENT"):  # a worker of `tune --jobs`: its parent reports it once
        err_console.print("[yellow]interrupted[/]: finished work is saved; re-run the command to resume")
    sys.exit(143 if sig == signal.SIGTERM else 130)


class Group(click.Group):
    """A click group that turns RepbenchErrors (and file-system refusals) into one clear line and exit
    status 2, and SIGINT / SIGTERM into a clean stop with exit status 130 / 143."""

    def invoke(self, ctx):
        import errno
        import signal

        from .rundir import Terminated, fs_error, interruptible, signalled

        with interruptible():
            try:
                rv = super().invoke(ctx)
            except RepbenchError as e:
                _print_error(e)
                sys.exit(e.exit_code)
            except KeyboardInterrupt as e:
                _interrupted(signal.SIGTERM if isinstance(e, Terminated) else signalled())
            except OSError as e:
                mapped = fs_error(e, write=e.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT))
                if mapped is None:
                    raise
                _print_error(mapped)
                sys.exit(mapped.exit_code)
            if signalled():  # dropped by Python inside a finaliser: the command still reports it
                _interrupted(signalled())
            return rv


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)])
    for noisy in ("optuna", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="repbench")
@click.option("-v", "--verbose", is_flag=True, help="Log what is computed and what is read from caches.")
def main(verbose: bool) -> None:
    """Benchmark representations of molecules and materials with kernel ridge regression.

    \b
    Typical session:
      repbench prepare configs/quickstart.yaml     # -> runs/quickstart: data.h5 with splits
      repbench tune    runs/quickstart --trials 20 # optuna search; tune/best.yaml
      repbench curve   runs/quickstart             # learning curve -> curve.yaml, plots/
      repbench time    runs/quickstart             # timings -> timings.yaml
      repbench report  runs/*                      # compare runs
    or all at once:  repbench run configs/quickstart.yaml
    """
    _setup_logging(verbose)


# --------------------------------------------------------------------------- prepare
@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory to create [default: runs/<config name>].")
@click.option("--force", is_flag=True, help="Replace a run directory prepared with a different config "
              "(its results are removed; caches are kept).")
def prepare(config: Path, run_dir: Path | None, force: bool) -> None:
    """Read the dataset, draw the splits and create the run directory.

    Writes RUN_DIR/run.yaml (resolved config, seed, versions, host) and RUN_DIR/data.h5 (structures,
    targets, split indices).  Re-running with the same config does nothing.
    """
    from .prepare import prepare as do_prepare

    t0 = time.perf_counter()
    rd, what = do_prepare(config, run_dir, force)
    meta = rd.read_meta()
    d = meta["dataset"]
    verb = {"created": "prepared", "unchanged": "up to date", "replaced": "re-prepared",
            "updated": "config updated", "restored": "data.h5 rebuilt (results kept):"}[what]
    console.print(f"[green]{verb}[/] {rd.path}  ({d['structures']} structures, {d['atoms']} atoms, "
                  f"test set {d['test_size']} ({d['test_set']}), pool {d['pool_size']}; "
                  f"{time.perf_counter() - t0:.1f} s)")
    if what == "updated":
        console.print(_update_note(rd))


def _update_note(rd) -> str:
    """What a config update means for the run (which keys changed, what is kept)."""
    from .config import DATA_SECTIONS, EXECUTION_KEYS

    changed = rd.last_config_change()
    execution = {f"{sec}.{k}" for sec, keys in EXECUTION_KEYS.items() for k in keys}
    results = [k for k in changed if k not in execution and k.split(".")[0] not in DATA_SECTIONS
               and k != "name"]
    keys = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
    if not results:
        return (f"  changed: {keys} (execution settings only): data.h5, the study and every finished "
                "result are kept")
    return (f"  changed: {keys}: data.h5 and caches are kept; results that depend on "
            f"{', '.join(results[:3])} are recomputed (a new search space starts a new study)")




def _run_dir(path: Path):
    from .migrate import open_run

    rd = open_run(path)  # upgraded in place if an older repbench wrote it
    rd.read_meta()  # clear error if it is not a run directory
    return rd


def _resolve_run(target: Path):
    """A run directory, or a config file whose default run directory is used (prepared if needed)."""
    if target.is_file() and target.suffix in (".yaml", ".yml") and target.name != "run.yaml":
        from .prepare import prepare as do_prepare

        rd, _ = do_prepare(target)
        return rd
    return _run_dir(target)


# --------------------------------------------------------------------------- datasets
@main.group()
def datasets() -> None:
    """List the built-in dataset readers or summarise a dataset."""


@datasets.command("list")
def datasets_list() -> None:
    """The dataset readers (built in and from installed plugins) and what they read."""
    from rich.table import Table

    from .datasets import READERS

    t = Table(title="dataset readers (config: dataset.name)")
    for c in ("name", "package", "reads"):
        t.add_column(c)
    for e in READERS.entries():
        try:
            summary = READERS.get_component(e.name).summary
        except RepbenchError as err:
            summary = f"[red]broken plugin[/]: {err.message}"
        t.add_row(e.name, e.source, summary if summary.startswith("[red]") else escape(summary))
    console.print(t)


@datasets.command("show")
@click.argument("name")
@click.option("--path", default=None, help="File or folder to read (all datasets except qm9).")
@click.option("--target-key", default=None, help="For generic files: the key holding the target.")
def datasets_show(name: str, path: str | None, target_key: str | None) -> None:
    """Summarise dataset NAME (qm9, nmd18 --path DIR, ...) or a structure file NAME.

    Shows the number of structures, elements, atoms per structure and target statistics with units.
    """
    import numpy as np
    from rich.table import Table

    from .datasets import READERS, load_dataset
    from .structures import SYMBOLS

    if name not in READERS:
        path, name = name, "file"
    s = load_dataset(name, path, target_key=target_key)
    n_at = s.n_atoms
    parts = ", ".join(f"{p} {int(c)}" for p, c in zip(*np.unique(s.parts, return_counts=True)))
    console.print(f"[bold]{s.name}[/] from {s.source}: {len(s)} structures (parts: {parts}), {len(s.z)} atoms; "
                  f"elements {' '.join(SYMBOLS[z] for z in s.elements)}; atoms per structure "
                  f"min {n_at.min()} / median {int(np.median(n_at))} / max {n_at.max()}; "
                  f"{'periodic' if s.periodic else 'molecules'}")
    t = Table(title="targets")
    for c in ("target", "unit", "extensive", "mean", "std", "min", "max", "non-finite"):
        t.add_column(c, justify="right" if c not in ("target", "unit") else "left")
    for k in s.targets:
        v = s.targets[k]
        f = v[np.isfinite(v)]
        info = s.target_info[k]
        t.add_row(k, info.unit, "yes" if info.extensive else "no", *(f"{x:.6g}" for x in
                  (f.mean(), f.std(), f.min(), f.max())), str(int((~np.isfinite(v)).sum())))
    if s.targets:
        console.print(t)
        if s.meta.get("unit_note"):  # e.g. NMD18: which `per:` reproduces the source's unit
            console.print(f"note: {escape(s.meta['unit_note'])}")
    else:
        keys = s.meta.get("info_keys") or []
        console.print("no target read" + (f"; numeric keys in the file: {', '.join(keys)} (use --target-key)"
                                          if keys else ""))


# --------------------------------------------------------------------------- registries
def _param_text(params: dict, width: int = 70) -> str:
    import json

    text = json.dumps(params, default=str)[1:-1] if params else ""
    return text if len(text) <= width else text[:width - 3] + "..."


@main.command("representations")
@click.option("--format", "fmt", type=click.Choice(["table", "yaml"]), default="table", show_default=True,
              help="yaml lists every parameter with its default.")
def representations_cmd(fmt: str) -> None:
    """The representations a config can name (built in and from installed plugins).

    For each: its name (the key under `representation:`), whether it is local (one row per atom,
    summed-atom-pair kernels) or global (one row per structure), the package it comes from and its
    parameters with their defaults.  Add your own: docs/extending.md.
    """
    from rich.table import Table

    from .representations import REPRESENTATIONS
    from .rundir import dump_yaml

    rows = []
    for e in REPRESENTATIONS.entries():
        try:
            cls = REPRESENTATIONS.get_component(e.name)
            rows.append({"name": e.name, "kind": cls.kind_label(), "package": e.source,
                         "summary": cls.summary().replace("``", "`"), "parameters": cls.parameters()})
        except RepbenchError as err:
            rows.append({"name": e.name, "kind": "?", "package": e.source,
                         "summary": f"broken plugin: {err.message}", "parameters": {}})
    if fmt == "yaml":
        click.echo(dump_yaml(rows), nl=False)
        return
    t = Table(title="representations (config: representation.<name>)")
    for c in ("name", "kind", "package", "what", "parameters (defaults)"):
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["name"], r["kind"], r["package"], escape(r["summary"]), escape(_param_text(r["parameters"])))
    console.print(t)


@main.command("kernels")
def kernels_cmd() -> None:
    """The kernels a config can name (kernel.atom_kernel for local, kernel.kind for global)."""
    from rich.table import Table

    from .models.kernel import KERNELS

    t = Table(title="kernels")
    for c in ("name", "local", "global", "length scale", "package", "formula"):
        t.add_column(c)
    for e in KERNELS.entries():
        k = KERNELS.get_component(e.name)
        t.add_row(e.name, *("yes" if f else "no" for f in (k.local, k.global_, k.length_scale)), e.source,
                  escape(k.summary))
    console.print(t)


@main.command("regressors")
def regressors_cmd() -> None:
    """The regressors a config can name (regressor: NAME; default krr)."""
    from rich.table import Table

    from .models.regressor import REGRESSORS

    t = Table(title="regressors")
    for c in ("name", "package", "std", "what"):
        t.add_column(c)
    for e in REGRESSORS.entries():
        r = REGRESSORS.get_component(e.name)
        t.add_row(e.name, e.source, "yes" if r.has_std else "no", escape(r.summary()))
    console.print(t)


# --------------------------------------------------------------------------- tune
@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Finished trials the study should hold [default: tune.trials of the config].")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine (BLAS threads are split between them).")
@click.option("--storage", default=None, metavar="URL",
              help="optuna storage shared by workers on many machines, e.g. "
                   "postgresql://user:pw@host/db [default: sqlite in RUN_DIR/tune/study.db].")
@click.option("--timeout", type=float, default=None, help="Stop starting new trials after this many seconds.")
@click.option("--trial-timeout", type=float, default=None,
              help="Fail a trial that runs longer than this many seconds.")
@click.option("--show", is_flag=True, help="Print the leaderboard of the study and exit.")
@click.option("--worker", is_flag=True, hidden=True)
def tune(run_dir: Path, trials, jobs, storage, timeout, trial_timeout, show, worker) -> None:
    """Optimise representation and kernel hyper-parameters with optuna (TPE, seeded).

    Resumable: re-running continues the same study; a killed run loses at most its running trials.
    Writes RUN_DIR/tune/best.yaml (ready for `repbench curve`) and RUN_DIR/tune/trials.csv.
    """
    from . import tuning

    if worker:
        import os

        from .rundir import Terminated

        storage = storage or os.environ.get(tuning.STORAGE_ENV) or None  # handed over off the command line
        try:
            rd = _resolve_run(run_dir)
            tuning.worker(rd, trials or rd.config().tune["trials"], storage=storage, timeout=timeout,
                          trial_timeout=trial_timeout)
        except KeyboardInterrupt as e:  # the parent reports the interruption once
            sys.exit(143 if isinstance(e, Terminated) else 130)
        return
    rd = _resolve_run(run_dir)
    cfg = rd.config()
    if show:
        study = tuning.show_study(rd, cfg, storage)
        _print_leaderboard(study)
        return
    t0 = time.perf_counter()
    best = tuning.run_tune(rd, trials, jobs=jobs, storage=storage, timeout=timeout, trial_timeout=trial_timeout,
                           console=console)
    seconds = time.perf_counter() - t0
    rd.record_seconds("tune", seconds)  # status.tune in run.yaml, as `repbench run` records
    console.print(f"[green]tuned[/] {rd.path} in {seconds:.0f} s: best trial {best['trial']} "
                  f"loss {best['loss']:.5g} {best['loss_unit']} ({best['loss_kind']}); "
                  f"{best['trials']['complete']} complete of {best['trials']['total']}; "
                  f"-> {rd.best_yaml}")


def _print_leaderboard(study) -> None:
    from rich.table import Table

    from .tuning import leaderboard

    rows = leaderboard(study)
    t = Table(title=f"study {study.study_name}")
    params = sorted({k for r in rows for k in r if k.startswith("param.")})
    cols = ["#", "state", "loss", "length_scale", "regularization", "s", "rung"]
    for c in cols + [p[6:] for p in params] + ["error"]:
        t.add_column(c)
    for r in rows:
        def f(v):
            return "-" if v is None or v == "" else (f"{v:.4g}" if isinstance(v, float) else str(v))
        t.add_row(str(r["number"]), r["state"], f(r["loss"]), f(r["length_scale"]), f(r["regularization"]),
                  f(r["duration_s"]), f(r.get("rung")), *(f(r.get(p)) for p in params),
                  escape((r["error"] or "")[:60]))
    console.print(t)


# --------------------------------------------------------------------------- curve, time
@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--no-plot", is_flag=True, help="Do not draw plots/learning_curve.png|svg.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the missing points as Dask tasks (one per draw): a scheduler address such as "
                   "tcp://host:8786, or local[:N] for N worker processes here.  Workers must see the run "
                   "directory (shared filesystem); results are written here, as a local run writes them.  "
                   "Needs pip install 'repbench[dask]'; see docs/dask.md.")
@click.option("--block-structures", type=click.IntRange(min=0), default=None, metavar="N",
              help="With --scheduler: a draw's kernels of more than N^2 structure pairs are computed as row "
                   "blocks of about N^2 pairs, each a Dask task [default: 2000; 0: never].  An execution "
                   "setting, in no hash; the kernels agree with one-piece kernels to float64 rounding.")
def curve(run_dir: Path, no_plot: bool, scheduler: str | None, block_structures: int | None) -> None:
    """Learning curve: refine KRR, fit and predict the test set at each training size and draw.

    Uses tune/best.yaml when present (else the config's fixed values).  Resumable per (size, draw);
    writes RUN_DIR/curve.yaml, per-structure test predictions (curve/*.predictions.npz, for
    `repbench compare`) and RUN_DIR/plots/learning_curve.png|svg, plus a calibration plot of the predictive
    standard deviation.
    """
    from .curve import calibration_data, run_curve

    rd = _resolve_run(run_dir)
    t0 = time.perf_counter()
    doc = run_curve(rd, console=console, scheduler=scheduler, block_structures=block_structures)
    rd.record_seconds("curve", time.perf_counter() - t0)
    files = []
    if not no_plot:
        from . import plots

        files = plots.learning_curves([doc], rd.learning_curve_plot)
        cal = calibration_data(rd, doc)
        if cal:
            files += plots.calibration({doc["run"]: cal}, rd.plots / "calibration",
                                       f"{doc['run']}: {doc['test_set'].get('strategy', 'random')} split")
    last = doc["sizes"][-1]
    console.print(f"[green]curve[/] {rd.path}: MAE at {last['size']} = {last['mean_report']['mae']:.4g} ± "
                  f"{last['std_report']['mae']:.2g} {doc['report_unit']} -> {rd.curve_yaml}"
                  + (f", {files[0]}" if files else ""))


@main.command("time")
@click.argument("run_dir", type=click.Path(path_type=Path))
def time_cmd(run_dir: Path) -> None:
    """Time representation, kernels and KRR fit/predict of the best (or fixed) configuration.

    Warm-up run, then repeats (time.repeats); min and median; hardware and BLAS recorded.
    Writes RUN_DIR/timings.yaml.
    """
    from .timing import run_time

    rd = _resolve_run(run_dir)
    t0 = time.perf_counter()
    doc = run_time(rd, console=console)
    rd.record_seconds("time", time.perf_counter() - t0)
    r = doc["representation_timing"]
    last = doc["sizes"][-1]
    console.print(f"[green]timed[/] {rd.path}: representation {r['per_structure_s'] * 1e3:.3g} ms/structure; "
                  f"kernel {last['train_size']}x{last['train_size']} {last['kernel_train_train']['min_s']:.3g} s; "
                  f"-> {rd.timings_yaml}")


# --------------------------------------------------------------------------- report, run
@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "yaml", "csv", "markdown"]), default="table",
              show_default=True, help="Output format (table is for people, the others for machines and papers).")
@click.option("--metric", type=click.Choice(["mae", "rmse", "maxae"]), default="mae", show_default=True)
@click.option("--plots", "plot_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also draw learning_curves and error_vs_cost figures (PNG+SVG) into this folder.")
@click.option("--compare", "paired", is_flag=True,
              help="Paired differences with bootstrap intervals instead (same as `repbench compare`).")
def report(run_dirs, fmt, metric, plot_dir, paired) -> None:
    """Compare runs: error at each training size, time per structure, kernel time."""
    from . import report as rep

    from .migrate import open_run

    if paired:
        _compare(run_dirs, fmt, "rmse" if metric == "rmse" else "mae", 2000, 0)
        return
    paths = [open_run(p).path for p in run_dirs]
    records = rep.collect(paths)
    if fmt == "table":
        console.print(rep.rich_table(records, metric))
    else:
        click.echo(rep.render(records, fmt, metric), nl=False)
    if plot_dir is not None:
        files = rep.plot(records, plot_dir, metric)
        err_console.print("plots: " + ", ".join(str(f) for f in files))


@main.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--metric", type=click.Choice(["mae", "rmse"]), default="mae", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "yaml", "csv", "markdown"]), default="table",
              show_default=True)
@click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples (test structures and draws, with replacement).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--size", "sizes", type=click.IntRange(min=1), multiple=True, metavar="N",
              help="Only this training size (repeatable) [default: every size the runs have in common].")
@click.option("--ranking", is_flag=True,
              help="Rank the runs by their error at each size and compare each with the next in rank, "
                   "counting how many of all pairs are resolved (instead of one row per pair).")
def compare_cmd(run_dirs, metric, fmt, resamples, seed, sizes, ranking) -> None:
    """Paired comparison of runs on the same test set and training draws.

    For every pair of runs and training size: the difference of their test errors (A - B, pooled over
    draws and test structures) with a 95% bootstrap interval; "resolved" when it excludes zero.  Runs
    prepared for different data (dataset, splits, seed) are refused: their test sets differ.

    With --ranking (many runs): the runs in order of their error at each size, each against the next in
    rank, and the number of resolved pairs, e.g.
    `repbench compare runs/qm9-* --ranking --size 1000 --format markdown`.
    """
    _compare(run_dirs, fmt, metric, resamples, seed, list(sizes), ranking)


def _compare(run_dirs, fmt: str, metric: str, resamples: int, seed: int, sizes: list[int] | None = None,
             ranking: bool = False) -> None:
    from . import compare as cmp
    from .migrate import open_run

    paths = [open_run(p).path for p in run_dirs]
    if ranking:
        rows = cmp.ranking(paths, metric=metric, n_boot=resamples, seed=seed, sizes=sizes)
        if fmt == "table":
            for t in cmp.rich_ranking(rows):
                console.print(t)
        else:
            click.echo(cmp.render_ranking(rows, fmt), nl=False)
        return
    rows = cmp.compare(paths, metric=metric, n_boot=resamples, seed=seed, sizes=sizes)
    if fmt == "table":
        console.print(cmp.rich_table(rows))
    else:
        click.echo(cmp.render(rows, fmt), nl=False)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory [default: runs/<config name>].")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Tune worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Compute the learning curve on a Dask cluster (see `repbench curve --help`).")
def run(config: Path, run_dir: Path | None, jobs: int, scheduler: str | None) -> None:
    """prepare + tune (if the config has search spaces) + curve + time + report, in one go.

    Every stage resumes: re-running after an interruption finishes only what is missing.  Each stage's
    own wall time is printed and recorded in run.yaml (status.<stage>.seconds).
    """
    from . import plots
    from . import report as rep
    from .curve import calibration_data, run_curve
    from .prepare import prepare as do_prepare
    from .timing import run_time
    from .tuning import run_tune

    t0 = t = time.perf_counter()

    def lap() -> float:
        nonlocal t
        now = time.perf_counter()
        dt, t = now - t, now
        return dt

    rd, what = do_prepare(config, run_dir)
    cfg = rd.config()
    console.rule(f"[bold]repbench run[/] {rd.path}")
    console.print(f"prepare: {what} ({lap():.1f} s)")
    if what == "updated":
        console.print(_update_note(rd))
    if cfg.has_search_space:
        best = run_tune(rd, jobs=jobs, console=console)
        dt = lap()
        rd.record_seconds("tune", dt)
        console.print(f"tune: best loss {best['loss']:.5g} {best['loss_unit']} (trial {best['trial']}) "
                      f"({dt:.0f} s)")
    doc = run_curve(rd, console=console, scheduler=scheduler)
    lc_files = plots.learning_curves([doc], rd.learning_curve_plot)
    cal = calibration_data(rd, doc)
    if cal:
        plots.calibration({doc["run"]: cal}, rd.plots / "calibration",
                          f"{doc['run']}: {doc['test_set'].get('strategy', 'random')} split")
    dt = lap()
    rd.record_seconds("curve", dt)
    console.print(f"curve: done ({dt:.0f} s)")
    timed = run_time(rd, console=console, only_missing=True)
    dt = lap()
    if timed:
        rd.record_seconds("time", dt)
    console.print(f"time: {'done' if timed else 'up to date'} ({dt:.0f} s)")
    records = rep.collect([rd.path])
    console.print(rep.rich_table(records))
    # the run's own plots/learning_curve.* is drawn above: no identical learning_curves.* beside it
    files = lc_files + rep.plot(records, rd.plots, learning_curves=False)
    console.print(f"[green]finished[/] in {time.perf_counter() - t0:.0f} s. Results: {rd.curve_yaml}, "
                  f"{rd.timings_yaml}; plots: {rd.plots}/ ({', '.join(f.name for f in files)})")
