"""repbench: benchmark representations of molecules and materials with kernel ridge regression."""

__version__ = "0.1.0"
