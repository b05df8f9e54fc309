"""Sine matrix (dscribe ``SineMatrix``) of crystals, sorted or as its eigenspectrum (global).

The periodic variant of the Coulomb matrix (Faber et al. 2015): the off-diagonal Coulomb term is replaced by
one built from sines of the fractional coordinate differences, so it is periodic in the cell.

Config keys (``representation.sine_matrix``), defaults in brackets:

- ``n_atoms_max`` (required) the largest number of atoms in a cell of the dataset (NMD18: 80); smaller cells
  are padded with zeros; a larger one is refused when it is computed, naming this key.
- ``permutation`` ["sorted_l2"] ``sorted_l2`` or ``eigenspectrum`` (as for ``coulomb_matrix``; ``random``
  and ``none`` are refused).  In symmetric cells, rows of symmetry-equivalent atoms have equal norms, and
  ``sorted_l2`` then depends on the order of the atoms in the file; ``eigenspectrum`` does not.

Crystals only: a dataset of molecules is refused (use ``coulomb_matrix``).  The numbers are dscribe's own
(through :mod:`.dscribe_any`).
"""

from __future__ import annotations

from .coulomb_matrix import MatrixDescriptor


class SineMatrixRepresentation(MatrixDescriptor):
    """Sine matrix (dscribe SineMatrix), sorted_l2 or eigenspectrum; crystals (global)."""

    kind = "sine_matrix"
    descriptor_name = "SineMatrix"
    periodic_only = True
