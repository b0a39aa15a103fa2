"""Cython extensions nothing asks Cython for are opt-in: the default build is pure.

charset-normalizer declares ``Extension("charset_normalizer.md", ["...md.pyx"])``
only when ``CHARSET_NORMALIZER_USE_CYTHON=1``; without it the wheel is pure.
Calling it compiled made a free-threaded build that ships no extension module,
which the must-ship check then refuses.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from ftforge.recipes.sdist import inspect_sdist

SETUP = """import os
from setuptools import Extension, setup
ext = []
if os.getenv("OPT_IN_USE_CYTHON") == "1":
    from Cython.Build import cythonize
    ext = cythonize([Extension("optin.speed", ["src/optin/speed.pyx"])])
setup(ext_modules=ext)
"""


def _sdist(tmp_path: Path, requires: str) -> Path:
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: optin\nVersion: 1.0\n",
        "setup.py": SETUP,
        "pyproject.toml": f'[build-system]\nrequires = [{requires}]\n'
                          'build-backend = "setuptools.build_meta"\n',
        "src/optin/__init__.py": "",
        "src/optin/speed.pyx": "def f(): return 1\n",
    }
    path = tmp_path / "optin-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"optin-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cython_sources_without_cython_are_an_opt_in_pure_build(tmp_path):
    facts = inspect_sdist(_sdist(tmp_path, '"setuptools"'))
    assert facts.compiled is False and facts.compiled_evidence == ()
    assert any("opt-in" in note for note in facts.notes)


def test_cython_sources_with_cython_required_are_compiled(tmp_path):
    facts = inspect_sdist(_sdist(tmp_path, '"setuptools", "cython>=3"'))
    assert facts.compiled is True
    assert "setup.py declares extension modules" in facts.compiled_evidence


def test_a_compiled_backend_without_compiled_sources_is_pure(tmp_path):
    """meson-python's own sdist is built by meson-python and is pure Python."""
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: mesonpure\nVersion: 1.0\n",
        "pyproject.toml": '[build-system]\nrequires = ["meson-python"]\n'
                          'build-backend = "mesonpy"\n',
        "meson.build": "project('mesonpure')\npy = import('python').find_installation()\n",
        "mesonpure/__init__.py": "",
    }
    path = tmp_path / "mesonpure-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"mesonpure-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    facts = inspect_sdist(path)
    assert facts.backend == "meson-python" and facts.compiled is False
