"""PyPI distribution names -> conda package names.

Most conda-forge names are the PEP 503-normalised PyPI name; this table holds
the ones that are not, plus every name ftforge has checked. A name in neither
``KNOWN`` nor an extra mapping defaults to its normalised PyPI name, *marked as
assumed* (the recipe says so, line by line); strict mode refuses it instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..pypi import normalize

__all__ = ["KNOWN", "conda_name", "conda_name_or_assumed"]

# normalised PyPI name -> conda-forge name (checked against conda-forge's feedstocks)
KNOWN: dict[str, str] = {
    # names that differ
    "typing-extensions": "typing_extensions",
    "pyyaml": "pyyaml",
    "msgpack": "msgpack-python",
    "pytables": "pytables",
    "tables": "pytables",
    "torch": "pytorch",
    "matplotlib": "matplotlib-base",
    "ruamel-yaml": "ruamel.yaml",
    "ruamel-yaml-clib": "ruamel.yaml.clib",
    "jinja2": "jinja2",
    "importlib-metadata": "importlib-metadata",
    "pillow": "pillow",
    "attrs": "attrs",
    "pycparser": "pycparser",
    "cffi": "cffi",
    # same name on both sides, checked
    "requests": "requests",
    "urllib3": "urllib3",
    "idna": "idna",
    "certifi": "certifi",
    "charset-normalizer": "charset-normalizer",
    "markupsafe": "markupsafe",
    "six": "six",
    "packaging": "packaging",
    "setuptools": "setuptools",
    "wheel": "wheel",
    "cython": "cython",
    "numpy": "numpy",
    "meson-python": "meson-python",
    "meson": "meson",
    "pyproject-metadata": "pyproject-metadata",
    "scikit-build-core": "scikit-build-core",
    "flit-core": "flit-core",
    "hatchling": "hatchling",
    "poetry-core": "poetry-core",
    "pdm-backend": "pdm-backend",
    "maturin": "maturin",
    "pathspec": "pathspec",
    "pluggy": "pluggy",
    "trove-classifiers": "trove-classifiers",
    "mypy-extensions": "mypy_extensions",
    "tomli": "tomli",
    "click": "click",
    "python-dateutil": "python-dateutil",
    "pytz": "pytz",
    "tzdata": "python-tzdata",
    "pysocks": "pysocks",
    "zstandard": "zstandard",
    "brotli": "brotli-python",
    "h2": "h2",
    "sniffio": "sniffio",
    "anyio": "anyio",
    "hatch-vcs": "hatch-vcs",
    "setuptools-scm": "setuptools-scm",
    "vcs-versioning": "vcs-versioning",
    "calver": "calver",
    "editables": "editables",
    "flit-scm": "flit-scm",
    "mypy": "mypy",
    "pytest": "pytest",
    "pytest-run-parallel": "pytest-run-parallel",
    "iniconfig": "iniconfig",
    "pygments": "pygments",
    "exceptiongroup": "exceptiongroup",
    "hypothesis": "hypothesis",
    "sortedcontainers": "sortedcontainers",
}


def conda_name(pypi_name: str, extra: Mapping[str, str] | None = None) -> str | None:
    """The conda name for ``pypi_name``, or None when unknown."""
    key = normalize(pypi_name)
    if extra and key in {normalize(k): v for k, v in extra.items()}:
        return {normalize(k): v for k, v in extra.items()}[key]
    return KNOWN.get(key)


def conda_name_or_assumed(pypi_name: str, extra: Mapping[str, str] | None = None
                          ) -> tuple[str, bool]:
    """``(conda name, assumed)``: a known name, else the normalised PyPI name, assumed."""
    known = conda_name(pypi_name, extra)
    return (known, False) if known is not None else (normalize(pypi_name), True)
