"""``repbench prepare``: read the dataset, draw the splits, write ``run.yaml`` and ``data.h5``.

Nothing is written until the dataset has been read and the splits drawn, and a new run directory is
built under a temporary name and renamed into place, so a failure leaves no partial run directory.
"""

from __future__ import annotations

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
from .rundir import (FORMAT_VERSION, RunDir, check_disk, clean_stale_tmp, host_info, lock, nbytes_of,
                     tmp_prefix, versions, write_yaml)
from .splits import make_splits, subset_indices
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
    # with a predefined test part, splits.test is ignored; run.yaml records which test set was used
    splits = make_splits(len(s), y if sp["stratify"] else None, seed=cfg.seed, test=sp["test"],
                         predefined_test=predefined, train_sizes=list(sp["train_sizes"]), draws=sp["draws"],
                         tune_train=sp["tune_train"], tune_val=sp["tune_val"], inner_folds=sp["inner_folds"],
                         inner_val_fraction=sp["inner_val_fraction"])
    return s, splits


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
        },
        "config": cfg.to_dict(),
        "status": {"prepare": {"state": "done", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}},
    }


def prepare(config_path: str | Path, run_dir: str | Path | None = None, force: bool = False,
            cfg: cfgmod.Config | None = None) -> tuple[RunDir, str]:
    """Create (or verify, or update) a run directory.

    Returns (run dir, what happened): ``created``; ``unchanged``; ``updated`` (the config changed outside the
    data scope: run.yaml takes the new config, data.h5, studies, caches and finished results stay, and each
    stage decides by its own scope what is still valid); ``replaced`` (``force``).  A change of the dataset,
    the splits or the seed is refused without ``force``, naming the keys that changed.
    """
    cfg = cfg or cfgmod.load(config_path)
    rd = open_run(Path(run_dir) if run_dir else default_run_dir(cfg))  # upgraded if an older repbench wrote it
    if rd.path.exists() and not rd.run_yaml.exists() and any(rd.path.iterdir()):
        raise RunDirError("folder exists and is not a run directory (no run.yaml)", where=str(rd.path),
                          hint="choose another --run-dir or remove the folder")
    if rd.exists():
        meta = rd.read_meta()
        if meta.get("data_hash") == cfg.data_hash() and rd.data_h5.exists() and not force:
            if meta.get("config") == cfg.to_dict():
                return rd, "unchanged"
            rd.update_config(cfg, rd.config().changed_keys(cfg))
            return rd, "updated"
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
    if rd.exists():
        with lock(rd.path, "prepare"):
            clean_stale_tmp(rd.path)
            for p in rd.result_paths():
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            rd.write_data(s, splits, {"data_hash": cfg.data_hash()})
            write_yaml(rd.run_yaml, meta)
        return rd, "replaced"
    rd.path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(rd.path.parent, name=rd.path.name)  # left by a killed prepare
    check_disk(rd.path.parent, nbytes_of(s) + nbytes_of(splits), f"{rd.path.name}/data.h5")
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(rd.path.name), suffix=".tmp", dir=rd.path.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        trd = RunDir(tmp)
        trd.write_data(s, splits, {"data_hash": cfg.data_hash()})
        write_yaml(trd.run_yaml, meta)
        if rd.path.exists():  # an empty folder the user made
            rd.path.rmdir()
        tmp.rename(rd.path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rd, "created"
