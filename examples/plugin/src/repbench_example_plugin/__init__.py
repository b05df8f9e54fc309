"""Example repbench plugin: a representation (``coulomb_eigen``) and a dataset reader (``xyz-folder``).

repbench finds both through the entry points in ``pyproject.toml``; nothing here needs importing by hand.
Kept free of imports so that listing plugins stays quick.
"""

__version__ = "0.1.0"
