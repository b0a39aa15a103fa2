"""What an sdist's build configuration declares: its extension modules and their languages.

Read from the text of the build files (``setup.py``, ``pyproject.toml``,
``meson.build``, ``CMakeLists.txt``) and the names of the compiled sources;
nothing runs. The names are the ones the build gives its extension modules,
so the recipe test checks the modules the package really ships, not a guess
from the distribution's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

__all__ = ["CXX_SUFFIXES", "extension_modules", "needs_cxx"]

CXX_SUFFIXES = frozenset({".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh"})

_NAME = r"['\"](?P<name>[A-Za-z_][\w.]*)['\"]"
_DECLARATIONS = {
    # setuptools: Extension("pkg._speed", [...]) or Extension(name="pkg._speed", ...)
    "setup.py": re.compile(r"\bExtension\s*\(\s*(?:name\s*=\s*)?" + _NAME),
    # meson-python: py.extension_module('_speed', ...)
    "meson.build": re.compile(r"\.extension_module\s*\(\s*" + _NAME),
    # scikit-build-core: python_add_library(_speed MODULE ...), pybind11/nanobind helpers
    "CMakeLists.txt": re.compile(
        r"(?:python_add_library|Python_add_library|pybind11_add_module|nanobind_add_module)"
        r"\s*\(\s*['\"]?(?P<name>[A-Za-z_]\w*)"),
}
_CXX_IN_BUILD = re.compile(
    r"language\s*=\s*['\"]c\+\+['\"]"             # setuptools Extension(language="c++")
    r"|project\s*\([^)]*['\"](?:cpp|cxx)['\"]"     # meson project(..., 'cpp')
    r"|LANGUAGES[^)]*\bCXX\b"                      # CMake project(... LANGUAGES C CXX)
    r"|add_languages\s*\(\s*['\"]cpp['\"]",
    re.IGNORECASE,
)


def extension_modules(texts: Mapping[str, str], pyproject: Mapping) -> tuple[str, ...]:
    """Extension module names declared by the build files (``{relative path: text}``).

    Only top-level build files and ``[tool.setuptools] ext-modules`` count;
    names built from variables are not seen (the check that uses these names
    needs at least one to ship, not all of them).
    """
    found: set[str] = set()
    for rel, text in texts.items():
        pattern = _DECLARATIONS.get(PurePosixPath(rel).name)
        if pattern is not None:
            found.update(m["name"] for m in pattern.finditer(_without_comments(text))
                         if len(m["name"]) <= 200)
    tool = pyproject.get("tool")
    setuptools = tool.get("setuptools") if isinstance(tool, Mapping) else None
    modules = setuptools.get("ext-modules") if isinstance(setuptools, Mapping) else None
    for module in modules if isinstance(modules, list) else ():
        if isinstance(module, Mapping) and isinstance(module.get("name"), str):
            found.add(module["name"])
    return tuple(sorted(found))


def needs_cxx(sources: Iterable[str], texts: Mapping[str, str]) -> bool:
    """A C++ compiler is needed: a C++ source ships, or a build file asks for C++."""
    if any(PurePosixPath(s).suffix.lower() in CXX_SUFFIXES for s in sources):
        return True
    return any(_CXX_IN_BUILD.search(_without_comments(text)) for text in texts.values())


def _without_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())
