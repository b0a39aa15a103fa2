"""What an sdist is made of: build backend, compiled code, stable ABI, modules, metadata.

The archive is read member by member (small text files only); nothing is
extracted and no code from it runs. Everything in it is untrusted: sizes,
member counts and tar headers are bounded by :class:`ftforge.limits.SourceLimits`,
and the metadata that reaches file names or recipe text (name, version,
module names, summary, URLs) is validated or reduced to one plain line here.
"""

from __future__ import annotations

import email.parser
import re
import stat
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from ..errors import FtforgeError
from ..limits import SourceLimits
from . import declared

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
    extension_modules: tuple[str, ...] = ()
    """Extension modules the build files declare (see ``recipes.declared``)."""
    cxx: bool = False
    """The compiled code needs a C++ compiler (C++ sources, or the build asks for C++)."""


class _LimitCrossed(Exception):
    """A SourceLimits setting crossed while reading an archive (message names it)."""


_EXTENDED_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                     tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a PAX / GNU long-name header larger than the limit *before* tarfile
    reads its payload into memory (a 40 KB .tar.gz can announce a 1 GiB header)."""

    max_header_bytes = SourceLimits().max_header_bytes

    def _proc_member(self, tarfile_):  # tarfile's hook for every header it reads
        if self.type in _EXTENDED_HEADERS and self.size > self.max_header_bytes:
            raise _LimitCrossed(f"a {self.size}-byte extended tar header is larger than "
                                f"{self.max_header_bytes} bytes (SourceLimits.max_header_bytes)")
        return super()._proc_member(tarfile_)


def _zip_entry_count(path: Path) -> int:
    """Entries the zip's end record announces, read before the central directory is."""
    with path.open("rb") as handle:
        record = zipfile._EndRecData(handle)  # noqa: SLF001 - the stdlib's own EOCD reader
    if record is None:
        raise zipfile.BadZipFile("no end of central directory record")
    return record[zipfile._ECD_ENTRIES_TOTAL]  # noqa: SLF001


class _Archive:
    """Uniform read-only access to .tar.gz / .zip sdists, paths without the root folder.

    Member count, total size and tar header sizes are checked while the archive's
    directory is read; a text file is read only up to ``max_metadata_bytes``."""

    def __init__(self, path: Path, limits: SourceLimits = SourceLimits()) -> None:
        self.path, self.limits = path, limits
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
                raise _LimitCrossed("not a regular file")
            if path.stat().st_size > limits.max_sdist_bytes:
                raise _LimitCrossed(f"larger than {limits.max_sdist_bytes} bytes "
                                    "(SourceLimits.max_sdist_bytes)")
            names = self._open_zip(path) if path.name.endswith(".zip") else self._open_tar(path)
        except _LimitCrossed as exc:
            self.close()
            raise SdistError(f"{path}: refused: {exc}",
                             hint="the sdist is malformed or hostile; nothing was extracted") \
                from None
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError,
                UnicodeError) as exc:
            self.close()
            reason = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(":")
            raise SdistError(f"{path}: not a readable sdist archive ({reason})",
                             hint="delete it from the cache and download it again") from None
        self.files: dict[str, str] = {}
        for name in names:
            parts = PurePosixPath(name).parts
            if len(parts) >= 2 and ".." not in parts and not name.startswith("/"):
                self.files[str(PurePosixPath(*parts[1:]))] = name

    def _open_zip(self, path: Path) -> list[str]:
        if _zip_entry_count(path) > self.limits.max_members:
            raise _LimitCrossed(f"more than {self.limits.max_members} members "
                                "(SourceLimits.max_members)")
        self._zip = zipfile.ZipFile(path)
        infos = self._zip.infolist()
        if len(infos) > self.limits.max_members:
            raise _LimitCrossed(f"more than {self.limits.max_members} members "
                                "(SourceLimits.max_members)")
        if sum(i.file_size for i in infos) > self.limits.max_unpacked_bytes:
            raise _LimitCrossed(f"members larger than {self.limits.max_unpacked_bytes} bytes "
                                "together (SourceLimits.max_unpacked_bytes)")
        return [i.filename for i in infos if not i.is_dir()]

    def _open_tar(self, path: Path) -> list[str]:
        bounded = type("_TarInfo", (_BoundedTarInfo,),
                       {"max_header_bytes": self.limits.max_header_bytes})
        self._tar = tarfile.open(path, tarinfo=bounded)
        names, total = [], 0
        for count, member in enumerate(self._tar, start=1):
            if count > self.limits.max_members:
                raise _LimitCrossed(f"more than {self.limits.max_members} members "
                                    "(SourceLimits.max_members)")
            total += max(member.size, 0)
            if total > self.limits.max_unpacked_bytes:
                raise _LimitCrossed(f"members larger than {self.limits.max_unpacked_bytes} "
                                    "bytes together (SourceLimits.max_unpacked_bytes)")
            if member.isfile():
                names.append(member.name)
        return names

    def close(self) -> None:
        for handle in (self._zip, self._tar):
            if handle is not None:
                handle.close()

    def read(self, rel: str) -> str | None:
        """The text of member ``rel``; one larger than ``max_metadata_bytes`` is refused
        (never cut, never read whole first)."""
        name = self.files.get(rel)
        if name is None:
            return None
        limit = self.limits.max_metadata_bytes
        try:
            if self._zip is not None:
                with self._zip.open(name) as handle:
                    data = handle.read(limit + 1)
            else:
                handle = self._tar.extractfile(name)
                data = handle.read(limit + 1) if handle else b""
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise SdistError(f"{self.path}: {rel} cannot be read "
                             f"({(str(exc).splitlines() or [type(exc).__name__])[0]})",
                             hint="delete it from the cache and download it again") from None
        if len(data) > limit:
            raise SdistError(f"{self.path}: refused: {rel} is larger than {limit} bytes "
                             "(SourceLimits.max_metadata_bytes)",
                             hint="the sdist is malformed or hostile; nothing was extracted")
        return data.decode("utf-8", errors="replace")

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)


def requirement_name(requirement: str) -> str:
    """``"Cython >= 3.1; python_version<'3.14'"`` -> ``"cython"`` (lower case, ``_`` as ``-``)."""
    return re.split(r"[\s;<>=!~\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def is_cython_requirement(requirement: str) -> bool:
    return re.match(r"(?i)cython\b", requirement.strip()) is not None


def _check_build_system(pyproject: dict) -> None:
    """``[build-system]`` has the types PEP 518/517 give it (hostile files do not)."""
    system = pyproject.get("build-system", {})
    problem = None
    if not isinstance(system, dict):
        problem = "is not a table"
    elif not isinstance(system.get("requires", []), list) or not all(
            isinstance(r, str) for r in system.get("requires", [])):
        problem = "'requires' is not a list of strings"
    elif not isinstance(system.get("build-backend", ""), str):
        problem = "'build-backend' is not a string"
    elif not isinstance(system.get("backend-path", []), list) or not all(
            isinstance(r, str) for r in system.get("backend-path", [])):
        problem = "'backend-path' is not a list of strings"
    if problem:
        raise SdistError(f"pyproject.toml [build-system] {problem} (PEP 517/518)",
                         hint="the sdist's pyproject.toml is malformed; ftforge cannot build it")


def _table(data: object, *keys: str) -> dict:
    """``data[k1][k2]...`` if every level is a table, else ``{}``."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _one_line(value: object, limit: int = 300) -> str:
    """A metadata value as one plain line (it ends up in recipe text)."""
    text = " ".join(str(value or "").split())
    return "".join(c for c in text if c.isprintable())[:limit]


def _url(value: object) -> str:
    text = str(value or "").strip()
    return text if re.fullmatch(r"https?://[^\s\"'<>`\\{}]+", text) and len(text) < 500 else ""


_SAFE_MEMBER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./+-]*$")


def _module_name(name: str) -> bool:
    return all(part.isidentifier() and part.isascii() for part in name.split("."))


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
            # Importable names only (private ones too: `_ruamel_yaml` is the extension);
            # not stub folders like "ujson-stubs".
            mods = tuple(sorted({m.strip() for m in text.split() if _module_name(m.strip())}))
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
    # Module names end up in the recipe's import test: identifiers only.
    return tuple(sorted(m for m in found if not m.startswith("_") and m not in _SKIP_DIRS
                        and _module_name(m)))


def inspect_sdist(path: Path, *, limits: SourceLimits = SourceLimits()) -> SdistFacts:
    try:
        return _inspect(path, limits)
    except SdistError as exc:
        if path.name in exc.message:
            raise
        raise SdistError(f"{path.name}: {exc.message}", hint=exc.hint) from None


def _name_and_version(meta, path: Path) -> tuple[str, str]:
    """PKG-INFO's Name (PEP 508) and Version (PEP 440), refused otherwise: the name
    becomes a directory under --output-dir and both end up in recipe text."""
    from packaging.version import InvalidVersion, Version

    from ..pypi import PyPIError, validate_name

    name, version = str(meta.get("Name") or ""), str(meta.get("Version") or "")
    try:
        validate_name(name, source=f"{path}: PKG-INFO Name")
    except PyPIError as exc:
        raise SdistError(exc.message, hint="the sdist is malformed or hostile; nothing was "
                         "written") from None
    try:
        Version(version)
    except InvalidVersion:
        raise SdistError(f"{path}: PKG-INFO Version {version[:80]!r} is not a PEP 440 version",
                         hint="the sdist is malformed or hostile; nothing was written") from None
    if not re.fullmatch(r"[A-Za-z0-9.+!_-]+", version):
        raise SdistError(f"{path}: PKG-INFO Version {version[:80]!r} has characters a version "
                         "cannot have", hint="the sdist is malformed or hostile")
    return name, version


def _inspect(path: Path, limits: SourceLimits) -> SdistFacts:
    archive = _Archive(path, limits)
    try:
        return _facts(path, archive)
    finally:
        archive.close()


def _facts(path: Path, archive: _Archive) -> SdistFacts:
    pkg_info = archive.read("PKG-INFO")
    if pkg_info is None:
        raise SdistError(f"{path}: no PKG-INFO at the top of the sdist",
                         hint="this is not a PEP 517 sdist; ftforge cannot read its metadata")
    meta = email.parser.Parser().parsestr(pkg_info)
    name, version = _name_and_version(meta, path)
    pyproject_text = archive.read("pyproject.toml")
    try:
        pyproject = tomllib.loads(pyproject_text) if pyproject_text else {}
    except tomllib.TOMLDecodeError as exc:
        raise SdistError(f"{path}: pyproject.toml is not valid TOML ({exc})") from None
    except RecursionError:
        raise SdistError(f"{path}: pyproject.toml nests too deeply to read",
                         hint="the sdist is malformed or hostile") from None
    _check_build_system(pyproject)
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
    if "ext-modules" in _table(pyproject, "tool", "setuptools"):
        evidence.append("pyproject.toml declares [tool.setuptools] ext-modules")
    if backend in ("meson-python", "scikit-build-core", "maturin") and sources:
        # meson-python's own sdist is built by meson-python and is pure Python:
        # the backend says compiled only with compiled sources beside it.
        evidence.append(f"{backend} builds compiled code")
    if evidence and sources:
        evidence.append(f"{len(sources)} compiled source file(s), e.g. {sources[0]}")
    uses_cython = any(map(is_cython_requirement, build_requires))
    notes: list[str] = []
    if (evidence and sources and not uses_cython
            and backend not in ("meson-python", "scikit-build-core", "maturin")
            and all(PurePosixPath(r).suffix == ".pyx" for r in sources)):
        # Cython sources and nothing that asks for Cython (the backend is asked for
        # its dynamic requirements later, and a Cython answer makes it compiled
        # again): the extensions are opt-in (e.g. charset-normalizer's
        # CHARSET_NORMALIZER_USE_CYTHON=1), and the default build is pure Python.
        notes.append("the build declares Cython extension modules but does not ask for "
                     "Cython: they are opt-in, and the default build is pure Python")
        evidence = []
    build_text = "\n".join(archive.read(f) or "" for f in ("setup.py", "setup.cfg", "pyproject.toml"))
    limited = bool(_LIMITED_API.search(build_text))

    license_files = tuple(meta.get_all("License-File") or ())
    build_files = {rel: archive.read(rel) or "" for rel in archive
                   if rel in ("setup.py", "setup.cfg", "pyproject.toml", "meson.build",
                              "CMakeLists.txt")}
    return SdistFacts(
        name=name,
        version=version,
        backend=backend,
        build_requires=build_requires,
        compiled=bool(evidence),
        compiled_evidence=tuple(evidence),
        limited_api=limited,
        self_hosted_backend=_self_hosted(pyproject) and wrapper is None,
        backend_wrapper=wrapper,
        uses_cython=uses_cython,
        top_level=_top_level(archive, name),
        requires_dist=tuple(_one_line(r, 1000) for r in meta.get_all("Requires-Dist") or ()),
        requires_python=_one_line(meta.get("Requires-Python")) or None,
        summary=_one_line(meta.get("Summary")),
        license=_one_line(meta.get("License-Expression") or meta.get("License")),
        license_files=tuple(f for f in map(str, license_files) if f in archive.files
                            and _SAFE_MEMBER.match(f) and ".." not in f),
        classifiers=tuple(_one_line(c) for c in meta.get_all("Classifier") or ()),
        homepage=_url(next((str(u).split(",", 1)[1] for u in meta.get_all("Project-URL") or ()
                            if str(u).lower().startswith(("homepage", "home")) and "," in str(u)),
                           meta.get("Home-page"))),
        extension_modules=declared.extension_modules(build_files, pyproject),
        cxx=bool(evidence) and declared.needs_cxx(sources, build_files),
        notes=tuple(notes),
    )
