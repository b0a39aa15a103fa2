"""Why a build failed, read from its log: the line that says so, and what to add.

pip buries the cause of a failed sdist build under ``error:
subprocess-exited-with-error``; setup.py scripts that fall back to a pure-Python
build when a C library is missing say so only in a warning. This module finds
the telling line (a missing header, a library pkg-config or the linker cannot
find, the messages Pillow and lxml print) and names the C library behind it
through ``ftforge.recipes.clibs``: the conda package that provides it (what a
self-contained recipe adds to ``host``) and the Debian package the ``system``
profile uses (``--apt``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Diagnosis", "Library", "diagnose", "library"]


@dataclass(frozen=True)
class Library:
    conda: str
    """conda-forge's package name (``ftforge.recipes.clibs``)."""
    debian: str | None
    """Debian's development package (headers and the .so link), when clibs knows it."""


# Words build scripts and linkers use for a library -> the header or pkg-config name
# ftforge.recipes.clibs knows it by (the one place library names are mapped).
_ALIASES: dict[str, str] = {
    "jpeg": "jpeglib.h", "libjpeg": "jpeglib.h", "turbojpeg": "turbojpeg.h",
    "z": "zlib.h", "zlib": "zlib.h",
    "xml2": "libxml/parser.h", "libxml2": "libxml/parser.h",
    "xslt": "libxslt/xslt.h", "libxslt": "libxslt/xslt.h", "exslt": "libxslt/xslt.h",
    "ssl": "openssl/ssl.h", "crypto": "openssl/ssl.h", "openssl": "openssl/ssl.h",
    "ffi": "ffi.h", "yaml": "yaml.h", "lzma": "lzma.h", "bz2": "bzlib.h", "zstd": "zstd.h",
    "freetype": "ft2build.h", "png": "png.h", "tiff": "tiffio.h", "webp": "webp/encode.h",
    "sqlite3": "sqlite3.h", "snappy": "snappy-c.h", "lz4": "lz4.h", "gmp": "gmp.h",
    "expat": "expat.h",
}


def library(name: str) -> Library | None:
    """The library a header, pkg-config module or linker name stands for."""
    from ..recipes import clibs

    key = name.strip().strip("'\"<>")
    for candidate in (key, key.lower(), re.sub(r"^lib", "", key.lower())):
        conda = (clibs.BY_HEADER.get(candidate) or clibs.BY_PKG_CONFIG.get(candidate)
                 or clibs.BY_HEADER.get(_ALIASES.get(candidate, "")))
        if conda:
            debian = next((d for d, c in clibs.BY_DEBIAN_PACKAGE.items() if c == conda), None)
            return Library(conda, debian)
    return None


# (pattern, group naming the library or None); the first pattern matching a line wins.
_CAUSES: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"fatal error: (?P<lib>[\w./+-]+\.h(?:pp)?): No such file or directory"), "lib"),
    # Pillow: "The headers or library files could not be found for jpeg,"
    (re.compile(r"headers or library files could not be found for (?P<lib>[\w.+-]+)"), "lib"),
    # lxml: "Please make sure the libxml2 and libxslt development packages are installed."
    (re.compile(r"make sure the (?P<lib>libxml2) and (?P<lib2>libxslt) development packages"),
     "lib"),
    (re.compile(r"Package '?(?P<lib>[\w.+-]+?)'?,? (?:required by '[^']*', )?(?:was )?not found"),
     "lib"),
    (re.compile(r"Dependency \"?(?P<lib>[\w.+-]+)\"? not found"), "lib"),      # meson
    (re.compile(r"Could NOT find (?P<lib>\w+)"), "lib"),                        # CMake
    (re.compile(r"cannot find -l(?P<lib>[\w.+-]+)"), "lib"),                    # ld
    (re.compile(r"(^|\s)(error:|#error|RuntimeError:|ModuleNotFoundError:)"), None),
)
_NOT_A_CAUSE = re.compile(r"subprocess-exited-with-error|metadata-generation-failed|"
                          r"legacy-install-failure|failed-wheel-build|error: command '.*' failed|"
                          r"note: This error originates")
_FELL_BACK = re.compile(r"(?i)falling back to (?:a )?pure[- ]python|could not be compiled|"
                        r"pure[- ]python (?:build|fallback|version)|without (?:the )?C extension")
_GIL_CHECK = re.compile(r"ftforge_gil_check: FAILED: .*")


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    """The log line that says why (stripped), or the GIL check's verdict."""
    libraries: tuple[Library, ...] = ()
    fell_back: bool = False
    """The build went on without its extension modules (the recipe test caught it)."""
    check: str | None = None
    """The ``ftforge_gil_check: FAILED`` line, when the recipe test failed."""
    header: str | None = None
    """The C header the compiler could not find."""

    def summary(self) -> str:
        if self.header and not self.libraries and not self.check:
            return f"the C header {self.header} is not installed"
        parts = []
        if self.check:
            parts.append(self.check.removeprefix("ftforge_gil_check: FAILED: "))
        if self.fell_back and self.cause != self.check:
            parts.append(f"the build fell back to pure Python after: {self.cause}")
        elif self.cause != self.check:
            parts.append(self.cause)
        if self.libraries:
            parts.append(f"a C library is missing ({', '.join(self.conda_packages)})")
        return "; ".join(parts)

    @property
    def conda_packages(self) -> list[str]:
        return [lib.conda for lib in self.libraries]

    def hint(self, log: str) -> str:
        if not self.libraries and self.header:
            return (f"install the Debian package that provides it (`apt-file search "
                    f"{self.header}`), then declare it with `ftforge recipe pypi ... --apt "
                    f"PACKAGE` (or add the conda package that provides it to host); full log: "
                    f"{log}")
        if not self.libraries:
            return f"the full log is {log}"
        conda = " and ".join(f"`{lib.conda}`" for lib in self.libraries)
        plural = "s" if len(self.libraries) > 1 else ""
        debian = [lib.debian for lib in self.libraries if lib.debian]
        system = (f"; or, with the system profile on this machine, `apt-get install "
                  f"{' '.join(debian)}` and regenerate the recipe with "
                  f"{' '.join(f'--apt {d}' for d in debian)}" if debian else "")
        return (f"add the conda package{plural} {conda} to the recipe's host requirements "
                f"(from a channel passed with --channel){system}. Full log: {log}")


def diagnose(log: str) -> Diagnosis | None:
    """The cause of a failed build in ``log``, or None when no line says why."""
    lines = [line.strip() for line in log.splitlines()]
    check = next((m[0] for line in lines if (m := _GIL_CHECK.search(line))), None)
    fell_back = any(_FELL_BACK.search(line) for line in lines)
    if check and not fell_back:  # the build worked; the recipe test says what is wrong
        return Diagnosis(check, (), False, check)
    for pattern, group in _CAUSES:
        for line in lines:
            if _NOT_A_CAUSE.search(line):
                continue
            match = pattern.search(line)
            if match is None:
                continue
            names = [v for k, v in match.groupdict().items() if k.startswith("lib") and v]
            libraries = tuple(lib for lib in map(library, names) if lib is not None)
            header = next((n for n in names if n.endswith((".h", ".hpp"))), None)
            return Diagnosis(line[:300], libraries, fell_back, check, header)
    if check:
        return Diagnosis(check, (), fell_back, check)
    return None
