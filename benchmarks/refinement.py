"""KRR refinement at one NMD18 SOAP learning-curve point: kernel passes and minutes, walk settings compared.

    REPBENCH_SHARED_DATA=../shared/data python -m benchmarks.refinement [--size 1600] [--out FILE]

One point of the full NMD18 SOAP protocol (configs/nmd18/soap.yaml: 600 drawn test crystals, training size
1,600, 3 inner folds) with the SOAP, kernel and starting length scale of the committed reduced-budget run's
``tune/best.yaml`` (results/runs/nmd18-soap), refined by ``repbench curve`` three times, each in a fresh run
directory (no cached kernels shared between them):

* ``lookahead 1``: the neighbour-by-neighbour walk of the length scale (one new grid point per kernel pass,
  what repbench did before Step 11);
* ``lookahead 2`` (today's default): each pass computes two further grid points in the walking direction
  with the multi-length-scale kernel (one distance pass for several length scales);
* ``lookahead 2, flat_tol 1e-4``: and stop when a pass improves the validation loss by less than 1e-4
  (relative).

Recorded per setting: kernel passes (calls of the kernel bank: each computes one or several length scales
in one distance pass), length scales evaluated, refinement wall seconds, the refined (length scale, regularisation) and the test MAE.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"lookahead 1": {"lookahead": 1}, "lookahead 2 (default)": {},
            "lookahead 2, flat_tol 1e-4": {"flat_tol": 1e-4}}


def config(data: Path, size: int, krr_extra: dict) -> dict:
    cfg = yaml.safe_load((ROOT / "configs" / "nmd18" / "soap.yaml").read_text())
    best = yaml.safe_load((ROOT / "results" / "runs" / "nmd18-soap" / "tune" / "best.yaml").read_text())
    cfg["name"] = "bench-refinement"
    cfg["dataset"]["path"] = str(data / "nmd18")
    cfg["splits"].update({"train_sizes": [size], "draws": 1})
    cfg["representation"] = best["representation"]
    cfg["kernel"] = {k: v for k, v in best["kernel"].items() if k != "block_mb"}
    cfg["krr"] = {**cfg.get("krr", {}), "length_scale": best["krr"]["length_scale"], **krr_extra}
    cfg.pop("tune", None)
    return cfg


def measure(data: Path, size: int, name: str, extra: dict, work: Path) -> dict:
    from repbench import workspace
    from repbench.curve import run_curve
    from repbench.prepare import prepare

    doc = config(data, size, extra)
    path = work / f"{len(os.listdir(work))}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    rd, _ = prepare(path, work / path.stem)
    seen: list[dict] = []
    orig = workspace.Workspace.refine

    def refine(self, model, bank, pool, folds, krr_cfg, ls_start=None):
        t0 = time.perf_counter()
        res = orig(self, model, bank, pool, folds, krr_cfg, ls_start)
        seen.append({"train": len(pool), "seconds": time.perf_counter() - t0,
                     "kernel_passes": res.n_kernel_calls, "length_scales": res.n_kernel_evals,
                     "ls_start": ls_start, "ls": res.ls, "reg": res.reg, "stopped_flat": res.stopped_flat})
        return res

    workspace.Workspace.refine = refine
    try:
        t0 = time.perf_counter()
        run_curve(rd, progress=False)
        total = time.perf_counter() - t0
    finally:
        workspace.Workspace.refine = orig
    pts = yaml.safe_load((rd.path / "curve.yaml").read_text())
    mae = next(e for e in pts["sizes"] if e["size"] == size)["mean_report"]["mae"]
    big = [s for s in seen if s["train"] == max(x["train"] for x in seen)]
    return {"setting": name, "krr": extra, "curve_seconds": round(total, 1),
            "refinement": [{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in s.items()} for s in big],
            "mae_meV_per_cation": round(mae, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.refinement", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1600)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results-refinement.yaml")
    args = ap.parse_args(argv)
    shared = os.environ.get("REPBENCH_SHARED_DATA")
    if not shared:
        print("set REPBENCH_SHARED_DATA to the folder holding nmd18/", file=sys.stderr)
        return 2
    out = {"command": "python -m benchmarks.refinement" + (f" --size {args.size}" if args.size != 1600 else ""),
           "size": args.size, "load_1min_at_start": os.getloadavg()[0], "settings": []}
    with tempfile.TemporaryDirectory(prefix="bench-refine-") as tmp:
        for name, extra in SETTINGS.items():
            r = measure(Path(shared).resolve(), args.size, name, extra, Path(tmp))
            print(yaml.safe_dump(r, sort_keys=False), flush=True)
            out["settings"].append(r)
    out["load_1min_at_end"] = os.getloadavg()[0]
    args.out.write_text(f"# written by `{out['command']}`; see benchmarks/refinement.py\n"
                        + yaml.safe_dump(out, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
