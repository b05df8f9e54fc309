"""Ewald sum matrix (dscribe ``EwaldSumMatrix``) of crystals, sorted or as its eigenspectrum (global).

The periodic variant of the Coulomb matrix of Faber et al. (2015): entry (i, j) is the Coulomb interaction
energy of atoms i and j with all periodic images of j in a neutralising background, summed by Ewald's method.

Config keys (``representation.ewald_matrix``), defaults in brackets:

- ``n_atoms_max`` (required) the largest number of atoms in a cell of the dataset (NMD18: 80); smaller cells
  are padded with zeros; a larger one is refused when it is computed, naming this key.
- ``permutation`` ["sorted_l2"] ``sorted_l2`` or ``eigenspectrum`` (as for ``sine_matrix``).
- dscribe's ``create`` arguments, as keys of their own: ``accuracy`` [1e-5] the accuracy of the Ewald sum;
  ``w`` [1.0] the weight of the real-space part against the reciprocal part (cost balance); ``r_cut`` and
  ``g_cut`` [null: derived from accuracy; give both or neither] the real-space cutoff (Angstrom) and the
  reciprocal-space cutoff (1/Angstrom); ``a`` [null: sqrt(pi) (N w / V^2)^(1/6)] the screening parameter
  (1/Angstrom).  Each null or a number > 0.  The Ewald sum itself does not depend on ``a`` or ``w``; they
  only decide how it converges, so the matrix changes with them only within ``accuracy``.

Crystals only: a dataset of molecules is refused (use ``coulomb_matrix``).  The numbers are dscribe's own
(through :mod:`.dscribe_any`).
"""

from __future__ import annotations

from .coulomb_matrix import MatrixDescriptor


class EwaldMatrixRepresentation(MatrixDescriptor):
    """Ewald sum matrix (dscribe EwaldSumMatrix), sorted_l2 or eigenspectrum; crystals (global)."""

    kind = "ewald_matrix"
    descriptor_name = "EwaldSumMatrix"
    periodic_only = True
    create_keys = ("accuracy", "w", "r_cut", "g_cut", "a")

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        if not periodic:
            return None
        return {"n_atoms_max": 8, "permutation": "eigenspectrum", "accuracy": 1e-5}
