"""Which model a run uses: resolved in one place, from ``tune/best.yaml`` or the config.

``tune``, ``curve`` and ``time`` call :func:`resolve_model`; nothing else decides it.
"""

from __future__ import annotations

from ..config import Config, thaw
from ..documents import read_best
from ..errors import RunDirError
from ..rundir import RunDir
from ..space import find_leaves
from .model import Model


def resolve_model(run: RunDir, cfg: Config) -> Model:
    """The run's concrete model.

    * the config has search-space leaves: ``tune/best.yaml`` of this config's study (an error if there
      is none: tune first);
    * the config is concrete: the config (and ``krr.length_scale`` / ``krr.regularization`` as starting or
      fixed values).
    """
    leaves = find_leaves({"representation": thaw(cfg.representation), "kernel": thaw(cfg.kernel)})
    best = read_best(run, cfg.study_hash())
    if best is not None:
        return Model.from_config(cfg, representation=best.representation, kernel=best.kernel,
                                 length_scale=best.krr["length_scale"],
                                 regularization=best.krr["regularization"], source="tune/best.yaml")
    if leaves:
        other = " (tune/best.yaml belongs to an earlier search space)" if run.best_yaml.exists() else ""
        raise RunDirError(f"the config has search-space leaves ({leaves[0][0]} ...) and no tuning result for "
                          f"them{other}", where=str(run.path),
                          hint="run `repbench tune` first, or give fixed values")
    return Model.from_config(cfg, length_scale=cfg.krr["length_scale"],
                             regularization=cfg.krr["regularization"])


def trial_model(cfg: Config, params: dict, kernel_dtype: str | None = None) -> Model:
    """The model of one tuning trial (``params``: the concrete representation and kernel sections);
    ``kernel_dtype`` overrides the kernel precision for the trial (``tune.kernel_dtype``)."""
    kernel = dict(params["kernel"])
    if kernel_dtype is not None:
        kernel["dtype"] = kernel_dtype
    return Model.from_config(cfg, representation=params["representation"], kernel=kernel, source="trial")
