"""Local many-body tensor representation (dscribe ``LMBTR``): one row per atom, terms k=2 and/or k=3.

This file plus one line in the ``REPRESENTATIONS`` table of ``repbench/representations/__init__.py`` is all
it takes to add a representation; parameters and their validation are those of :mod:`.mbtr` (a subclass).

Config keys (``representation.lmbtr``), defaults in brackets:

- ``k`` [[2]] the terms: ``[2]``, ``[3]`` or ``[2, 3]``; each atom's row is the k=2 block then the k=3 block.
- ``k2`` / ``k3`` (only for terms in ``k``), each with
  - ``geometry`` [k2: "inverse_distance", k3: "cosine"]; k2: ``distance`` | ``inverse_distance``
    (Angstrom, 1/Angstrom), k3: ``angle`` (degrees) | ``cosine``
  - ``grid`` {``min``, ``max``, ``n``, ``sigma``} [k2 inverse_distance: 0, 1.25, 100, 0.025;
    k2 distance: 0, 10, 100, 0.1; k3 cosine: -1, 1, 100, 0.05; k3 angle: 0, 180, 100, 2]
  - ``weighting`` [{function: exp, scale: 0.5, threshold: 0.001}]: ``function`` ``unity`` (molecules only),
    ``exp`` (``threshold`` [0.001] and one of ``scale`` or ``r_cut``), ``inverse_square`` (k2, ``r_cut``),
    ``smooth_cutoff`` (k3, ``r_cut``, ``sharpness`` [2])
  - ``normalize_gaussians`` [true]
  - ``normalization`` ["none"] ``none`` | ``l2`` (dscribe's LMBTR has no ``n_atoms`` or ``valle_oganov``)

dscribe's LMBTR marks the central atom as a ghost element X, so each block holds (n_species + 1) element
channels for k=2 and more for k=3; like dscribe's ACSF it does not say which element the central atom is.
Periodic systems need a weighting that cuts off (not ``unity``); this is checked when the dataset is known.
"""

from __future__ import annotations

import warnings

import numpy as np

from .mbtr import MBTRRepresentation


class LMBTRRepresentation(MBTRRepresentation):
    """Local MBTR (dscribe LMBTR) with terms k=2 and/or k=3 (local)."""

    kind = "lmbtr"
    local = True
    dscribe_class = "LMBTR"
    normalizations = ("none", "l2")

    def compute_into(self, atoms_list: list, out: np.ndarray) -> None:
        n_atoms = sum(len(a) for a in atoms_list)
        if n_atoms != len(out):
            raise ValueError(f"{n_atoms} atoms for {len(out)} rows of output")
        with warnings.catch_warnings():
            # dscribe 2.1.2 calls the deprecated Atoms.get_calculator() (FutureWarning in ase 3.26)
            warnings.filterwarnings("ignore", category=FutureWarning)
            r = 0
            for a in atoms_list:
                c = 0
                for term, d in zip(self._terms, self._dims):
                    out[r:r + len(a), c:c + d] = np.asarray(term.create_single(a)).reshape(len(a), d)
                    c += d
                r += len(a)
