"""How a PyPI recipe installs its sdist: pip, which is a package of its own.

ftforge's python ships no pip in site-packages (conda adds ``pip`` to every
``python`` by default, so a bundled copy would give one file two owners). A
recipe therefore lists ``pip`` in ``host`` and runs ``$PYTHON -m pip install``,
as conda-forge's recipes do -- except the packages pip itself is built from:
``pip`` and its build backend, ``flit-core``. Those are installed with the
pip wheel CPython keeps in its standard library (``ensurepip/_bundled``), put
on ``PYTHONPATH`` for the one command, so the chain has a start and no cycle.
"""

from __future__ import annotations

__all__ = ["BOOTSTRAP", "host_requirements", "install_script", "pip_check_test"]

BOOTSTRAP = frozenset({"pip", "flit-core"})
"""conda names built before any ``pip`` package exists: pip and its build backend."""

_PIP_INSTALL = "-m pip install . -vv --no-deps --no-build-isolation"
_BUNDLED_PIP = 'PYTHONPATH="$(ls "$PREFIX"/lib/python*/ensurepip/_bundled/pip-*.whl)"'
"""The standard library's pip wheel on PYTHONPATH (pip runs from a wheel)."""


def host_requirements(conda_name: str) -> list[str]:
    """What ``host`` needs to run the installer: ``pip``, unless this is the bootstrap."""
    return [] if conda_name in BOOTSTRAP else ["pip"]


def install_script(conda_name: str, python: str = "$PYTHON") -> str:
    """The one-line build script: ``$PYTHON -m pip install . ...``."""
    prefix = f"{_BUNDLED_PIP} " if conda_name in BOOTSTRAP else ""
    return f"{prefix}{python} {_PIP_INSTALL}"


def pip_check_test(conda_name: str) -> tuple[list[str], list[str]]:
    """``(commands, test requirements)`` for the ``pip check`` test of a package."""
    if conda_name == "pip":
        return ["python -m pip --version", "python -m pip check"], []
    if conda_name in BOOTSTRAP:
        return [f"{_BUNDLED_PIP} python -m pip check"], []
    return ["python -m pip check"], ["pip"]
