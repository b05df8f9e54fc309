"""Targets: what is modelled (per structure, atom or cation) and the units errors are reported in.

Extensive energies are stored per structure (eV per molecule or cell).  With ``per: atom`` the model
learns ``y / n_atoms`` and with ``per: cation`` ``y / n_cations``; predictions are multiplied back when a
per-structure value is needed.  Errors are reported in the modelled quantity, in eV and in the unit users
quote: kcal/mol for QM9 molecules, meV/atom and meV/cation for materials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .structures import StructureSet

HARTREE_EV = 27.211386245988
#: 1 kcal/mol in eV (CODATA: 1 eV = 23.060547830619 kcal/mol)
KCAL_MOL_EV = 1.0 / 23.060547830619


@dataclass(frozen=True)
class TargetModel:
    """How a target is modelled: the values the regression sees and how to report errors."""

    name: str
    per: str                 # structure | atom | cation
    unit: str                # unit of the modelled values (e.g. "eV" or "eV/atom")
    report_unit: str         # unit users quote (e.g. "kcal/mol", "meV/atom")
    report_factor: float     # modelled unit -> report unit
    divisor: np.ndarray      # (n,) per-structure divisor (ones, n_atoms or n_cations)

    def modelled(self, y: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
        d = self.divisor if index is None else self.divisor[index]
        return y / d

    def per_structure(self, y_modelled: np.ndarray, index: np.ndarray) -> np.ndarray:
        return y_modelled * self.divisor[index]


def target_model(structures: StructureSet, name: str, per: str, where: str = "dataset") -> TargetModel:
    """Build the :class:`TargetModel` for ``structures.targets[name]`` modelled ``per`` structure/atom/cation."""
    if name not in structures.targets:
        raise ConfigError(f"{where}.target: unknown target {name!r} for dataset {structures.name!r}",
                          hint="allowed: " + ", ".join(sorted(structures.targets)))
    info = structures.target_info[name]
    if per != "structure" and not info.extensive:
        raise ConfigError(f"{where}.per: target {name!r} is intensive ({info.unit}); "
                          f"per: {per} only makes sense for extensive targets", hint="use per: structure")
    if per == "structure":
        divisor = np.ones(len(structures))
    elif per == "atom":
        divisor = structures.n_atoms.astype(np.float64)
    else:
        divisor = structures.n_cations.astype(np.float64)
        if np.any(divisor == 0):
            raise ConfigError(f"{where}.per: some structures have no cations", hint="use per: atom")
    unit = info.unit if per == "structure" else f"{info.unit}/{per}"
    report_unit, factor = unit, 1.0
    if info.unit == "eV":
        if per == "structure" and not structures.periodic:
            report_unit, factor = "kcal/mol", 1.0 / KCAL_MOL_EV
        elif per == "structure" and info.extensive:
            report_unit, factor = "meV/cell", 1000.0
        elif per == "structure":  # intensive (a band gap): one value per structure, not per cell
            report_unit, factor = "meV", 1000.0
        else:
            report_unit, factor = f"meV/{per}", 1000.0
    return TargetModel(name=name, per=per, unit=unit, report_unit=report_unit, report_factor=factor,
                       divisor=divisor)


def error_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, max absolute error and R^2 (in the units of the inputs)."""
    err = np.asarray(y_pred, float) - np.asarray(y_true, float)
    ss_res = float(np.sum(err ** 2))
    ss_tot = float(np.sum((y_true - np.mean(y_true)) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mae": float(np.mean(np.abs(err))),
        "maxae": float(np.max(np.abs(err))),
        "r2": float(1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan"),
    }
