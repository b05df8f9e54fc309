"""matplotlib figures: learning curves (log-log, error bars over draws) and error versus cost.

Each figure is written as PNG and SVG.  The Agg backend is used so plots work on machines without a
display.  Readability: every run has its own (colour, marker) (:func:`run_styles`), the learning-curve legend
moves to the right of the axes when it would hide data (always for more than five runs), log-axis minor
labels are thinned by the span until no tick labels touch, and the error-versus-cost point labels are placed
where they hit no other label, point or the Pareto front (with a leader line when moved away).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
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


def _plain(v: float) -> str:
    """A plain number (0.5, 100, 0.00005): no exponent, at most four significant digits."""
    s = f"{v:.4g}"
    return np.format_float_positional(float(s), trim="-") if "e" in s else s


#: the minor-tick mantissas labelled on a log axis, finest first: each step drops labels until they fit
_MINOR_LABEL_LEVELS = ((2, 3, 5), (2, 5), ())


def _mantissa(v: float) -> float:
    import math

    return round(v / 10.0 ** math.floor(math.log10(v) + 1e-9), 6)


def _tick_label_extent_in(axis, texts: list[str]) -> float:
    """The largest extent of ``texts`` along ``axis`` in inches (width on x, height on y), estimated."""
    from matplotlib.font_manager import FontProperties

    which = "xtick" if axis.axis_name == "x" else "ytick"
    size = FontProperties(size=matplotlib.rcParams[f"{which}.labelsize"]).get_size_in_points()
    if axis.axis_name == "x":
        return max((0.62 * size * len(t) for t in texts), default=0.0) / 72
    return 1.25 * size / 72


def _auto_minor_level(axis) -> tuple:
    """The finest set of labelled minor mantissas whose labels do not run into each other, chosen by the
    axis' span in decades and its length: 2-3-5 on a narrow span, 2-5, then decades only when wide."""
    import math

    lo, hi = sorted(axis.get_view_interval())
    ax = axis.axes
    if not (lo > 0 and hi > lo):
        return _MINOR_LABEL_LEVELS[0]
    length_in = (ax.bbox.width if axis.axis_name == "x" else ax.bbox.height) / ax.figure.dpi
    if length_in <= 0:
        return _MINOR_LABEL_LEVELS[0]
    per_decade = length_in / math.log10(hi / lo)
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for subs in _MINOR_LABEL_LEVELS:
        vals = sorted({float(f"{m * 10.0 ** e:.6g}") for e in decades for m in (1, *subs)})
        vals = [v for v in vals if lo <= v <= hi]
        pos = [math.log10(v) * per_decade for v in vals]
        texts = [_plain(v) for v in vals]
        if axis.axis_name == "x":  # neighbours' half widths plus a gap
            ok = all(b - a >= (_tick_label_extent_in(axis, [s]) + _tick_label_extent_in(axis, [t])) / 2 + 0.08
                     for a, b, s, t in zip(pos, pos[1:], texts, texts[1:]))
        else:
            ok = all(b - a >= _tick_label_extent_in(axis, texts) + 0.03 for a, b in zip(pos, pos[1:]))
        if ok:
            return subs
    return ()


class _PlainLogFormatter(matplotlib.ticker.Formatter):
    """Plain numbers on a log axis.  As a minor formatter it labels only the mantissas of ``level`` (by
    default chosen from the axis' span, :func:`_auto_minor_level`), so wide spans do not crowd."""

    def __init__(self, minor: bool = False, level: tuple | None = None):
        self.minor = minor
        self.level = level

    def __call__(self, v, pos=None):
        if not v > 0:
            return ""
        if self.minor:
            level = self.level if self.level is not None else _auto_minor_level(self.axis)
            if not any(abs(_mantissa(v) - m) < 1e-6 for m in level):
                return ""
        return _plain(v)


def _plain_log_axes(ax) -> None:
    """Log axes with plain numbers (100, 0.5) instead of 10^2, 5x10^-1; minor ticks at 2, 3, 5, labelled
    as far as the axis' span leaves room (2-3-5, 2-5 or decades only)."""
    from matplotlib.ticker import LogLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(_PlainLogFormatter())
        axis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
        axis.set_minor_formatter(_PlainLogFormatter(minor=True))


def _overlapping(boxes) -> bool:
    boxes = [b for b in boxes if b.width > 0 and b.height > 0]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def _declutter_log_ticks(fig, ax) -> None:
    """Render and, on an axis whose tick labels still touch, label fewer minor ticks until none do."""
    import math

    from matplotlib.ticker import LogLocator, NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() != "log" or not isinstance(axis.get_minor_formatter(), _PlainLogFormatter):
            continue
        start = _auto_minor_level(axis)
        levels = _MINOR_LABEL_LEVELS[_MINOR_LABEL_LEVELS.index(start):] if start in _MINOR_LABEL_LEVELS \
            else _MINOR_LABEL_LEVELS
        for level in levels:
            axis.set_minor_formatter(_PlainLogFormatter(minor=True, level=level))
            fig.canvas.draw()
            if not _overlapping(_tick_label_boxes(fig, axis)):
                break
        else:  # even the decades crowd: label every other decade
            lo, hi = sorted(axis.get_view_interval())
            axis.set_minor_formatter(NullFormatter())
            axis.set_major_locator(LogLocator(numticks=max(2, int(math.log10(hi / lo) / 2) + 1)))


def _few_decades_ticks(ax) -> None:
    """On a log axis whose span holds fewer than three of 1, 2, 3, 5 x 10^k, label the values of
    :func:`_log_ticks` instead (as on the learning curves' error axis)."""
    import math

    from matplotlib.ticker import FixedLocator, LogLocator, NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        if axis.get_scale() != "log" or not (lo > 0 and hi > lo):
            continue
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        if sum(lo <= m * 10.0 ** e <= hi for e in decades for m in (1, 2, 3, 5)) >= 3:
            continue
        ticks = _log_ticks(lo, hi)
        if ticks:
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(_PlainLogFormatter())
            axis.set_minor_locator(LogLocator(subs="all"))
            axis.set_minor_formatter(NullFormatter())


def _tick_label_boxes(fig, axis) -> list:
    """The window extents of the visible, non-empty tick labels of ``axis`` (after a draw)."""
    renderer = fig.canvas.get_renderer()
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()):
        for t in ticks:
            lab = t.label1
            if lab.get_visible() and t.get_visible() and lab.get_text() and lo <= t.get_loc() <= hi:
                out.append(lab.get_window_extent(renderer))
    return out


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


#: markers and line styles of the runs after the first ten (the colours repeat every ten)
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
_LINESTYLES = ("-", "--", "-.", ":")


def run_styles(n: int) -> list[dict]:
    """A distinct look for each of ``n`` runs: the first ten are matplotlib's default (tab10 colours,
    circles, solid lines); each further ten get another marker and line style, alternately the light
    tab20 shade of the colour (edged with the dark one) and the dark one, so no two runs share (colour,
    marker) up to 120 runs."""
    tab10 = matplotlib.colormaps["tab10"].colors
    tab20 = matplotlib.colormaps["tab20"].colors
    out = []
    for i in range(n):
        k, j = divmod(i, 10)
        color = tab20[2 * j + 1] if k % 2 else tab10[j]
        out.append({"color": color, "marker": _MARKERS[k % len(_MARKERS)],
                    "linestyle": _LINESTYLES[k % len(_LINESTYLES)], "markeredgecolor": tab10[j]})
    return out


#: more runs than this: the learning-curve legend goes to the right of the axes
LEGEND_INSIDE_MAX = 5


def _legend_outside(fig, ax, legend_kw: dict):
    """Put the legend to the right of the axes and widen the figure by its width (the axes keep their
    size)."""
    old = ax.get_legend()
    if old is not None:
        old.remove()
    leg = ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **legend_kw)
    fig.canvas.draw()
    w_in, h_in = fig.get_size_inches()
    extra = leg.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi + 0.25
    pos = ax.get_position()
    fig.set_size_inches(w_in + extra, h_in)
    ax.set_position([pos.x0 * w_in / (w_in + extra), pos.y0, pos.width * w_in / (w_in + extra), pos.height])
    return leg


def _legend_hides(fig, ax, leg, xy: np.ndarray) -> bool:
    """Whether the legend's box covers any of the display points ``xy`` (data coordinates, n x 2)."""
    if leg is None or not len(xy):
        return False
    fig.canvas.draw()
    box = leg.get_window_extent(fig.canvas.get_renderer())
    d = ax.transData.transform(xy)
    return bool(np.any((d[:, 0] >= box.x0) & (d[:, 0] <= box.x1) & (d[:, 1] >= box.y0) & (d[:, 1] <= box.y1)))


def _curve_outline(n: np.ndarray, m: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Points along a learning curve (geometric steps between sizes) and the ends of its error bars."""
    pts = [np.column_stack([n, m]), np.column_stack([n, m + sd]),
           np.column_stack([n, np.clip(m - sd, 1e-300, None)])]
    for (n0, m0), (n1, m1) in zip(zip(n, m), zip(n[1:], m[1:])):
        if n0 > 0 and n1 > 0 and m0 > 0 and m1 > 0:
            t = np.linspace(0, 1, 25)
            pts.append(np.column_stack([n0 * (n1 / n0) ** t, m0 * (m1 / m0) ** t]))
    return np.concatenate(pts) if pts else np.empty((0, 2))


def learning_curves(curves: list[dict], path_stem: Path, metric: str = "mae") -> list[Path]:
    """One log-log learning-curve figure with one line per run (mean +- std over draws)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    units = sorted({c["report_unit"] for c in curves})
    outline = []
    for c, style in zip(curves, run_styles(len(curves))):
        n = np.array([s["size"] for s in c["sizes"]], dtype=float)
        m = np.array([s["mean_report"][metric] for s in c["sizes"]], dtype=float)
        sd = np.array([s["std_report"][metric] for s in c["sizes"]], dtype=float)
        ax.errorbar(n, m, yerr=sd, capsize=3, label=_label(c), **style)
        outline.append(_curve_outline(n, m, sd))
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
    # many runs: the legend to the right of the axes; few: inside where it hides nothing, else also outside
    if len(curves) > LEGEND_INSIDE_MAX:
        _legend_outside(fig, ax, {"fontsize": 8})
    elif curves:
        leg = ax.legend(fontsize=8)
        if _legend_hides(fig, ax, leg, np.concatenate(outline)):
            _legend_outside(fig, ax, {"fontsize": 8})
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


#: where a point's label may go, in points from the point, nearest first: (dx, dy, ha, va) on rings of
#: the radii below; a label off the first ring gets a thin leader line to its point
_LABEL_DIRECTIONS = ((1, 0.8, "left", "bottom"), (1, -0.8, "left", "top"), (-1, 0.8, "right", "bottom"),
                     (-1, -0.8, "right", "top"), (1.2, 0, "left", "center"), (-1.2, 0, "right", "center"),
                     (0, 1.2, "center", "bottom"), (0, -1.2, "center", "top"), (0.6, 1.2, "right", "bottom"),
                     (0.6, -1.2, "right", "top"), (-0.6, 1.2, "left", "bottom"), (-0.6, -1.2, "left", "top"))
_LABEL_RADII = (4, 10, 16, 24, 34, 46)


def _place_point_labels(fig, ax, xy: np.ndarray, labels: list[str], avoid: np.ndarray, fontsize: float = 7):
    """Annotate each point with its label at the nearest offset where the label (and its leader line)
    hits no other label, no point, none of the ``avoid`` points (data coordinates: the Pareto line), not
    the legend, stays inside the axes and is nearer its own point than any other.  Greedy, most crowded
    point first, then two passes that move each label given all the others.  Returns the annotations."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    leg = ax.get_legend()
    fixed = [leg.get_window_extent(renderer)] if leg is not None else []
    pt = fig.dpi / 72
    r_pt = 4.5 * pt  # a marker of s=40 has a radius of about 3.2 points
    pts = ax.transData.transform(xy) if len(xy) else np.empty((0, 2))
    line = ax.transData.transform(avoid) if len(avoid) else np.empty((0, 2))
    n = len(labels)
    boxes: list = [None] * n  # each placed label's box (padded)
    leads: list = [None] * n  # samples along each placed label's leader line

    def inside(p, bb, r):
        return (p[:, 0] > bb.x0 - r) & (p[:, 0] < bb.x1 + r) & (p[:, 1] > bb.y0 - r) & (p[:, 1] < bb.y1 + r)

    def box_dist(p, bb):
        dx = np.maximum(0, np.maximum(bb.x0 - p[:, 0], p[:, 0] - bb.x1))
        dy = np.maximum(0, np.maximum(bb.y0 - p[:, 1], p[:, 1] - bb.y1))
        return np.hypot(dx, dy)

    def cost(bb, own: int, leader) -> float:
        c = 0.0
        for j, o in enumerate(fixed + boxes):
            if o is None or j - len(fixed) == own:
                continue
            ix = min(bb.x1, o.x1) - max(bb.x0, o.x0)
            iy = min(bb.y1, o.y1) - max(bb.y0, o.y0)
            if ix > 0 and iy > 0:
                c += ix * iy + 200
            if leader is not None:  # the leader line must not cross labels
                c += 100 * inside(leader, o, 0).any()
        others = np.ones(n, dtype=bool)
        others[own] = False
        c += 400 * inside(pts[others], bb, r_pt).sum() + 30 * inside(line, bb, 1.5 * pt).sum()
        for j, s in enumerate(leads):
            if s is not None and j != own:
                c += 100 * inside(s, bb, 0.5 * pt).any()
        if others.any():
            d = box_dist(pts, bb)
            if d[others].min() < d[own]:  # nearer to another point: whose label is it?
                c += 150
            if leader is not None:  # the leader line must not pass other points
                gap = leader[:, None, :] - pts[others][None, :, :]
                dist = np.min(np.hypot(gap[..., 0], gap[..., 1]), axis=1)
                c += 300 * (dist < r_pt).sum()
        outside = (max(0, frame.x0 - bb.x0) + max(0, bb.x1 - frame.x1) + max(0, frame.y0 - bb.y0)
                   + max(0, bb.y1 - frame.y1))
        return c + 50 * outside

    def leader_line(p, bb) -> np.ndarray:
        """Samples from the point to the nearest point of the label's box."""
        q = np.array([min(max(p[0], bb.x0), bb.x1), min(max(p[1], bb.y0), bb.y1)])
        t = np.linspace(0, 1, 12)[:, None]
        return p + t * (q - p)

    probe = ax.annotate("", (0, 0), xytext=(0, 0), textcoords="offset points", fontsize=fontsize)
    choice: list = [None] * n

    def place(i):
        probe.set_text(labels[i])
        probe.xy = tuple(xy[i])
        best = None
        for k, r in enumerate(_LABEL_RADII):
            for dx, dy, ha, va in _LABEL_DIRECTIONS:
                probe.set_position((dx * r, dy * r))
                probe.set_ha(ha)
                probe.set_va(va)
                bb = probe.get_window_extent(renderer)
                lead = leader_line(pts[i], bb) if k else None
                c = cost(bb, i, lead) + 3 * k  # nearer rings first among equals
                if best is None or c < best[0]:
                    best = (c, (dx * r, dy * r), ha, va, k, bb.padded(1.0 * pt), lead)
            if best[0] < 3 * (k + 1):
                break
        choice[i], boxes[i], leads[i] = best[1:5], best[5], best[6]

    # the most crowded points first: they have the fewest free places
    d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1)) if n else np.empty((0, 0))
    order = np.argsort([np.sort(row)[1] if len(row) > 1 else 0 for row in d], kind="stable")
    for i in order:
        place(i)
    for _ in range(2):
        for i in order:
            place(i)
    probe.remove()
    anns = []
    for i in range(n):
        off, ha, va, k = choice[i]
        arrow = {"arrowstyle": "-", "color": "0.45", "lw": 0.6, "shrinkA": 0, "shrinkB": 4} if k else None
        anns.append(ax.annotate(labels[i], tuple(xy[i]), fontsize=fontsize, xytext=off,
                                textcoords="offset points", ha=ha, va=va, zorder=4, arrowprops=arrow))
    return anns


def error_vs_cost(points: list[dict], path_stem: Path, metric: str = "mae") -> list[Path]:
    """Scatter of test error against cost (seconds per structure for the representation + kernel row),
    one point per run at its largest training size, the Pareto front marked."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cost = np.array([p["cost_s"] for p in points], dtype=float)
    err = np.array([p["error"] for p in points], dtype=float)
    styles = run_styles(len(points))
    for p, style in zip(points, styles):
        ax.scatter(p["cost_s"], p["error"], s=40, zorder=3, color=style["color"], marker=style["marker"],
                   edgecolors=style["markeredgecolor"])
    front = np.empty((0, 2))
    if len(points):
        f = pareto_front(cost, err)
        ax.plot(cost[f], err[f], "k--", lw=1, label="Pareto front", zorder=2)
        if len(f) > 1:  # points along the front (geometric steps on the log axes) for the labels to avoid
            t = np.linspace(0, 1, 30)[:, None]
            front = np.concatenate([np.column_stack([c0 * (c1 / c0) ** t[:, 0], e0 * (e1 / e0) ** t[:, 0]])
                                    for c0, c1, e0, e1 in zip(cost[f], cost[f][1:], err[f], err[f][1:])
                                    if min(c0, c1, e0, e1) > 0])
    ax.set_xscale("log")
    ax.set_yscale("log")
    if len(points):  # room for the labels of the outermost points
        ax.margins(x=0.08, y=0.08)
    _plain_log_axes(ax)
    ax.set_xlabel("cost: seconds per predicted structure (representation + kernel row)")
    units = sorted({p["unit"] for p in points})
    ax.set_ylabel(f"test {metric.upper()} [{', '.join(units)}]")
    ax.set_title("Error versus cost (largest training size)")
    ax.grid(True, which="both", alpha=0.3)
    if len(points):
        ax.legend(fontsize=8)
        ax.set_xlim(ax.get_xlim())  # fixed before the labels are placed in display coordinates
        ax.set_ylim(ax.get_ylim())
        _few_decades_ticks(ax)
        _declutter_log_ticks(fig, ax)
        _place_point_labels(fig, ax, np.column_stack([cost, err]), [p["label"] for p in points], front)
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
