"""The one in-memory structure format every dataset reader returns.

All structures of a dataset are stored as flat arrays: atomic numbers ``z`` and Cartesian ``positions``
(Angstrom) of all atoms one after another, with ``offsets`` so that structure ``i`` holds atoms
``offsets[i]:offsets[i+1]``.  Cells (Angstrom, rows are the cell vectors; zeros for molecules) and
periodic-boundary flags are per structure.  Targets are named float64 arrays, one value per structure,
with a :class:`TargetInfo` that says their unit and whether they are extensive (scale with the system).

Extensive energies are stored per structure (eV per molecule or per cell).  A config's ``per:`` setting
decides whether they are modelled per structure, per atom or per cation; the conversion happens in
:mod:`repbench.targets`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .errors import DataError

#: Chemical symbols indexed by atomic number (index 0 is a placeholder).
SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr"
).split()
ATOMIC_NUMBERS = {s: i for i, s in enumerate(SYMBOLS) if i > 0}

#: Elements counted as cations for ``per: cation`` (metals of the NMD18 sesquioxides and friends).
ANIONS = frozenset({1, 6, 7, 8, 9, 15, 16, 17, 34, 35, 53})

#: Two atoms of one structure closer than this (Angstrom; periodic images included) are "at the same
#: position": a duplicated atom line.  The shortest real bond (H2) is 0.74 Angstrom.
MIN_ATOM_DISTANCE = 0.1
#: Largest coordinate or cell-vector component accepted (Angstrom).  Wrapping an atom into its cell stays
#: exact to about 1e-8 Angstrom up to here; beyond, distances lose their digits (and overflow at 1e154).
MAX_COORDINATE = 1e8
#: Thinnest periodic cell accepted (Angstrom): the distance between opposite faces along each periodic
#: direction.  Representations build the periodic images within their cutoff, about (cutoff / height)^3 of
#: them, so a nearly flat cell (a valid determinant, a height of 1e-5) makes them allocate without end.
MIN_CELL_HEIGHT = 0.5


def atomic_number(symbol: str, where: str = "") -> int:
    """Atomic number of a chemical symbol; raises :class:`DataError` naming ``where`` if unknown."""
    s = symbol.strip()
    if s.isdigit():
        z = int(s)
        if 0 < z < len(SYMBOLS):
            return z
    s = s.capitalize()
    if s not in ATOMIC_NUMBERS:
        raise DataError(f"unknown element {symbol!r}", where=where,
                        hint="use a chemical symbol such as H, C, O, Al")
    return ATOMIC_NUMBERS[s]


def _subset_meta(meta: dict, index: np.ndarray) -> dict:
    """``meta`` of a subset: per-structure label arrays (``meta["labels"]``) follow ``index``."""
    out = dict(meta)
    if isinstance(meta.get("labels"), dict):
        out["labels"] = {k: np.asarray(v)[index] for k, v in meta["labels"].items()}
    return out


@dataclass(frozen=True)
class TargetInfo:
    """What a target is: its unit and whether it scales with system size (energies do)."""

    unit: str
    extensive: bool
    description: str = ""


@dataclass(frozen=True, eq=False)
class StructureSet:
    """A dataset of ``n`` structures as flat arrays (see module docstring).

    Attributes
    ----------
    name: dataset name (``qm9``, ``nmd18``, ``ba10``, or a file name).
    z: (n_atoms_total,) int32 atomic numbers.
    positions: (n_atoms_total, 3) float64 Cartesian coordinates in Angstrom.
    offsets: (n + 1,) int64; structure i holds atoms ``offsets[i]:offsets[i+1]``.
    cells: (n, 3, 3) float64 cell vectors as rows in Angstrom (zeros where not periodic).
    pbc: (n, 3) bool periodic-boundary flags.
    ids: (n,) str identifiers from the source (gdb index, Kaggle id, name ...).
    targets: name -> (n,) float64 values.
    target_info: name -> :class:`TargetInfo`.
    parts: (n,) str, the source part of each structure (``train``/``test`` where the dataset has a
        predefined test part, else all ``all``).
    source: where the data came from (path or package).
    """

    name: str
    z: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    ids: np.ndarray
    targets: dict[str, np.ndarray]
    target_info: dict[str, TargetInfo]
    parts: np.ndarray | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.offsets) - 1
        object.__setattr__(self, "z", np.ascontiguousarray(self.z, dtype=np.int32))
        object.__setattr__(self, "positions", np.ascontiguousarray(self.positions, dtype=np.float64))
        object.__setattr__(self, "offsets", np.ascontiguousarray(self.offsets, dtype=np.int64))
        object.__setattr__(self, "cells", np.ascontiguousarray(self.cells, dtype=np.float64).reshape(n, 3, 3))
        object.__setattr__(self, "pbc", np.ascontiguousarray(self.pbc, dtype=bool).reshape(n, 3))
        object.__setattr__(self, "ids", np.asarray(self.ids).astype(str))
        parts = self.parts if self.parts is not None else np.full(n, "all")
        object.__setattr__(self, "parts", np.asarray(parts).astype(str))
        tg = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in self.targets.items()}
        object.__setattr__(self, "targets", tg)
        self.validate()

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_atoms(self) -> np.ndarray:
        """(n,) number of atoms per structure."""
        return np.diff(self.offsets)

    @property
    def elements(self) -> list[int]:
        """Sorted atomic numbers present in the dataset."""
        return sorted(int(x) for x in np.unique(self.z))

    @property
    def structure_index(self) -> np.ndarray:
        """(n_atoms_total,) index of the structure each atom belongs to."""
        return np.repeat(np.arange(len(self)), self.n_atoms)

    def element_counts(self, elements: list[int] | None = None) -> np.ndarray:
        """(n, n_elements) counts of each element (columns in the order of ``elements``)."""
        elements = self.elements if elements is None else list(elements)
        col = {e: i for i, e in enumerate(elements)}
        lut = np.full(max(max(elements), int(self.z.max())) + 1, -1, dtype=np.int64)
        for e, i in col.items():
            lut[e] = i
        cols = lut[self.z]
        out = np.zeros((len(self), len(elements)), dtype=np.float64)
        keep = cols >= 0
        np.add.at(out, (self.structure_index[keep], cols[keep]), 1.0)
        return out

    @property
    def n_cations(self) -> np.ndarray:
        """(n,) number of atoms that are not anions (O, N, halogens, chalcogens, C, H, P)."""
        is_cation = ~np.isin(self.z, list(ANIONS))
        return np.add.reduceat(is_cation.astype(np.int64), self.offsets[:-1]) if len(self) else np.zeros(0)

    @property
    def periodic(self) -> bool:
        return bool(self.pbc.any())

    def validate(self) -> None:
        """Check internal consistency; raises :class:`DataError` naming the structure that is wrong."""
        n = len(self)
        where = self.source or self.name
        if n < 1:
            raise DataError("the dataset holds no structures", where=where, hint="check the path and filters")
        if self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 1) or self.offsets[-1] != len(self.z):
            raise DataError("inconsistent atom offsets (a structure with no atoms?)", where=where)
        if self.positions.shape != (len(self.z), 3):
            raise DataError("positions must be (n_atoms, 3)", where=where)
        if not np.all(np.isfinite(self.positions)):
            bad = int(np.nonzero(~np.isfinite(self.positions).all(axis=1))[0][0])
            s = int(np.searchsorted(self.offsets, bad, side="right") - 1)
            raise DataError(f"non-finite coordinate in structure {str(self.ids[s])!r}", where=where)
        if len(self.ids) != n or len(self.parts) != n:
            raise DataError("ids/parts length differs from the number of structures", where=where)
        uniq, counts = np.unique(self.ids, return_counts=True)
        if np.any(counts > 1):
            raise DataError(f"duplicate structure id {str(uniq[counts > 1][0])!r}", where=where,
                            hint="every structure needs a unique id")
        periodic = self.pbc.any(axis=1)
        if not np.all(np.isfinite(self.cells)):
            s = int(np.nonzero(~np.isfinite(self.cells).reshape(n, 9).all(axis=1))[0][0])
            raise DataError(f"non-finite cell vector in structure {str(self.ids[s])!r}", where=where,
                            hint="fix the cell")
        if periodic.any():
            vol = np.abs(np.linalg.det(self.cells[periodic]))
            if np.any(vol < 1e-6):
                s = np.nonzero(periodic)[0][int(np.argmin(vol))]
                raise DataError(f"structure {str(self.ids[s])!r} is periodic but has no (or a flat) cell",
                                where=where, hint="give three non-coplanar lattice vectors")
        for k, v in self.targets.items():
            if v.shape != (n,):
                raise DataError(f"target {k!r} has {v.shape} values for {n} structures", where=where)
            if k not in self.target_info:
                raise DataError(f"target {k!r} has no unit information", where=where)

    def check_target(self, name: str) -> np.ndarray:
        """The values of target ``name``; raises if unknown or not finite."""
        if name not in self.targets:
            raise DataError(f"unknown target {name!r}", where=self.source or self.name,
                            hint=f"choose one of: {', '.join(sorted(self.targets))}")
        v = self.targets[name]
        bad = np.nonzero(~np.isfinite(v))[0]
        if len(bad):
            raise DataError(f"target {name!r} is NaN or infinite for structure {str(self.ids[bad[0]])!r} "
                            f"({len(bad)} structure(s) in all)", where=self.source or self.name,
                            hint="remove those structures or fix their values")
        return v

    # ------------------------------------------------------------------ subsets and ASE
    def subset(self, index: np.ndarray) -> "StructureSet":
        """A new set with structures ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        counts = self.n_atoms[index]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        atom_idx = (np.repeat(self.offsets[index] - offsets[:-1], counts) + np.arange(offsets[-1]))
        return StructureSet(
            name=self.name, z=self.z[atom_idx], positions=self.positions[atom_idx], offsets=offsets,
            cells=self.cells[index], pbc=self.pbc[index], ids=self.ids[index],
            targets={k: v[index] for k, v in self.targets.items()}, target_info=dict(self.target_info),
            parts=self.parts[index], source=self.source, meta=_subset_meta(self.meta, index),
        )

    def atoms(self, i: int):
        """Structure ``i`` as an :class:`ase.Atoms`."""
        from ase import Atoms

        a, b = self.offsets[i], self.offsets[i + 1]
        if self.pbc[i].any():
            return Atoms(numbers=self.z[a:b], positions=self.positions[a:b], cell=self.cells[i], pbc=self.pbc[i])
        return Atoms(numbers=self.z[a:b], positions=self.positions[a:b])

    def to_ase(self, index=None) -> list:
        """A list of :class:`ase.Atoms` (all structures or those in ``index``)."""
        idx = range(len(self)) if index is None else index
        return [self.atoms(int(i)) for i in idx]

    @classmethod
    def from_ase(cls, name: str, atoms_list: list, targets: dict[str, np.ndarray],
                 target_info: dict[str, TargetInfo], ids=None, parts=None, source: str = "") -> "StructureSet":
        """Build a set from a list of :class:`ase.Atoms`."""
        counts = np.array([len(a) for a in atoms_list], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        z = np.concatenate([a.numbers for a in atoms_list]) if atoms_list else np.zeros(0, int)
        pos = np.concatenate([a.positions for a in atoms_list]) if atoms_list else np.zeros((0, 3))
        pbc = np.array([a.pbc for a in atoms_list], dtype=bool).reshape(-1, 3)
        cells = np.array([np.asarray(a.cell) if a.pbc.any() else np.zeros((3, 3)) for a in atoms_list])
        ids = np.arange(len(atoms_list)).astype(str) if ids is None else ids
        return cls(name=name, z=z, positions=pos, offsets=offsets, cells=cells.reshape(-1, 3, 3), pbc=pbc,
                   ids=ids, targets=targets, target_info=target_info, parts=parts, source=source)

    # ------------------------------------------------------------------ identity
    def content_hash(self) -> str:
        """SHA-256 (hex, 16 chars) of everything that determines representations and targets."""
        h = hashlib.sha256()
        for arr in (self.z, self.positions, self.offsets, self.cells, self.pbc):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\0".join(self.ids.tolist()).encode())
        for k in sorted(self.targets):
            h.update(k.encode())
            h.update(self.targets[k].tobytes())
        return h.hexdigest()[:16]


def cell_heights(cells: np.ndarray) -> np.ndarray:
    """(n, 3) distances between opposite faces of each cell (rows of ``cells`` are the cell vectors)."""
    cells = np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
    vol = np.abs(np.linalg.det(cells))
    out = np.empty((len(cells), 3))
    for i in range(3):
        area = np.linalg.norm(np.cross(cells[:, (i + 1) % 3], cells[:, (i + 2) % 3]), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, i] = np.where(area > 0, vol / np.where(area > 0, area, 1.0), 0.0)
    return out


def check_geometry(s: "StructureSet", *, chunk: int = 4096) -> None:
    """Refuse structures that no representation can use, naming the file and the structure.

    * coordinates or cell components beyond :data:`MAX_COORDINATE`;
    * a periodic cell thinner than :data:`MIN_CELL_HEIGHT` along a periodic direction (nearly flat);
    * periodic and non-periodic structures in one data set (a representation is either periodic or not);
    * two atoms of one structure closer than :data:`MIN_ATOM_DISTANCE` (for periodic structures: also
      periodic images, e.g. an atom repeated one lattice vector away).

    Called by :func:`repbench.datasets.load_dataset` on what every reader returns (vectorised: about
    0.6 s for all of QM9).
    """
    where = s.source or s.name
    n = len(s)

    def at(i: int) -> str:
        return f"{where}, structure {i}"

    big = np.abs(s.positions) > MAX_COORDINATE
    if big.any():
        atom = int(np.nonzero(big.any(axis=1))[0][0])
        i = int(np.searchsorted(s.offsets, atom, side="right") - 1)
        raise DataError(f"structure {str(s.ids[i])!r}: atom {atom - int(s.offsets[i])} has a coordinate of "
                        f"{float(np.abs(s.positions[atom]).max()):.3g} Angstrom, beyond the "
                        f"{MAX_COORDINATE:.0e} repbench accepts", where=at(i),
                        hint="coordinates are in Angstrom; fix the value (or the unit)")
    periodic = s.pbc.any(axis=1)
    if periodic.any() and not periodic.all():
        i, j = int(np.nonzero(periodic)[0][0]), int(np.nonzero(~periodic)[0][0])
        raise DataError(f"periodic and non-periodic structures are mixed: structure {str(s.ids[i])!r} "
                        f"(index {i}) is periodic, structure {str(s.ids[j])!r} (index {j}) is not",
                        where=where, hint="give molecules and crystals as separate data sets (or give "
                                          "every structure a cell and pbc)")
    if periodic.any():
        pidx = np.nonzero(periodic)[0]
        cells = s.cells[pidx]
        if np.any(np.abs(cells) > MAX_COORDINATE):
            far = (np.abs(cells) > MAX_COORDINATE).reshape(len(pidx), 9).any(axis=1)
            i = int(pidx[np.nonzero(far)[0][0]])
            raise DataError(f"structure {str(s.ids[i])!r} has a cell vector longer than {MAX_COORDINATE:.0e} "
                            "Angstrom", where=at(i), hint="cells are in Angstrom; fix the cell (or the unit)")
        h = np.where(s.pbc[pidx], cell_heights(cells), np.inf)
        thin = h.min(axis=1) < MIN_CELL_HEIGHT
        if thin.any():
            k = int(np.nonzero(thin)[0][0])
            i = int(pidx[k])
            raise DataError(f"structure {str(s.ids[i])!r} has a nearly flat periodic cell: "
                            f"{float(h[k].min()):.3g} Angstrom between opposite faces (at least "
                            f"{MIN_CELL_HEIGHT} needed)", where=at(i),
                            hint="give three lattice vectors that span the crystal (check the Lattice)")
    _check_coincident(s, periodic, at, chunk)


def _check_coincident(s: "StructureSet", periodic: np.ndarray, at, chunk: int) -> None:
    """Pairwise distances within each structure, vectorised over structures of one size (periodic ones
    by the minimum image: a near-zero distance is found whatever the cell's shape)."""
    counts = s.n_atoms
    tol2 = MIN_ATOM_DISTANCE ** 2
    for per in (False, True):
        sel = periodic == per
        for m in np.unique(counts[sel]):
            m = int(m)
            if m < 2:
                continue
            idx = np.nonzero(sel & (counts == m))[0]
            iu, ju = np.triu_indices(m, 1)
            for c in range(0, len(idx), max(1, chunk * 32 // m)):
                ii = idx[c:c + max(1, chunk * 32 // m)]
                atoms = s.offsets[ii][:, None] + np.arange(m)[None, :]
                pos = s.positions[atoms]  # (k, m, 3)
                d = pos[:, iu] - pos[:, ju]  # (k, pairs, 3)
                if per:
                    cells = s.cells[ii]
                    frac = np.einsum("kpj,kjl->kpl", d, np.linalg.inv(cells))
                    frac -= np.where(s.pbc[ii][:, None, :], np.round(frac), 0.0)
                    d = np.einsum("kpl,klj->kpj", frac, cells)
                d2 = np.einsum("kpj,kpj->kp", d, d)
                hit = np.nonzero((d2 < tol2).any(axis=1))[0]
                if len(hit):
                    k = int(hit[0])
                    p = int(np.nonzero(d2[k] < tol2)[0][0])
                    i, a, b = int(ii[k]), int(iu[p]), int(ju[p])
                    img = " (or periodic images of it)" if per else ""
                    raise DataError(f"atoms {a} and {b} of structure {str(s.ids[i])!r} are at the same "
                                    f"position{img}: {float(np.sqrt(d2[k, p])):.3g} Angstrom apart",
                                    where=at(i), hint="remove the duplicated atom (or fix its "
                                                      "coordinates)")
