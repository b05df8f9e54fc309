"""Benchmark section ``tuning``: plain TPE against multi-fidelity TPE at equal wall time.

Both arms tune NMD18 formation energy with SOAP over the *full* search space of ``configs/nmd18/soap.yaml``
(cutoff 2-10 A, n_max 2-8, l_max 1-8, sigma 2^-4..2 A), the same seed (so the same random start-up trials),
the same tuning set and folds, through ``repbench.tuning.run_tune`` (the code path of ``repbench tune``),
one after the other in one process:

* plain: every trial is evaluated on the full tuning folds;
* multi-fidelity: ``tune.fidelity`` rungs (training sizes per fold) and optuna's successive-halving pruner
  (reduction factor 2); a pruned trial stops at its rung.

Each arm runs for ``seconds`` of wall time (optuna's ``timeout``: the trial running at the deadline is
finished).  Recorded per trial: wall and CPU seconds (``cpu_s``: the tuning process's threads and its
finished representation workers), state, rung and loss.  The comparison uses the best validation loss of
*complete* trials (full fidelity) against cumulative CPU seconds: the CPU seconds the multi-fidelity arm
needs to reach the plain arm's final best loss, as a fraction of the plain arm's total.

The tuning set is the reduced-budget one (``configs/nmd18/small/soap.yaml``: 300 + 100 structures, 2
folds): with the full config's 1,000 + 250 x 3 folds a trial at the top of the search space takes longer
than ten minutes on 2 cores, and a 20-minute arm would hold a handful of trials.  The data is the shared
NMD18 folder ($REPBENCH_SHARED_DATA/nmd18); without it the section is skipped with that reason.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .util import load, sig

ROOT = Path(__file__).resolve().parents[1]

#: Per mode: wall seconds per arm, the tuning set (and a subset for smoke), the fidelity rungs.
SETTINGS = {
    "full": {"seconds": 1200, "subset": None, "tune_train": 300, "tune_val": 100, "fidelity": [75, 150]},
    "quick": {"seconds": 150, "subset": None, "tune_train": 300, "tune_val": 100, "fidelity": [75, 150]},
    "smoke": {"seconds": 8, "subset": 200, "tune_train": 40, "tune_val": 20, "fidelity": [10, 20],
              "space": {"r_cut": {"uniform": [3.0, 4.0]}, "n_max": {"int": [2, 3]}, "l_max": {"int": [1, 2]},
                        "sigma": {"loggrid": [-1, 0, 2]}, "rbf": "gto"}},
}


def arm_config(mode: str, data: Path, fidelity: bool) -> dict:
    """The config of one arm: configs/nmd18/soap.yaml with the benchmark's tuning set and budget."""
    s = SETTINGS[mode]
    cfg = yaml.safe_load((ROOT / "configs" / "nmd18" / "soap.yaml").read_text())
    cfg["name"] = f"bench-tuning-{'fidelity' if fidelity else 'plain'}"
    cfg["dataset"]["path"] = str(data / "nmd18")
    if s["subset"]:
        cfg["dataset"]["subset"] = s["subset"]
    small = s["tune_train"] + s["tune_val"]
    cfg["splits"].update({"test": max(20, small // 4), "train_sizes": [small // 4, small // 2, small],
                          "draws": 1, "tune_train": s["tune_train"], "tune_val": s["tune_val"],
                          "inner_folds": 2})
    if "space" in s:
        cfg["representation"]["soap"] = dict(s["space"])
    # the arms differ only in the rungs: the full config's own multi-fidelity and float32 trial kernels are
    # taken out, and the start-up trials stay those of the committed results (20)
    for key in ("fidelity", "pruner", "kernel_dtype"):
        cfg["tune"].pop(key, None)
    cfg["tune"].update({"trials": 100000, "timeout": None, "n_startup_trials": 20})
    if fidelity:
        cfg["tune"].update({"fidelity": list(s["fidelity"]), "pruner": "successive_halving"})
    return cfg


def trajectory(trials: list[dict]) -> list[dict]:
    """Cumulative wall and CPU seconds at each finished trial (in completion order) and the best complete
    loss so far."""
    out, cpu, best = [], 0.0, float("inf")
    t0 = min((t["start"] for t in trials), default=0.0)
    for t in sorted(trials, key=lambda t: t["end"]):
        cpu += t["cpu_s"] or 0.0
        if t["state"] == "COMPLETE" and t["loss"] is not None:
            best = min(best, t["loss"])
        out.append({"wall_s": sig(t["end"] - t0), "cpu_s": sig(cpu), "best_loss": sig(best) if best < np.inf
                    else None, "state": t["state"], "rung": t["rung"]})
    return out


def first_reaching(traj: list[dict], loss: float, key: str) -> float | None:
    """Cumulative ``key`` seconds at which the best loss first is <= ``loss`` (None: never)."""
    for p in traj:
        if p["best_loss"] is not None and p["best_loss"] <= loss * (1 + 1e-12):
            return p[key]
    return None


def run_arm(mode: str, data: Path, fidelity: bool, workdir: Path, log) -> dict[str, Any]:
    from repbench.prepare import prepare
    from repbench.rundir import RunDir
    from repbench.tuning import open_study, run_tune

    cfg_doc = arm_config(mode, data, fidelity)
    path = workdir / f"{cfg_doc['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg_doc, sort_keys=False))
    rd, _ = prepare(path, workdir / cfg_doc["name"])
    seconds = SETTINGS[mode]["seconds"]
    log(f"tuning: {'multi-fidelity' if fidelity else 'plain'} TPE for {seconds} s (load {load()})")
    c0 = os.times()
    t0 = time.perf_counter()
    run_tune(rd, timeout=seconds, show_progress=False)
    wall = time.perf_counter() - t0
    c1 = os.times()
    cfg = RunDir(rd.path).config()
    study = open_study(rd, cfg)
    trials = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_complete is None:
            continue
        trials.append({"number": t.number, "state": t.state.name, "loss": t.value if t.state.name == "COMPLETE"
                       else None, "rung": t.user_attrs.get("rung"), "cpu_s": t.user_attrs.get("cpu_s"),
                       "wall_s": t.user_attrs.get("duration_s"), "start": t.datetime_start.timestamp(),
                       "end": t.datetime_complete.timestamp(),
                       "params": {k: (sig(v) if isinstance(v, float) else v) for k, v in t.params.items()}})
    traj = trajectory(trials)
    states = [t["state"] for t in trials]
    rungs: dict[str, int] = {}
    for t in trials:
        if t["state"] in ("COMPLETE", "PRUNED"):
            rungs[str(t["rung"])] = rungs.get(str(t["rung"]), 0) + 1
    complete = [t["loss"] for t in trials if t["state"] == "COMPLETE"]
    return {"config": {k: cfg_doc[k] for k in ("splits", "representation", "tune")},
            "wall_s": sig(wall), "cpu_s": sig(c1.user + c1.system + c1.children_user + c1.children_system
                                               - c0.user - c0.system - c0.children_user - c0.children_system),
            "trials": {"complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
                       "failed": states.count("FAIL")},
            "stopped_at_rung": rungs, "best_loss": sig(min(complete)) if complete else None,
            "trajectory": traj, "trial_list": trials}


def plot(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in ("plain", "multi_fidelity"):
        pts = [(p["cpu_s"], p["best_loss"]) for p in res[name]["trajectory"] if p["best_loss"] is not None]
        if pts:
            x, y = zip(*pts)
            ax.step(x, np.asarray(y) * 1000, where="post",
                    label=f"{name.replace('_', '-')} TPE ({res[name]['trials']['complete']} complete, "
                          f"{res[name]['trials']['pruned']} pruned)")
    ax.set_xlabel("CPU seconds (cumulative over trials)")
    ax.set_ylabel("best validation RMSE (meV/cation)")
    ax.set_title("NMD18 SOAP, full search space: plain vs multi-fidelity TPE", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def replot(results: Path, out: Path) -> None:
    """The figure again from a results file (``python -c "from benchmarks.tuning import replot; ..."``)."""
    plot(yaml.safe_load(Path(results).read_text())["tuning"], out)


def tuning(suite) -> dict[str, Any]:
    """The section (called by ``Suite.tuning``)."""
    shared = os.environ.get("REPBENCH_SHARED_DATA")
    if not shared or not (Path(shared) / "nmd18").is_dir():
        suite.row("tuning", "plain vs multi-fidelity TPE, NMD18 SOAP", "", "", status="skipped")
        return {"available": False, "reason": "needs the NMD18 data: set REPBENCH_SHARED_DATA to the folder "
                                              "holding nmd18/"}
    data = Path(shared).resolve()
    res: dict[str, Any] = {"available": True, "note": __doc__.split("\n\n")[1].replace("\n", " ")}
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        for key, fid in (("plain", False), ("multi_fidelity", True)):
            res[key] = run_arm(suite.mode, data, fid, Path(tmp), suite.log)
    plain, mf = res["plain"], res["multi_fidelity"]
    target = plain["best_loss"]
    reach_cpu = first_reaching(mf["trajectory"], target, "cpu_s") if target is not None else None
    reach_wall = first_reaching(mf["trajectory"], target, "wall_s") if target is not None else None
    plain_reach = first_reaching(plain["trajectory"], target, "cpu_s") if target is not None else None
    frac = reach_cpu / plain["cpu_s"] if reach_cpu is not None and plain["cpu_s"] else None
    res["comparison"] = {
        "plain_final_loss": target, "multi_fidelity_final_loss": mf["best_loss"],
        "multi_fidelity_cpu_s_to_plain_final": reach_cpu, "multi_fidelity_wall_s_to_plain_final": reach_wall,
        "plain_cpu_s_to_its_final": plain_reach, "plain_cpu_s_total": plain["cpu_s"],
        "fraction_of_plain_cpu": sig(frac) if frac is not None else None}
    for key, name in (("plain", "plain TPE"), ("multi_fidelity", "multi-fidelity TPE")):
        a = res[key]
        suite.row("tuning", f"{name}: {a['trials']['complete']} complete, {a['trials']['pruned']} pruned, "
                            f"{a['trials']['failed']} failed in {a['wall_s']:.0f} s wall",
                  f"best val. RMSE {a['best_loss'] * 1000:.2f} meV/cation" if a["best_loss"] else "no complete trial",
                  f"{a['cpu_s']:.0f} CPU s")
    detail = (f"multi-fidelity reached plain's final {target * 1000:.2f} meV/cation after {reach_cpu} CPU s of "
              f"plain's {plain['cpu_s']}" if reach_cpu is not None and target is not None else
              "multi-fidelity did not reach plain's final loss within its time")
    status = suite.target("tuning_fidelity_fraction", frac if frac is not None else float("inf"), detail)
    suite.row("tuning", "CPU time of multi-fidelity to reach plain TPE's final loss / plain's total",
              f"{frac:.2f}" if frac is not None else "not reached", target="<= 0.33", status=status)
    if suite.mode != "smoke":
        out = Path(__file__).resolve().parent / f"tuning-{suite.mode}.png"
        plot(res, out)
        res["figure"] = str(out.relative_to(ROOT))
    for key in ("plain", "multi_fidelity"):
        for t in res[key]["trial_list"]:
            t.pop("start"), t.pop("end")
    return res
