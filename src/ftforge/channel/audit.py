"""Audit a conda package before it reaches users: archive safety, metadata, ABI.

Each package is streamed and never extracted: member headers are checked
before their data is read, so a tar bomb (or a PAX header bomb) is refused at
the header that crosses its limit (:class:`ftforge.limits.ArchiveLimits`).
Every refusal is a :class:`Finding` that names the rule and the file inside
the package.

What is audited is everything a client installs: a ``.conda`` must hold
exactly ``metadata.json``, ``info-<stem>.tar.zst`` and ``pkg-<stem>.tar.zst``
(clients extract every ``*.tar.zst`` they find), each component only its own
members; a ``.tar.bz2`` is one tar, every member read. Where two readers could see
different things the archive is refused: a zip local header that disagrees with its
central-directory entry, a second zstd frame or bzip2 stream, data after a tar's end
marker, stacked PAX/GNU name headers, a ustar prefix outside the POSIX magic, tar
member types other than files, directories and links. Links are resolved as
paths through the package's own symlinks, and no member may be written through one;
every ELF object is classified by the dynamic symbols it exports and links, read
through its program headers as the loader reads them (:mod:`.elfdyn`), not by its
name; one whose dynamic symbols cannot be read is refused. Metadata must parse under
conda's rules (py-rattler's parsers are the reference) before anything moves.

The ABI facts come from :mod:`ftforge.variants` only.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import struct
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import ChannelError
from ..limits import ArchiveLimits
from ..variants import (
    MODULE_INIT_PREFIX,
    PythonVariant,
    classify_extension_module,
    freethreaded_by_symbols,
    is_python_abi_spec,
    variant_of_build_string,
    variant_of_python_abi_dependency,
)
from .elfdyn import ElfUnreadable, read_dynamic_symbols
from .layout import known_subdirs

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
    "refusal_lines",
]

Limits = ArchiveLimits
"""The audit's limits (kept under this name for callers of ``channel.audit``)."""

RULES: dict[str, str] = {
    "input.not-a-file": "the path is missing, a directory, a FIFO or another non-regular file",
    "archive.unreadable": "the file is not a readable .conda / .tar.bz2 archive",
    "archive.member-set": "a .conda holds other zip members than metadata.json, info-*, pkg-*, "
    "or its local headers disagree with its central directory (gaps, overlaps, sizes, CRCs)",
    "archive.misplaced-member": "an info/ file in the pkg component, or the reverse",
    "archive.duplicate-member": "two archive members have the same path",
    "archive.folded-duplicate": "two members that differ only in case or Unicode form, in "
    "a package for a case-insensitive platform (osx-*, win-*)",
    "archive.absolute-path": "a member has an absolute path",
    "archive.parent-path": "a member path contains '..'",
    "archive.bad-name": "a member name is not UTF-8 or holds control characters",
    "archive.link-escape": "a symlink or hardlink resolves outside the install prefix",
    "archive.through-symlink": "a member's path runs through a symlink of the package",
    "archive.member-type": "a tar member that is not a file, directory or link (sparse, "
    "contiguous or unknown types)",
    "archive.special-file": "a member is a device file or FIFO",
    "archive.too-large": "the uncompressed content exceeds the size cap",
    "archive.too-many-members": "the archive has more members than the cap",
    "archive.ambiguous-header": "tar headers that two readers would name differently "
    "(stacked PAX / GNU long-name headers, a prefix field outside the POSIX magic)",
    "archive.trailing-data": "non-zero data after a tar's end marker, or bytes after its "
    "compressed stream (a second zstd frame or bzip2 stream)",
    "archive.header-too-large": "a PAX / GNU long-name header exceeds the header cap",
    "archive.metadata-too-large": "a metadata file exceeds the metadata cap",
    "metadata.index-missing": "info/index.json is missing or not JSON",
    "metadata.duplicate-key": "a key appears twice in one object of an info/*.json file",
    "metadata.field": "an index.json field has the wrong type or breaks conda's syntax",
    "metadata.subdir": "the subdir is not a known conda subdir, or not where the file is",
    "metadata.filename": "index.json name-version-build does not match the file name",
    "metadata.paths-missing": "info/paths.json is missing or not JSON",
    "metadata.paths-malformed": "a paths.json entry has a wrong type or an unsafe _path",
    "metadata.paths-sha256": "a file's sha256 differs from paths.json",
    "metadata.paths-size": "a file's size differs from paths.json",
    "metadata.paths-unlisted": "a file is in the archive but not in paths.json, or the reverse",
    "metadata.install-path": "a path the client creates at install time (entry point, "
    "python_site_packages_path) is unsafe",
    "abi.python-abi-count": "a package built against python must depend on exactly one python_abi",
    "abi.marker-disagrees": "the build string's ABI marker disagrees with the python_abi dependency",
    "abi.abi3-in-freethreaded": "a free-threaded 3.13t/3.14t package ships a stable-ABI module",
    "abi.gil-module-in-freethreaded": "a free-threaded package ships a GIL-ABI module",
    "abi.freethreaded-module-in-gil": "a GIL package ships a free-threaded module",
    "abi.wrong-series": "an extension module is for another Python series than the package",
    "abi.compiled-in-noarch": "a noarch: python package ships ELF objects (compiled code)",
    "abi.elf-unreadable": "an ELF object whose dynamic symbols cannot be read through its "
    "program headers (as the loader reads them)",
    "abi.compiled-in-python-abi": "a python_abi package ships extension modules or ELF objects",
    "abi.module-built-for-other-abi": "the object's linked symbols show it was built for the other ABI",
}

@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    member: str | None = None

    def __str__(self) -> str:
        where = f"{_printable(self.member)}: " if self.member else ""
        return f"[{self.rule}] {where}{self.message}"


def _printable(text: str) -> str:
    """A name as one safe line: control characters and undecodable bytes escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").encode(
        "unicode_escape").decode("ascii") if not text.isprintable() else text


@dataclass(frozen=True)
class PackageRecord:
    """What the channel needs to know about an audited package: its file and its
    ``info/index.json``; the fields are read from the index, not copied. Only an
    index that passed the audit's field checks becomes a record."""

    filename: str
    sha256: str
    size: int
    index: dict = field(compare=False, repr=False)
    run_exports: bytes | None = field(default=None, compare=False, repr=False)
    """``info/run_exports.json`` as stored, if the package has one (the index carries it)."""
    md5: str = field(default="", compare=False, repr=False)

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
    elf_objects: int = 0
    """Members that are ELF objects (the linkage audit reads only packages that have some)."""

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, rule: str, message: str, member: str | None = None) -> None:
        self.findings.append(Finding(rule, message, member))


SHOWN_PER_PACKAGE = 100
"""A refusal lists at most this many findings of each package, every rule before a
second finding of any rule ..."""
SHOWN_IN_ALL = 200
"""... and this many in all (a package can carry hundreds of thousands: the rest are
counted; ``ftforge channel audit PACKAGE`` lists every one)."""


def _rules_first(findings: list[Finding]) -> list[Finding]:
    """``findings`` reordered round-robin over their rules (each rule's own order
    kept): a cut list still shows every kind of finding."""
    by_rule: dict[str, list[Finding]] = {}
    for finding in findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    out: list[Finding] = []
    for depth in range(max((len(v) for v in by_rule.values()), default=0)):
        out += [group[depth] for group in by_rule.values() if depth < len(group)]
        if len(out) >= SHOWN_PER_PACKAGE:
            break
    return out


MAX_FINDING_CHARS = 500
"""A finding longer than this is cut in a refusal message (`channel audit` shows it whole)."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_FINDING_CHARS else text[:MAX_FINDING_CHARS] + " [...]"


def refusal_lines(reports: list[AuditReport], *,
                  label: Callable[[AuditReport], str] | None = None) -> list[str]:
    """The findings of refused ``reports``, bounded for a message: at most
    SHOWN_PER_PACKAGE per package and SHOWN_IN_ALL in all, every rule of a package
    before a second finding of any rule; packages past the bound are named and the
    findings left out counted. ``label`` names a package (default: its file name)."""
    lines: list[str] = []
    unnamed: list[str] = []  # packages refused past SHOWN_IN_ALL
    left = 0
    for report in reports:
        name = _printable(label(report) if label else report.path.name)
        shown = _rules_first(report.findings)[:SHOWN_PER_PACKAGE]
        shown = shown[:max(0, SHOWN_IN_ALL - len(lines))]
        lines += [f"{name}: {_cut(str(finding))}" for finding in shown]
        if len(report.findings) > len(shown):
            left += len(report.findings) - len(shown)
            if shown:
                lines.append(f"{name}: ... and {len(report.findings) - len(shown)} "
                             "more findings")
            elif report.findings:
                unnamed.append(name)
    if unnamed:
        lines.append(f"... {len(unnamed)} more package(s) refused: {_some(unnamed)}")
    if left:
        lines.append(f"({left} findings not shown in all)")
    return lines


class PackageRefused(ChannelError):
    """One or more packages failed the audit; nothing was published."""

    def __init__(self, reports: list[AuditReport]) -> None:
        super().__init__(
            "refused by the channel audit:\n  " + "\n  ".join(refusal_lines(reports)),
            hint="fix the recipe and rebuild (bump the build number); "
            "`ftforge channel audit PACKAGE` shows every finding",
        )
        self.reports = reports


def package_stem(filename: str) -> str:
    for ext in (".conda", ".tar.bz2"):
        if filename.endswith(ext) and len(filename) > len(ext):
            return filename[: -len(ext)]
    raise ChannelError(f"{_printable(filename)}: not a conda package (.conda or .tar.bz2)",
                       hint="name a file that `ftforge build` wrote")


_MAGIC = {".conda": b"PK\x03\x04", ".tar.bz2": b"BZh"}
_PLAIN_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                tarfile.LNKTYPE)
_HEADER_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                 tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_ELF_MAGIC = b"\x7fELF"
_SPOOL_BYTES = 8 << 20
"""ELF objects up to this size are classified in memory, larger ones from a temporary file."""
_KEPT_INFO = ("info/index.json", "info/paths.json", "info/link.json", "info/run_exports.json")


class _Stop(Exception):
    """A cap was crossed: stop reading the archive at once."""


class _HeaderTooLarge(Exception):
    def __init__(self, name: str, size: int) -> None:
        super().__init__(name)
        self.name, self.size = name, size


class _Ambiguous(Exception):
    """Two tar readers would give this member different names (an extended-header
    stack or a prefix field that only some readers honour)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(why)
        self.name, self.why = name, why


_POSIX_MAGIC = b"ustar\x0000"
_HEADER_NAMES = {tarfile.XHDTYPE: "PAX", tarfile.GNUTYPE_LONGNAME: "GNU long name",
                 tarfile.GNUTYPE_LONGLINK: "GNU long link"}


@functools.lru_cache(maxsize=8)
def _tarinfo_class(max_header: int) -> type[tarfile.TarInfo]:
    class LimitedTarInfo(tarfile.TarInfo):
        """Refuses an extended header before tarfile reads its payload into memory, and
        any header whose name two tar readers would read differently: Python's tarfile
        and rattler's tar-rs disagree on stacked extended headers (PAX ``path`` then a
        GNU long name: one takes each) and on the ustar ``prefix`` field outside the
        POSIX magic (tarfile prepends it, tar-rs ignores it)."""

        @classmethod
        def frombuf(cls, buf, encoding, errors):  # noqa: ANN001 -- tarfile's own hook
            obj = super().frombuf(buf, encoding, errors)
            prefix = buf[345:500].rstrip(b"\0")
            if (prefix and obj.type not in tarfile.GNU_TYPES
                    and buf[257:265] != _POSIX_MAGIC):
                raise _Ambiguous(obj.name, "a ustar prefix field in a header without the "
                                 f"POSIX magic ({bytes(buf[257:265])!r}): tar readers "
                                 "disagree on whether it is part of the name")
            return obj

        def _proc_member(self, tar):  # noqa: ANN001 -- tarfile's own hook
            if self.type in _HEADER_TYPES and self.size > max_header:
                raise _HeaderTooLarge(self.name, self.size)
            if self.type in (tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
                raise _Ambiguous(self.name, "a PAX global or Solaris extended header: tar "
                                 "readers disagree on what it applies to")
            chain = tar.__dict__.setdefault("_ftforge_chain", [])
            if self.type not in _HEADER_TYPES:
                kinds, tar._ftforge_chain = chain, []
                if len(kinds) > 1 and sorted(kinds) != [tarfile.GNUTYPE_LONGLINK,
                                                        tarfile.GNUTYPE_LONGNAME]:
                    shown = ", ".join(_HEADER_NAMES[k] for k in kinds)
                    raise _Ambiguous(self.name, f"stacked extended headers ({shown}): tar "
                                     "readers disagree on which one names the member")
                return super()._proc_member(tar)
            chain.append(self.type)
            return super()._proc_member(tar)

    return LimitedTarInfo


@dataclass
class _Member:
    sha256: str
    size: int
    elf: _ElfFacts | None = None


@dataclass(frozen=True)
class _ElfFacts:
    extension: bool
    """Exports a ``PyInit_*`` symbol: CPython imports it, whatever the file is named."""
    freethreaded: bool | None
    """What its linked symbols say (None: nothing ABI-specific)."""
    unreadable: str | None = None
    """Why its dynamic symbols could not be read through its program headers."""


class _Scan:
    def __init__(self, report: AuditReport, limits: ArchiveLimits) -> None:
        self.report = report
        self.limits = limits
        self.total = 0
        self.files: dict[str, _Member] = {}
        self.links: dict[str, str] = {}
        """symlink path -> its target, as written."""
        self.hardlinks: dict[str, str] = {}
        self.seen: set[str] = set()
        self.directories: set[str] = set()
        self.info: dict[str, bytes] = {}

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo, component: str | None) -> None:
        report, name = self.report, m.name
        report.members += 1
        if report.members > self.limits.max_members:
            report.add("archive.too-many-members",
                       f"more than {self.limits.max_members} members; stopped reading")
            raise _Stop
        if not _clean_name(name) or (m.linkname and not _clean_name(m.linkname)):
            report.add("archive.bad-name", "member or link name is not UTF-8 or holds control "
                       "characters; conda indexes and clients cannot handle it", name)
            return
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            report.add("archive.absolute-path", "absolute path", name)
            return
        if ".." in name.split("/"):
            report.add("archive.parent-path", "path leaves the prefix with '..'", name)
            return
        norm = posixpath.normpath(name) if name not in ("", ".") else "."
        if norm != "." and not m.isdir():
            if norm in self.seen:
                report.add("archive.duplicate-member", "a second member with this path; "
                           "which one installs depends on the client", name)
                return
            self.seen.add(norm)
        is_info = norm == "info" or norm.startswith("info/")
        if component == "info" and not is_info:
            report.add("archive.misplaced-member",
                       "the info component may hold only info/ files", name)
            return
        if component == "pkg" and is_info:
            report.add("archive.misplaced-member",
                       "the pkg component may not hold info/ files", name)
            return
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            report.add("archive.special-file", "device file or FIFO", name)
            return
        if m.type not in _PLAIN_TYPES or m.sparse is not None:
            report.add("archive.member-type", f"tar member type {m.type!r}"
                       + (" (sparse)" if m.sparse is not None else "") + ": readers differ on "
                       "it and conda packages hold only files, directories and links", name)
            return
        if m.issym():
            self.links[norm] = m.linkname
            return
        if m.islnk():
            self.hardlinks[norm] = m.linkname
            return
        if m.isdir():
            self.directories.add(norm)
        if not m.isfile():
            return
        self.total += m.size
        if self.total > self.limits.max_total_bytes:
            report.add("archive.too-large",
                       f"uncompressed content exceeds {self.limits.max_total_bytes} bytes "
                       f"at this member ({m.size} bytes); stopped reading", name)
            raise _Stop
        keep = norm in _KEPT_INFO
        if keep and m.size > self.limits.max_metadata_bytes:
            report.add("archive.metadata-too-large",
                       f"{m.size} bytes; metadata files are capped at "
                       f"{self.limits.max_metadata_bytes} bytes", name)
            raise _Stop
        self._read(tar, m, norm, keep, is_info)

    def _read(self, tar: tarfile.TarFile, m: tarfile.TarInfo, norm: str, keep: bool,
              is_info: bool) -> None:
        handle = tar.extractfile(m)
        digest = hashlib.sha256()
        size = 0
        held: list[bytes] = []
        spool: IO[bytes] | None = None
        try:
            while chunk := handle.read(1 << 20):
                if size == 0 and not is_info and chunk.startswith(_ELF_MAGIC):
                    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
                digest.update(chunk)
                size += len(chunk)
                if keep:
                    held.append(chunk)
                if spool is not None:
                    spool.write(chunk)
            if is_info:
                if keep:
                    self.info[norm] = b"".join(held)
                return
            elf = _elf_facts(spool) if spool is not None else None
            self.files[norm] = _Member(digest.hexdigest(), size, elf)
        finally:
            if spool is not None:
                spool.close()


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _clean_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # tarfile decodes bad bytes as surrogates
        return False
    return _CONTROL_RE.search(name) is None


def _elf_facts(spool: IO[bytes]) -> _ElfFacts:
    """Exports and links of an ELF object, from its dynamic symbols as the loader finds
    them (program headers, not section headers: see :mod:`.elfdyn`)."""
    try:
        symbols = read_dynamic_symbols(spool)
    except (ElfUnreadable, struct.error) as why:
        # Still compiled code; a shared object the audit cannot read is refused.
        return _ElfFacts(False, None, str(why) or "unreadable")
    extension = any(name.startswith(MODULE_INIT_PREFIX) for name in symbols.defined)
    return _ElfFacts(extension, freethreaded_by_symbols(symbols.undefined))


class _Input:
    """The package file, opened without blocking and checked to be a regular file
    (a FIFO or a device would block or never end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Input:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except IsADirectoryError:
            raise _NotAFile("a directory, not a package file") from None
        except FileNotFoundError:
            raise _NotAFile("no such file") from None
        except OSError as exc:
            raise _NotAFile(f"cannot be read ({exc.strerror})") from None
        mode = os.fstat(self.fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(self.fd)
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(
                mode) else "a special file"
            raise _NotAFile(f"{kind}, not a package file")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)

    def open(self) -> IO[bytes]:
        return os.fdopen(os.dup(self.fd), "rb")


class _NotAFile(Exception):
    pass


_ZSTD = None


def _zstd():
    global _ZSTD
    if _ZSTD is None:
        try:
            from compression import zstd  # Python 3.14+
        except ImportError:
            from backports import zstd  # a dependency of conda-package-streaming
        _ZSTD = zstd
    return _ZSTD


def _some(names: list[str], shown: int = 10) -> str:
    """``a, b, c`` -- at most ``shown`` names, then how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _stream(source: IO[bytes], stem: str, suffix: str, limits: ArchiveLimits,
            scan: _Scan) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str | None]]:
    tarinfo = _tarinfo_class(limits.max_header_bytes)
    if suffix == ".tar.bz2":
        yield from _one_tar(_OneFrame(source, bz2.BZ2Decompressor()), tarinfo, scan, None, None)
        return
    with zipfile.ZipFile(source) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        allowed = {"metadata.json", f"info-{stem}.tar.zst", f"pkg-{stem}.tar.zst"}
        unexpected = sorted({n for n in names if n not in allowed})
        duplicated = sorted({n for n in names if names.count(n) > 1})
        missing = sorted(allowed - set(names))
        if unexpected or duplicated or missing:
            problems = []
            if unexpected:
                problems.append("unexpected " + _some(list(map(_printable, unexpected))))
            if duplicated:
                problems.append("duplicated " + _some(list(map(_printable, duplicated))))
            if missing:
                problems.append("missing " + ", ".join(missing))
            scan.report.add("archive.member-set",
                            "; ".join(problems) + f"; a .conda holds exactly metadata.json, "
                            f"info-{stem}.tar.zst and pkg-{stem}.tar.zst (clients install "
                            "every *.tar.zst)")
            raise _Stop
        gap = _zip_gap(zf, source)
        if gap:
            scan.report.add("archive.member-set", gap + "; a streaming client would read what "
                            "the central directory does not list")
            raise _Stop
        meta = zf.getinfo("metadata.json")
        if meta.file_size > limits.max_metadata_bytes:
            scan.report.add("archive.metadata-too-large",
                            f"{meta.file_size} bytes; capped at {limits.max_metadata_bytes}",
                            "metadata.json")
            raise _Stop
        metadata = _json(zf.read(meta))
        if not isinstance(metadata, dict) or metadata.get("conda_pkg_format_version") != 2:
            scan.report.add("archive.unreadable", "metadata.json is not "
                            "{\"conda_pkg_format_version\": 2}", "metadata.json")
            raise _Stop
        for component in ("info", "pkg"):
            entry = f"{component}-{stem}.tar.zst"
            with zf.open(entry) as raw:
                yield from _one_tar(_OneFrame(raw), tarinfo, scan, component, entry)


def _one_tar(reader: _OneFrame, tarinfo: type[tarfile.TarInfo], scan: _Scan,
             component: str | None, entry: str | None,
             ) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str | None]]:
    """Every member of one tar stream (a .tar.bz2, or one .conda component), then
    refuse anything after its end marker or its single compressed frame."""
    with tarfile.open(fileobj=reader, mode="r|", tarinfo=tarinfo) as tar:
        for member in tar:
            yield tar, member, component
        trailing = _after_end_marker(tar) or reader.trailing()
    if trailing:
        reader_kind = "a client's tar reader" if entry is None else "a streaming client"
        scan.report.add("archive.trailing-data",
                        f"{trailing}; {reader_kind} may read what the audit did not", entry)
        raise _Stop


class _OneFrame(io.RawIOBase):
    """The decompressed bytes of exactly one zstd frame (or bzip2 stream); what follows
    it is kept aside for :meth:`trailing` (a second frame or stream, even a skippable
    one, is refused: multi-stream readers would go on reading it)."""

    def __init__(self, raw: IO[bytes], decoder=None) -> None:  # noqa: ANN001
        self.raw = raw
        self.decoder = decoder if decoder is not None else _zstd().ZstdDecompressor()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 -- io's own signature
        want = len(buffer)
        while not self.decoder.eof:
            data = b""
            if self.decoder.needs_input:
                data = self.raw.read(1 << 16)
                if not data:
                    raise EOFError("the zstd frame is truncated")
            out = self.decoder.decompress(data, want)
            if out:
                buffer[: len(out)] = out
                return len(out)
        return 0

    def trailing(self) -> str | None:
        """Why the stream holds more than one frame or stream (None: it does not).
        Reading the zip entry to its end also checks its CRC."""
        if not self.decoder.eof:
            return "the compressed stream does not end where the tar ends"
        rest = self.decoder.unused_data + self.raw.read(1 << 16)
        if rest:
            return "bytes after the compressed stream (a second frame or stream)"
        return None


def _after_end_marker(tar: tarfile.TarFile) -> str | None:
    """Why what follows the tar's end-of-archive block is not just zero padding (None: it
    is); the stream is read to its end (at most :data:`_MAX_TAR_PADDING` bytes)."""
    stream = tar.fileobj
    padding = 0
    while chunk := stream.read(1 << 16):
        if chunk.strip(b"\0"):
            return "non-zero data after the tar end-of-archive marker"
        padding += len(chunk)
        if padding > _MAX_TAR_PADDING:
            return f"more than {_MAX_TAR_PADDING} bytes of padding after the tar end marker"
    return None


_MAX_TAR_PADDING = ArchiveLimits().max_tar_padding_bytes
"""Zero bytes allowed after a tar's end marker (``limits.ArchiveLimits``)."""


def _zip_gap(zf: zipfile.ZipFile, source: IO[bytes]) -> str | None:
    """Clients such as rattler read a .conda front to back, local header after local
    header; the zip module reads the central directory. The two must see the same
    members: the local entries must tile the file from offset 0 to the central directory."""

    offset = 0
    for info in sorted(zf.infolist(), key=lambda i: i.header_offset):
        if info.header_offset != offset:
            return f"{info.header_offset - offset} unlisted bytes before {info.filename}"
        source.seek(offset)
        header = source.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            return f"no local header for {info.filename}"
        (flags, method, crc, csize, usize, name_len,
         extra_len) = struct.unpack("<2H4x3L2H", header[6:30])
        name = source.read(name_len)
        extra = source.read(extra_len)
        offset += 30 + name_len + extra_len + info.compress_size
        if flags & 0x08:  # a data descriptor after the data holds the CRC and sizes
            source.seek(offset)
            descriptor = source.read(24)
            signed = descriptor[:4] == b"PK\x07\x08"
            wide = info.file_size >= 0xFFFFFFFF or info.compress_size >= 0xFFFFFFFF
            body = descriptor[4:] if signed else descriptor
            crc, csize, usize = struct.unpack("<LQQ" if wide else "<LLL",
                                              body[:20 if wide else 12])
            offset += (4 if signed else 0) + (20 if wide else 12)
        elif 0xFFFFFFFF in (csize, usize):
            usize, csize = _zip64_sizes(extra, usize, csize)
        local = (name, flags, method, crc, csize, usize)
        central = (info.orig_filename.encode("cp437" if not info.flag_bits & 0x800 else "utf-8"),
                   info.flag_bits, info.compress_type, info.CRC, info.compress_size,
                   info.file_size)
        if local != central:
            fields = ("name", "flags", "compression", "CRC", "compressed size", "size")
            differ = [f for f, a, b in zip(fields, local, central) if a != b]
            return (f"the local header of {_printable(info.filename)} disagrees with the "
                    f"central directory ({', '.join(differ)})")
    if offset != zf.start_dir:
        return f"{zf.start_dir - offset} unlisted bytes before the central directory"
    return None


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    """The sizes a zip64 extra field (id 1) gives for fields that read 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack("<HH", extra[at:at + 4])
        body = extra[at + 4:at + 4 + length]
        if kind == 1:
            values = list(struct.unpack(f"<{len(body) // 8}Q", body[:len(body) // 8 * 8]))
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            break
        at += 4 + length
    return usize, csize


def audit_package(path: Path, limits: ArchiveLimits = Limits(), *,
                  subdir_here: str | None = None) -> AuditReport:
    """Every finding for ``path`` (none: it may publish).

    ``subdir_here``: the subdir the file sits in (or will be published into, when
    known); the package's own ``subdir`` must be it. The archive is streamed once
    for the checks; the file's own sha256 is a second plain read of the same
    open file (the zip reader seeks).
    """
    path = Path(path)
    report = AuditReport(path)
    try:
        stem = package_stem(path.name)
    except ChannelError as exc:
        report.add("archive.unreadable", exc.message)
        return report
    suffix = ".conda" if path.name.endswith(".conda") else ".tar.bz2"
    magic = _MAGIC[suffix]
    scan = _Scan(report, limits)
    try:
        with _Input(path) as source:
            with source.open() as handle:
                head = handle.read(len(magic))
                if head != magic:
                    what = "an empty file" if not head else f"starts with {head!r}"
                    report.add("archive.unreadable",
                               f"{what}; a {suffix} package starts with {magic!r}")
                    return report
                handle.seek(0)
                try:
                    for tar, member, component in _stream(handle, stem, suffix, limits, scan):
                        scan.member(tar, member, component)
                except _Stop:
                    return report
                except _Ambiguous as amb:
                    report.add("archive.ambiguous-header", amb.why + "; refused",
                               amb.name or None)
                    return report
                except _HeaderTooLarge as big:
                    report.add("archive.header-too-large",
                               f"an extended header of {big.size} bytes; headers are capped at "
                               f"{limits.max_header_bytes} bytes", big.name or None)
                    return report
                except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError,
                        KeyError, RuntimeError, NotImplementedError) as exc:
                    report.add("archive.unreadable",
                               f"truncated or corrupt archive ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})")
                    return report
                except Exception as exc:  # zstd / bz2 decoders raise their own error types
                    report.add("archive.unreadable", f"{type(exc).__name__}: {exc}".splitlines()[0])
                    return report
                handle.seek(0)
                sha256_of, md5_of = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
                while chunk := handle.read(1 << 20):  # md5 too: the index carries both
                    sha256_of.update(chunk)
                    md5_of.update(chunk)
                sha256, md5 = sha256_of.hexdigest(), md5_of.hexdigest()
                size = os.fstat(handle.fileno()).st_size
    except _NotAFile as exc:
        report.add("input.not-a-file", str(exc))
        return report
    report.elf_objects = sum(1 for m in scan.files.values() if m.elf is not None)
    _check_duplicate_keys(report, scan)
    index = _json(scan.info.get("info/index.json"))
    if not isinstance(index, dict):
        report.add("metadata.index-missing", "info/index.json is missing or not a JSON object",
                   "info/index.json")
        return report
    fields_ok = _check_fields(report, index, subdir_here)
    if not fields_ok:
        _check_paths(report, scan)
        return report
    _check_filename(report, stem, index)
    _check_entry_points(report, scan)
    _check_paths(report, scan)
    _check_links(report, scan)
    _check_folded_names(report, scan, str(index.get("subdir", "")))
    _check_elf_readable(report, scan.files)
    _check_abi(report, index, scan.files)
    if report.ok:
        _check_rattler_reads(report, index)
    report.record = PackageRecord(path.name, sha256, size, index,
                                  scan.info.get("info/run_exports.json"), md5=md5)
    return report


def audit_packages(paths: Iterable[Path], limits: ArchiveLimits = Limits()) -> list[AuditReport]:
    """Each package audited where it lies: in a folder named like a subdir, its
    ``subdir`` must be that one."""
    from .audit_pool import audit_each  # many packages: in worker processes

    paths = [Path(p) for p in paths]
    heres = [p.parent.name if p.parent.name in known_subdirs() else None for p in paths]
    return list(audit_each(paths, limits, subdirs_here=heres))


def _json(data: bytes | None) -> object:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _check_duplicate_keys(report: AuditReport, scan: _Scan) -> None:
    """A key twice in one object of ``info/*.json``: Python's json keeps the last, rattler
    refuses the file -- so the channel's index and a reindex would disagree. Refused."""
    for member in sorted(scan.info):
        if not member.endswith(".json"):
            continue
        try:
            json.loads(scan.info[member], object_pairs_hook=_refuse_duplicates)
        except _DuplicateKey as exc:
            report.add("metadata.duplicate-key", f"the key {exc.args[0]!r} appears twice in one "
                       "object (conda tools disagree on which counts; rattler refuses the file); "
                       "rebuild the package", member)
        except (ValueError, RecursionError):
            continue  # malformed JSON is reported by the check that reads the member


# -- metadata: conda's rules, checked before anything moves --------------------------------

_NAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.\-]*$")
_BUILD_RE = re.compile(r"^[A-Za-z0-9_.+]+$")
_VERSION_CHARS_RE = re.compile(r"^[A-Za-z0-9_.+!]+$")


def _check_fields(report: AuditReport, index: dict, subdir_here: str | None) -> bool:
    """Types and syntax of the fields the channel and every client rely on."""
    where = "info/index.json"
    before = len(report.findings)

    def bad(message: str) -> None:
        report.add("metadata.field", message, where)

    name, version, build = index.get("name"), index.get("version"), index.get("build")
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 200:
        bad(f"name {_shown(name)} is not a conda package name (lower-case letters, digits, "
            "'_', '.', '-')")
    if not isinstance(version, str) or not _VERSION_CHARS_RE.match(version) or not _parses(
            "Version", version):
        bad(f"version {_shown(version)} is not a conda version")
    if not isinstance(build, str) or not _BUILD_RE.match(build):
        bad(f"build {_shown(build)} is not a conda build string (letters, digits, '_', '.', '+')")
    number = index.get("build_number", 0)
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**31:
        bad(f"build_number {_shown(number)} is not a non-negative integer")
    for key in ("depends", "constrains"):
        specs = index.get(key, [])
        if specs is None:
            continue
        if not isinstance(specs, list):
            bad(f"{key} is {type(specs).__name__}, not a list of match specs")
            continue
        for spec in specs:
            if not isinstance(spec, str) or not _is_match_spec(spec):
                bad(f"{key} entry {_shown(spec)} is not a conda match spec")
    for key in ("track_features", "features"):
        value = index.get(key)
        if value is not None and (not isinstance(value, str) or not _clean_name(value)):
            bad(f"{key} {_shown(value)} is not a string of feature names")
    site = index.get("python_site_packages_path")
    if site is not None and (not isinstance(site, str) or not _safe_relative(site)):
        report.add("metadata.install-path", f"python_site_packages_path {_shown(site)} must be "
                   "a relative path inside the prefix", where)
    noarch = index.get("noarch")
    if noarch is not None and noarch not in ("python", "generic"):
        bad(f"noarch {_shown(noarch)} is neither 'python' nor 'generic'")
    subdir = index.get("subdir", "noarch" if noarch else None)
    if not isinstance(subdir, str) or subdir not in known_subdirs():
        report.add("metadata.subdir", f"subdir {_shown(subdir)} is not a conda subdir "
                   f"(e.g. noarch, linux-64, linux-aarch64)", where)
    elif noarch and subdir != "noarch":
        report.add("metadata.subdir", f"a noarch: {noarch} package has subdir {subdir}", where)
    elif subdir_here is not None and subdir != subdir_here:
        report.add("metadata.subdir", f"the package says subdir {subdir} but the file is in "
                   f"{subdir_here}/", where)
    return len(report.findings) == before


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parses(kind: str, text: str) -> bool:
    """Whether py-rattler's ``kind`` parser accepts ``text``. A pure function of both, and
    the same specs recur in every package: short texts' answers are remembered (the
    memory stays bounded: at most 4,096 answers of at most 1,000 characters)."""
    if len(text) > 1000:
        return _rattler_parses(kind, text)
    return _remembered_parse(kind, text)


def _rattler_parses(kind: str, text: str) -> bool:
    import rattler

    try:
        getattr(rattler, kind)(text)
    except Exception:
        return False
    return True


_remembered_parse = functools.lru_cache(maxsize=4096)(_rattler_parses)


def _is_match_spec(spec: str) -> bool:
    if not spec.strip() or not _clean_name(spec) or len(spec) > 1000:
        return False
    first = spec.split()[0].split("[")[0]
    for sep in ("=", "<", ">", "!", "~"):  # "name>=1" written without a space
        first = first.split(sep)[0]
    if not _NAME_RE.match(first.split("::")[-1]):
        return False
    return _parses("MatchSpec", spec)


def _check_rattler_reads(report: AuditReport, index: dict) -> None:
    """The indexer's own reader (py-rattler's ``IndexJson``) must accept index.json, or
    publishing this package would break every later re-index of its subdir."""
    from rattler import IndexJson

    try:
        IndexJson.from_str(json.dumps(index))
    except Exception as exc:
        report.add("metadata.field", "py-rattler cannot read index.json "
                   f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                   "info/index.json")


_ENTRY_POINT_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*=\s*[A-Za-z_][\w.]*\s*:\s*[A-Za-z_][\w.]*\s*$")


def _check_entry_points(report: AuditReport, scan: _Scan) -> None:
    """``info/link.json`` entry points become files the client writes into ``bin/``:
    each name must be a plain file name (no '/', no '..')."""
    if "info/link.json" not in scan.info:
        return
    link = _json(scan.info["info/link.json"])
    noarch = link.get("noarch", {}) if isinstance(link, dict) else None
    points = noarch.get("entry_points", []) if isinstance(noarch, dict) else None
    if not isinstance(link, dict) or not isinstance(points, list):
        report.add("metadata.install-path", "info/link.json is not JSON with a list of "
                   "noarch.entry_points", "info/link.json")
        return
    for point in points:
        if not isinstance(point, str) or not _ENTRY_POINT_RE.match(point):
            report.add("metadata.install-path", f"entry point {_shown(point)} is not "
                       "'name = module:function' with a plain file name", "info/link.json")


def _check_filename(report: AuditReport, stem: str, index: dict) -> None:
    expected = f"{index.get('name')}-{index.get('version')}-{index.get('build')}"
    if stem != expected:
        report.add("metadata.filename",
                   f"file is named {_printable(stem)} but index.json says {expected}",
                   "info/index.json")


def _safe_relative(rel: str) -> bool:
    return (bool(rel) and _clean_name(rel) and not rel.startswith("/")
            and ".." not in rel.split("/") and not (len(rel) > 1 and rel[1] == ":"))


_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _check_paths(report: AuditReport, scan: _Scan) -> None:
    paths = _json(scan.info.get("info/paths.json"))
    where = "info/paths.json"
    if not isinstance(paths, dict) or not isinstance(paths.get("paths"), list):
        report.add("metadata.paths-missing", "info/paths.json is missing or malformed", where)
        return
    listed: set[str] = set()
    for entry in paths["paths"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("_path"), str):
            report.add("metadata.paths-malformed",
                       f"an entry without a string _path ({_shown(entry)})", where)
            continue
        rel = entry["_path"]
        if not _safe_relative(rel):
            report.add("metadata.paths-malformed",
                       f"_path {_shown(rel)} is absolute, leaves the prefix or is not a clean "
                       "name", where)
            continue
        rel = posixpath.normpath(rel)
        listed.add(rel)
        path_type = entry.get("path_type", "hardlink")
        sha, size = entry.get("sha256"), entry.get("size_in_bytes")
        if path_type not in ("hardlink", "softlink", "directory"):
            report.add("metadata.paths-malformed", f"path_type {_shown(path_type)} is not "
                       "hardlink, softlink or directory", rel)
            continue
        if sha is not None and (not isinstance(sha, str) or not _SHA256_RE.match(sha)):
            report.add("metadata.paths-malformed", f"sha256 {_shown(sha)} is not 64 hex digits",
                       rel)
            continue
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            report.add("metadata.paths-malformed", f"size_in_bytes {_shown(size)} is not an "
                       "integer", rel)
            continue
        placeholder, mode = entry.get("prefix_placeholder"), entry.get("file_mode")
        if placeholder is not None and (not isinstance(placeholder, str) or not placeholder):
            report.add("metadata.paths-malformed", f"prefix_placeholder {_shown(placeholder)} "
                       "is not a non-empty string", rel)
        if mode is not None and mode not in ("text", "binary"):
            report.add("metadata.paths-malformed", f"file_mode {_shown(mode)} is neither 'text' "
                       "nor 'binary'", rel)
        if path_type == "directory":
            continue
        if path_type == "softlink":
            if rel not in scan.links:
                report.add("metadata.paths-unlisted",
                           "listed as a softlink in paths.json but not a symlink in the archive",
                           rel)
            continue
        member = scan.files.get(rel)
        if member is None:
            if rel not in scan.links and rel not in scan.hardlinks:
                report.add("metadata.paths-unlisted",
                           "listed in paths.json but not in the archive", rel)
            continue
        if sha and sha != member.sha256:
            report.add("metadata.paths-sha256",
                       f"sha256 {member.sha256[:12]}… but paths.json says {sha[:12]}…", rel)
        if size is not None and size != member.size:
            report.add("metadata.paths-size",
                       f"{member.size} bytes but paths.json says {size}", rel)
    installed = set(scan.files) | set(scan.links) | set(scan.hardlinks)
    for rel in sorted(installed - listed):
        report.add("metadata.paths-unlisted", "in the archive but not in paths.json", rel)


_FOLDING_SUBDIRS = ("osx-", "win-")
"""Subdirs whose clients install onto file systems that fold case and Unicode form."""


def _check_folded_names(report: AuditReport, scan: _Scan, subdir: str) -> None:
    """On macOS and Windows two names that differ only in case or Unicode normal form
    are one file: the second overwrites the first and the installed bytes are not
    what paths.json lists."""
    if not subdir.startswith(_FOLDING_SUBDIRS):
        return
    import unicodedata

    seen: dict[str, str] = {}
    for name in sorted(set(scan.files) | set(scan.links) | set(scan.hardlinks)
                       | scan.directories):
        key = unicodedata.normalize("NFC", name).casefold()
        if key in seen and seen[key] != name:
            report.add("archive.folded-duplicate", f"the same file as "
                       f"{_printable(seen[key])} on a case-insensitive or normalizing file "
                       f"system ({subdir} clients)", name)
        seen.setdefault(key, name)


# -- links: resolved as paths through the package's own symlinks ---------------------------

class _Escape(Exception):
    pass


def _resolve(path: str, links: dict[str, str], hops: list[int], max_hops: int) -> list[str]:
    """``path`` (relative to the prefix) resolved component by component, following the
    package's symlinks; raises :class:`_Escape` if it ever leaves the prefix."""
    parts: list[str] = []
    for component in path.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                raise _Escape("climbs above the prefix")
            parts.pop()
            continue
        parts.append(component)
        here = "/".join(parts)
        if here in links:
            hops[0] += 1
            if hops[0] > max_hops:
                raise _Escape(f"more than {max_hops} symlink hops (a loop?)")
            target = links[here]
            if target.startswith("/"):
                raise _Escape(f"reaches the absolute path {target}")
            base = "/".join(parts[:-1])
            parts = _resolve(f"{base}/{target}" if base else target, links, hops, max_hops)
    return parts


def _check_links(report: AuditReport, scan: _Scan) -> None:
    max_hops = scan.limits.max_link_hops
    for name, target in sorted(scan.links.items()):
        try:
            _resolve(name, scan.links, [0], max_hops)
        except _Escape as why:
            report.add("archive.link-escape", f"symlink to '{_printable(target)}' {why}; it "
                       "must stay inside the install prefix", name)
    for name, target in sorted(scan.hardlinks.items()):
        if target.startswith("/") or ".." in target.split("/"):
            report.add("archive.link-escape",
                       f"hardlink to '{_printable(target)}' leaves the prefix", name)
            continue
        try:
            _resolve(target, scan.links, [0], max_hops)
        except _Escape as why:
            report.add("archive.link-escape", f"hardlink to '{_printable(target)}' {why}", name)
    # A member whose own path runs through a symlinked directory is written wherever
    # that link points when the client extracts it, and its own target is then judged
    # from there: conda packages never need it, so it is refused whatever the order.
    for name in sorted(set(scan.files) | set(scan.links) | set(scan.hardlinks)
                       | scan.directories):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in scan.links:
                report.add("archive.through-symlink", f"its parent {_printable(parent)} is a "
                           "symlink in this package; a member must not be written through "
                           "one", name)
                break


# -- ABI -------------------------------------------------------------------------------------

def _check_elf_readable(report: AuditReport, files: dict[str, _Member]) -> None:
    """An ELF object the audit cannot classify would pass every ABI rule unseen."""
    for rel, member in sorted(files.items()):
        if member.elf is not None and member.elf.unreadable:
            report.add("abi.elf-unreadable", f"ELF object whose dynamic symbols cannot be read "
                       f"through its program headers ({member.elf.unreadable}); its ABI cannot "
                       "be checked", rel)


def _python_abi_variants(depends: list[str]) -> tuple[list[str], list[PythonVariant | None]]:
    deps = [d for d in depends if is_python_abi_spec(d)]
    return deps, [variant_of_python_abi_dependency(d) for d in deps]


def _check_abi(report: AuditReport, index: dict, files: dict[str, _Member]) -> None:
    name = str(index.get("name", ""))
    build = str(index.get("build", ""))
    depends = [str(d) for d in index.get("depends") or ()]
    modules = {p: abi for p in files if (abi := classify_extension_module(p)) is not None}
    elves = {p: m.elf for p, m in files.items() if m.elf is not None}
    extensions = {p for p, elf in elves.items() if elf.extension}

    if index.get("noarch") == "python":
        for rel in sorted(set(modules) | set(elves)):
            what = ("an extension module (exports PyInit_*)" if rel in extensions
                    else "compiled extension module" if rel in modules else "an ELF object")
            report.add("abi.compiled-in-noarch", f"{what} in a noarch: python package", rel)
        return

    abi_deps, abi_variants = _python_abi_variants(depends)
    marker = variant_of_build_string(build)
    builds_against_python = bool(modules) or bool(extensions) or marker is not None or bool(
        abi_deps)
    if not builds_against_python:
        return
    if name == "python_abi":  # its own build string is the claim; it ships no code
        for rel in sorted(set(modules) | set(elves)):
            report.add("abi.compiled-in-python-abi", "python_abi is a metadata-only package; "
                       "it must not ship compiled code (no ABI rule would apply to it)", rel)
        return
    variant: PythonVariant | None
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
    named_wrong: set[str] = set()
    for rel, abi in sorted(modules.items()):
        if abi.stable is not None:
            allowed = variant.stable_abi_suffix
            if allowed is None or not rel.endswith(allowed):
                named_wrong.add(rel)
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
            named_wrong.add(rel)
            report.add("abi.wrong-series",
                       f"module for {abi.variant.label} in a {variant.label} package", rel)
            continue
        if abi.variant.freethreaded != variant.freethreaded:
            named_wrong.add(rel)
            rule = ("abi.gil-module-in-freethreaded" if variant.freethreaded
                    else "abi.freethreaded-module-in-gil")
            report.add(rule, f"module for {abi.variant.label} in a {variant.label} package", rel)
    # Every ELF object, whatever its name (``_x.so``, ``.so.1``, upper case, musl tags):
    # what it links decides which interpreter it was built against.
    for rel, elf in sorted(elves.items()):
        if rel in named_wrong or elf.freethreaded is None:
            continue
        if elf.freethreaded != variant.freethreaded:
            kind = "an extension module" if elf.extension else "an ELF object"
            report.add("abi.module-built-for-other-abi",
                       f"{kind} in a {variant.label} package, but it links "
                       + ("free-threaded refcounting (_Py_DecRefShared)" if elf.freethreaded
                          else "GIL refcounting (_Py_Dealloc) and no free-threaded symbols")
                       + "; it was built against the other interpreter", rel)
