"""python -m benchmarks [--quick | --smoke] [--out FILE] [--only SECTIONS]

Measures everything in one process and one run, writes a YAML file and prints a table.  A comparison whose
implementations disagree fails (its section records the error, the exit status is 1) instead of reporting
a speed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import time
import traceback
from pathlib import Path

SECTIONS = ["matmul", "representations", "local_kernel", "curve", "float32", "memory",
            "length_scales", "krr", "peers", "soap_featomic", "tuning"]
#: Sections a plain run leaves out (ask for them with --only): tuning takes two arms of 20 minutes each
#: (full mode) and needs the NMD18 data ($REPBENCH_SHARED_DATA).
OPT_IN = {"tuning"}
NEEDS = {"curve": "local_kernel"}
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller sizes, about two minutes")
    g.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (for the test suite)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (default: benchmarks/results.yaml for the full run, "
                         "benchmarks/results-quick.yaml for --quick, none for --smoke)")
    ap.add_argument("--only", default=None, help=f"comma-separated sections out of: {', '.join(SECTIONS)} (default: all but "
                         f"{', '.join(sorted(OPT_IN))})")
    ap.add_argument("--show", type=Path, default=None, metavar="RESULTS",
                    help="measure nothing: print the table of an existing results file")
    ap.add_argument("--markdown", action="store_true", help="with --show: print Markdown tables")
    args = ap.parse_args(argv)
    if args.show is not None:
        return show(args.show, args.markdown)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    out = args.out
    if out is None and mode != "smoke":
        out = HERE / ("results.yaml" if mode == "full" else "results-quick.yaml")
    only = [s for s in SECTIONS if s not in OPT_IN] if args.only is None else \
        [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {', '.join(bad)}; allowed: {', '.join(SECTIONS)}")
    for s in list(only):
        if s in NEEDS and NEEDS[s] not in only:
            only.insert(only.index(s), NEEDS[s])

    import numpy as np
    import yaml
    from rich.console import Console

    from .suite import Suite
    from .util import clean, environment, load

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        console.print(f"[dim]{time.perf_counter() - t_start:7.1f}s[/] {msg}")

    cmd = "python -m benchmarks" + (f" --{mode}" if mode != "full" else "") + (
        f" --only {args.only}" if args.only else "")
    results: dict = {"meta": {"command": cmd, "mode": mode,
                              "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                              "load_1min_at_start": load(), **environment()}}
    suite = Suite(mode, log)
    failed = []
    log(f"mode {mode}; sections {', '.join(only)}; load {load()}")
    results["data"] = suite.prepare()
    # the matmul rates are the ceiling for every kernel section; measured first
    for sec in only:
        t0 = time.perf_counter()
        log(f"[bold]{sec}[/]")
        try:
            results[sec] = getattr(suite, sec)()
        except Exception as exc:  # noqa: BLE001 - a failed check must not hide the other sections
            failed.append(sec)
            results[sec] = {"error": f"{type(exc).__name__}: {exc}"}
            suite.row(sec, "FAILED", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}", status="FAILED")
            console.print(traceback.format_exc())
        if isinstance(results[sec], dict):
            results[sec]["section_seconds"] = round(time.perf_counter() - t0, 1)
    results["targets"] = suite.targets
    results["meta"]["load_1min_at_end"] = load()
    results["meta"]["total_seconds"] = round(time.perf_counter() - t_start, 1)
    results["meta"]["failed_sections"] = failed
    results["table"] = suite.rows

    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        with open(tmp, "w") as f:
            f.write(f"# written by `{cmd}` ({mode} mode); see benchmarks/README.md\n")
            yaml.safe_dump(clean(results), f, sort_keys=False, width=120, allow_unicode=True)
        os.replace(tmp, out)
    tty = Console()
    print_table(suite.rows, suite.targets, results["meta"],
                Console(highlight=False, width=None if tty.is_terminal else 180))
    if out is not None:
        log(f"results written to {out}")
    del np
    return 1 if failed else 0


def print_table(rows, targets, meta, console) -> None:
    from rich.table import Table

    t = Table(title=f"repbench benchmarks ({meta['mode']}; {meta['cpu']}, {meta['cores_available']} cores; "
                    f"load {meta['load_1min_at_start']} -> {meta['load_1min_at_end']})", show_lines=False)
    for c in ("section", "measurement", "repbench", "reference", "ratio", "target", "status"):
        t.add_column(c, overflow="fold")
    last = None
    for r in rows:
        sec = r["section"] if r["section"] != last else ""
        last = r["section"]
        st = r["status"]
        style = "green" if st.startswith("met") or st.startswith("equal") else "red" if st.startswith(("NOT", "FAIL")) else ""
        t.add_row(sec, r["what"], r["repbench"], r["reference"], r["ratio"], r["target"],
                  f"[{style}]{st}[/]" if style else st)
    console.print(t)
    if targets:
        s = Table(title="targets")
        for c in ("target", "value", "met", "detail"):
            s.add_column(c, overflow="fold")
        for v in targets.values():
            s.add_row(v["target"], f"{v['value']:.3g}", "[green]met[/]" if v["met"] else "[red]NOT met[/]",
                      v["detail"])
        console.print(s)


def show(path: Path, markdown: bool) -> int:
    import yaml
    from rich.console import Console

    res = yaml.safe_load(Path(path).read_text())
    if not markdown:
        print_table(res["table"], res["targets"], res["meta"], Console(highlight=False))
        return 0
    cols = ("section", "what", "repbench", "reference", "ratio", "target", "status")
    print("| " + " | ".join(("section", "measurement") + cols[2:]) + " |")
    print("|" + "---|" * len(cols))
    last = None
    for r in res["table"]:
        sec = r["section"] if r["section"] != last else ""
        last = r["section"]
        cells = [sec] + [str(r[c]).replace("|", "/") for c in cols[1:]]
        print("| " + " | ".join(cells) + " |")
    print()
    print("| target | value | met | detail |")
    print("|---|---|---|---|")
    for t in res["targets"].values():
        met = "met" if t["met"] else "**not met**"
        if "stretch_met" in t:
            met += f" (stretch {'met' if t['stretch_met'] else 'not met'})"
        print(f"| {t['target']} | {t['value']:.3g} | {met} | {t['detail']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
