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
from .rundir import RunDir, dump_yaml


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
    return out


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
                           "mean ± std over draws"))
    t.add_column("run")
    t.add_column("repr.")
    for n in sizes:
        t.add_column(f"n={n}", justify="right")
    t.add_column("repr. ms/struct", justify="right")
    t.add_column("kernel s (n)", justify="right")
    for r in rs:
        cells = [r["run"], r["representation"]]
        for n in sizes:
            v, sd = r[f"{metric}@{n}"], r[f"{metric}_std@{n}"]
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


def plot(records: list[dict], out_dir: Path, metric: str = "mae") -> list[Path]:
    from . import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    files = plots.learning_curves([r["curve"] for r in records], out_dir / "learning_curves", metric)
    pts = cost_points(records, metric)
    if pts:
        files += plots.error_vs_cost(pts, out_dir / "error_vs_cost", metric)
    return files
