"""C libraries as conda packages: header, pkg-config and Debian names -> conda names.

A PyPI package whose build needs a C library depends on the conda package
for it (a host requirement; the library's ``run_exports`` pin it at run time),
never on the build machine's copy. The names are conda-forge's. Libraries
ftforge can build itself are those of :mod:`ftforge.recipes.native`; the
others are named all the same (the build then needs a channel that has them).

``--apt`` (Debian packages on the build machine) is the ``system`` profile's
way and is not self-contained; :func:`conda_for_apt` translates it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import FtforgeError

__all__ = [
    "BY_DEBIAN_PACKAGE",
    "BY_HEADER",
    "BY_PKG_CONFIG",
    "KNOWN_PROJECTS",
    "conda_for_apt",
    "conda_for_header",
    "libraries_for_project",
    "system_linkage_script",
]

BY_HEADER: dict[str, str] = {
    "yaml.h": "yaml",
    "zlib.h": "zlib",
    "jpeglib.h": "libjpeg-turbo",
    "turbojpeg.h": "libjpeg-turbo",
    "openssl/ssl.h": "openssl",
    "openssl/evp.h": "openssl",
    "ffi.h": "libffi",
    "sqlite3.h": "sqlite",
    "lzma.h": "liblzma-devel",
    "bzlib.h": "bzip2",
    "expat.h": "libexpat",
    "uuid/uuid.h": "libuuid",
    "ncurses.h": "ncurses",
    "curses.h": "ncurses",
    "readline/readline.h": "readline",
    "png.h": "libpng",
    "tiffio.h": "libtiff",
    "ft2build.h": "freetype",
    "webp/encode.h": "libwebp",
    "libxml/parser.h": "libxml2",
    "libxslt/xslt.h": "libxslt",
    "zstd.h": "zstd",
    "snappy-c.h": "snappy",
    "lz4.h": "lz4-c",
    "gmp.h": "gmp",
}
"""A C header (as ``#include`` names it) -> the conda package that provides it."""

BY_PKG_CONFIG: dict[str, str] = {
    "yaml-0.1": "yaml",
    "zlib": "zlib",
    "libjpeg": "libjpeg-turbo",
    "libturbojpeg": "libjpeg-turbo",
    "openssl": "openssl",
    "libssl": "openssl",
    "libcrypto": "openssl",
    "libffi": "libffi",
    "sqlite3": "sqlite",
    "liblzma": "liblzma-devel",
    "bzip2": "bzip2",
    "expat": "libexpat",
    "uuid": "libuuid",
    "ncursesw": "ncurses",
    "readline": "readline",
    "libpng": "libpng",
    "libtiff-4": "libtiff",
    "freetype2": "freetype",
    "libwebp": "libwebp",
    "libxml-2.0": "libxml2",
    "libxslt": "libxslt",
    "libzstd": "zstd",
}
"""A pkg-config module -> the conda package that provides it."""

BY_DEBIAN_PACKAGE: dict[str, str] = {
    "libyaml-dev": "yaml",
    "zlib1g-dev": "zlib",
    "libjpeg-dev": "libjpeg-turbo",
    "libjpeg62-turbo-dev": "libjpeg-turbo",
    "libturbojpeg0-dev": "libjpeg-turbo",
    "libssl-dev": "openssl",
    "libffi-dev": "libffi",
    "libsqlite3-dev": "sqlite",
    "liblzma-dev": "liblzma-devel",
    "libbz2-dev": "bzip2",
    "libexpat1-dev": "libexpat",
    "uuid-dev": "libuuid",
    "libncurses-dev": "ncurses",
    "libreadline-dev": "readline",
    "libpng-dev": "libpng",
    "libtiff-dev": "libtiff",
    "libfreetype-dev": "freetype",
    "libwebp-dev": "libwebp",
    "libxml2-dev": "libxml2",
    "libxslt1-dev": "libxslt",
    "libzstd-dev": "zstd",
    "libsnappy-dev": "snappy",
    "liblz4-dev": "lz4-c",
    "libgmp-dev": "gmp",
}
"""A Debian ``-dev`` package -> the conda package with the same library."""

KNOWN_PROJECTS: dict[str, tuple[str, ...]] = {
    "pyyaml": ("yaml",),
    "pillow": ("zlib", "libjpeg-turbo"),
}
"""PyPI projects (normalised) whose extension links C libraries, and the conda packages.

pyyaml builds ``_yaml`` only when libyaml is found; Pillow refuses to build
without zlib and libjpeg. Pillow's optional codecs (png, tiff, freetype, webp)
are left out unless their packages are named explicitly."""


def libraries_for_project(project: str) -> tuple[str, ...]:
    """The conda packages a PyPI project's build links (empty when none is known)."""
    from ..pypi import normalize

    return KNOWN_PROJECTS.get(normalize(project), ())


def conda_for_header(header: str) -> str | None:
    return BY_HEADER.get(header.strip().strip("<>\""))


def conda_for_apt(packages: Iterable[str], *, project: str) -> tuple[str, ...]:
    """The conda packages for Debian ``-dev`` packages; refuse one with no known name."""
    names, unknown = [], []
    for package in packages:
        conda = BY_DEBIAN_PACKAGE.get(package)
        (names.append(conda) if conda else unknown.append(package))
    if unknown:
        raise FtforgeError(
            f"{project}: no conda package is known for the Debian package(s) "
            f"{', '.join(unknown)}",
            hint="name the conda package instead (--c-library NAME), or build with the "
            "system profile (--apt), which is not self-contained",
        )
    return tuple(dict.fromkeys(names))


SYSTEM_LINKAGE_SCRIPT_NAME = "ftforge-system-linkage.sh"


def system_linkage_script(package: str) -> str:
    """Build-script tail of a system-profile (``--apt``) build: list the libraries from
    outside the environment that its ELF files link, in the system profile's marker
    ``share/ftforge/linkage/<package>.txt`` (what the channel's linkage audit requires)."""
    from ..channel.linkage import SYSTEM_MARKER_DIR

    return f"""#!/usr/bin/env bash
# Generated by ftforge: this package links the build machine's libraries (--apt,
# the system profile) and is not self-contained; the record below says which.
set -euo pipefail
record="$PREFIX/{SYSTEM_MARKER_DIR}{package}.txt"
mkdir -p "$(dirname "$record")"
{{
    echo "# Shared libraries outside the conda prefix linked by {package} (system profile)."
    find "${{SP_DIR:-$PREFIX}}" -type f -name '*.so*' -print0 \\
        | while IFS= read -r -d '' f; do ldd "$f" 2>/dev/null || true; done \\
        | awk -v prefix="$PREFIX" '/=> \\// && index($3, prefix) != 1 {{print $1, $3}}' \\
        | sort -u
}} > "$record"
"""
