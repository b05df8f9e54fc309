"""Upgrade run directories written by an older repbench (run.yaml ``format_version`` 1) in place.

Format 1 tied every document to one hash of the whole config (``config_hash``); format 2 scopes them
(:mod:`repbench.documents`): ``data.h5`` by the data hash (unchanged formula), the study and
``tune/best.yaml`` by the study hash, curve points and timings by the model hash.  A format-1 document that
carried the run's old config hash was valid for that config, so it is valid for the same config under the
new scopes: it is rewritten with the new hashes, nothing is recomputed.  Documents that did not match
(stale) are left alone and recomputed later as before.  The optuna study keeps its old name: run.yaml's
``studies`` maps the new study hash to it.  run.yaml is written last, so an interrupted upgrade runs again.
"""

from __future__ import annotations

import logging

from .canonical import canonical_hash
from .errors import ConfigError, RunDirError
from .rundir import RunDir, lock, read_yaml, write_yaml

log = logging.getLogger("repbench")


def legacy_hash(config: dict) -> str:
    """Format 1's ``config_hash``: the whole config but ``name`` and three tuning run-time options."""
    d = dict(config)
    d.pop("name", None)
    d["tune"] = {k: v for k, v in d["tune"].items() if k not in ("timeout", "trial_timeout", "jobs")}
    return canonical_hash(d)


def legacy_model_hash(old_hash: str, representation, kernel, length_scale, regularization) -> str:
    return canonical_hash({"config": old_hash, "model": {"representation": representation, "kernel": kernel,
                                                         "length_scale": length_scale,
                                                         "regularization": regularization}})


def open_run(path) -> RunDir:
    """The run directory at ``path``, upgraded to the current format if an older repbench wrote it."""
    from .rundir import UPGRADABLE

    run = RunDir(path)
    if run.run_yaml.exists():
        try:
            meta = read_yaml(run.run_yaml)
        except RunDirError:
            return run  # read_meta reports it
        if isinstance(meta, dict) and meta.get("format_version") in UPGRADABLE:
            upgrade(run)
    return run


def upgrade(run: RunDir) -> None:
    """Upgrade ``run`` from format 1 to the current format (no-op if another process already did)."""
    from . import config as C
    from .documents import FORMAT
    from .models.model import Model
    from .space import find_leaves

    with lock(run.path, "upgrade", wait=True):
        meta = read_yaml(run.run_yaml)
        if not isinstance(meta, dict) or meta.get("format_version") != 1:
            return
        old = meta.get("config")
        try:
            old_hash = legacy_hash(old)
            cfg = C.from_dict(old, str(run.run_yaml))
        except (ConfigError, AttributeError, KeyError, TypeError) as e:
            msg = e.message if isinstance(e, ConfigError) else f"{e.__class__.__name__}: {e}"
            raise RunDirError(f"run.yaml of format 1 cannot be upgraded: {msg}", where=str(run.run_yaml),
                              hint="re-create the run with `repbench prepare CONFIG --force`") from None
        model = None
        best = read_yaml(run.best_yaml) if run.best_yaml.exists() else None
        if isinstance(best, dict) and best.get("config_hash") == old_hash:
            ls, reg = best["krr"]["length_scale"], best["krr"]["regularization"]
            old_mh = legacy_model_hash(old_hash, best["representation"], best["kernel"], ls, reg)
            model = Model.from_config(cfg, representation=best["representation"], kernel=best["kernel"],
                                      length_scale=ls, regularization=reg, source="tune/best.yaml")
            best.pop("config_hash")
            write_yaml(run.best_yaml, {"format": FORMAT, "study_hash": cfg.study_hash(), **best},
                       header="# best configuration found by `repbench tune`; `repbench curve` uses it")
        elif best is None and not find_leaves({"r": old["representation"], "k": old["kernel"]}):
            ls, reg = cfg.krr["length_scale"], cfg.krr["regularization"]
            old_mh = legacy_model_hash(old_hash, old["representation"], old["kernel"], ls, reg)
            model = Model.from_config(cfg, length_scale=ls, regularization=reg)
        if model is not None:
            new_mh = model.hash(cfg)
            for p in sorted(run.curve_dir.glob("*.yaml")) if run.curve_dir.is_dir() else []:
                try:
                    doc = read_yaml(p)
                except RunDirError:
                    continue
                if isinstance(doc, dict) and doc.get("model_hash") == old_mh:
                    doc["model_hash"] = new_mh
                    write_yaml(p, {"format": FORMAT, **doc, "at_bound": doc.get("at_bound", [])})
            for p, head in ((run.curve_yaml, "# learning curve written by `repbench curve`; format documented "
                                             "in docs/formats.md"),
                            (run.timings_yaml, "# timings written by `repbench time`; seconds; format "
                                               "documented in docs/formats.md")):
                if not p.exists():
                    continue
                try:
                    doc = read_yaml(p)
                except RunDirError:
                    continue
                if isinstance(doc, dict) and doc.get("config_hash") == old_hash:
                    doc.update(format=FORMAT, config_hash=cfg.hash(), model_hash=new_mh)
                    write_yaml(p, doc, header=head)
        meta.update(format_version=2, config=cfg.to_dict(), config_hash=cfg.hash(), study_hash=cfg.study_hash(),
                    studies={cfg.study_hash(): f"{old.get('name', cfg.name)}-{old_hash[:8]}"})
        write_yaml(run.run_yaml, meta)
        log.info("upgraded %s from run-directory format 1", run.path)
