"""Why a build failed, read from its log: the line that says so, and what to add.

pip buries the cause of a failed sdist build under ``error:
subprocess-exited-with-error``; setup.py scripts that fall back to a pure-Python
build when a C library is missing say so only in a warning. This module finds
the telling line (a missing header, a library pkg-config or the linker cannot
find, the messages Pillow and lxml print) and names the C library behind it:
the conda package that provides it (what a self-contained recipe adds to
``host``) and the Debian package the ``system`` profile uses (``--apt``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LIBRARIES", "Diagnosis", "Library", "diagnose"]


@dataclass(frozen=True)
class Library:
    conda: str
    """conda-forge's package name."""
    debian: str
    """Debian's development package (headers and the .so link)."""


_L = Library
# A header, pkg-config module, linker name or the word a build script prints -> library.
LIBRARIES: dict[str, Library] = {
    **dict.fromkeys(("jpeg", "jpeglib.h", "libjpeg", "turbojpeg"), _L("libjpeg-turbo", "libjpeg-dev")),
    **dict.fromkeys(("zlib", "zlib.h", "z"), _L("zlib", "zlib1g-dev")),
    **dict.fromkeys(("freetype", "freetype2", "ft2build.h"), _L("freetype", "libfreetype-dev")),
    **dict.fromkeys(("png", "png.h", "libpng", "libpng16"), _L("libpng", "libpng-dev")),
    **dict.fromkeys(("tiff", "tiffio.h", "libtiff-4"), _L("libtiff", "libtiff-dev")),
    **dict.fromkeys(("webp", "libwebp", "webp/encode.h"), _L("libwebp", "libwebp-dev")),
    **dict.fromkeys(("lcms2", "lcms2.h"), _L("lcms2", "liblcms2-dev")),
    **dict.fromkeys(("openjpeg", "libopenjp2", "openjpeg.h"), _L("openjpeg", "libopenjp2-7-dev")),
    **dict.fromkeys(("libxml2", "xml2", "libxml/xmlversion.h", "libxml/parser.h",
                     "libxml-2.0"), _L("libxml2", "libxml2-dev")),
    **dict.fromkeys(("libxslt", "xslt", "libxslt/xsltconfig.h", "libexslt"),
                    _L("libxslt", "libxslt1-dev")),
    **dict.fromkeys(("yaml", "yaml.h", "yaml-0.1"), _L("yaml", "libyaml-dev")),
    **dict.fromkeys(("ffi", "ffi.h", "libffi"), _L("libffi", "libffi-dev")),
    **dict.fromkeys(("ssl", "crypto", "openssl", "openssl/ssl.h", "openssl/crypto.h",
                     "libssl", "libcrypto"), _L("openssl", "libssl-dev")),
    **dict.fromkeys(("lzma", "lzma.h", "liblzma"), _L("xz", "liblzma-dev")),
    **dict.fromkeys(("bz2", "bzlib.h"), _L("bzip2", "libbz2-dev")),
    **dict.fromkeys(("zstd", "zstd.h", "libzstd"), _L("zstd", "libzstd-dev")),
    **dict.fromkeys(("lz4", "lz4.h", "liblz4"), _L("lz4-c", "liblz4-dev")),
    **dict.fromkeys(("sqlite3", "sqlite3.h"), _L("libsqlite", "libsqlite3-dev")),
    **dict.fromkeys(("gmp", "gmp.h"), _L("gmp", "libgmp-dev")),
    **dict.fromkeys(("pq", "libpq", "libpq-fe.h"), _L("libpq", "libpq-dev")),
    **dict.fromkeys(("curl", "libcurl", "curl/curl.h"), _L("libcurl", "libcurl4-openssl-dev")),
    **dict.fromkeys(("hdf5", "hdf5.h"), _L("hdf5", "libhdf5-dev")),
    **dict.fromkeys(("uv", "uv.h", "libuv"), _L("libuv", "libuv1-dev")),
    **dict.fromkeys(("snappy", "snappy-c.h"), _L("snappy", "libsnappy-dev")),
    **dict.fromkeys(("brotlienc", "brotlidec", "brotli/decode.h", "libbrotlidec"),
                    _L("libbrotlidec", "libbrotli-dev")),
}

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
        debian = [lib.debian for lib in self.libraries]
        return (f"add the conda package{'s' if len(debian) > 1 else ''} {conda} to the recipe's "
                f"host requirements (from a channel passed with --channel); or, with the system "
                f"profile on this machine, `apt-get install {' '.join(debian)}` and regenerate "
                f"the recipe with {' '.join(f'--apt {d}' for d in debian)}. Full log: {log}")


def _library(name: str) -> Library | None:
    key = name.strip().strip("'\"")
    return LIBRARIES.get(key) or LIBRARIES.get(key.lower()) or LIBRARIES.get(
        re.sub(r"^lib", "", key.lower()))


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
            libraries = tuple(lib for lib in map(_library, names) if lib is not None)
            header = next((n for n in names if n.endswith((".h", ".hpp"))), None)
            return Diagnosis(line[:300], libraries, fell_back, check, header)
    if check:
        return Diagnosis(check, (), fell_back, check)
    return None
