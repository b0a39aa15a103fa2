"""The linkage audit: every shared library a package's ELF files need is accounted for.

A conda package must carry or depend on what it links. For each ELF file in
a package about to be published, every ``DT_NEEDED`` library must be

* in the package itself (any file or symlink of that name), or
* in a package of its run-dependency closure, read from the channel's own
  packages (and the packages published with it in the same call), or
* one of glibc's own (:data:`GLIBC_LIBRARIES`), or
* listed in the package's system-profile marker
  (``share/ftforge/linkage/*.txt``, written by the ``system`` dependency
  profile: such a package says, file by file, what it takes from the build
  machine).

Otherwise the package is refused with a message naming the file, the library
and, when a package in the channel provides it, that package.

The ``GLIBC_x.y`` symbol versions an ELF file needs must be covered by the
package's ``__glibc >=X`` dependency (versions above :data:`GLIBC_BASELINE`
only: conda-forge's baseline, which every linux-64 client has).

Run-dependency matching is by package name (every build of that name in the
channel counts), which is lenient on purpose: the solver's pins are checked by
the channel invariants, this audit checks that a provider exists at all.
"""

from __future__ import annotations

import json
import posixpath
import re
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "GLIBC_BASELINE",
    "GLIBC_LIBRARIES",
    "SYSTEM_MARKER_DIR",
    "ElfLinkage",
    "LinkageFinding",
    "PackageLinkage",
    "check_linkage",
    "read_linkage",
]

GLIBC_LIBRARIES: frozenset[str] = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
    "libutil.so.1", "libresolv.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
})
"""glibc's own libraries: the only ones a package may take from the system."""

GLIBC_BASELINE = (2, 17)
"""Symbol versions up to this need no ``__glibc`` dependency (conda-forge's floor)."""

SYSTEM_MARKER_DIR = "share/ftforge/linkage/"
"""Where a system-profile package lists the system libraries it links."""

_ELF_MAGIC = b"\x7fELF"
_MAX_ELF_BYTES = 512 << 20
_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.\d+)?$")
_GLIBC_DEP = re.compile(r"^__glibc\s*>=\s*(\d+)\.(\d+)")


@dataclass(frozen=True)
class ElfLinkage:
    path: str
    needed: tuple[str, ...]
    glibc: tuple[int, int] | None
    """The highest ``GLIBC_x.y`` symbol version the file needs."""


@dataclass(frozen=True)
class PackageLinkage:
    """What one package links and provides."""

    filename: str
    name: str
    subdir: str
    depends: tuple[str, ...]
    files: frozenset[str]
    """Base names of every file and symlink in the package."""
    elves: tuple[ElfLinkage, ...]
    system_libraries: frozenset[str] = field(default_factory=frozenset)
    """Libraries the system-profile marker says come from the build machine."""

    @property
    def declared_glibc(self) -> tuple[int, int] | None:
        for dep in self.depends:
            match = _GLIBC_DEP.match(dep.strip())
            if match:
                return int(match[1]), int(match[2])
        return None


@dataclass(frozen=True)
class LinkageFinding:
    rule: str
    member: str
    message: str


def _elf_linkage(path: str, spool) -> ElfLinkage | None:
    """DT_NEEDED and GLIBC_ version needs, read through the program headers as the
    loader reads them (:mod:`.elfdyn`): section headers can be damaged or lie."""
    from .elfdyn import ElfUnreadable, read_dynamic_symbols

    try:
        spool.seek(0)
        symbols = read_dynamic_symbols(spool)
    except (ElfUnreadable, struct.error, OSError):
        return None  # not an ELF object this audit can read; the archive audit refuses it
    best: tuple[int, int] | None = None
    for name in symbols.version_needs:
        match = _GLIBC_VERSION.match(name)
        if match:
            version = (int(match[1]), int(match[2]))
            best = max(best, version) if best else version
    return ElfLinkage(path, symbols.needed, best)


def _marker_libraries(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(posixpath.basename(line.split()[0]))
    return names


def read_linkage(package: Path) -> PackageLinkage:
    """Stream ``package`` once: its index, file names, ELF needs and system marker."""
    from conda_package_streaming.package_streaming import stream_conda_component

    index: dict = {}
    files: set[str] = set()
    elves: list[ElfLinkage] = []
    system: set[str] = set()
    for component in ("info", "pkg"):
        try:
            stream = stream_conda_component(str(package), component=component)
        except ValueError:
            if component == "pkg":  # .tar.bz2: one archive, read whole as "info"
                break
            raise
        for tar, member in stream:
            name = member.name
            if name == "info/index.json":
                index = json.loads(tar.extractfile(member).read())
                continue
            if name.startswith("info/"):
                continue
            if member.issym() or member.islnk():
                files.add(posixpath.basename(name))
                continue
            if not member.isfile():
                continue
            files.add(posixpath.basename(name))
            if name.startswith(SYSTEM_MARKER_DIR) and name.endswith(".txt"):
                system |= _marker_libraries(tar.extractfile(member).read(1 << 20).decode(
                    errors="replace"))
                continue
            if member.size < 64 or member.size > _MAX_ELF_BYTES:
                continue
            handle = tar.extractfile(member)
            head = handle.read(4)
            if head != _ELF_MAGIC:
                continue
            with tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool:
                spool.write(head)
                while chunk := handle.read(1 << 20):
                    spool.write(chunk)
                facts = _elf_linkage(name, spool)
            if facts is not None:
                elves.append(facts)
    return PackageLinkage(package.name, str(index.get("name", "")),
                          str(index.get("subdir") or "noarch"),
                          tuple(index.get("depends") or ()), frozenset(files),
                          tuple(elves), frozenset(system))


@lru_cache(maxsize=4096)
def _cached(path: str, mtime_ns: int, size: int) -> PackageLinkage:
    return read_linkage(Path(path))


def _linkage_of(path: Path) -> PackageLinkage:
    stat = path.stat()
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)


def _dep_name(spec: str) -> str:
    return spec.strip().split()[0].split("[")[0] if spec.strip() else ""


def _channel_packages(channel: Path | None, subdir: str) -> dict[str, list[Path]]:
    """name -> package files in the channel's ``subdir`` and ``noarch``."""
    by_name: dict[str, list[Path]] = {}
    if channel is None or not channel.is_dir():
        return by_name
    from .index import channel_records

    for record in channel_records(channel):
        if record.get("subdir") not in (subdir, "noarch"):
            continue
        path = channel / str(record.get("subdir")) / str(record.get("fn"))
        if path.is_file():
            by_name.setdefault(str(record.get("name")), []).append(path)
    return by_name


def _closure(pkg: PackageLinkage, providers: dict[str, list[PackageLinkage]]) -> list[str]:
    """Names of the run-dependency closure (depth-first, each once)."""
    seen: list[str] = []
    todo = [_dep_name(d) for d in pkg.depends]
    while todo:
        name = todo.pop()
        if not name or name in seen or name.startswith("__"):
            continue
        seen.append(name)
        for provider in providers.get(name, []):
            todo.extend(_dep_name(d) for d in provider.depends)
    return seen


def check_linkage(batch: Iterable[Path], channel: Path | None = None
                  ) -> dict[Path, list[LinkageFinding]]:
    """Findings per package of ``batch`` (packages published together into ``channel``)."""
    batch = [Path(p) for p in batch]
    linkages = {path: _linkage_of(path) for path in batch}
    results: dict[Path, list[LinkageFinding]] = {path: [] for path in batch}
    channel_by_subdir: dict[str, dict[str, list[Path]]] = {}
    for path, pkg in linkages.items():
        if not pkg.elves:
            continue
        if pkg.subdir not in channel_by_subdir:
            channel_by_subdir[pkg.subdir] = _channel_packages(channel, pkg.subdir)
        providers = _Providers(channel_by_subdir[pkg.subdir])
        for other in linkages.values():
            if other.subdir in (pkg.subdir, "noarch"):
                providers.setdefault(other.name, []).append(other)
        results[path] = _findings(pkg, providers)
    return results


class _Providers(dict):
    """name -> linkages of the channel's packages of that name (and the batch's), each
    name's packages read on first use: a publish reads what its closure reaches, not
    every package of the channel (issue 16: 5,000 re-read for one package)."""

    def __init__(self, paths: dict[str, list[Path]]) -> None:
        super().__init__()
        self._paths = paths

    def get(self, name, default=None):  # noqa: ANN001 -- dict's signature
        if name in self._paths and not super().__contains__(name):
            self[name] = [_linkage_of(p) for p in self._paths[name]]
        return super().get(name, default)

    def setdefault(self, name, default=None):  # noqa: ANN001
        self.get(name)
        return super().setdefault(name, default)

    def every(self) -> list[tuple[str, list[PackageLinkage]]]:
        """All of them, in the channel's order then the batch's (reads every package)."""
        channel = [(name, self.get(name)) for name in self._paths]
        return channel + [(n, v) for n, v in self.items() if n not in self._paths]


def _findings(pkg: PackageLinkage, providers: dict[str, list[PackageLinkage]]
              ) -> list[LinkageFinding]:
    closure = _closure(pkg, providers)
    from_deps: dict[str, str] = {}
    for name in closure:
        for provider in providers.get(name, []):
            for lib in provider.files:
                from_deps.setdefault(lib, name)
    anywhere: dict[str, str] | None = None  # only for the message of a finding
    findings: list[LinkageFinding] = []
    declared = pkg.declared_glibc
    for elf in pkg.elves:
        for lib in elf.needed:
            if (lib in pkg.files or lib in GLIBC_LIBRARIES or lib in from_deps
                    or lib in pkg.system_libraries):
                continue
            if anywhere is None:
                anywhere = {}
                every = providers.every() if isinstance(providers, _Providers) \
                    else providers.items()
                for name, builds in every:
                    for provider in builds:
                        for found in provider.files:
                            anywhere.setdefault(found, name)
            provider = anywhere.get(lib)
            if provider:
                what = (f"the channel's {provider} provides it, but {pkg.name} does not "
                        f"depend on it: add {provider} to the run requirements (a host "
                        "requirement whose run_exports pin it)")
            else:
                what = ("no package in the channel provides it: package the library "
                        "(`ftforge recipe native`) and depend on it; a system-profile build "
                        f"must list it in its {SYSTEM_MARKER_DIR} marker")
            findings.append(LinkageFinding(
                "linkage.unprovided-library", elf.path,
                f"{pkg.filename}: {elf.path} needs {lib}, which is neither in {pkg.name}, nor "
                f"in its run dependencies, nor glibc's; {what}"))
        if elf.glibc and elf.glibc > GLIBC_BASELINE and (declared is None or declared < elf.glibc):
            need = ".".join(map(str, elf.glibc))
            has = f"__glibc >={'.'.join(map(str, declared))}" if declared else "no __glibc"
            findings.append(LinkageFinding(
                "linkage.glibc-undeclared", elf.path,
                f"{pkg.filename}: {elf.path} needs glibc symbols GLIBC_{need}, but {pkg.name} "
                f"declares {has}: build it with ftforge's compiler packages (they export "
                f"__glibc >=<the build machine's glibc>) or add `__glibc >={need}` to run"))
    return findings
