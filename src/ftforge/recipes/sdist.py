"""What an sdist is made of: build backend, compiled code, stable ABI, modules, metadata.

The archive is read member by member (small text files only); nothing is
extracted and no code from it runs.
"""

from __future__ import annotations

import email.parser
import re
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from ..errors import FtforgeError

__all__ = ["BACKENDS", "Backend", "SdistError", "SdistFacts", "inspect_sdist"]

Backend = Literal[
    "setuptools", "meson-python", "scikit-build-core", "flit-core", "hatchling",
    "poetry-core", "pdm-backend", "maturin",
]

# build-backend entry point -> (backend, its conda package name)
BACKENDS: dict[str, tuple[Backend, str]] = {
    "setuptools.build_meta": ("setuptools", "setuptools"),
    "setuptools.build_meta:__legacy__": ("setuptools", "setuptools"),
    "mesonpy": ("meson-python", "meson-python"),
    "scikit_build_core.build": ("scikit-build-core", "scikit-build-core"),
    "flit_core.buildapi": ("flit-core", "flit-core"),
    "hatchling.build": ("hatchling", "hatchling"),
    "hatchling.ouroboros": ("hatchling", "hatchling"),  # hatchling building itself
    "poetry.core.masonry.api": ("poetry-core", "poetry-core"),
    "pdm.backend": ("pdm-backend", "pdm-backend"),
    "maturin": ("maturin", "maturin"),
}

_COMPILED_SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".pyx", ".rs", ".f90", ".f"}
_SKIP_DIRS = {"test", "tests", "doc", "docs", "benchmarks", "bench", "examples", "testing"}
_LIMITED_API = re.compile(r"py_limited_api\s*=\s*(True|['\"]cp3)|Py_LIMITED_API|limited-api\s*=\s*true"
                          r"|wheel\.py-api\s*=\s*['\"]cp3")


class SdistError(FtforgeError):
    """An sdist that cannot be read or understood."""


@dataclass(frozen=True)
class SdistFacts:
    name: str
    version: str
    backend: Backend
    build_requires: tuple[str, ...]
    compiled: bool
    compiled_evidence: tuple[str, ...]
    limited_api: bool
    self_hosted_backend: bool
    backend_wrapper: str | None
    uses_cython: bool
    top_level: tuple[str, ...]
    requires_dist: tuple[str, ...]
    requires_python: str | None
    summary: str = ""
    license: str = ""
    license_files: tuple[str, ...] = ()
    classifiers: tuple[str, ...] = ()
    homepage: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


class _Archive:
    """Uniform read-only access to .tar.gz / .zip sdists, paths without the root folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            if path.name.endswith(".zip"):
                self._zip = zipfile.ZipFile(path)
                names = [n for n in self._zip.namelist() if not n.endswith("/")]
                self._tar = None
            else:
                self._tar = tarfile.open(path)
                self._zip = None
                names = [m.name for m in self._tar.getmembers() if m.isfile()]
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SdistError(f"{path}: not a readable sdist archive ({exc})",
                             hint="delete it from the cache and download it again") from None
        self.files: dict[str, str] = {}
        for name in names:
            parts = PurePosixPath(name).parts
            if len(parts) >= 2 and ".." not in parts:
                self.files[str(PurePosixPath(*parts[1:]))] = name

    def read(self, rel: str, limit: int = 2_000_000) -> str | None:
        name = self.files.get(rel)
        if name is None:
            return None
        if self._zip is not None:
            data = self._zip.read(name)[:limit]
        else:
            handle = self._tar.extractfile(name)
            data = handle.read(limit) if handle else b""
        return data.decode("utf-8", errors="replace")

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)


def requirement_name(requirement: str) -> str:
    """``"Cython >= 3.1; python_version<'3.14'"`` -> ``"cython"`` (lower case, ``_`` as ``-``)."""
    return re.split(r"[\s;<>=!~\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def is_cython_requirement(requirement: str) -> bool:
    return re.match(r"(?i)cython\b", requirement.strip()) is not None


def _self_hosted(pyproject: dict) -> bool:
    """A backend that builds itself from the source tree (``backend-path``)."""
    return bool((pyproject.get("build-system") or {}).get("backend-path"))


def _backend(pyproject: dict) -> tuple[Backend, tuple[str, ...], str | None]:
    """(backend, build requires, in-tree wrapper entry point or None)."""
    system = pyproject.get("build-system") or {}
    entry = system.get("build-backend")
    requires = tuple(system.get("requires") or ())
    if entry is None:  # PEP 517 fallback: legacy setuptools
        return "setuptools", requires or ("setuptools",), None
    if entry in BACKENDS:
        return BACKENDS[entry][0], requires, None
    if _self_hosted(pyproject):
        # An in-tree wrapper (PyYAML's _pyyaml_pep517, charset-normalizer's
        # backend): it delegates to a real backend named in `requires`.
        by_package = {pkg: backend for backend, pkg in BACKENDS.values()}
        for text in requires:
            name = requirement_name(text)
            if name in by_package:
                return by_package[name], requires, entry
    raise SdistError(
        f"build backend '{entry}' is not one ftforge knows (pyproject.toml [build-system])",
        hint=f"supported: {', '.join(sorted({b for b, _ in BACKENDS.values()}))}",
    )


def _top_level(archive: _Archive, name: str) -> tuple[str, ...]:
    for rel in archive:
        if rel.endswith(".egg-info/top_level.txt") and rel.count("/") <= 2:
            text = archive.read(rel) or ""
            # Importable names only: not private, not stub folders like "ujson-stubs".
            mods = tuple(sorted({m.strip() for m in text.split()
                                 if m.strip().isidentifier() and not m.startswith("_")}))
            if mods:
                return mods
    packages, modules, namespaced = set(), set(), set()
    for rel in archive:
        parts = PurePosixPath(rel).parts
        base = parts[1:] if parts and parts[0] == "src" else parts
        if len(base) == 2 and base[1] == "__init__.py" and base[0] not in _SKIP_DIRS:
            packages.add(base[0])
        elif len(base) == 3 and base[2] == "__init__.py" and base[0] not in _SKIP_DIRS:
            namespaced.add(f"{base[0]}.{base[1]}")
        elif len(base) == 1 and base[0].endswith(".py") and base[0] not in (
                "setup.py", "conftest.py", "noxfile.py", "tasks.py"):
            modules.add(base[0][:-3])
    # Root-level scripts (bootstrap_install.py, ...) count only for single-module projects;
    # test packages (tests_core, ...) are not installed.
    packages = {p for p in packages if not re.match(r"^tests?(_|$)|.*_tests?$", p)}
    own = re.sub(r"[-.]", "_", name).lower()
    if own in {p.lower() for p in packages}:  # the project's own package; helpers aside
        packages = {p for p in packages if p.lower() == own}
    namespaced = {n for n in namespaced if n.split(".")[0] not in packages}
    own_ns = re.sub(r"[-_]", ".", name).lower()
    if not packages and own_ns in {n.lower() for n in namespaced}:  # poetry-core -> poetry.core
        namespaced = {n for n in namespaced if n.lower() == own_ns}
    found = packages or namespaced or modules
    if not found:
        found.add(name.replace("-", "_").lower())
    return tuple(sorted(m for m in found if not m.startswith("_") and m not in _SKIP_DIRS))


def inspect_sdist(path: Path) -> SdistFacts:
    try:
        return _inspect(path)
    except SdistError as exc:
        if path.name in exc.message:
            raise
        raise SdistError(f"{path.name}: {exc.message}", hint=exc.hint) from None


def _inspect(path: Path) -> SdistFacts:
    archive = _Archive(path)
    pkg_info = archive.read("PKG-INFO")
    if pkg_info is None:
        raise SdistError(f"{path}: no PKG-INFO at the top of the sdist",
                         hint="this is not a PEP 517 sdist; ftforge cannot read its metadata")
    meta = email.parser.Parser().parsestr(pkg_info)
    pyproject_text = archive.read("pyproject.toml")
    try:
        pyproject = tomllib.loads(pyproject_text) if pyproject_text else {}
    except tomllib.TOMLDecodeError as exc:
        raise SdistError(f"{path}: pyproject.toml is not valid TOML ({exc})") from None
    backend, build_requires, wrapper = _backend(pyproject)

    # Compiled means the build *declares* extension modules (or uses a backend
    # that only builds compiled code); C files alone (a Windows launcher, a test
    # fixture) do not count.
    evidence = []
    sources = [r for r in archive
               if PurePosixPath(r).suffix in _COMPILED_SUFFIXES
               and not _SKIP_DIRS.intersection(PurePosixPath(r).parts[:-1])]
    setup_py = archive.read("setup.py") or ""
    if re.search(r"\bExtension\s*\(|ext_modules\s*=|cythonize\s*\(", setup_py):
        evidence.append("setup.py declares extension modules")
    if "ext-modules" in ((pyproject.get("tool") or {}).get("setuptools") or {}):
        evidence.append("pyproject.toml declares [tool.setuptools] ext-modules")
    if backend in ("meson-python", "scikit-build-core", "maturin"):
        evidence.append(f"{backend} builds compiled code")
    if evidence and sources:
        evidence.append(f"{len(sources)} compiled source file(s), e.g. {sources[0]}")
    uses_cython = any(map(is_cython_requirement, build_requires))
    build_text = "\n".join(archive.read(f) or "" for f in ("setup.py", "setup.cfg", "pyproject.toml"))
    limited = bool(_LIMITED_API.search(build_text))

    license_files = tuple(meta.get_all("License-File") or ())
    return SdistFacts(
        name=meta.get("Name", ""),
        version=meta.get("Version", ""),
        backend=backend,
        build_requires=build_requires,
        compiled=bool(evidence),
        compiled_evidence=tuple(evidence),
        limited_api=limited,
        self_hosted_backend=_self_hosted(pyproject) and wrapper is None,
        backend_wrapper=wrapper,
        uses_cython=uses_cython,
        top_level=_top_level(archive, meta.get("Name", path.name)),
        requires_dist=tuple(meta.get_all("Requires-Dist") or ()),
        requires_python=meta.get("Requires-Python"),
        summary=(meta.get("Summary") or "").strip(),
        license=(meta.get("License-Expression") or meta.get("License") or "").strip(),
        license_files=tuple(f for f in license_files if f in archive.files),
        classifiers=tuple(meta.get_all("Classifier") or ()),
        homepage=next((u.split(",", 1)[1].strip() for u in meta.get_all("Project-URL") or ()
                       if u.lower().startswith(("homepage", "home"))), meta.get("Home-page") or ""),
    )
