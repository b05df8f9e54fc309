"""``repbench report``: compare runs in one table (rich, YAML, CSV or Markdown) and in plots.

The numbers come straight from each run's ``curve.yaml`` and ``timings.yaml`` (no recomputation), so
the table equals what those files hold.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .documents import read_curve, read_timings
from .errors import RunDirError
from .rundir import RunDir, clean_stale_tmp, dump_yaml, fs_error


def collect(run_paths: list[Path]) -> list[dict]:
    """One record per run with its curve and timings (runs without curve.yaml are an error)."""
    out = []
    for p in run_paths:
        rd = RunDir(p)
        rd.read_meta()
        curve = read_curve(rd)
        if curve is None:
            raise RunDirError("no curve.yaml yet", where=str(rd.path), hint="run `repbench curve` on it first")
        out.append({"path": str(rd.path), "curve": curve, "timings": read_timings(rd)})
    check_comparable(out)
    return out


def _quantity(curve: dict) -> str:
    ts = curve.get("test_set") or {}
    split = ts.get("strategy", "random") if isinstance(ts, dict) else "random"
    return (f"{curve['dataset']} {curve['target']} per {curve['per']} in {curve['report_unit']}, "
            f"{split} split")


def split_note(records: list[dict]) -> str:
    """", group split (spacegroup held out: 12)" etc. for titles; empty for the random split."""
    ts = (records[0]["curve"].get("test_set") or {}) if records else {}
    if not isinstance(ts, dict) or ts.get("strategy", "random") == "random":
        return ""
    if ts["strategy"] == "group":
        held = ts.get("test_groups")
        return f", group split ({ts.get('group_by')} held out{': ' + ', '.join(map(str, held)) if held else ''})"
    return f", size extrapolation (train {ts.get('size_by')} <= {ts.get('max_train_size')}, test larger)"


def check_comparable(records: list[dict]) -> None:
    """Refuse to put runs of different datasets, targets, units or split strategies on one axis (one
    table, one figure): their numbers would read as comparable when they are not."""
    kinds: dict[str, str] = {}
    for r in records:
        kinds.setdefault(_quantity(r["curve"]), r["path"])
    if len(kinds) > 1:
        (qa, pa), (qb, pb) = list(kinds.items())[:2]
        raise RunDirError(f"these runs measure different things and cannot share one table or axis: {pa} "
                          f"({qa}) and {pb} ({qb})",
                          hint="report each dataset, target and split strategy separately")


def rows(records: list[dict], metric: str = "mae") -> tuple[list[str], list[dict]]:
    """Table rows: run, dataset, representation, error at each size (mean +- std, report unit), timings."""
    sizes = sorted({s["size"] for r in records for s in r["curve"]["sizes"]})
    cols = ["run", "dataset", "target", "representation", "unit"]
    cols += [f"{metric}@{n}" for n in sizes] + [f"{metric}_std@{n}" for n in sizes]
    cols += ["rep_s_per_structure", "kernel_s", "kernel_size"]
    out = []
    for r in records:
        c, t = r["curve"], r["timings"]
        row = {"run": c["run"], "dataset": c["dataset"], "target": f"{c['target']} per {c['per']}",
               "representation": c["representation"], "unit": c["report_unit"]}
        by = {s["size"]: s for s in c["sizes"]}
        for n in sizes:
            row[f"{metric}@{n}"] = by[n]["mean_report"][metric] if n in by else None
            row[f"{metric}_std@{n}"] = by[n]["std_report"][metric] if n in by else None
        if t:
            row["rep_s_per_structure"] = t["representation_timing"]["per_structure_s"]
            last = t["sizes"][-1]
            row["kernel_s"] = last["kernel_train_train"]["min_s"]
            row["kernel_size"] = last["train_size"]
        else:
            row["rep_s_per_structure"] = row["kernel_s"] = row["kernel_size"] = None
        out.append(row)
    return cols, out


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render(records: list[dict], fmt: str, metric: str = "mae") -> str:
    cols, rs = rows(records, metric)
    if fmt == "yaml":
        return dump_yaml({"metric": metric, "rows": rs})
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for r in rs:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in cols})
        return buf.getvalue()
    if fmt == "markdown":
        show = [c for c in cols if "_std@" not in c]
        lines = ["| " + " | ".join(show) + " |", "|" + "|".join("---" for _ in show) + "|"]
        for r in rs:
            cells = []
            for c in show:
                if c.startswith(f"{metric}@") and r[c] is not None:
                    sd = r[c.replace("@", "_std@")]
                    cells.append(f"{r[c]:.4g} ± {sd:.2g}")
                else:
                    cells.append(_fmt(r[c]))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    raise ValueError(fmt)


def rich_table(records: list[dict], metric: str = "mae"):
    """A compact table for people: one row per run; dataset, target and units in the title."""
    from rich.table import Table

    cols, rs = rows(records, metric)
    sizes = [c.split("@")[1] for c in cols if c.startswith(f"{metric}@")]
    units = sorted({r["unit"] for r in rs})
    what = sorted({f"{r['dataset']} {r['target']}" for r in rs})
    from rich.markup import escape

    t = Table(title=escape(f"{'; '.join(what)}: test {metric.upper()} [{', '.join(units)}], "
                           f"mean ± std over draws{split_note(records)}"))
    t.add_column("run")
    t.add_column("repr.")
    for n in sizes:
        t.add_column(f"n={n}", justify="right")
    t.add_column("repr. ms/struct", justify="right")
    t.add_column("kernel s (n)", justify="right")
    for rec, r in zip(records, rs):
        draws = {str(s["size"]): len(s.get("draws") or []) for s in rec["curve"]["sizes"]}
        cells = [r["run"], r["representation"]]
        for n in sizes:
            v, sd = r[f"{metric}@{n}"], r[f"{metric}_std@{n}"]
            if v is not None and sd == 0 and draws.get(n, 0) > 1:
                # every draw is the whole pool: the draws are the same training set, not a spread of 0
                cells.append(f"{v:.4g} (draws coincide)")
            else:
                cells.append("-" if v is None else f"{v:.4g} ± {sd:.2g}")
        cells.append("-" if r["rep_s_per_structure"] is None else f"{r['rep_s_per_structure'] * 1e3:.3g}")
        cells.append("-" if r["kernel_s"] is None else f"{r['kernel_s']:.3g} ({r['kernel_size']})")
        t.add_row(*cells)
    return t


def cost_points(records: list[dict], metric: str = "mae") -> list[dict]:
    """(cost per structure, error at the largest size) for runs that have timings."""
    pts = []
    for r in records:
        c, t = r["curve"], r["timings"]
        if not t:
            continue
        last = c["sizes"][-1]
        tk = {s["train_size"]: s for s in t["sizes"]}
        n = last["size"]
        krow = tk.get(n) or t["sizes"][-1]
        kernel_per_pred = krow["kernel_test_train"]["min_s"] / max(1, krow["test_size"])
        cost = t["representation_timing"]["per_structure_s"] + kernel_per_pred
        pts.append({"label": c["run"], "cost_s": cost, "error": last["mean_report"][metric],
                    "unit": c["report_unit"]})
    return pts


#: the figures :func:`plot` writes (their temporary files, left by a killed report, are removed first)
FIGURES = ("learning_curves", "error_vs_cost")


def plot(records: list[dict], out_dir: Path, metric: str = "mae", learning_curves: bool = True) -> list[Path]:
    """learning_curves.* (unless ``learning_curves`` is false: `repbench run` draws the run's own
    learning_curve.* instead of an identical copy) and error_vs_cost.* into ``out_dir``."""
    from . import plots

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fs_error(e, out_dir, hint=plots.PLOTS_HINT) or e from None
    for stem in FIGURES:
        for ext in ("png", "svg"):
            clean_stale_tmp(out_dir, name=f"{stem}.{ext}")
    files = plots.learning_curves([r["curve"] for r in records], out_dir / "learning_curves", metric) \
        if learning_curves else []
    pts = cost_points(records, metric)
    if pts:
        files += plots.error_vs_cost(pts, out_dir / "error_vs_cost", metric)
    return files
