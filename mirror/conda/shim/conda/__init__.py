"""A stand-in for the few names of `conda` that conda-index 0.13 imports.

Why: conda-index imports `conda` without declaring it, conda itself is not installable from PyPI
(the `conda` there is an unusable 2017 release), and Airlock must not depend on a conda
installation. This folder is put on the PYTHONPATH of the conda-index subprocess only; nothing
in Airlock imports it. tests/test_conda_shim.py checks it stays sufficient.
"""

__version__ = "0.0.0+airlock-shim"
