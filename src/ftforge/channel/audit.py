"""Audit a conda package before it reaches users: archive safety, metadata, ABI.

Each package is streamed with conda-package-streaming and never extracted:
member headers are checked before their data is read, so a tar bomb is
refused at the header that crosses the cap. Every refusal is a
:class:`Finding` that names the rule and the file inside the package.

The ABI rules read their facts from :mod:`ftforge.variants` only.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..build.mirror import sha256_of
from ..errors import ChannelError
from ..variants import (
    PythonVariant,
    classify_extension_module,
    variant_of_build_string,
    variant_of_python_abi_dependency,
)

__all__ = [
    "RULES",
    "AuditReport",
    "Finding",
    "Limits",
    "PackageRecord",
    "PackageRefused",
    "audit_package",
    "audit_packages",
    "package_stem",
]

RULES: dict[str, str] = {
    "archive.unreadable": "the file is not a readable .conda / .tar.bz2 archive",
    "archive.absolute-path": "a member has an absolute path",
    "archive.parent-path": "a member path contains '..'",
    "archive.link-escape": "a symlink or hardlink points outside the install prefix",
    "archive.special-file": "a member is a device file or FIFO",
    "archive.too-large": "the uncompressed content exceeds the size cap",
    "archive.too-many-members": "the archive has more members than the cap",
    "metadata.index-missing": "info/index.json is missing or not JSON",
    "metadata.filename": "index.json name-version-build does not match the file name",
    "metadata.paths-missing": "info/paths.json is missing or not JSON",
    "metadata.paths-sha256": "a file's sha256 differs from paths.json",
    "metadata.paths-size": "a file's size differs from paths.json",
    "metadata.paths-unlisted": "a file is in the archive but not in paths.json, or the reverse",
    "abi.python-abi-count": "a package built against python must depend on exactly one python_abi",
    "abi.marker-disagrees": "the build string's ABI marker disagrees with the python_abi dependency",
    "abi.abi3-in-freethreaded": "a free-threaded 3.13t/3.14t package ships a stable-ABI module",
    "abi.gil-module-in-freethreaded": "a free-threaded package ships a GIL-ABI module",
    "abi.freethreaded-module-in-gil": "a GIL package ships a free-threaded module",
    "abi.wrong-series": "an extension module is for another Python series than the package",
    "abi.compiled-in-noarch": "a noarch: python package ships compiled extension modules",
    "abi.module-built-for-other-abi": "the module's linked symbols show it was built for the other ABI",
}

# Symbols an extension module links that exist only in one interpreter ABI:
# free-threaded Py_DECREF calls _Py_DecRefShared / _Py_MergeZeroLocalRefcount;
# the GIL build's inline Py_DECREF calls _Py_Dealloc and never those.
_FREETHREADED_ONLY_SYMBOLS = frozenset({"_Py_DecRefShared", "_Py_MergeZeroLocalRefcount"})
_GIL_REFCOUNT_SYMBOL = "_Py_Dealloc"


@dataclass(frozen=True)
class Limits:
    max_total_bytes: int = 4 << 30
    max_members: int = 200_000
    max_module_bytes: int = 512 << 20
    """Extension modules larger than this are not symbol-checked (still name-checked)."""


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    member: str | None = None

    def __str__(self) -> str:
        where = f"{self.member}: " if self.member else ""
        return f"[{self.rule}] {where}{self.message}"


@dataclass(frozen=True)
class PackageRecord:
    """What the channel needs to know about an audited package: its file and its
    ``info/index.json``; the fields are read from the index, not copied."""

    filename: str
    sha256: str
    size: int
    index: dict = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return str(self.index.get("name", ""))

    @property
    def version(self) -> str:
        return str(self.index.get("version", ""))

    @property
    def build(self) -> str:
        return str(self.index.get("build", ""))

    @property
    def subdir(self) -> str:
        return str(self.index.get("subdir") or "noarch")

    @property
    def noarch(self) -> str | None:
        return self.index.get("noarch")

    @property
    def depends(self) -> tuple[str, ...]:
        return tuple(self.index.get("depends") or ())


@dataclass
class AuditReport:
    path: Path
    record: PackageRecord | None = None
    findings: list[Finding] = field(default_factory=list)
    members: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, rule: str, message: str, member: str | None = None) -> None:
        self.findings.append(Finding(rule, message, member))


class PackageRefused(ChannelError):
    """One or more packages failed the audit; nothing was published."""

    def __init__(self, reports: list[AuditReport]) -> None:
        lines = []
        for report in reports:
            for finding in report.findings:
                lines.append(f"{report.path.name}: {finding}")
        super().__init__(
            "refused by the channel audit:\n  " + "\n  ".join(lines),
            hint="fix the recipe and rebuild (bump the build number); "
            "`ftforge channel audit PACKAGE` shows every finding",
        )
        self.reports = reports


def package_stem(filename: str) -> str:
    for ext in (".conda", ".tar.bz2"):
        if filename.endswith(ext):
            return filename[: -len(ext)]
    raise ChannelError(f"{filename}: not a conda package (.conda or .tar.bz2)")


_MAGIC = {".conda": b"PK\x03\x04", ".tar.bz2": b"BZh"}


class _Stop(Exception):
    """A cap was crossed: stop reading the archive at once."""


@dataclass
class _Member:
    sha256: str
    size: int
    elf: bytes | None


class _Scan:
    def __init__(self, report: AuditReport, limits: Limits) -> None:
        self.report = report
        self.limits = limits
        self.total = 0
        self.files: dict[str, _Member] = {}
        self.info: dict[str, bytes] = {}

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        report, name = self.report, m.name
        report.members += 1
        if report.members > self.limits.max_members:
            report.add("archive.too-many-members",
                       f"more than {self.limits.max_members} members; stopped reading")
            raise _Stop
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            report.add("archive.absolute-path", "absolute path", name)
            return
        if ".." in name.split("/"):
            report.add("archive.parent-path", "path leaves the prefix with '..'", name)
            return
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            report.add("archive.special-file", "device file or FIFO", name)
            return
        if m.issym() or m.islnk():
            base = posixpath.dirname(name) if m.issym() else ""
            target = posixpath.normpath(posixpath.join(base, m.linkname))
            if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                kind = "symlink" if m.issym() else "hardlink"
                report.add("archive.link-escape", f"{kind} to '{m.linkname}' leaves the prefix", name)
            return
        if not m.isfile():
            return
        self.total += m.size
        if self.total > self.limits.max_total_bytes:
            report.add("archive.too-large",
                       f"uncompressed content exceeds {self.limits.max_total_bytes} bytes "
                       f"at this member ({m.size} bytes); stopped reading", name)
            raise _Stop
        handle = tar.extractfile(m)
        digest = hashlib.sha256()
        keep = (name.startswith("info/") and name.count("/") == 1) or (
            classify_extension_module(name) is not None and m.size <= self.limits.max_module_bytes
        )
        chunks = [] if keep else None
        size = 0
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            if chunks is not None:
                chunks.append(chunk)
        data = b"".join(chunks) if chunks is not None else None
        if name.startswith("info/"):
            if data is not None:
                self.info[name] = data
            return
        self.files[name] = _Member(digest.hexdigest(), size, data)


def _stream(path: Path) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    from conda_package_streaming.package_streaming import stream_conda_component

    if path.name.endswith(".conda"):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not any(n.startswith("info-") for n in names) or not any(
                n.startswith("pkg-") for n in names
            ):
                raise zipfile.BadZipFile("no info-*.tar.zst / pkg-*.tar.zst components")
            for component in ("info", "pkg"):
                yield from stream_conda_component(str(path), component=component, zf=zf)
    else:
        yield from stream_conda_component(str(path))


def audit_package(path: Path, limits: Limits = Limits()) -> AuditReport:
    """Every finding for ``path`` (none: it may publish). The archive is streamed once
    for the checks; the file's own sha256 (for repodata and immutability) is a second,
    plain read, since the zip reader seeks."""
    path = Path(path)
    report = AuditReport(path)
    try:
        stem = package_stem(path.name)
    except ChannelError as exc:
        report.add("archive.unreadable", exc.message)
        return report
    magic = _MAGIC[".conda" if path.name.endswith(".conda") else ".tar.bz2"]
    with open(path, "rb") as handle:
        head = handle.read(len(magic))
    if head != magic:
        report.add("archive.unreadable",
                   f"wrong magic bytes {head!r}: a {path.suffix} package starts with {magic!r}")
        return report
    scan = _Scan(report, limits)
    try:
        for tar, member in _stream(path):
            scan.member(tar, member)
    except _Stop:
        return report
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError, KeyError) as exc:
        report.add("archive.unreadable",
                   f"truncated or corrupt archive ({type(exc).__name__}: {exc})")
        return report
    except Exception as exc:  # zstd / bz2 decoders raise their own error types
        report.add("archive.unreadable", f"{type(exc).__name__}: {exc}")
        return report
    index = _json(scan.info.get("info/index.json"))
    if not isinstance(index, dict):
        report.add("metadata.index-missing", "info/index.json is missing or not a JSON object",
                   "info/index.json")
        return report
    _check_filename(report, stem, index)
    _check_paths(report, scan)
    _check_abi(report, index, scan.files)
    report.record = PackageRecord(path.name, sha256_of(path), path.stat().st_size, index)
    return report


def audit_packages(paths: Iterable[Path], limits: Limits = Limits()) -> list[AuditReport]:
    return [audit_package(Path(p), limits) for p in paths]


def _json(data: bytes | None) -> object:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _check_filename(report: AuditReport, stem: str, index: dict) -> None:
    expected = f"{index.get('name')}-{index.get('version')}-{index.get('build')}"
    if stem != expected:
        report.add("metadata.filename",
                   f"file is named {stem} but index.json says {expected}", "info/index.json")


def _check_paths(report: AuditReport, scan: _Scan) -> None:
    paths = _json(scan.info.get("info/paths.json"))
    if not isinstance(paths, dict) or not isinstance(paths.get("paths"), list):
        report.add("metadata.paths-missing", "info/paths.json is missing or malformed",
                   "info/paths.json")
        return
    listed: set[str] = set()
    for entry in paths["paths"]:
        if not isinstance(entry, dict) or "_path" not in entry:
            report.add("metadata.paths-missing", "an entry without _path", "info/paths.json")
            continue
        rel = entry["_path"]
        listed.add(rel)
        if entry.get("path_type", "hardlink") != "hardlink":
            continue
        member = scan.files.get(rel)
        if member is None:
            report.add("metadata.paths-unlisted", "listed in paths.json but not in the archive", rel)
            continue
        if entry.get("sha256") and entry["sha256"] != member.sha256:
            report.add("metadata.paths-sha256",
                       f"sha256 {member.sha256[:12]}… but paths.json says {entry['sha256'][:12]}…",
                       rel)
        if "size_in_bytes" in entry and entry["size_in_bytes"] != member.size:
            report.add("metadata.paths-size",
                       f"{member.size} bytes but paths.json says {entry['size_in_bytes']}", rel)
    for rel in sorted(set(scan.files) - listed):
        report.add("metadata.paths-unlisted", "in the archive but not in paths.json", rel)


def _python_abi_variants(depends: list[str]) -> tuple[list[str], list[PythonVariant | None]]:
    deps = [d for d in depends if d.split()[0] == "python_abi"]
    return deps, [variant_of_python_abi_dependency(d) for d in deps]


def _check_abi(report: AuditReport, index: dict, files: dict[str, _Member]) -> None:
    name = str(index.get("name", ""))
    build = str(index.get("build", ""))
    depends = [str(d) for d in index.get("depends") or ()]
    modules = {p: abi for p in files if (abi := classify_extension_module(p)) is not None}

    if index.get("noarch") == "python":
        for rel in sorted(modules):
            report.add("abi.compiled-in-noarch",
                       "compiled extension module in a noarch: python package", rel)
        return

    abi_deps, abi_variants = _python_abi_variants(depends)
    marker = variant_of_build_string(build)
    builds_against_python = bool(modules) or marker is not None or bool(abi_deps)
    if not builds_against_python:
        return
    variant: PythonVariant | None = None
    if name == "python_abi":  # its own build string is the claim; it ships no modules
        return
    if len(abi_deps) != 1 or abi_variants[0] is None:
        what = ", ".join(abi_deps) if abi_deps else "none"
        report.add("abi.python-abi-count",
                   f"ships extension modules or an ABI build string but depends on "
                   f"{len(abi_deps)} python_abi pin(s) ({what}); expected exactly one like "
                   f"'{(marker or PythonVariant.gil()).python_abi_spec}'", "info/index.json")
        variant = marker
    else:
        variant = abi_variants[0]
        if marker is not None and marker != variant:
            report.add("abi.marker-disagrees",
                       f"build string '{build}' says {marker.abi_tag} but the package depends on "
                       f"'{abi_deps[0]}' ({variant.abi_tag})", "info/index.json")
    if variant is None:
        return
    for rel, abi in sorted(modules.items()):
        if abi.stable is not None:
            allowed = variant.stable_abi_suffix
            if allowed is None or not rel.endswith(allowed):
                if variant.freethreaded:
                    report.add("abi.abi3-in-freethreaded",
                               f"stable-ABI module in a {variant.label} package; "
                               f"{variant.series}t has "
                               + ("no stable ABI" if allowed is None else f"only {allowed}")
                               + f"; build it version-specific ({variant.extension_suffix()})", rel)
                else:
                    report.add("abi.freethreaded-module-in-gil",
                               f"{abi.stable} module in a {variant.label} package", rel)
            continue
        if abi.variant is None:
            continue
        if abi.variant.series != variant.series:
            report.add("abi.wrong-series",
                       f"module for {abi.variant.label} in a {variant.label} package", rel)
            continue
        if abi.variant.freethreaded != variant.freethreaded:
            rule = ("abi.gil-module-in-freethreaded" if variant.freethreaded
                    else "abi.freethreaded-module-in-gil")
            report.add(rule, f"module for {abi.variant.label} in a {variant.label} package", rel)
            continue
        built_for = _abi_from_symbols(files[rel].elf)
        if built_for is not None and built_for != variant.freethreaded:
            report.add("abi.module-built-for-other-abi",
                       f"named for {variant.label} but it links "
                       + ("free-threaded refcounting (_Py_DecRefShared)" if built_for
                          else "GIL refcounting (_Py_Dealloc) and no free-threaded symbols")
                       + "; it was built against the other interpreter", rel)


def _abi_from_symbols(elf: bytes | None) -> bool | None:
    """True if the module links free-threaded-only symbols, False if GIL-only, None if unsure."""
    if not elf or not elf.startswith(b"\x7fELF"):
        return None
    try:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        undefined = set()
        elffile = ELFFile(io.BytesIO(elf))
        section = elffile.get_section_by_name(".dynsym")
        if not isinstance(section, SymbolTableSection):
            return None
        for symbol in section.iter_symbols():
            if symbol["st_shndx"] == "SHN_UNDEF" and symbol.name:
                undefined.add(symbol.name)
    except Exception:
        return None
    if undefined & _FREETHREADED_ONLY_SYMBOLS:
        return True
    if _GIL_REFCOUNT_SYMBOL in undefined:
        return False
    return None
