"""matplotlib figures: learning curves (log-log, error bars over draws) and error versus cost.

Each figure is written as PNG and SVG.  The Agg backend is used so plots work on machines without a
display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .rundir import DiskFullError, FilesystemError, atomic_path, clean_stale_tmp  # noqa: E402

#: the hint for a plots folder that cannot be written
PLOTS_HINT = ("make the folder writable, or draw no plots (`repbench curve --no-plot`) or draw them into "
              "another folder (`repbench report RUN --plots DIR`)")


def _save(fig, path_stem: Path) -> list[Path]:
    out = []
    try:
        for ext in ("png", "svg"):
            p = path_stem.with_suffix(f".{ext}")
            clean_stale_tmp(p.parent, name=p.name)  # left by a killed writer of this figure
            with atomic_path(p) as tmp:
                fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
            out.append(p)
    except FilesystemError as e:
        if isinstance(e, DiskFullError):
            raise
        raise FilesystemError(e.message, where=e.where, hint=PLOTS_HINT) from None
    finally:
        plt.close(fig)
    return out


def _plain_log_axes(ax) -> None:
    """Log axes with plain numbers (100, 0.5) instead of 10^2, 5x10^-1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(fmt)
        axis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
        axis.set_minor_formatter(fmt)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """At least three plain tick values in [lo, hi] for a log axis: 1-2-5 steps, finer when the range is
    narrow, else three geometrically spaced values rounded to few significant digits."""
    import math

    if not (lo > 0 and hi > lo):
        return []
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    for subs in ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 8), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = sorted({float(f"{m * 10.0 ** e:.6g}") for e in decades for m in subs})
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 3:
            return ticks
    for digits in range(2, 8):  # the fewest significant digits that keep three distinct values
        ticks = sorted({float(f"{v:.{digits}g}") for v in np.geomspace(lo, hi, 5)[1:-1]})
        if len(ticks) >= 3:
            break
    return ticks


def _learning_curve_ticks(ax, sizes: list[int]) -> None:
    """x ticks at the training sizes; at least three labelled y values on the log axis."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    if sizes:
        ax.xaxis.set_major_locator(FixedLocator(sorted(sizes)))
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_locator(NullLocator())
        if len(sizes) > 6:
            ax.tick_params(axis="x", labelrotation=45)
    lo, hi = ax.get_ylim()
    ticks = _log_ticks(lo, hi)
    if ticks:
        ax.set_ylim(lo, hi)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(fmt)
        ax.yaxis.set_minor_locator(LogLocator(subs="all"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _label(curve: dict) -> str:
    return f"{curve['run']} ({curve['representation']})"


def learning_curves(curves: list[dict], path_stem: Path, metric: str = "mae") -> list[Path]:
    """One log-log learning-curve figure with one line per run (mean +- std over draws)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    units = sorted({c["report_unit"] for c in curves})
    for c in curves:
        n = np.array([s["size"] for s in c["sizes"]])
        m = np.array([s["mean_report"][metric] for s in c["sizes"]])
        sd = np.array([s["std_report"][metric] for s in c["sizes"]])
        ax.errorbar(n, m, yerr=sd, marker="o", capsize=3, label=_label(c))
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axes(ax)
    _learning_curve_ticks(ax, sorted({int(s["size"]) for c in curves for s in c["sizes"]}))
    ax.set_xlabel("training set size")
    ax.set_ylabel(f"test {metric.upper()} [{', '.join(units)}]")
    ds = sorted({c["dataset"] for c in curves})
    ts = curves[0].get("test_set") or {} if curves else {}
    split = "" if not isinstance(ts, dict) or ts.get("strategy", "random") == "random" else (
        f"\n{ts['strategy']} split" + (f" ({ts.get('group_by')}: {', '.join(map(str, ts.get('test_groups') or []))}"
                                        " held out)" if ts["strategy"] == "group" else
                                        f" (train {ts.get('size_by')} <= {ts.get('max_train_size')})"))
    ax.set_title(f"Learning curve: {', '.join(ds)} / {', '.join(sorted({c['target'] for c in curves}))}{split}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path_stem)


def pareto_front(cost: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Indices of points not dominated in (cost, error) (both minimised), sorted by cost."""
    order = np.lexsort((err, cost))
    front, best = [], np.inf
    for i in order:
        if err[i] < best:
            front.append(i)
            best = err[i]
    return np.array(front, dtype=int)


def error_vs_cost(points: list[dict], path_stem: Path, metric: str = "mae") -> list[Path]:
    """Scatter of test error against cost (seconds per structure for the representation + kernel row),
    one point per run at its largest training size, the Pareto front marked."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cost = np.array([p["cost_s"] for p in points])
    err = np.array([p["error"] for p in points])
    for p in points:
        ax.scatter(p["cost_s"], p["error"], s=40, zorder=3)
        ax.annotate(p["label"], (p["cost_s"], p["error"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if len(points):
        f = pareto_front(cost, err)
        ax.plot(cost[f], err[f], "k--", lw=1, label="Pareto front", zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axes(ax)
    ax.set_xlabel("cost: seconds per predicted structure (representation + kernel row)")
    units = sorted({p["unit"] for p in points})
    ax.set_ylabel(f"test {metric.upper()} [{', '.join(units)}]")
    ax.set_title("Error versus cost (largest training size)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path_stem)


def calibration(curves: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]], path_stem: Path,
                title: str = "") -> list[Path]:
    """Calibration plot: observed against nominal coverage of central predictive intervals, one line per
    run and training size (``curves[label][size] = (nominal, observed)``).  On the diagonal: calibrated;
    below: the intervals are too narrow (over-confident)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    for label, by_size in curves.items():
        for size, (nominal, observed) in sorted(by_size.items()):
            ax.plot(nominal, observed, marker="o", ms=3, label=f"{label}, n={size}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage on the test set")
    ax.set_title(title or "calibration of the predictive standard deviation", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path_stem)
