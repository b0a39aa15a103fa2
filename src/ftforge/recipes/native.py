"""Recipes for the C libraries a self-contained interpreter (and its extensions) link.

One generator for every library: a v1 ``recipe.yaml`` plus ``build.sh`` with
conda-forge's package names and ``run_exports`` pins (``openssl >=3.0.20,<4.0a0``),
static libraries, libtool archives and documentation dropped, and a test that
loads every shared library the package ships and refuses one that resolves a
dependency outside the environment (glibc's own excepted). rattler-build makes
every rpath ``$ORIGIN``-relative (``dynamic_linking.rpaths: [lib/]``).

Sources: each recipe points at the upstream release file and its sha256. The
bytes come offline from the local source mirror, seeded from Debian bookworm's
source packages (``orig`` tarballs; :mod:`ftforge.build.seed`). Where Debian
ships upstream's file unchanged the recipe's URL is upstream's (expat's is
GitHub's tag archive, which is what Debian ships); where Debian's file is not
upstream's release file (``zlib``'s ``.dfsg`` repack, ``sqlite3``'s full
source tree, libyaml's tag archive instead of pyyaml.org's tarball) the recipe
says so in a ``# NOTE:`` and the sha256 is that of Debian's file, filed in the
mirror by content: a build from upstream's own file needs the recipe
regenerated with upstream's checksum. No checksum here was compared with
upstream's site from this machine.

Generation is pure (``generate`` returns file names and text); writing and the
drift check are :mod:`ftforge.recipes.files`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..channel.linkage import GLIBC_LIBRARIES
from ..errors import FtforgeError

__all__ = [
    "LIBRARIES",
    "STACK_ORDER",
    "DebianOrig",
    "NativeLibrary",
    "NativeSource",
    "files_for",
    "generate",
    "library",
    "recipes_root",
]

@dataclass(frozen=True)
class DebianOrig:
    """Where the local mirror's copy comes from: a Debian source package's orig file."""

    package: str
    version: str
    filename: str
    suite: str = "bookworm"


@dataclass(frozen=True)
class NativeSource:
    url: str
    sha256: str
    debian: DebianOrig | None = None
    pypi_project: str | None = None
    note: str = ""

    @property
    def upstream_identical(self) -> bool:
        """Whether the mirror's bytes are upstream's file (as far as Debian says)."""
        return not self.note

    @property
    def mirror_name(self) -> str:
        return Path(self.url).name


@dataclass(frozen=True)
class NativeLibrary:
    """One recipe: a library package, plus thin alias outputs named as conda-forge names them."""

    name: str
    """The recipe directory and the package holding the files (conda-forge's name)."""
    version: str
    source: NativeSource
    summary: str
    license: str
    license_file: str | tuple[str, ...]
    homepage: str
    script: str
    max_pin: str = "x"
    """conda-forge's ``max_pin`` for the run_exports upper bound ("x", "x.x")."""
    host: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    """Outputs that depend on ``name`` exactly and export its pin (``zlib`` for ``libzlib``)."""
    libraries: tuple[str, ...] = ()
    """Shared libraries (file names under lib/) the test loads."""
    test_commands: tuple[str, ...] = ()
    noarch: bool = False
    recipe_name: str | None = None
    build_number: int = 0
    patches: tuple[tuple[str, str], ...] = ()
    """(file name, text) of upstream's own fixes, applied to the release tarball."""
    cmake: bool = False
    """Built with the build machine's cmake (a build tool, not linked)."""
    extra_comment: str = ""

    @property
    def directory(self) -> str:
        return self.recipe_name or self.name

    def upper_bound(self) -> str:
        parts = [int(p) for p in self.version.split(".")[:3] if p.isdigit()]
        depth = self.max_pin.count("x")
        head = (parts + [0, 0])[:depth]
        head[-1] += 1
        return ".".join(str(p) for p in [*head, 0]) + "a0"

    @property
    def pin(self) -> str:
        return f"{self.name} >={self.version},<{self.upper_bound()}"


# ---------------------------------------------------------------------------
# build scripts. Common prologue and epilogue: see _script().

_AUTOTOOLS_FLAGS = '--prefix="$PREFIX" --libdir="$PREFIX/lib" --disable-static'

_SCRIPTS: dict[str, str] = {
    "zlib": """\
./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" --shared
make -j"$CPU_COUNT"
make install
""",
    "bzip2": """\
# Upstream's shared-library makefile; the command-line tools are not packaged.
make -f Makefile-libbz2_so CC="$CC" CFLAGS="$CFLAGS -fPIC -D_FILE_OFFSET_BITS=64" -j"$CPU_COUNT"
mkdir -p "$PREFIX/lib" "$PREFIX/include"
cp libbz2.so.1.0.8 "$PREFIX/lib/"
ln -s libbz2.so.1.0.8 "$PREFIX/lib/libbz2.so.1.0"
ln -s libbz2.so.1.0.8 "$PREFIX/lib/libbz2.so.1"
ln -s libbz2.so.1.0.8 "$PREFIX/lib/libbz2.so"
cp bzlib.h "$PREFIX/include/"
""",
    "xz": f"""\
./configure {_AUTOTOOLS_FLAGS} --disable-xz --disable-xzdec --disable-lzmadec \\
    --disable-lzmainfo --disable-lzma-links --disable-scripts --disable-doc --disable-nls
make -j"$CPU_COUNT"
make install
""",
    "libffi": f"""\
./configure {_AUTOTOOLS_FLAGS} --disable-docs --disable-multi-os-directory
make -j"$CPU_COUNT"
make install
""",
    "ncurses": """\
# Wide-character ncurses with its terminfo database; the system's terminfo
# directories are searched after the environment's own.
./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" --with-shared --without-normal \\
    --without-debug --without-ada --without-cxx --without-cxx-binding --without-manpages \\
    --without-tests --enable-widec --enable-pc-files \\
    --with-pkg-config-libdir="$PREFIX/lib/pkgconfig" \\
    --with-terminfo-dirs="$PREFIX/share/terminfo:/etc/terminfo:/lib/terminfo:/usr/share/terminfo"
make -j"$CPU_COUNT"
make install
# The narrow names, as conda-forge's ncurses provides them (readline asks for -lncurses).
for lib in ncurses form panel menu; do
    ln -s "lib${lib}w.so" "$PREFIX/lib/lib${lib}.so"
done
ln -s ncursesw.pc "$PREFIX/lib/pkgconfig/ncurses.pc"
""",
    "readline": f"""\
./configure {_AUTOTOOLS_FLAGS} --with-curses
# libreadline records its need for ncurses (upstream leaves the termcap library to the program).
make -j"$CPU_COUNT" SHLIB_LIBS=-lncursesw
make install SHLIB_LIBS=-lncursesw
""",
    "expat": """\
# The tag archive has the library under expat/ and no configure script: CMake.
cmake -S expat -B build -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \\
    -DCMAKE_BUILD_TYPE=Release -DEXPAT_SHARED_LIBS=ON -DEXPAT_BUILD_TOOLS=OFF \\
    -DEXPAT_BUILD_EXAMPLES=OFF -DEXPAT_BUILD_TESTS=OFF -DEXPAT_BUILD_DOCS=OFF
cmake --build build -j"$CPU_COUNT"
cmake --install build
""",
    "libuuid": f"""\
# util-linux configured for libuuid alone.
./configure {_AUTOTOOLS_FLAGS} --disable-all-programs --enable-libuuid \\
    --disable-nls --disable-bash-completion --without-python --without-systemd \\
    --without-udev --without-ncursesw --without-ncurses --without-tinfo \\
    --without-readline --disable-makeinstall-chown --disable-makeinstall-setuid
make -j"$CPU_COUNT"
make install
""",
    "sqlite": f"""\
# Debian's orig is SQLite's full source tree: tclsh (a build tool only) generates
# the amalgamation; the Tcl extension and readline are not built.
./configure {_AUTOTOOLS_FLAGS} --enable-threadsafe --enable-load-extension --disable-tcl \\
    --disable-readline --disable-editline \\
    CFLAGS="$CFLAGS -DSQLITE_ENABLE_COLUMN_METADATA=1 -DSQLITE_ENABLE_FTS4 -DSQLITE_ENABLE_FTS5 \\
            -DSQLITE_ENABLE_RTREE -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ENABLE_UNLOCK_NOTIFY \\
            -DSQLITE_SECURE_DELETE -DSQLITE_MAX_VARIABLE_NUMBER=250000"
make -j"$CPU_COUNT"
make install
""",
    "openssl": """\
# OPENSSLDIR is the environment's ssl/ (cert.pem comes from ca-certificates).
./Configure linux-x86_64 --prefix="$PREFIX" --libdir=lib --openssldir="$PREFIX/ssl" \\
    shared no-tests $CFLAGS
make -j"$CPU_COUNT"
make install_sw install_ssldirs
rm -f "$PREFIX/ssl/cert.pem" "$PREFIX/ssl/certs/"*.pem
rm -rf "$PREFIX/ssl/misc"
""",
    "ca-certificates": """\
# The Mozilla CA bundle as certifi ships it.
mkdir -p "$PREFIX/ssl/certs"
# A copy, not a symlink: noarch packages carry no symlinks (Windows clients).
cp certifi/cacert.pem "$PREFIX/ssl/cacert.pem"
cp certifi/cacert.pem "$PREFIX/ssl/cert.pem"
""",
    "yaml": """\
cmake -S . -B build -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \\
    -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$CPU_COUNT"
cmake --install build
""",
    "libjpeg-turbo": """\
# WITH_SIMD=OFF: no nasm on the build machine (slower, same output format).
# libjpeg-turbo reads a relative CMAKE_INSTALL_LIBDIR against the build tree: absolute.
cmake -S . -B build -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR="$PREFIX/lib" \\
    -DENABLE_STATIC=OFF -DWITH_JPEG8=ON -DWITH_SIMD=OFF -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$CPU_COUNT"
cmake --install build
""",
}


# Readline 8.2's official patch 1 (Chet Ramey, 2022-10-05; Debian bookworm carries it
# too): without it libreadline crashes in _rl_init_locale when the locale named by
# LANG/LC_* is not installed -- `import readline` segfaults in a bare root filesystem.
_READLINE_82_001 = """\
Readline-8.2 patch 1 (upstream): fix crash when readline is started with an invalid
locale specification.

--- a/nls.c
+++ b/nls.c
@@ -141,6 +141,10 @@ _rl_init_locale (void)
   if (lspec == 0)
     lspec = "";
   ret = setlocale (LC_CTYPE, lspec);\t/* ok, since it does not change locale */
+  if (ret == 0 || *ret == 0)
+    ret = setlocale (LC_CTYPE, (char *)NULL);
+  if (ret == 0 || *ret == 0)
+    ret = RL_DEFAULT_LOCALE;
 #else
   ret = (lspec == 0 || *lspec == 0) ? RL_DEFAULT_LOCALE : lspec;
 #endif
"""


def _deb(package: str, version: str, filename: str) -> DebianOrig:
    return DebianOrig(package, version, filename)


LIBRARIES: tuple[NativeLibrary, ...] = (
    NativeLibrary(
        "ca-certificates", "2026.10.18",
        NativeSource("https://pypi.org/packages/source/c/certifi/certifi-2026.10.18.tar.gz",
                     "b9995d97b64d0431a5af837d8ca8cd6238104d1f319f04bd93ea43124d6c861e",
                     pypi_project="certifi"),
        "Mozilla's CA certificate bundle (from certifi's sdist), as ssl/cert.pem",
        "MPL-2.0", "LICENSE", "https://github.com/certifi/python-certifi",
        _SCRIPTS["ca-certificates"], noarch=True,
        test_commands=('test "$(grep -c "BEGIN CERTIFICATE" "$PREFIX/ssl/cert.pem")" -gt 100',),
    ),
    NativeLibrary(
        "libzlib", "1.2.13",
        NativeSource("https://zlib.net/fossils/zlib-1.2.13.tar.gz",
                     "71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1",
                     _deb("zlib", "1:1.2.13.dfsg-1", "zlib_1.2.13.dfsg.orig.tar.bz2"),
                     note="Debian's repack zlib_1.2.13.dfsg.orig.tar.bz2 (upstream's sources "
                          "without contrib/); upstream's zlib-1.2.13.tar.gz has another sha256"),
        "Massively spiffy yet delicately unobtrusive compression library (shared library)",
        "Zlib", "LICENSE", "https://zlib.net/", _SCRIPTS["zlib"],
        recipe_name="zlib", aliases=("zlib",), libraries=("libz.so.1",),
    ),
    NativeLibrary(
        "bzip2", "1.0.8",
        NativeSource("https://sourceware.org/pub/bzip2/bzip2-1.0.8.tar.gz",
                     "ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269",
                     _deb("bzip2", "1.0.8-5", "bzip2_1.0.8.orig.tar.gz")),
        "High-quality data compressor (libbz2; the command-line tools are not packaged)",
        "bzip2-1.0.6", "LICENSE", "https://sourceware.org/bzip2/", _SCRIPTS["bzip2"],
        libraries=("libbz2.so.1.0",),
    ),
    NativeLibrary(
        "liblzma", "5.4.1",
        NativeSource("https://github.com/tukaani-project/xz/releases/download/v5.4.1/xz-5.4.1.tar.xz",
                     "5d9827aa1875b21c288f78864bb26d2650b436ea8d2cad364e4921eb6266a5a5",
                     _deb("xz-utils", "5.4.1-1+deb12u1", "xz-utils_5.4.1.orig.tar.xz")),
        "LZMA compression library (liblzma; the xz tools are not packaged)",
        "0BSD AND LGPL-2.1-or-later AND GPL-2.0-or-later", "COPYING",
        "https://tukaani.org/xz/", _SCRIPTS["xz"],
        recipe_name="xz", aliases=("liblzma-devel",), libraries=("liblzma.so.5",),
    ),
    NativeLibrary(
        "libffi", "3.4.4",
        NativeSource("https://github.com/libffi/libffi/releases/download/v3.4.4/libffi-3.4.4.tar.gz",
                     "d66c56ad259a82cf2a9dfc408b32bf5da52371500b84745f7fb8b645712df676",
                     _deb("libffi", "3.4.4-1", "libffi_3.4.4.orig.tar.gz")),
        "A portable foreign-function interface library", "MIT", "LICENSE",
        "https://sourceware.org/libffi/", _SCRIPTS["libffi"], libraries=("libffi.so.8",),
    ),
    NativeLibrary(
        "ncurses", "6.4",
        NativeSource("https://invisible-mirror.net/archives/ncurses/ncurses-6.4.tar.gz",
                     "6931283d9ac87c5073f30b6290c4c75f21632bb4fc3603ac8100812bed248159",
                     _deb("ncurses", "6.4-4", "ncurses_6.4.orig.tar.gz")),
        "Terminal control library (wide-character) with its terminfo database",
        "MIT-open-group", "COPYING", "https://invisible-island.net/ncurses/",
        _SCRIPTS["ncurses"],
        libraries=("libncursesw.so.6", "libpanelw.so.6", "libformw.so.6", "libmenuw.so.6"),
        test_commands=('"$PREFIX/bin/tput" -T xterm-256color colors',),
    ),
    NativeLibrary(
        "readline", "8.2",
        NativeSource("https://ftp.gnu.org/gnu/readline/readline-8.2.tar.gz",
                     "3feb7171f16a84ee82ca18a36d7b9be109a52c04f492a053331d7d1095007c35",
                     _deb("readline", "8.2-1.3", "readline_8.2.orig.tar.gz")),
        "Library for editing command lines as they are typed in", "GPL-3.0-only",
        "COPYING", "https://tiswww.case.edu/php/chet/readline/rltop.html",
        _SCRIPTS["readline"], host=("ncurses",), build_number=1,
        patches=(("readline82-001.patch", _READLINE_82_001),),
        libraries=("libreadline.so.8", "libhistory.so.8"),
    ),
    NativeLibrary(
        "libexpat", "2.5.0",
        NativeSource("https://github.com/libexpat/libexpat/archive/refs/tags/R_2_5_0.tar.gz",
                     "ab00ee05c7067fd10a35c5d2a4922ebba746ddd50ff83b79c828da17bbdf1757",
                     _deb("expat", "2.5.0-1+deb12u2", "expat_2.5.0.orig.tar.gz")),
        "Stream-oriented XML parser library", "MIT", "expat/COPYING",
        "https://libexpat.github.io/",
        _SCRIPTS["expat"], recipe_name="expat", aliases=("expat",), cmake=True,
        libraries=("libexpat.so.1",),
    ),
    NativeLibrary(
        "libuuid", "2.38.1",
        NativeSource("https://www.kernel.org/pub/linux/utils/util-linux/v2.38/util-linux-2.38.1.tar.xz",
                     "60492a19b44e6cf9a3ddff68325b333b8b52b6c59ce3ebd6a0ecaa4c5117e84f",
                     _deb("util-linux", "2.38.1-5+deb12u3", "util-linux_2.38.1.orig.tar.xz")),
        "Universally unique ID library (from util-linux)", "BSD-3-Clause",
        "Documentation/licenses/COPYING.BSD-3-Clause",
        "https://github.com/util-linux/util-linux", _SCRIPTS["libuuid"],
        libraries=("libuuid.so.1",),
    ),
    NativeLibrary(
        "libsqlite", "3.40.1",
        NativeSource("https://www.sqlite.org/2022/sqlite-src-3400100.zip",
                     "aaa776260ab4dc976db34aa7891819484c8676b5b2783123ebc6301e2ca5d655",
                     _deb("sqlite3", "3.40.1-2+deb12u2", "sqlite3_3.40.1.orig.tar.xz"),
                     note="Debian's sqlite3_3.40.1.orig.tar.xz: SQLite's full source tree as "
                          "a tarball; upstream publishes it as sqlite-src-3400100.zip, whose "
                          "sha256 differs"),
        "Self-contained, serverless, zero-configuration SQL database engine (library and shell)",
        "blessing", (), "https://sqlite.org/", _SCRIPTS["sqlite"],
        recipe_name="sqlite", aliases=("sqlite",), host=("zlib",),
        libraries=("libsqlite3.so.0",),
        test_commands=('"$PREFIX/bin/sqlite3" :memory: "select sqlite_version();"',),
    ),
    NativeLibrary(
        "openssl", "3.0.20",
        NativeSource("https://github.com/openssl/openssl/releases/download/openssl-3.0.20/openssl-3.0.20.tar.gz",
                     "c80a01dfc70ece4dc21168932c37739042d404d46ccc81a5986dd75314ecda6f",
                     _deb("openssl", "3.0.20-1~deb12u2", "openssl_3.0.20.orig.tar.gz")),
        "OpenSSL 3: TLS and general-purpose cryptography", "Apache-2.0", "LICENSE.txt",
        "https://www.openssl.org/", _SCRIPTS["openssl"], run=("ca-certificates",),
        libraries=("libssl.so.3", "libcrypto.so.3"),
        test_commands=('"$PREFIX/bin/openssl" version -a',
                       'test -f "$PREFIX/ssl/cert.pem"'),
    ),
    NativeLibrary(
        "yaml", "0.2.5",
        NativeSource("https://github.com/yaml/libyaml/archive/refs/tags/0.2.5.tar.gz",
                     "fa240dbf262be053f3898006d502d514936c818e422afdcf33921c63bed9bf2e",
                     _deb("libyaml", "0.2.5-1", "libyaml_0.2.5.orig.tar.gz"),
                     note="Debian's libyaml_0.2.5.orig.tar.gz is the tag archive of "
                          "yaml/libyaml 0.2.5 (not pyyaml.org's yaml-0.2.5.tar.gz)"),
        "A C library for parsing and emitting YAML", "MIT", "License",
        "https://pyyaml.org/wiki/LibYAML", _SCRIPTS["yaml"], max_pin="x.x", cmake=True,
        libraries=("libyaml.so",),
    ),
    NativeLibrary(
        "libjpeg-turbo", "2.1.5",
        NativeSource("https://github.com/libjpeg-turbo/libjpeg-turbo/releases/download/2.1.5/libjpeg-turbo-2.1.5.tar.gz",
                     "254f3642b04e309fee775123133c6464181addc150499561020312ec61c1bf7c",
                     _deb("libjpeg-turbo", "1:2.1.5-2", "libjpeg-turbo_2.1.5.orig.tar.gz")),
        "JPEG codec with the libjpeg (v8) and TurboJPEG interfaces",
        "IJG AND BSD-3-Clause AND Zlib", "LICENSE.md", "https://libjpeg-turbo.org/",
        _SCRIPTS["libjpeg-turbo"], cmake=True,
        libraries=("libjpeg.so.8", "libturbojpeg.so.0"),
    ),
)

_BY_NAME = {lib.directory: lib for lib in LIBRARIES} | {lib.name: lib for lib in LIBRARIES}

STACK_ORDER: tuple[str, ...] = (
    "ca-certificates", "zlib", "bzip2", "xz", "libffi", "ncurses", "readline", "expat",
    "libuuid", "sqlite", "openssl",
)
"""The interpreter's libraries (recipe directories), each after what it needs."""

EXTENSION_LIBRARIES: tuple[str, ...] = ("yaml", "libjpeg-turbo")
"""Libraries PyPI extensions link (pyyaml, pillow), built on demand."""


def library(name: str) -> NativeLibrary:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise FtforgeError(
            f"no native library recipe named {name!r}",
            hint=f"known: {', '.join(sorted({lib.directory for lib in LIBRARIES}))}",
        ) from None


def recipes_root() -> Path:
    """The committed recipes/ directory of this checkout."""
    return Path(__file__).resolve().parents[3] / "recipes"


# ---------------------------------------------------------------------------
# generation


_PROLOGUE = """\
#!/usr/bin/env bash
# HEADER
set -euxo pipefail
# Build against the environment's libraries only: its headers, its pkg-config
# files (never the system's), and the linker looking in $PREFIX/lib first.
export CPPFLAGS="-I$PREFIX/include ${CPPFLAGS:-}"
export CFLAGS="-O2 -fPIC ${CFLAGS:-}"
export LDFLAGS="-L$PREFIX/lib -Wl,-rpath-link,$PREFIX/lib ${LDFLAGS:-}"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig:$PREFIX/share/pkgconfig"
export PKG_CONFIG_LIBDIR="$PKG_CONFIG_PATH"
export CPU_COUNT="${CPU_COUNT:-2}"

"""

_EPILOGUE = """
# Static libraries, libtool archives and documentation are not packaged.
find "$PREFIX/lib" -maxdepth 1 \\( -name '*.a' -o -name '*.la' \\) -delete 2>/dev/null || true
rm -rf "$PREFIX/share/man" "$PREFIX/share/doc" "$PREFIX/share/info" "$PREFIX/share/gtk-doc"
"""

# Loads each library the package ships with the build machine's dynamic linker
# (``ld.so --list`` maps it and its dependencies without running anything) and
# refuses a dependency resolved outside the test environment, glibc's own excepted.
_LOAD_TEST = """\
#!/usr/bin/env bash
# HEADER
set -euo pipefail
loader=/lib64/ld-linux-x86-64.so.2
glibc=" GLIBC_LIBS "
status=0
# shellcheck disable=SC2086
for lib in $LIBS; do
    path="$PREFIX/lib/$lib"
    test -e "$path" || { echo "missing: lib/$lib"; exit 1; }
    out="$("$loader" --list "$path")" || { echo "cannot load lib/$lib"; echo "$out"; exit 1; }
    echo "lib/$lib:"; echo "$out"
    while read -r name arrow where _; do
        [ "$arrow" = "=>" ] || continue
        case "$glibc" in *" $name "*) continue ;; esac
        case "$where" in
            "$PREFIX"/*) ;;
            *) echo "lib/$lib needs $name from $where: outside the environment"; status=1 ;;
        esac
    done <<< "$out"
done
exit $status
"""


def _yaml_list(items, indent: int) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}- {item}" for item in items)


def _alias_output(lib: NativeLibrary, alias: str) -> str:
    return f"""  - package:
      name: {alias}
      version: ${{{{ version }}}}
    build:
      noarch: generic
    requirements:
      run:
        - ${{{{ pin_subpackage("{lib.name}", exact=True) }}}}
      run_exports:
        - ${{{{ pin_subpackage("{lib.name}", lower_bound="x.x.x", upper_bound="{lib.max_pin}") }}}}
    about:
      summary: "{alias}: conda-forge's name for {lib.name} (the files are in {lib.name})"
      license: {lib.license}
"""


def generate(lib: NativeLibrary) -> dict[str, str]:
    """Return ``{file name: text}`` for the library's recipe directory."""
    header = (f"# Generated by `ftforge recipe native {lib.directory}`: "
              "edit the generator (src/ftforge/recipes/native.py), not this file.")
    src = lib.source
    if src.debian is not None:
        origin = (f"# Source bytes: Debian {src.debian.suite}'s {src.debian.package} "
                  f"{src.debian.version}, {src.debian.filename}"
                  + ("" if src.upstream_identical else f"\n# NOTE: {src.note}."))
    else:
        origin = f"# Source bytes: the sdist of {src.pypi_project} on PyPI"
    build_reqs = [] if lib.noarch else ["${{ compiler('c') }}"]
    requirements = ""
    if build_reqs or lib.host or lib.run:
        requirements = "    requirements:\n"
        if build_reqs:
            requirements += "      build:\n" + _yaml_list(build_reqs, 8) + "\n"
        if lib.host:
            requirements += "      host:\n" + _yaml_list(lib.host, 8) + "\n"
        if lib.run:
            requirements += "      run:\n" + _yaml_list(lib.run, 8) + "\n"
    if not lib.noarch:
        requirements += (
            "      run_exports:\n"
            f"        - ${{{{ pin_subpackage(\"{lib.name}\", lower_bound=\"x.x.x\", "
            f"upper_bound=\"{lib.max_pin}\") }}}}\n")
    tests = []
    if lib.libraries:
        tests.append("      - script:\n"
                     "          file: test-load.sh\n"
                     f"          # every shared library loads; nothing resolves outside the environment\n"
                     "          env:\n"
                     f"            LIBS: {' '.join(lib.libraries)}\n"
                     "        files:\n"
                     "          recipe:\n"
                     "            - test-load.sh\n")
    if lib.test_commands:
        tests.append("      - script:\n" + _yaml_list(
            [f"'{c}'" if ":" in c or c.startswith('"') else c for c in lib.test_commands], 10) + "\n")
    noarch = "\n      noarch: generic" if lib.noarch else ""
    licenses = lib.license_file if isinstance(lib.license_file, tuple) else (lib.license_file,)
    license_line = ""
    if licenses:
        license_line = ("      license_file:\n" + _yaml_list(licenses, 8) + "\n")
    test_block = "".join(tests) or "      - script:\n          - 'true'\n"
    main = f"""  - package:
      name: {lib.name}
      version: ${{{{ version }}}}
    build:
      number: ${{{{ build_number }}}}{noarch}
      script: build.sh
      dynamic_linking:
        rpaths:
          - lib/
{requirements}    tests:
{test_block}    about:
      homepage: {lib.homepage}
      summary: "{lib.summary}"
      license: {lib.license}
{license_line}"""
    run_exports_note = ("" if lib.noarch else
                        f"# run_exports: {lib.pin} (conda-forge's max_pin {lib.max_pin!r})\n")
    aliases = "".join(_alias_output(lib, a) for a in lib.aliases)
    patch_block = ("\n  patches:\n" + _yaml_list([n for n, _ in lib.patches], 4)
                   if lib.patches else "")
    recipe = f"""{header}
{origin}
{run_exports_note}schema_version: 1

context:
  version: "{lib.version}"
  build_number: {lib.build_number}

recipe:
  name: {lib.directory}
  version: ${{{{ version }}}}

source:
  url: {src.url}
  sha256: {src.sha256}{patch_block}

outputs:
{main}{aliases}"""
    files = {
        "recipe.yaml": recipe,
        "build.sh": (_PROLOGUE.replace("# HEADER", header) + lib.script + _EPILOGUE),
    }
    files.update(dict(lib.patches))
    if lib.libraries:
        files["test-load.sh"] = (_LOAD_TEST.replace("# HEADER", header)
                                 .replace(" GLIBC_LIBS ", " " + " ".join(sorted(GLIBC_LIBRARIES)) + " "))
    return files


def files_for(name: str) -> tuple[str, dict[str, str]]:
    """``(directory name, files)`` for ``ftforge recipe native NAME``."""
    lib = library(name)
    return lib.directory, generate(lib)


def debian_sources() -> list[tuple[DebianOrig, str, str]]:
    """(Debian orig, sha256, the mirror's file name) of every library seeded from Debian."""
    return [(lib.source.debian, lib.source.sha256, lib.source.mirror_name)
            for lib in LIBRARIES if lib.source.debian is not None]
