"""``repbench compare``: paired comparisons of runs on the same test set and the same training draws.

For each pair of runs and each training size both have, the difference of their test errors (MAE or RMSE,
pooled over draws and test structures) with a 95% bootstrap confidence interval that resamples test
structures and draws (:func:`repbench.stats.paired_difference`), in the unit users quote.  A difference
whose interval excludes zero is *resolved*.

Runs pair only when their data scope is the same (``data_hash``: dataset, splits, seed, so the same test
structures and the same training draws) and their stored test indices agree; anything else is refused
with a message that says what differs.
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path

import numpy as np

from .documents import read_curve, read_predictions
from .errors import RunDirError
from .rundir import RunDir, dump_yaml
from .stats import paired_difference


def _load(path: Path) -> dict:
    rd = RunDir(path)
    meta = rd.read_meta()
    curve = read_curve(rd)
    if curve is None:
        raise RunDirError("no curve.yaml yet", where=str(rd.path), hint="run `repbench curve` on it first")
    preds: dict[int, list[dict]] = {}
    for entry in curve["sizes"]:
        s = int(entry["size"])
        got = [read_predictions(rd, s, int(d["draw"]), curve["model_hash"]) for d in entry["draws"]]
        if any(g is None for g in got):
            raise RunDirError(f"no per-structure test predictions for training size {s} (the curve was made by "
                              "an older repbench, or its points belong to another model)", where=str(rd.path),
                              hint=f"delete {rd.curve_dir} and re-run `repbench curve {rd.path}`")
        preds[s] = got
    return {"path": str(rd.path), "name": curve["run"], "data_hash": meta.get("data_hash"), "curve": curve,
            "preds": preds}


def _check_pair(a: dict, b: dict) -> None:
    for key in ("dataset", "target", "per", "report_unit"):
        if a["curve"][key] != b["curve"][key]:
            raise RunDirError(f"{a['path']} and {b['path']} differ in {key} ({a['curve'][key]} vs "
                              f"{b['curve'][key]}): their errors are not comparable",
                              hint="compare runs of the same dataset, target and unit")
    if a["data_hash"] != b["data_hash"]:
        raise RunDirError(f"{a['path']} and {b['path']} were prepared for different data (dataset, splits or "
                          "seed differ), so their test sets and training draws are not the same",
                          hint="paired comparisons need runs prepared from the same dataset, splits and seed")
    for s in set(a["preds"]) & set(b["preds"]):
        for pa, pb in zip(a["preds"][s], b["preds"][s]):
            if not np.array_equal(pa["test"], pb["test"]) or not np.array_equal(pa["y"], pb["y"]):
                raise RunDirError(f"{a['path']} and {b['path']} hold different test structures at size {s}",
                                  hint="re-prepare both from the same dataset, splits and seed")
        if len(a["preds"][s]) != len(b["preds"][s]):
            raise RunDirError(f"{a['path']} and {b['path']} have different numbers of draws at size {s}",
                              hint="use the same splits.draws")


def _pair_row(a: dict, b: dict, s: int, metric: str, n_boot: int, level: float, seed: int) -> dict:
    f = a["curve"]["report_factor"]
    y = a["preds"][s][0]["y"] * f
    pa = np.stack([p["pred"] for p in a["preds"][s]]) * f
    pb = np.stack([p["pred"] for p in b["preds"][s]]) * f
    r = paired_difference(y, pa, pb, metric=metric, n_boot=n_boot, level=level, seed=seed)
    return {"a": a["name"], "b": b["name"], "size": s, "draws": int(pa.shape[0]),
            "n_test": int(y.size), "metric": metric, "unit": a["curve"]["report_unit"],
            f"{metric}_a": r.a, f"{metric}_b": r.b, "diff": r.diff, "ci_low": r.lo, "ci_high": r.hi,
            "level": level, "resolved": r.resolved,
            "verdict": ("a better" if r.better == "a" else "b better" if r.better == "b" else "not resolved")}


def _selected(common: set[int], sizes: list[int] | None, what: str) -> list[int]:
    """The training sizes to compare: all common ones, or the requested ones (each must be common)."""
    if not sizes:
        return sorted(common)
    missing = [s for s in sizes if s not in common]
    if missing:
        raise RunDirError(f"training size {missing[0]} is not in every run's curve ({what} have "
                          f"{', '.join(map(str, sorted(common))) or 'no size'} in common)",
                          hint="choose --size from the sizes all runs have")
    return sorted(set(sizes))


def _load_all(run_paths: list[Path]) -> list[dict]:
    if len(run_paths) < 2:
        raise RunDirError("compare needs at least two runs", hint="repbench compare RUN_A RUN_B ...")
    runs = [_load(Path(p)) for p in run_paths]
    for a, b in itertools.combinations(runs, 2):
        _check_pair(a, b)
    return runs


def compare(run_paths: list[Path], metric: str = "mae", n_boot: int = 2000, level: float = 0.95,
            seed: int = 0, sizes: list[int] | None = None) -> list[dict]:
    """One row per (pair of runs, common training size); see the module docstring.  ``sizes``: only these
    training sizes (each must be in both runs of every pair)."""
    runs = _load_all(run_paths)
    rows = []
    for a, b in itertools.combinations(runs, 2):
        for s in _selected(set(a["preds"]) & set(b["preds"]), sizes, f"{a['path']} and {b['path']}"):
            rows.append(_pair_row(a, b, s, metric, n_boot, level, seed))
    return rows


def ranking(run_paths: list[Path], metric: str = "mae", n_boot: int = 2000, level: float = 0.95,
            seed: int = 0, sizes: list[int] | None = None) -> list[dict]:
    """The runs ranked by their error at each training size common to all, each compared with the next in
    rank (paired difference and interval, as :func:`compare`), and how many of all pairs are resolved.

    One row per (size, run): ``rank``, ``run``, the metric, ``next`` (the run ranked below), ``diff`` (this
    run minus the next: negative), ``ci_low``, ``ci_high``, ``resolved``; ``resolved_pairs`` and ``pairs``
    count all pairs at that size (a ranking is conclusive where every neighbour difference is resolved)."""
    runs = _load_all(run_paths)
    common = set.intersection(*(set(r["preds"]) for r in runs))
    rows = []
    for s in _selected(common, sizes, "the runs"):
        pairs = {(a["name"], b["name"]): _pair_row(a, b, s, metric, n_boot, level, seed)
                 for a, b in itertools.combinations(runs, 2)}
        value = {}
        for (na, nb), r in pairs.items():
            value[na], value[nb] = r[f"{metric}_a"], r[f"{metric}_b"]
        order = sorted(runs, key=lambda r: value[r["name"]])
        n_resolved = sum(r["resolved"] for r in pairs.values())
        for i, run in enumerate(order):
            row = {"size": s, "rank": i + 1, "run": run["name"], metric: value[run["name"]],
                   "unit": run["curve"]["report_unit"], "next": "", "diff": None, "ci_low": None,
                   "ci_high": None, "resolved": None, "level": level, "resolved_pairs": n_resolved,
                   "pairs": len(pairs)}
            if i + 1 < len(order):
                nxt = order[i + 1]["name"]
                r = pairs.get((run["name"], nxt))
                sign = 1.0
                if r is None:
                    r, sign = pairs[(nxt, run["name"])], -1.0
                lo, hi = sorted((sign * r["ci_low"], sign * r["ci_high"]))
                row.update({"next": nxt, "diff": sign * r["diff"], "ci_low": lo, "ci_high": hi,
                            "resolved": r["resolved"]})
            rows.append(row)
    return rows


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v)


def render_ranking(rows: list[dict], fmt: str) -> str:
    """yaml, csv or markdown text of :func:`ranking`'s rows (markdown: one table per size, and the count of
    resolved pairs under it)."""
    if fmt in ("yaml", "csv"):
        return render(rows, fmt)
    out = []
    for s in sorted({r["size"] for r in rows}):
        rs = [r for r in rows if r["size"] == s]
        m = next(k for k in ("mae", "rmse") if k in rs[0])
        pct = int(round(100 * rs[0]["level"]))
        out.append(f"Training size {s}, test {m.upper()} [{rs[0]['unit']}]:\n")
        out.append(f"| rank | run | {m} | next in rank | {m} - next | {pct}% interval | resolved |")
        out.append("|---|---|---|---|---|---|---|")
        for r in rs:
            ci = f"[{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]" if r["diff"] is not None else ""
            diff = f"{r['diff']:+.3g}" if r["diff"] is not None else ""
            res = "" if r["resolved"] is None else "yes" if r["resolved"] else "no"
            out.append(f"| {r['rank']} | {r['run']} | {r[m]:.4g} | {r['next']} | {diff} | {ci} | {res} |")
        out.append(f"\n{rs[0]['resolved_pairs']} of {rs[0]['pairs']} pairs resolved at size {s}.\n")
    return "\n".join(out)


def render(rows: list[dict], fmt: str) -> str:
    """yaml, csv or markdown text of :func:`compare`'s rows."""
    if fmt == "yaml":
        return dump_yaml(rows)
    keys = list(rows[0]) if rows else []
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def rich_ranking(rows: list[dict]):
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for s in sorted({r["size"] for r in rows}):
        rs = [r for r in rows if r["size"] == s]
        m = next(k for k in ("mae", "rmse") if k in rs[0])
        t = Table(title=escape(f"ranking at training size {s}: test {m.upper()} [{rs[0]['unit']}], each run "
                               f"against the next ({int(round(100 * rs[0]['level']))}% bootstrap interval); "
                               f"{rs[0]['resolved_pairs']} of {rs[0]['pairs']} pairs resolved"))
        for c in ("rank", "run", m, "next", "this - next", "interval", "resolved"):
            t.add_column(c, justify="left" if c in ("run", "next", "resolved") else "right")
        for r in rs:
            done = r["diff"] is not None
            t.add_row(str(r["rank"]), r["run"], f"{r[m]:.4g}", r["next"],
                      f"{r['diff']:+.3g}" if done else "",
                      escape(f"[{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]") if done else "",
                      ("[green]yes[/]" if r["resolved"] else "[yellow]no[/]") if done else "")
        tables.append(t)
    return tables


def rich_table(rows: list[dict]):
    from rich.markup import escape
    from rich.table import Table

    m = rows[0]["metric"] if rows else "mae"
    unit = rows[0]["unit"] if rows else ""
    level = int(round(100 * rows[0]["level"])) if rows else 95
    t = Table(title=escape(f"paired differences of test {m.upper()} [{unit}]: A - B, {level}% bootstrap "
                           "interval (test structures and draws resampled)"))
    for c in ("A", "B", "n", f"{m} A", f"{m} B", "A - B", "interval", "verdict"):
        t.add_column(c, justify="left" if c in ("A", "B", "verdict") else "right")
    for r in rows:
        style = "green" if r["resolved"] else "yellow"
        t.add_row(r["a"], r["b"], str(r["size"]), f"{r[f'{m}_a']:.4g}", f"{r[f'{m}_b']:.4g}",
                  f"{r['diff']:+.3g}", escape(f"[{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]"),
                  f"[{style}]{r['verdict']}[/]")
    return t
