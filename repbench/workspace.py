"""A run directory opened for computing: cached features, kernel banks, refinement and evaluation.

This is the thin glue between the model layer (:mod:`repbench.models`: which kernel, which regressor) with
the numerics below it and the run directory's caches.  ``tune``, ``curve`` and ``time`` all go through it,
so every representation and kernel is computed once and then served from ``cache/``.  Execution settings
(``kernel.block_mb``, progress bars) come from the run's current config and never enter a cache key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .cache import ArrayCache, STATS, index_id
from .config import Config, canonical_hash, thaw
from .errors import ResourceError, RunDirError
from .models.kernel import NO_LENGTH_SCALE, has_length_scale, kernel_matrices
from .models.model import Model
from .representations import Features, compute, make_representation
from .representations.base import wrap_into_cell
from .rundir import RunDir
from .targets import error_metrics, target_model

log = logging.getLogger("repbench")

POLY_LS = NO_LENGTH_SCALE  # placeholder length scale for kernels without one (polynomial)


def take_features(f: Features, positions: np.ndarray) -> Features:
    """Features of the structures at ``positions`` (indices into ``f``'s structures), in that order."""
    positions = np.asarray(positions, dtype=np.int64)
    if f.offsets is None:
        return Features(values=f.values[positions], offsets=None)
    counts = np.diff(f.offsets)[positions]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rows = np.repeat(f.offsets[positions] - offsets[:-1], counts) + np.arange(offsets[-1])
    return Features(values=f.values[rows], offsets=offsets)


def concat_features(a: Features | None, b: Features) -> Features:
    """The structures of ``a`` followed by those of ``b`` (``a`` None: ``b``)."""
    if a is None:
        return b
    if a.offsets is None:
        return Features(values=np.concatenate([a.values, b.values]), offsets=None)
    return Features(values=np.concatenate([a.values, b.values]),
                    offsets=np.concatenate([a.offsets, a.offsets[-1] + b.offsets[1:]]).astype(np.int64))


def positions_in(superset: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Positions of ``subset``'s elements within ``superset`` (all must be present)."""
    order = np.argsort(superset, kind="stable")
    pos = order[np.searchsorted(superset, subset, sorter=order)]
    if not np.array_equal(superset[pos], subset):
        raise ValueError("subset is not contained in superset")
    return pos


def estimate_kernel_bytes(n_rows: int, n_cols: int, n_ls: int) -> int:
    return 8 * n_rows * n_cols * max(1, n_ls)


def estimate_features_bytes(n_rows: int, dim: int) -> int:
    return 8 * n_rows * dim


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable`` of /proc/meminfo); None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(nbytes: float) -> str:
    for unit, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= f:
            return f"{nbytes / f:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def check_memory(nbytes: int, what: str, hint: str = "use smaller training sizes or fewer structures",
                 where: str = "") -> None:
    """Refuse a computation whose output alone would not fit in the available memory (80% of it)."""
    avail = available_memory()
    if avail and nbytes > 0.8 * avail:
        raise ResourceError(f"{what} needs {_size(nbytes)} but only {_size(avail)} of memory is available",
                            where=where, hint=hint)


@dataclass
class Evaluation:
    """Result of fitting on one training set and predicting one test set."""

    metrics: dict            # modelled unit
    metrics_report: dict     # report unit
    length_scale: float | None
    regularization: float
    refine_loss: float | None
    predictions: np.ndarray  # modelled unit


class Workspace:
    """Everything needed to compute on one run directory."""

    def __init__(self, run: RunDir, cfg: Config | None = None, progress: bool = True):
        self.run = run
        self.cfg = cfg or run.config()
        self.progress = progress
        self.structures, self.splits, self.data_attrs = run.read_data()
        stored = self.data_attrs.get("data_hash")
        if stored is not None and str(stored) != self.cfg.data_hash():
            raise RunDirError("data.h5 does not belong to the config in run.yaml (dataset or splits differ; "
                              "an interrupted `prepare --force`?)", where=str(run.data_h5),
                              hint="re-run `repbench prepare CONFIG --force --run-dir DIR`")
        ds = self.cfg.dataset
        self.target = target_model(self.structures, ds["target"], ds["per"])
        raw = self.structures.check_target(ds["target"])
        self.y = self.target.modelled(raw)
        self.counts = self.structures.element_counts() / self.target.divisor[:, None]
        self.data_hash = self.structures.content_hash()
        self.rep_cache = ArrayCache(run.representation_cache, "representations")
        self.kernel_cache = ArrayCache(run.kernel_cache, "kernels")
        self.block_mb = int(self.cfg.kernel.get("block_mb", 256))  # execution setting

    def split_strategy(self) -> dict:
        """How the test set was chosen (``strategy`` and its settings), as recorded in data.h5."""
        raw = self.data_attrs.get("split_strategy")
        if raw is None:
            return {"strategy": "random"}
        import json

        try:
            return json.loads(str(raw))
        except ValueError:
            return {"strategy": str(raw)}

    # ------------------------------------------------------------------ representations
    def rep_hash(self, rep_spec: dict) -> str:
        rep = make_representation(rep_spec, self.structures.elements, self.structures.periodic)
        return canonical_hash({"data": self.data_hash, "kind": rep.kind, "params": rep.params_canonical()})

    def feature_dim(self, rep, index: np.ndarray) -> int:
        """Features per row of ``rep``; a representation that learns its width by computing (a user's
        Python function) computes the first structure of ``index`` for it."""
        first = wrap_into_cell(self.structures.to_ase(np.asarray(index[:1], dtype=np.int64))) if len(index) else []
        return int(rep.fit_dim(first))

    def features(self, rep_spec: dict, index: np.ndarray) -> Features:
        """Representation of structures ``index`` (cached by data, parameters and index set)."""
        rep = make_representation(rep_spec, self.structures.elements, self.structures.periodic)
        index = np.asarray(index, dtype=np.int64)
        spec = {"data": self.data_hash, "kind": rep.kind, "params": rep.params_canonical(),
                "index": index_id(index), "n": int(len(index))}
        n_rows = int(self.structures.n_atoms[index].sum()) if rep.local else len(index)
        dim = self.feature_dim(rep, index)
        shapes = {"values": (n_rows, dim)}
        if rep.local:
            shapes["offsets"] = (len(index) + 1,)
        hit = self.rep_cache.get(spec, shapes)
        if hit is not None:
            return Features(values=hit["values"], offsets=hit.get("offsets"))
        check_memory(estimate_features_bytes(n_rows, dim),
                     f"the {rep.kind} representation of {len(index)} structures ({n_rows} rows x {dim})",
                     hint="use fewer structures, or smaller representation parameters",
                     where=str(self.run.path))
        f = compute(rep, self.structures, index, progress=self.progress)
        STATS["representations.computed"] += 1
        arrays = {"values": f.values}
        if f.offsets is not None:
            arrays["offsets"] = f.offsets
        self.rep_cache.put(spec, arrays)
        return f

    # ------------------------------------------------------------------ kernels
    def bank(self, rep_spec: dict, kernel: dict, rows: np.ndarray, cols: np.ndarray | None = None,
             features: Features | None = None, features_index: np.ndarray | None = None) -> "KernelBank":
        return KernelBank(self, rep_spec, kernel, rows, cols, features, features_index)

    # ------------------------------------------------------------------ models
    def model_bank(self, model: Model, rows: np.ndarray, cols: np.ndarray | None = None,
                   features: Features | None = None, features_index: np.ndarray | None = None,
                   compute=None) -> "KernelBank":
        """A kernel bank of ``model``'s representation and kernel (``compute``: see :class:`KernelBank`)."""
        return KernelBank(self, model.representation, model.kernel, rows, cols, features, features_index,
                          compute)

    def refine(self, model: Model, bank: "KernelBank", pool: np.ndarray, folds, krr_cfg: dict,
               ls_start: float | None = None):
        """The regressor's hyper-parameter refinement (KRR: grid search of length scale and
        regularisation) on ``folds`` (dataset indices) within ``pool`` = bank rows."""
        pos_folds = [(positions_in(pool, a), positions_in(pool, b)) for a, b in folds]
        no_ls = not model.has_length_scale
        if ls_start is None and not no_ls:
            ls_start = bank.median_length_scale()
        return model.regressor_class.refine(
            bank.get, self.y[pool], pos_folds, ls_start=None if no_ls else ls_start,
            reg_start=2.0 ** krr_cfg["reg_start"], ls_bounds=tuple(krr_cfg["ls_bounds"]),
            reg_bounds=tuple(krr_cfg["reg_bounds"]), loss=krr_cfg["loss"], polynomial=no_ls,
            baseline=model.baseline, counts=self.counts[pool],
            **({"flat_tol": float(krr_cfg["flat_tol"])} if krr_cfg.get("flat_tol") else {}),
            **({"lookahead": int(krr_cfg["lookahead"])} if krr_cfg.get("lookahead") else {}),
        )

    def self_kernel(self, model: Model, features: Features, length_scale: float | None) -> np.ndarray:
        """k(x, x) of every structure of ``features`` (the diagonal of its kernel with itself; the
        predictive standard deviation needs it).  Global Gaussian/Laplacian kernels: 1; local kernels: one
        small kernel per structure (its atoms against its atoms)."""
        kern = model.kernel_component
        ls = [model.kernel_key(length_scale)]
        if features.offsets is None and kern.name in ("gaussian", "laplacian"):
            return np.ones(features.n_structures)
        out = np.empty(features.n_structures)
        for i in range(features.n_structures):
            one = take_features(features, np.array([i]))
            out[i] = kernel_matrices(one, None, model.kernel, ls, block_mb=self.block_mb)[0][0, 0]
        return out

    def fit_predict_std(self, model: Model, K_train: np.ndarray, K_test_train: np.ndarray, train: np.ndarray,
                        test: np.ndarray, reg: float, K_test_diag: np.ndarray | None):
        """(predictions, standard deviations or None, fitted regressor) in the modelled unit."""
        return model.fit_predict_std(K_train, K_test_train, self.y[train], self.counts[train],
                                     self.counts[test], reg, K_test_diag)

    def uncertainty(self, test: np.ndarray, pred: np.ndarray, std: np.ndarray) -> dict:
        """Calibration of a predictive standard deviation on ``test`` (report unit; see
        :class:`repbench.documents.CurvePoint`)."""
        from .stats import coverage, gaussian_nll

        f = self.target.report_factor
        y, p, sd = self.y[test] * f, pred * f, np.maximum(std * f, 1e-300)
        return {"nll": gaussian_nll(y, p, sd), "coverage_68": coverage(y, p, sd, 0.68),
                "coverage_95": coverage(y, p, sd, 0.95), "mean_std": float(sd.mean())}

    def metrics(self, test: np.ndarray, pred: np.ndarray) -> tuple[dict, dict]:
        m = error_metrics(self.y[test], pred)
        f = self.target.report_factor
        rep = {k: (v * f if k != "r2" else v) for k, v in m.items()}
        return m, rep


class KernelBank:
    """Kernels between fixed row and column sets for any length scales.

    Each request computes all missing length scales in one pass over the squared distances, keeps them in
    memory and stores them in ``cache/kernels``.  ``cols=None`` means the symmetric rows x rows kernel.
    """

    def __init__(self, ws: Workspace, rep_spec: dict, kernel: dict, rows: np.ndarray,
                 cols: np.ndarray | None, features: Features | None, features_index: np.ndarray | None,
                 compute=None):
        self.ws = ws
        # how missing kernels are computed: kernel_matrices in this process, or a drop-in with the same
        # signature (repbench.execution.kernel_blocks: row blocks as Dask tasks)
        self._kernel_fn = compute or kernel_matrices
        self.rep_spec = rep_spec
        self.kernel = dict(thaw(kernel))
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = None if cols is None else np.asarray(cols, dtype=np.int64)
        self._feat = features
        self._feat_index = features_index
        self.memory: dict[float, np.ndarray] = {}
        self.rep_hash = ws.rep_hash(rep_spec)
        self.poly = not has_length_scale(self.kernel)

    def _features_for(self, idx: np.ndarray) -> Features:
        if self._feat is None:
            universe = self.rows if self.cols is None else np.unique(np.concatenate([self.rows, self.cols]))
            self._feat_index = universe
            self._feat = self.ws.features(self.rep_spec, universe)
        return take_features(self._feat, positions_in(self._feat_index, idx))

    def _spec(self, ls: float) -> dict:
        k = {k: v for k, v in self.kernel.items() if k != "block_mb"}
        return {"rep": self.rep_hash, "kernel": k, "ls": None if self.poly else float(ls),
                "rows": index_id(self.rows), "cols": None if self.cols is None else index_id(self.cols)}

    def get(self, ls_list) -> dict[float, np.ndarray]:
        ls_list = [POLY_LS] if self.poly else [float(x) for x in ls_list]
        out, missing = {}, []
        for ls in ls_list:
            if ls in self.memory:
                out[ls] = self.memory[ls]
                continue
            hit = self.ws.kernel_cache.get(self._spec(ls), {"K": self.shape})
            if hit is not None:
                self.memory[ls] = out[ls] = hit["K"]
            else:
                missing.append(ls)
        if missing:
            for ls, mat in zip(missing, self._compute(missing)):
                self.ws.kernel_cache.put(self._spec(ls), {"K": mat})
                self.memory[ls] = out[ls] = mat
        return out

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows) if self.cols is None else len(self.cols)

    def _compute(self, ls_list: list[float]) -> list[np.ndarray]:
        n_rows, n_cols = self.shape
        check_memory(estimate_kernel_bytes(n_rows, n_cols, len(ls_list)),
                     f"the {n_rows} x {n_cols} kernel ({len(ls_list)} length scale(s))",
                     where=str(self.ws.run.path))
        fa = self._features_for(self.rows)
        fb = None if self.cols is None else self._features_for(self.cols)
        STATS["kernels.computed"] += len(ls_list)
        return self._kernel_fn(fa, fb, self.kernel, ls_list, block_mb=self.ws.block_mb)

    def median_length_scale(self) -> float:
        """A starting length scale: the median distance between (atom or structure) feature vectors
        (:func:`repbench.kernels.median_length_scale`), rounded to a power of two so that grid points of
        different runs coincide (the grid search moves from there)."""
        med = K.median_length_scale(self._features_for(self.rows).values)
        return float(2.0 ** np.round(np.log2(med)))
