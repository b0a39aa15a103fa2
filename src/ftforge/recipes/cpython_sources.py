"""Where each CPython release's source comes from, and its checksum.

The recipe points at python.org. The sha256 of 3.13.5 is python.org's; its
tarball is byte-identical to Debian trixie's ``python3.13_3.13.5.orig.tar.xz``,
which is how the local source mirror is seeded (``scripts/seed-source-mirror``).
For 3.14 and 3.15 the checksums are those of Debian's ``orig.tar.xz`` for the
same upstream version (Debian ships the upstream tarball unchanged, as it does
for 3.13.5); they have not been compared with python.org from this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownPythonVersion
from ..variants import parse_series

__all__ = ["DEFAULT_VERSION", "KNOWN_SOURCES", "CPythonSource", "latest_for_series", "source_for"]


@dataclass(frozen=True)
class CPythonSource:
    version: str
    sha256: str
    provenance: str
    debian_source_version: str | None = None

    @property
    def series(self) -> str:
        return parse_series(self.version)

    @property
    def filename(self) -> str:
        return f"Python-{self.version}.tar.xz"

    @property
    def url(self) -> str:
        return f"https://www.python.org/ftp/python/{self.version}/{self.filename}"

    @property
    def debian_orig_filename(self) -> str:
        return f"python{self.series}_{self.version}.orig.tar.xz"


KNOWN_SOURCES: dict[str, CPythonSource] = {
    s.version: s
    for s in (
        CPythonSource(
            "3.13.5",
            "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640",
            "python.org; identical to Debian trixie's orig.tar.xz",
            debian_source_version="3.13.5-2+deb13u5",
        ),
        CPythonSource(
            "3.14.10",
            "de414a57119abef52784d8993e341d53aed635fc2b05c2607d9f98a2c5b72032",
            "Debian's python3.14 3.14.10-1 orig.tar.xz (not compared with python.org here)",
            debian_source_version="3.14.10-1",
        ),
        CPythonSource(
            "3.15.2",
            "8b5536d280142ecf6cdfe15d12a21ba1c65e300bbf7b28a8d0cdb849575797de",
            "Debian's python3.15 3.15.2-1 orig.tar.xz (not compared with python.org here)",
            debian_source_version="3.15.2-1",
        ),
    )
}

DEFAULT_VERSION = "3.13.5"


def source_for(version: str, *, sha256: str | None = None) -> CPythonSource:
    """The source of ``version``; an explicit ``sha256`` admits a release not listed here."""
    parse_series(version)
    if version.count(".") != 2:
        raise UnknownPythonVersion(
            f"Python {version}: give a full release version such as {DEFAULT_VERSION}",
            hint=f"known releases: {', '.join(KNOWN_SOURCES)}",
        )
    if sha256 is not None:
        known = KNOWN_SOURCES.get(version)
        return CPythonSource(version, sha256.lower(), "given on the command line",
                             known.debian_source_version if known else None)
    try:
        return KNOWN_SOURCES[version]
    except KeyError:
        raise UnknownPythonVersion(
            f"Python {version}: ftforge does not know the sha256 of Python-{version}.tar.xz",
            hint=f"pass --sha256 from python.org's release page, or use one of "
            f"{', '.join(KNOWN_SOURCES)}",
        ) from None


def latest_for_series(series: str) -> CPythonSource:
    series = parse_series(series)
    candidates = [s for s in KNOWN_SOURCES.values() if s.series == series]
    return max(candidates, key=lambda s: tuple(int(p) for p in s.version.split(".")))
