"""Coulomb matrix (dscribe ``CoulombMatrix``) of molecules, sorted or as its eigenspectrum (global).

Config keys (``representation.coulomb_matrix``), defaults in brackets:

- ``n_atoms_max`` (required) the largest number of atoms in a structure of the dataset (QM9: 29;
  ``repbench datasets show NAME`` lists the atoms per structure).  It fixes the width of the features
  (``n_atoms_max^2`` for ``sorted_l2``, ``n_atoms_max`` for ``eigenspectrum``); smaller molecules are padded
  with zeros, which leaves distances between molecules (and so a Gaussian or Laplacian kernel) unchanged.
  A structure with more atoms is refused when it is computed, naming this key.  It has no default: a
  representation is built from the dataset's elements and periodicity alone, and the width must not depend
  on which subset is computed; a default of 29 would be right for QM9 only.
- ``permutation`` ["sorted_l2"] ``sorted_l2`` (rows and columns sorted by the rows' L2 norms, the "sorted
  Coulomb matrix" of Montavon et al. 2012; invariant to the atom order unless two rows have the same norm)
  or ``eigenspectrum`` (the eigenvalues sorted by absolute value, descending; invariant).  dscribe's
  ``random`` (noise drawn from one generator shared by all structures: not reproducible per structure)
  and ``none`` (depends on the atom order) are refused.

Molecules only: dscribe's Coulomb matrix ignores the cell, so it is not invariant to moving an atom by a
lattice vector; periodic datasets are refused with a pointer to ``sine_matrix`` and ``ewald_matrix``.

The numbers are dscribe's own (``create_single`` per structure, through :mod:`.dscribe_any`).  This module
also holds :class:`MatrixDescriptor`, the shared part of ``coulomb_matrix``, ``sine_matrix`` and
``ewald_matrix``.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import as_choice, as_int, check_mapping
from .dscribe_any import DscribeRepresentation, descriptor_classes

PERMUTATIONS = ("sorted_l2", "eigenspectrum")
REFUSED_PERMUTATIONS = {
    "random": "dscribe draws the noise of all structures from one generator, so the result would depend on "
              "the order of computing",
    "none": "the unsorted matrix depends on the order of the atoms",
}


class MatrixDescriptor(DscribeRepresentation):
    """Shared part of the matrix descriptors of dscribe with their own config keys (not registered)."""

    kind = ""
    local = False
    #: the dscribe class
    descriptor_name = ""
    #: True: crystals only; False: molecules only
    periodic_only = False
    #: names of ``create_single`` arguments that are config keys (EwaldSumMatrix)
    create_keys: tuple[str, ...] = ()

    @classmethod
    def local_for(cls, params) -> bool:
        return False

    @classmethod
    def kind_label(cls) -> str:
        return "global"

    @classmethod
    def parameters(cls) -> dict:
        p = cls.validate({"n_atoms_max": 1}, f"representation.{cls.kind}")
        p["n_atoms_max"] = "required: the largest number of atoms in a structure of the dataset"
        return p

    @classmethod
    def validate(cls, params: dict | None, where: str | None = None) -> dict:
        where = where or f"representation.{cls.kind}"
        p = check_mapping(params, where, ("n_atoms_max", "permutation") + cls.create_keys)
        if "n_atoms_max" not in p:
            raise ConfigError("needs n_atoms_max", where=f"{where}.n_atoms_max",
                              hint="the largest number of atoms in a structure of the dataset (`repbench datasets "
                                   "show NAME` lists atoms per structure; QM9: 29, NMD18: 80)")
        out = {"n_atoms_max": as_int(p["n_atoms_max"], f"{where}.n_atoms_max", 1, 100000)}
        perm = p.get("permutation", "sorted_l2")
        if isinstance(perm, str) and perm in REFUSED_PERMUTATIONS:
            raise ConfigError(f"permutation {perm!r} is not allowed here ({REFUSED_PERMUTATIONS[perm]})",
                              where=f"{where}.permutation", hint="allowed: " + ", ".join(PERMUTATIONS))
        out["permutation"] = as_choice(perm, f"{where}.permutation", PERMUTATIONS)
        if cls.create_keys:
            klass = descriptor_classes()[cls.descriptor_name]
            create = cls._validate_create(klass, {k: p[k] for k in cls.create_keys if k in p}, where)
            out.update(create)
        return out

    def dscribe_params(self) -> dict:
        """The parameters as the generic ``dscribe`` representation takes them."""
        d = {"descriptor": self.descriptor_name, "n_atoms_max": self.params["n_atoms_max"],
             "permutation": self.params["permutation"]}
        if self.create_keys:
            d["create"] = {k: self.params[k] for k in self.create_keys}
        return d

    def __init__(self, params: dict, species: list[int], periodic: bool, *, where: str | None = None):
        where = where or f"representation.{self.kind}"
        if bool(periodic) != self.periodic_only:
            if self.periodic_only:
                raise ConfigError(f"{self.kind} is defined for periodic structures (crystals) only, and this "
                                  "dataset holds molecules", where=where,
                                  hint="use coulomb_matrix for molecules")
            raise ConfigError(f"{self.kind} is defined for molecules only, and this dataset is periodic "
                              "(the Coulomb matrix ignores the cell, so it would change when an atom is moved "
                              "by a lattice vector)", where=where,
                              hint="use sine_matrix or ewald_matrix for crystals")
        self.params = params
        super().__init__(self.dscribe_params(), species, periodic, where=where)
        self.params = params        # what the cache key hashes: this representation's own keys

    @classmethod
    def example_params(cls, periodic: bool) -> dict | None:
        if periodic != cls.periodic_only:
            return None
        return {"n_atoms_max": 8 if periodic else 12, "permutation": "eigenspectrum"}


class CoulombMatrixRepresentation(MatrixDescriptor):
    """Coulomb matrix (dscribe CoulombMatrix), sorted_l2 or eigenspectrum; molecules (global)."""

    kind = "coulomb_matrix"
    descriptor_name = "CoulombMatrix"
    periodic_only = False
