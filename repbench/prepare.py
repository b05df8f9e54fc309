"""``repbench prepare``: read the dataset, draw the splits, write ``run.yaml`` and ``data.h5``.

Nothing is written until the dataset has been read and the splits drawn, and a new run directory is
built under a temporary name and renamed into place, so a failure leaves no partial run directory.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import config as cfgmod
from .datasets import load_dataset
from .errors import ConfigError, DataError, RunDirError
from .migrate import open_run
from .rundir import (FORMAT_VERSION, RunDir, check_disk, clean_stale_tmp, fs_error, host_info, lock,
                     nbytes_of, run_lock, tmp_prefix, versions, write_yaml)
from .splits import group_labels, group_test, make_splits, size_test, subset_indices
from .structures import StructureSet
from .targets import target_model


def default_run_dir(cfg: cfgmod.Config) -> Path:
    return Path("runs") / cfg.name


def load_structures(cfg: cfgmod.Config) -> StructureSet:
    """The run's structures: the dataset, reduced to ``dataset.subset`` structures if set."""
    ds = cfg.dataset
    if ds["path"] and not Path(ds["path"]).expanduser().exists():
        from .datasets import how_to_get

        tried = str(Path(ds["path"]).expanduser().absolute())
        if not Path(ds["path"]).is_absolute() and Path(cfg.file).exists():
            tried += f" nor {(Path(cfg.file).parent / ds['path']).absolute()}"
        raise DataError(f"dataset.path: {ds['path']} not found (looked for {tried})", where=str(cfg.file),
                        hint=how_to_get(ds["name"]))
    s = load_dataset(ds["name"], ds["path"], target_key=ds["target_key"], target_unit=ds["target_unit"],
                     target_extensive=ds["target_extensive"], format=ds["format"])
    if s.meta.get("n_test_unlabelled") and s.meta.get("test_unlabelled_file"):
        # e.g. the Kaggle download of NMD18: its test.csv carries no labels, so the test set is drawn
        logging.getLogger("repbench").warning(
            "%s has no labels (missing columns: %s): its %d structures are not used and the test set is "
            "drawn from the labelled structures", s.meta["test_unlabelled_file"],
            ", ".join(s.meta.get("test_missing_columns") or []), s.meta["n_test_unlabelled"])
    if ds["subset"] is not None and ds["subset"] < len(s):
        test_part = np.nonzero(s.parts == "test")[0]
        s = s.subset(subset_indices(len(s), ds["subset"], cfg.seed, test_part))
    return s


def build(cfg: cfgmod.Config):
    """(structures, splits) for a config: a pure function of the config and the dataset files."""
    try:
        return _build(cfg)
    except ConfigError as e:
        if e.where:
            raise
        # a config value that only the dataset shows to be wrong: name the config file
        raise ConfigError(e.message, where=str(cfg.file), hint=e.hint) from None


def _build(cfg: cfgmod.Config):
    s = load_structures(cfg)
    ds, sp = cfg.dataset, cfg.splits
    tm = target_model(s, ds["target"], ds["per"])
    y = tm.modelled(s.check_target(ds["target"]))
    predefined = np.nonzero(s.parts == "test")[0] if sp["use_predefined_test"] else None
    if predefined is not None and len(predefined) == 0:
        predefined = None
    excluded = None
    strategy = split_strategy(cfg, s)
    values = y if sp["stratify"] else None
    if strategy["strategy"] == "group":
        predefined = group_test(group_labels(s, sp["group_by"]), seed=cfg.seed, test_groups=sp["test_groups"],
                                holdout=sp["holdout_groups"])
    elif strategy["strategy"] == "size":
        n = size_counts(s, sp["size_by"])
        predefined = size_test(n, max_train_size=sp["max_train_size"], n_test=sp["test"], values=values,
                               seed=cfg.seed)
        excluded = np.setdiff1d(np.nonzero(n > sp["max_train_size"])[0], predefined)
    # with a predefined test part, splits.test is ignored; run.yaml records which test set was used
    splits = make_splits(len(s), values, seed=cfg.seed, test=sp["test"],
                         predefined_test=predefined, train_sizes=list(sp["train_sizes"]), draws=sp["draws"],
                         tune_train=sp["tune_train"], tune_val=sp["tune_val"], inner_folds=sp["inner_folds"],
                         inner_val_fraction=sp["inner_val_fraction"], excluded=excluded)
    if strategy["strategy"] == "group":
        strategy["test_groups"] = sorted(set(group_labels(s, sp["group_by"])[splits.test].tolist()))
    s.meta["split_strategy"] = strategy
    return s, splits


def data_attrs(cfg: cfgmod.Config, s: StructureSet) -> dict:
    """Attributes of data.h5: its scope, and how the test set was chosen (only when not random)."""
    import json

    attrs = {"data_hash": cfg.data_hash()}
    st = s.meta.get("split_strategy", {"strategy": "random"})
    if st.get("strategy") != "random":
        attrs["split_strategy"] = json.dumps(st)
    return attrs


def size_counts(s: StructureSet, size_by: str) -> np.ndarray:
    """Atoms (or non-hydrogen atoms) per structure."""
    if size_by == "atoms":
        return s.n_atoms
    heavy = (s.z != 1).astype(np.int64)
    return np.add.reduceat(heavy, s.offsets[:-1]) if len(s) else np.zeros(0, np.int64)


def split_strategy(cfg: cfgmod.Config, s: StructureSet) -> dict:
    """How the test set is chosen, for data.h5, run.yaml and every report."""
    sp = cfg.splits
    st = sp.get("strategy", "random")
    if st == "group":
        return {"strategy": "group", "group_by": sp["group_by"]}
    if st == "size":
        return {"strategy": "size", "size_by": sp["size_by"], "max_train_size": sp["max_train_size"]}
    return {"strategy": "random"}


def run_meta(cfg: cfgmod.Config, s: StructureSet, splits) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "config_file": str(cfg.file),
        "config_hash": cfg.hash(),
        "data_hash": cfg.data_hash(),
        "study_hash": cfg.study_hash(),
        "seed": cfg.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": versions(),
        "host": host_info(),
        "dataset": {
            "name": s.name, "source": s.source, "structures": len(s), "atoms": int(len(s.z)),
            "elements": s.elements, "content_hash": s.content_hash(),
            "test_set": "predefined" if (s.parts == "test").any() and cfg.splits["use_predefined_test"]
            else "drawn",
            "test_size": int(len(splits.test)), "pool_size": int(len(splits.pool)),
            **({"split_strategy": s.meta["split_strategy"]}
               if s.meta.get("split_strategy", {}).get("strategy", "random") != "random" else {}),
        },
        "config": cfg.to_dict(),
        "status": {"prepare": {"state": "done", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}},
    }


def prepare(config_path: str | Path, run_dir: str | Path | None = None, force: bool = False,
            cfg: cfgmod.Config | None = None) -> tuple[RunDir, str]:
    """Create (or verify, or update) a run directory.

    Returns (run dir, what happened): ``created``; ``unchanged``; ``updated`` (the config changed outside the
    data scope: run.yaml takes the new config, data.h5, studies, caches and finished results stay, and each
    stage decides by its own scope what is still valid); ``replaced`` (``force``); ``restored`` (data.h5 was
    missing, e.g. in a cloned run directory, and was rebuilt with the recorded content hash; results kept).
    A change of the dataset, the splits or the seed is refused without ``force``, naming the keys that changed.

    Concurrency: an existing run directory is updated or replaced only under the exclusive run-directory
    lock (:func:`~repbench.rundir.run_lock`), which ``curve``, ``tune`` and ``time`` hold shared while they
    run: ``prepare`` refuses while one of them runs, and they refuse while it works.  A new run directory is
    built under a temporary name and renamed into place in one step; of two ``prepare`` racing to create it
    exactly one wins, and the other reports the race (or, with the same config, finds it up to date).
    """
    cfg = cfg or cfgmod.load(config_path)
    rd = open_run(Path(run_dir) if run_dir else default_run_dir(cfg))  # upgraded if an older repbench wrote it
    if rd.path.exists() and not rd.run_yaml.exists() and any(rd.path.iterdir()):
        raise RunDirError("folder exists and is not a run directory (no run.yaml)", where=str(rd.path),
                          hint="choose another --run-dir or remove the folder")
    if rd.exists():
        if not force and _unchanged(rd, cfg):
            return rd, "unchanged"
        with run_lock(rd.path, "prepare", exclusive=True), lock(rd.path, "prepare"):
            return _prepare_existing(rd, cfg, force)
    return _create(rd, cfg)


def _unchanged(rd: RunDir, cfg: cfgmod.Config) -> bool:
    meta = rd.read_meta()
    return (meta.get("data_hash") == cfg.data_hash() and rd.data_h5.exists()
            and meta.get("config") == cfg.to_dict())


def _prepare_existing(rd: RunDir, cfg: cfgmod.Config, force: bool) -> tuple[RunDir, str]:
    """Update or replace an existing run directory (the caller holds the exclusive run-directory lock)."""
    meta = rd.read_meta()
    if meta.get("data_hash") == cfg.data_hash() and rd.data_h5.exists() and not force:
        if meta.get("config") == cfg.to_dict():
            return rd, "unchanged"
        rd.update_config(cfg, rd.config().changed_keys(cfg))
        return rd, "updated"
    if meta.get("data_hash") == cfg.data_hash() and not rd.data_h5.exists() and not force:
        return _restore_data(rd, cfg, meta)
    if not force:
        changed = []
        try:
            changed = rd.config().changed_keys(cfg, cfgmod.DATA_SECTIONS)
        except RunDirError:
            pass
        what = (", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")) if changed else \
            "the dataset or splits"
        raise RunDirError(f"the run directory was prepared for other data: {what} changed, so data.h5, "
                          "the studies and every result would no longer match", where=str(rd.path),
                          hint=f"undo the change of {changed[0] if changed else 'dataset/splits'}, use "
                               "--run-dir to prepare a new run directory, or --force to replace this "
                               "one: its results are removed, its caches kept")
    s, splits = build(cfg)            # may raise: nothing written yet
    meta = run_meta(cfg, s, splits)
    clean_stale_tmp(rd.path)
    # Order, so that a kill at any point leaves a consistent run directory: the old data.h5 goes first
    # (old run.yaml + no data.h5 = the old run, restorable by `prepare` with the old config), then the old
    # results, then the new run.yaml (new run.yaml + no data.h5 = the new run, restored by the next
    # `prepare`), and data.h5 last.  Each file is written atomically; a data.h5 never sits beside the
    # run.yaml of other data.
    try:
        for p in [rd.data_h5, *rd.result_paths()]:
            if p.is_symlink() or p.is_file():
                p.unlink()  # a link is removed, never what it points to
            elif p.is_dir():
                shutil.rmtree(p)
    except OSError as e:
        raise fs_error(e, rd.path) or e from None
    write_yaml(rd.run_yaml, meta)
    rd.write_data(s, splits, data_attrs(cfg, s))
    return rd, "replaced"


def _restore_data(rd: RunDir, cfg: cfgmod.Config, meta: dict) -> tuple[RunDir, str]:
    """Rebuild a missing data.h5 of an otherwise complete run directory (a copied or cloned run: data.h5 is
    large and usually not copied or committed).  The data is rebuilt from the config and must have the
    content hash run.yaml recorded, so every finished result stays valid; otherwise nothing is written."""
    s, splits = build(cfg)            # may raise: nothing written yet
    want = (meta.get("dataset") or {}).get("content_hash")
    if want is not None and s.content_hash() != want:
        raise RunDirError(
            f"data.h5 is missing and the dataset read now differs from the one this run was prepared with "
            f"(content hash {s.content_hash()}, run.yaml records {want}): its results belong to other data",
            where=str(rd.path),
            hint="point dataset.path at the data the run was made with, or use --run-dir for a new run "
                 "directory (or --force to replace this one: its results are removed)")
    rd.write_data(s, splits, data_attrs(cfg, s))
    if meta.get("config") != cfg.to_dict():
        rd.update_config(cfg, rd.config().changed_keys(cfg))
    return rd, "restored"


def _create(rd: RunDir, cfg: cfgmod.Config) -> tuple[RunDir, str]:
    """Build a new run directory under a temporary name and rename it into place in one step."""
    s, splits = build(cfg)            # may raise: nothing written yet
    meta = run_meta(cfg, s, splits)
    try:
        rd.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fs_error(e, rd.path) or e from None
    clean_stale_tmp(rd.path.parent, name=rd.path.name)  # left by a killed prepare
    check_disk(rd.path.parent, nbytes_of(s) + nbytes_of(splits), f"{rd.path.name}/data.h5")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(rd.path.name), suffix=".tmp", dir=rd.path.parent))
    except OSError as e:
        raise fs_error(e, rd.path) or e from None
    lost = False
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        trd = RunDir(tmp)
        trd.write_data(s, splits, data_attrs(cfg, s))
        write_yaml(trd.run_yaml, meta)
        try:
            # one step, and only onto nothing or an empty folder (one the user made): a run directory that
            # another prepare created meanwhile is never replaced
            os.rename(tmp, rd.path)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise fs_error(e, rd.path) or e from None
            lost = True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if lost:
        shutil.rmtree(tmp, ignore_errors=True)
        if _unchanged(rd, cfg):
            return rd, "unchanged"
        raise RunDirError("another repbench prepare created this run directory at the same time, for a "
                          "different config; it was left as that one wrote it", where=str(rd.path),
                          hint="use --run-dir to prepare another run directory for this config, or --force "
                               "to replace that one")
    return rd, "created"
