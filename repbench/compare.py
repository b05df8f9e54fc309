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


def compare(run_paths: list[Path], metric: str = "mae", n_boot: int = 2000, level: float = 0.95,
            seed: int = 0) -> list[dict]:
    """One row per (pair of runs, common training size); see the module docstring."""
    if len(run_paths) < 2:
        raise RunDirError("compare needs at least two runs", hint="repbench compare RUN_A RUN_B ...")
    runs = [_load(Path(p)) for p in run_paths]
    rows = []
    for a, b in itertools.combinations(runs, 2):
        _check_pair(a, b)
        f = a["curve"]["report_factor"]
        for s in sorted(set(a["preds"]) & set(b["preds"])):
            y = a["preds"][s][0]["y"] * f
            pa = np.stack([p["pred"] for p in a["preds"][s]]) * f
            pb = np.stack([p["pred"] for p in b["preds"][s]]) * f
            r = paired_difference(y, pa, pb, metric=metric, n_boot=n_boot, level=level, seed=seed)
            rows.append({"a": a["name"], "b": b["name"], "size": s, "draws": int(pa.shape[0]),
                         "n_test": int(y.size), "metric": metric, "unit": a["curve"]["report_unit"],
                         f"{metric}_a": r.a, f"{metric}_b": r.b, "diff": r.diff, "ci_low": r.lo, "ci_high": r.hi,
                         "level": level, "resolved": r.resolved,
                         "verdict": ("a better" if r.better == "a" else "b better" if r.better == "b"
                                     else "not resolved")})
    return rows


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


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
