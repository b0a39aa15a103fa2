"""The interpreter recipe: python, python_abi and the opt-in metapackages.

Modelled on conda-forge's python-feedstock: one recipe, both ABIs selected by
the ``freethreading: yes|no`` variant key. Generation is pure: ``generate``
returns file names and their text; writing and drift checks live in
``ftforge.recipes.files``.

Two dependency profiles (the ``python_deps_profile`` variant key):

* ``conda-forge`` (the default) -- self-contained: every library the
  interpreter links is a host dependency with python-feedstock's conda name
  (openssl, libffi, zlib, ...), built here by :mod:`ftforge.recipes.native`
  (``ftforge.build.stack``) and exported into python's run dependencies. Only
  glibc comes from the system. ``_tkinter`` is not built (Tcl/Tk would need
  the X11 client libraries packaged too), nor ``_gdbm``/``_dbm``.
* ``system`` (opt-in, **not self-contained**) -- links Debian's OpenSSL,
  libffi, zlib, ... as installed on the build machine. The package records
  what it links in ``share/ftforge/linkage/python.txt``: that file is the
  system profile's marker, which the channel's linkage audit requires of a
  package that links libraries no conda package provides.

Four optimization levels (the ``python_optimization`` variant key):

* ``pgo-lto-bolt`` (the default: what gets published, what ``ftforge demo``
  and the test suite build) -- ``--enable-optimizations --with-lto
  --enable-bolt``: profile-guided with CPython's own training task (``-m test
  --pgo``, as python.org's and conda-forge's python-feedstock builds use),
  link-time optimized, then the executable's code laid out again by LLVM's
  BOLT from a second run of the same task (CPython's own ``--enable-bolt``,
  which python.org's release builds do not use yet). Needs ``llvm-bolt`` and
  ``merge-fdata`` on the build machine (Debian 12: ``bolt-16``).
* ``pgo-lto`` (opt-in) -- the same without BOLT: what conda-forge's
  python-feedstock publishes; for build machines without ``llvm-bolt``.
* ``pgo-lto-quick`` (opt-in) -- the same flags with a short training task
  (:data:`QUICK_PROFILE_TESTS`). The training run is a small part of a PGO
  build (two compiles and a serial LTO link are most of it), so this saves
  little; it exists for packagers who iterate on the recipe.
* ``none`` (opt-in) -- CPython's plain ``-O3`` build: the quickest first build,
  and the baseline of ``benchmarks/bench_pyperformance.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..variants import PythonVariant
from .cpython_sources import CPythonSource

__all__ = [
    "APT_BUILD_DEPENDENCIES",
    "CONDA_FORGE_HOST_DEPENDENCIES",
    "DEFAULT_PROFILE",
    "DEPS_PROFILES",
    "DepsProfile",
    "NOT_BUILT_MODULES",
    "BUILTIN_MODULES",
    "DEFAULT_OPTIMIZATION",
    "OPTIMIZATIONS",
    "Optimization",
    "QUICK_PROFILE_TESTS",
    "VARIANT_VALUES",
    "PythonRecipe",
    "generate",
    "recipe_dir_name",
]

DepsProfile = Literal["system", "conda-forge"]
DEPS_PROFILES: tuple[str, ...] = get_args(DepsProfile)

BOLT_LLVM_VERSION = 16
BOLT_APT_PACKAGE = f"bolt-{BOLT_LLVM_VERSION}"
"""Debian 12's package with ``llvm-bolt`` and ``merge-fdata`` (in /usr/lib/llvm-16/bin)."""

# Debian packages a complete CPython build needs (system profile), each with a
# file that proves it is installed -- checked before a build starts.
APT_BUILD_DEPENDENCIES: dict[str, str] = {
    "build-essential": "/usr/bin/make",
    "patchelf": "/usr/bin/patchelf",
    "libssl-dev": "/usr/include/openssl/ssl.h",
    "libffi-dev": "/usr/include/*/ffi.h",
    "zlib1g-dev": "/usr/include/zlib.h",
    "libbz2-dev": "/usr/include/bzlib.h",
    "liblzma-dev": "/usr/include/lzma.h",
    "libsqlite3-dev": "/usr/include/sqlite3.h",
    "libreadline-dev": "/usr/include/readline/readline.h",
    "libncurses-dev": "/usr/include/ncurses.h",
    "tk-dev": "/usr/include/tcl*/tk.h",
    "uuid-dev": "/usr/include/uuid/uuid.h",
    "libexpat1-dev": "/usr/include/expat.h",
    "libgdbm-dev": "/usr/include/gdbm.h",
    "libgdbm-compat-dev": "/usr/include/ndbm.h",
    BOLT_APT_PACKAGE: f"/usr/lib/llvm-{BOLT_LLVM_VERSION}/bin/llvm-bolt",
}
# 3.14 adds compression.zstd.
APT_BUILD_DEPENDENCIES_3_14 = {"libzstd-dev": "/usr/include/zstd.h"}

# python-feedstock's host requirements (linux), without tk: _tkinter is left out
# (Tcl/Tk link the X11 client libraries, which are not packaged here).
CONDA_FORGE_HOST_DEPENDENCIES: tuple[str, ...] = (
    "bzip2", "sqlite", "liblzma-devel", "zlib", "openssl", "readline",
    "ncurses", "libffi", "libuuid", "libexpat",
)
DEFAULT_PROFILE: DepsProfile = "conda-forge"
NOT_BUILT_MODULES: tuple[str, ...] = ("_tkinter", "_gdbm", "_dbm")
"""Extension modules the self-contained profile does not build (no library for them)."""
BUILTIN_MODULES: tuple[str, ...] = (
    "math", "cmath", "_json", "_pickle", "_struct", "_random", "_heapq", "_bisect", "array",
    "_datetime", "_statistics", "_contextvars", "_opcode", "_csv", "_queue", "select", "fcntl",
    "_posixsubprocess", "grp",
)
"""Extension modules linked into the interpreter itself instead of lib-dynload (a
``*static*`` Modules/Setup.local, as Debian builds its python3.X): compiled as part of
the core, they share its PGO profile and LTO (a call from ``math.sqrt`` into
``PyFloat_FromDouble`` is no longer a PLT call into the executable). Only modules
that link no library beyond libc and libm, that hot code imports, and
never one of :data:`NOT_BUILT_MODULES`; their rules come from the series' own
Modules/Setup.stdlib.in (one the series builds in already, in Setup.bootstrap.in, is
left to it; one with no plain rule fails the build)."""
CONDA_FORGE_HOST_DEPENDENCIES_3_14 = ("zstd",)

Optimization = Literal["pgo-lto-bolt", "pgo-lto", "pgo-lto-quick", "none"]
OPTIMIZATIONS: tuple[str, ...] = get_args(Optimization)
DEFAULT_OPTIMIZATION: Optimization = "pgo-lto-bolt"
"""The published build: profile-guided, link-time optimized and BOLT-ed (see the module
docstring)."""
QUICK_PROFILE_TESTS: tuple[str, ...] = (
    "test_array", "test_bytes", "test_float", "test_functools", "test_generators", "test_int",
    "test_json", "test_long", "test_re", "test_set", "test_str", "test_struct",
)
"""``pgo-lto-quick``'s training task: a dozen of the tests in CPython's own ``--pgo`` set."""

VARIANT_VALUES: dict[str, tuple[str, ...]] = {
    "freethreading": (PythonVariant.gil().recipe_freethreading,
                      PythonVariant.ft().recipe_freethreading),
    "python_deps_profile": DEPS_PROFILES,
    "python_optimization": OPTIMIZATIONS,
}
"""The interpreter recipe's own variant keys and every value its build script knows:
``ftforge build --variant`` refuses any other before a build starts."""

LINKAGE_RECORD = "share/ftforge/linkage/python.txt"


def recipe_dir_name(series: str) -> str:
    return f"python-{series}"


@dataclass(frozen=True)
class PythonRecipe:
    """Everything the interpreter recipe needs; derived from variants + source."""

    source: CPythonSource
    build_number: int = 0

    @property
    def gil(self) -> PythonVariant:
        return PythonVariant(self.source.series, False)

    @property
    def ft(self) -> PythonVariant:
        return PythonVariant(self.source.series, True)

    @property
    def apt_dependencies(self) -> dict[str, str]:
        deps = dict(APT_BUILD_DEPENDENCIES)
        if self.gil.version_tuple >= (3, 14):
            deps.update(APT_BUILD_DEPENDENCIES_3_14)
        return deps

    @property
    def conda_forge_host(self) -> tuple[str, ...]:
        deps = CONDA_FORGE_HOST_DEPENDENCIES
        if self.gil.version_tuple >= (3, 14):
            deps = deps + CONDA_FORGE_HOST_DEPENDENCIES_3_14
        return deps


def _pick(attr: str, recipe: PythonRecipe) -> str:
    """A Jinja expression choosing the free-threaded or the GIL value of ``attr``."""
    ft, gil = getattr(recipe.ft, attr), getattr(recipe.gil, attr)
    return f'${{{{ "{ft}" if freethreading == "yes" else "{gil}" }}}}'


def _list(items: list[str] | tuple[str, ...], indent: int) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}- {item}" for item in items)


def _metapackage(variant: PythonVariant, summary: str) -> str:
    """``python-freethreading`` / ``python-gil``: built only for their own ABI."""
    other = "no" if variant.freethreaded else "yes"
    return f"""  - package:
      name: {variant.metapackage}
      version: ${{{{ version }}}}
    build:
      skip: freethreading == "{other}"
      noarch: generic
      string: ${{{{ build_number }}}}_${{{{ abi_tag }}}}
      variant:
        use_keys:
          - freethreading
    requirements:
      run:
        - python ${{{{ version }}}}.*
        - {variant.python_abi_spec}
    about:
      summary: {summary}
      license: BSD-3-Clause
"""


def generate(recipe: PythonRecipe) -> dict[str, str]:
    """Return ``{file name: text}`` for the recipe directory."""
    src, gil, ft = recipe.source, recipe.gil, recipe.ft
    header = (
        f"# Generated by `ftforge recipe python {src.version}`: edit the generator, not this file.\n"
    )
    recipe_yaml = f"""{header}# Both ABIs from one recipe, as conda-forge's python-feedstock does:
#   freethreading: "no"  -> python {gil.series}  {gil.python_build_string("<hash>", recipe.build_number)}
#   freethreading: "yes" -> python {ft.series}t {ft.python_build_string("<hash>", recipe.build_number)}
# Source provenance: {src.provenance}
schema_version: 1

context:
  version: "{src.version}"
  series: "{gil.series}"
  build_number: {recipe.build_number}
  # The GIL interpreter's build number is raised by {gil.interpreter_build_number_offset} (conda-forge's practice):
  # solvers that rank build numbers prefer it, on top of the track features.
  python_build_number: ${{{{ {ft.interpreter_build_number(recipe.build_number)} if freethreading == "yes" else {gil.interpreter_build_number(recipe.build_number)} }}}}
  abi_tag: {_pick("abi_tag", recipe)}
  site_packages: {_pick("site_packages", recipe)}
  python_abi_spec: {_pick("python_abi_spec", recipe)}
  down_prioritize: ${{{{ {ft.down_prioritize} if freethreading == "yes" else {gil.down_prioritize} }}}}

recipe:
  name: python-split
  version: ${{{{ version }}}}

build:
  number: ${{{{ build_number }}}}

outputs:
  - package:
      name: python_abi
      version: ${{{{ series }}}}
    build:
      noarch: generic
      string: ${{{{ build_number }}}}_${{{{ abi_tag }}}}
      variant:
        use_keys:
          - freethreading
        # Track features (python_abi-p-0) so a solver ranks the free-threaded
        # ABI below the GIL one -- for every series, 3.14t and 3.15t included.
        down_prioritize_variant: ${{{{ down_prioritize }}}}
    requirements:
      run_constraints:
        - python ${{{{ series }}}}.* *_${{{{ abi_tag }}}}
    about:
      summary: Marks the Python ABI of an environment (${{{{ abi_tag }}}}); pins python to it.
      license: BSD-3-Clause

  - package:
      name: python
      version: ${{{{ version }}}}
    # The CPython tree belongs to this output alone: a top-level source would be
    # copied into every output's work folder (python_abi and the metapackages too).
    source:
      url: {src.url}
      sha256: {src.sha256}
    build:
      number: ${{{{ python_build_number }}}}
      string: h${{{{ hash }}}}_${{{{ python_build_number }}}}_${{{{ abi_tag }}}}
      variant:
        use_keys:
          - freethreading
          - python_deps_profile
          - python_optimization
        down_prioritize_variant: ${{{{ down_prioritize }}}}
      python:
        site_packages_path: ${{{{ site_packages }}}}
      dynamic_linking:
        rpaths:
          - lib/
      script:
        file: build-python.sh
        env:
          CONFIGURE_EXTRA: ${{{{ "{" ".join(ft.configure_flags)}" if freethreading == "yes" else "{" ".join(gil.configure_flags)}" }}}}
          PY_SERIES: ${{{{ series }}}}
          PY_STDLIB_DIR: {_pick("stdlib_dir", recipe)}
          PY_EXECUTABLE: {_pick("executable", recipe)}
          PY_NOARCH_SITE_PACKAGES: {gil.noarch_site_packages}
          PY_SITE_PACKAGES: ${{{{ site_packages }}}}
          LINKAGE_RECORD: {LINKAGE_RECORD}
          DEPS_PROFILE: ${{{{ python_deps_profile }}}}
          NOT_BUILT_MODULES: {" ".join(NOT_BUILT_MODULES)}
          BUILTIN_MODULES: {" ".join(BUILTIN_MODULES)}
          PY_OPTIMIZATION: ${{{{ python_optimization }}}}
          QUICK_PROFILE_TESTS: {" ".join(QUICK_PROFILE_TESTS)}
    requirements:
      build:
        - ${{{{ compiler('c') }}}}
        - ${{{{ compiler('cxx') }}}}
      host:
        - if: python_deps_profile == "conda-forge"
          then:
{_list(recipe.conda_forge_host, 12)}
      run:
        - ${{{{ python_abi_spec }}}}
      run_exports:
        noarch:
          - python
        weak:
          - ${{{{ python_abi_spec }}}}
    tests:
      - script:
          - python -c "import sys, sysconfig; print(sys.version); assert sysconfig.get_config_var('Py_GIL_DISABLED') == ${{{{ {ft.py_gil_disabled} if freethreading == 'yes' else {gil.py_gil_disabled} }}}}"
          # PGO + LTO unless the variant says none, BOLT when it says so (CONFIG_ARGS is
          # what configure was given; BOLT leaves a .note.bolt_info section)
          - python -c "import sysconfig; a = sysconfig.get_config_var('CONFIG_ARGS'); print(a); assert ('--enable-optimizations' in a and '--with-lto' in a) == ('${{{{ python_optimization }}}}' != 'none')"
          - python -c "import sys, sysconfig; a = sysconfig.get_config_var('CONFIG_ARGS'); bolted = b'.note.bolt_info' in open(sys.executable, 'rb').read(); assert ('--enable-bolt' in a) == bolted == '${{{{ python_optimization }}}}'.endswith('-bolt'), bolted"
          - python -c "import ssl, sqlite3, ctypes, lzma, bz2, zlib, readline, uuid, curses, pyexpat, decimal, hashlib"
          # linked into the interpreter (Modules/Setup.local), not loaded from lib-dynload
          - python -c "import sys, importlib.util as u; missing = [m for m in '{" ".join(BUILTIN_MODULES)}'.split() if m not in sys.builtin_module_names or u.find_spec(m).origin != 'built-in']; assert not missing, missing"
          # importing every one of them leaves the free-threaded build's GIL off
          - python -c "import importlib, sys, sysconfig; [importlib.import_module(m) for m in '{" ".join(BUILTIN_MODULES)}'.split()]; assert sys._is_gil_enabled() == (not sysconfig.get_config_var('Py_GIL_DISABLED'))"
          # The executable carries the interpreter itself; libpython is shipped for
          # embedding but not loaded by bin/python (see build-python.sh).
          - python -c "maps = open('/proc/self/maps').read(); assert 'libpython' not in maps, 'bin/python loaded libpython'"
          - test -f "$PREFIX/{_pick("libpython", recipe)}"
          - if: python_deps_profile == "conda-forge"
            then:
              # self-contained: no system-linkage record, the CA bundle from ca-certificates
              # (not the build machine's: SSL_CERT_FILE/SSL_CERT_DIR would point there)
              - test ! -e "$PREFIX/{LINKAGE_RECORD}"
              - env -u SSL_CERT_FILE -u SSL_CERT_DIR python -c "import ssl; n = len(ssl.create_default_context().get_ca_certs()); print(n, 'CA certificates'); assert n > 100"
              - python -c "import importlib.util as u; assert u.find_spec('_tkinter') is None"
            else:
              - test -f "$PREFIX/{LINKAGE_RECORD}"
          # pip is its own package (conda adds it to every python): none bundled here,
          # but ensurepip's wheel stays in the standard library.
          - python -c "import importlib.util, ensurepip; assert importlib.util.find_spec('pip') is None; print('ensurepip', ensurepip.version())"
    about:
      homepage: https://www.python.org/
      license: Python-2.0
      license_file: LICENSE
      summary: >-
        ${{{{ "General purpose programming language (" ~ abi_tag ~ " ABI)" if python_deps_profile == "conda-forge" else "General purpose programming language (" ~ abi_tag ~ " ABI; links the build machine's libraries: not self-contained)" }}}}
      description: >-
        ${{{{ "Self-contained: every library it links comes from a conda package, glibc excepted. Not built: {", ".join(NOT_BUILT_MODULES)} (tkinter needs Tcl/Tk and the X11 client libraries, which are not packaged here; dbm.sqlite3 is the dbm default)." if python_deps_profile == "conda-forge" else "System profile: links the build machine's OpenSSL, libffi, zlib, ... (listed in {LINKAGE_RECORD}); runs only where those libraries are installed." }}}} ${{{{ "Built with profile-guided and link-time optimization (--enable-optimizations --with-lto" ~ (", short training task" if python_optimization == "pgo-lto-quick" else "") ~ (" --enable-bolt: the executable's code laid out by LLVM BOLT" if python_optimization == "pgo-lto-bolt" else "") ~ ")." if python_optimization != "none" else "Built without profile-guided or link-time optimization (-O3 only)." }}}}

{_metapackage(ft, "Opt in to the free-threaded (no-GIL, PEP 703) Python " + ft.series + "t")}
{_metapackage(gil, "Python " + gil.series + " with the GIL (the default ABI)")}
extra:
  ftforge:
    # Debian packages the `system` dependency profile builds against.
    apt_build_dependencies:
{_list(sorted(recipe.apt_dependencies), 6)}
"""
    variants_yaml = f"""{header}# The recipe's own variant keys. `ftforge build` adds the toolchain keys.
freethreading:
  - "no"
  - "yes"
# conda-forge: self-contained (the default). system: opt in with
# `--variant python_deps_profile=system` (links the build machine's libraries).
python_deps_profile:
  - {DEFAULT_PROFILE}
# pgo-lto-bolt: profile-guided + link-time optimized + BOLT, what gets published
# and what the demo and the test suite build (the default). pgo-lto (no BOLT: no
# llvm-bolt needed), pgo-lto-quick (a short training task) and none (-O3 only)
# are opt-in: `--variant python_optimization=none`.
python_optimization:
  - {DEFAULT_OPTIMIZATION}
"""
    return {
        "recipe.yaml": recipe_yaml,
        "variants.yaml": variants_yaml,
        "build-python.sh": _BUILD_SCRIPT.replace("# HEADER", header.rstrip()),
    }


_BUILD_SCRIPT = r"""#!/usr/bin/env bash
# HEADER
# Builds CPython into $PREFIX. CONFIGURE_EXTRA carries --disable-gil for the
# free-threaded variant (rattler-build drops empty values, hence :-); everything
# else is the same for both ABIs.
set -euxo pipefail

PROFILE_ARGS=()
if [[ "$DEPS_PROFILE" == "conda-forge" ]]; then
    # Self-contained: headers, pkg-config files and libraries from the host
    # environment only (never the build machine's); modules with no library
    # here are not built, rather than linked against the system.
    export CPPFLAGS="-I$PREFIX/include ${CPPFLAGS:-}"
    export LDFLAGS="-L$PREFIX/lib -Wl,-rpath-link,$PREFIX/lib ${LDFLAGS:-}"
    export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig:$PREFIX/share/pkgconfig"
    export PKG_CONFIG_LIBDIR="$PKG_CONFIG_PATH"
    PROFILE_ARGS=(--with-openssl="$PREFIX" --with-system-expat --without-system-libmpdec)
    for module in $NOT_BUILT_MODULES; do
        export "py_cv_module_${module}=n/a"
    done
fi

# Optimization (python_optimization): PGO + LTO, with CPython's own training
# task or a short one, then BOLT or not; or CPython's plain -O3.
OPT_ARGS=()
case "$PY_OPTIMIZATION" in
    pgo-lto-bolt) OPT_ARGS=(--enable-optimizations --with-lto --enable-bolt) ;;
    pgo-lto) OPT_ARGS=(--enable-optimizations --with-lto) ;;
    pgo-lto-quick)
        OPT_ARGS=(--enable-optimizations --with-lto
                  "PROFILE_TASK=-m test --pgo --timeout=1200 $QUICK_PROFILE_TESTS") ;;
    none) ;;
    *) echo "error: unknown python_optimization '$PY_OPTIMIZATION'" >&2; exit 1 ;;
esac
BOLT=""
if [[ "$PY_OPTIMIZATION" == *-bolt ]]; then
    # llvm-bolt: $LLVM_BOLT if set (as CPython's configure reads it; a bare name is
    # looked up on PATH), else from PATH, else the newest of Debian's
    # /usr/lib/llvm-N/bin (bolt-N installs it there only); merge-fdata beside it.
    # (A glob, not find: find fails on any unreadable directory under /usr/lib.)
    BOLT=${LLVM_BOLT:-llvm-bolt}
    if [[ "$BOLT" != */* ]]; then
        BOLT=$(command -v "$BOLT" || true)
    fi
    if [[ -z "$BOLT" && -z "${LLVM_BOLT:-}" ]]; then
        BOLT=$(printf '%s\n' /usr/lib/llvm-*/bin/llvm-bolt | sort -V | tail -n 1)
    fi
    MERGE_FDATA="$(dirname "${BOLT:-/nonexistent/llvm-bolt}")/merge-fdata"
    if [[ ! -x "$BOLT" || ! -x "$MERGE_FDATA" ]]; then
        missing="llvm-bolt (tried ${BOLT:-${LLVM_BOLT:-PATH and /usr/lib/llvm-*/bin}})"
        [[ -x "$BOLT" ]] && missing="merge-fdata beside $BOLT"
        echo "error: python_optimization=$PY_OPTIMIZATION needs $missing:" \
             "apt-get install bolt-16 (Debian 12), or build with" \
             "--variant python_optimization=pgo-lto" >&2
        exit 1
    fi
    if [[ "$BOLT" =~ [[:space:]] ]]; then
        echo "error: llvm-bolt's path '$BOLT' holds a space, which CPython's Makefile" \
             "does not quote: install or link it elsewhere" >&2
        exit 1
    fi
    # CPython's BOLT flags skip _PyEval_EvalFrameDefault and sre's match loops:
    # BOLT cannot rewrite their computed gotos in position-independent code. Our
    # bin/python is position-dependent (-no-pie below; LTO generates its code for
    # that), where the label addresses are absolute relocations BOLT updates, so
    # the interpreter loop -- the hottest function -- is laid out too (2.5% of
    # pyperformance's time in an A/B run). The bolted executable then runs the
    # training task once more before it is installed (ftforge-bolt-check).
    OPT_ARGS+=("LLVM_BOLT=$BOLT" "MERGE_FDATA=$MERGE_FDATA"
               "BOLT_COMMON_FLAGS=-update-debug-sections")
fi

# Modules linked into the interpreter (BUILTIN_MODULES): each one's line from this
# series' Modules/Setup.stdlib.in, under *static* in Modules/Setup.local, whose
# rules come first (makesetup: the first rule for a module wins). A module the
# series already builds in (a rule in Modules/Setup.bootstrap.in: _opcode and
# _datetime moved there after 3.13) is left to it.
{
    echo '*static*'
    for module in $BUILTIN_MODULES; do
        if grep -q -E "^(@MODULE_[A-Z0-9_]+_TRUE@)?${module}[[:space:]]" \
                Modules/Setup.bootstrap.in 2>/dev/null; then
            echo "note: $module is built in by this series' Modules/Setup.bootstrap.in" >&2
            continue
        fi
        line=$(sed -n "s/^@MODULE_[A-Z0-9_]*_TRUE@\(${module}[[:space:]].*\)/\1/p" \
               Modules/Setup.stdlib.in)
        if [[ -z "$line" || "$line" == *$'\n'* || "$line" == *[@\\]* ]]; then
            echo "error: $module has no single plain rule in Modules/Setup.stdlib.in" \
                 "(${line:-none}): take it out of BUILTIN_MODULES for this series" >&2
            exit 1
        fi
        echo "$line"
    done
} > Modules/Setup.local

# shellcheck disable=SC2086
./configure \
    --prefix="$PREFIX" \
    --enable-shared \
    --enable-loadable-sqlite-extensions \
    --with-ensurepip=no \
    --without-static-libpython \
    "${PROFILE_ARGS[@]}" \
    "${OPT_ARGS[@]}" \
    ${CONFIGURE_EXTRA:-} \
    LDFLAGS="-Wl,-rpath,$PREFIX/lib ${LDFLAGS:-}"
# bin/python links the interpreter's objects itself instead of libpython (which
# is still built from the same objects and shipped, for embedders and
# python3.X-config --embed): Debian's, conda-forge's and python.org's layout. In
# a shared object the thread state is TLS reached through __tls_get_addr; in the
# executable it is a direct %fs access -- about 9% of pyperformance's time on
# Debian's own 3.13 builds. CPython 3.15's
# --enable-static-libpython-for-interpreter (python-build-standalone patches it
# into older series) does the same; here, for every series:
# - python's prerequisites are the objects only (LINK_PYTHON_DEPS, on make's
#   command line: it is expanded as the Makefile is read, and sub-makes -- the
#   PGO stages -- inherit it), so its LTO link runs beside libpython's instead
#   of after it;
# - python alone links the objects (a target-specific LINK_PYTHON_OBJS);
#   Programs/_testembed, a test program that is not installed, links libpython
#   as before rather than being a third LTO link of the whole interpreter;
# - libpython3.13.so and libpython3.so are still built, as prerequisites of
#   `platform` (they were python's);
# - python is linked as a position-dependent executable (-no-pie), as Debian
#   links its python3.X: with LTO, GCC generates the executable's code again for
#   a non-PIE output (absolute addresses, no GOT for the interpreter's own data).
#   The trade: the executable's own code and data are not address-randomized
#   (libraries, stack and heap still are). libpython and extension modules are
#   unchanged, and so is sysconfig's LINKFORSHARED (what embedders link with).
# And one cut to the build's time: Programs/_freeze_module, a build tool that
# turns the frozen stdlib modules into bytecode headers, is linked without LTO
# (PY_LDFLAGS_NOLTO, as CPython links _bootstrap_python; the objects carry
# non-LTO code too, -ffat-lto-objects). Its whole-interpreter LTO link is serial
# and everything else waits for the headers: 180 s of the instrumented stage and
# 78 s of the optimized one, with one core idle. Its output is the same bytecode.
cat >> Makefile <<'MAKEFILE'

# Added by ftforge's build-python.sh: bin/python links the interpreter's objects.
$(BUILDPYTHON): LINK_PYTHON_OBJS = $(LIBRARY_OBJS)
$(BUILDPYTHON): LINKFORSHARED += -no-pie
Programs/_freeze_module: PY_CORE_LDFLAGS = $(PY_LDFLAGS_NOLTO)
Programs/_testembed: $(LIBRARY_DEPS)
platform: $(LIBRARY_DEPS)
# BOLT (pgo-lto-bolt) lays out bin/python alone: CPython's default list adds
# libpython, whose profile would be empty (bin/python does not load it) and
# merge-fdata fails on no data.
BOLT_BINARIES := $(BUILDPYTHON)
# The bolted executable (BOLT rewrote its machine code) runs the training task,
# its tests spread over the build's CPUs (23 s and 56 s per ABI one at a time).
.PHONY: ftforge-bolt-check
ftforge-bolt-check:
	$(RUNSHARED) ./$(BUILDPYTHON) $(PROFILE_TASK) -j$(FTFORGE_JOBS)
MAKEFILE
if [[ -n "$BOLT" ]]; then
    # BOLT needs the executable's relocations (--emit-relocs); CPython's configure
    # adds the flag to every link, which kept them in libpython and every extension
    # module too (unused there: the package grew from 52 to 61 MB).
    cat >> Makefile <<'MAKEFILE'
ftforge_comma := ,
CONFIGURE_LDFLAGS_NODIST := $(filter-out -Wl$(ftforge_comma)--emit-relocs,$(CONFIGURE_LDFLAGS_NODIST))
$(BUILDPYTHON): LINKFORSHARED += -Wl,--emit-relocs
MAKEFILE
    # BOLT's function order: CPython 3.13+ asks for cdsort, which LLVM 18 added;
    # older BOLT (Debian 12's LLVM 16) has hfsort+, its predecessor.
    if ! grep -q -e '=cdsort' <<< "$("$BOLT" --help-hidden)"; then
        echo 'BOLT_APPLY_FLAGS := $(subst =cdsort,=hfsort+,$(BOLT_APPLY_FLAGS))' >> Makefile
    fi
fi
make -j"${CPU_COUNT:-2}" 'LINK_PYTHON_DEPS=$(LIBRARY_OBJS)'
if [[ -n "$BOLT" ]]; then
    make ftforge-bolt-check 'LINK_PYTHON_DEPS=$(LIBRARY_OBJS)' "FTFORGE_JOBS=${CPU_COUNT:-2}"
fi
make install 'LINK_PYTHON_DEPS=$(LIBRARY_OBJS)'
if ! dynamic=$(readelf -d "$PREFIX/$PY_EXECUTABLE"); then
    echo "error: make install wrote no $PY_EXECUTABLE" >&2
    exit 1
fi
if grep -q 'NEEDED.*libpython' <<< "$dynamic"; then
    echo "error: $PY_EXECUTABLE links libpython; it should carry the interpreter itself" >&2
    exit 1
fi
if ! readelf -h "$PREFIX/$PY_EXECUTABLE" | grep -q 'Type:.*EXEC'; then
    echo "error: $PY_EXECUTABLE is not a position-dependent executable (-no-pie)" >&2
    exit 1
fi
if [[ -n "$BOLT" ]] && ! readelf -S -W "$PREFIX/$PY_EXECUTABLE" | grep -q '\.note\.bolt_info'; then
    echo "error: $PY_EXECUTABLE was not optimized by BOLT (no .note.bolt_info section)" >&2
    exit 1
fi
# make install hard-links python3.13 to python3.13t in a free-threaded build; a
# package stores a hard link as a second copy (35 MB now that the executable is
# the interpreter): every other name of the executable becomes a symlink to it.
for name in "$PREFIX"/bin/python*; do
    if [[ -f "$name" && ! -L "$name" && "$name" != "$PREFIX/$PY_EXECUTABLE" ]] \
            && cmp -s "$name" "$PREFIX/$PY_EXECUTABLE"; then
        ln -sf "$(basename "$PY_EXECUTABLE")" "$name"
    fi
done

# The unversioned name conda users expect. pip is a package of its own.
ln -sf python3 "$PREFIX/bin/python"

# noarch: python packages installed by a client that ignores CEP-17's
# python_site_packages_path land in lib/pythonX.Y/site-packages: put that
# directory on the free-threaded interpreter's path too.
if [[ "$PY_SITE_PACKAGES" != "$PY_NOARCH_SITE_PACKAGES" ]]; then
    mkdir -p "$PREFIX/$PY_NOARCH_SITE_PACKAGES"
    echo "../../python$PY_SERIES/site-packages" > "$PREFIX/$PY_SITE_PACKAGES/_ftforge_noarch_site_packages.pth"
    touch "$PREFIX/$PY_NOARCH_SITE_PACKAGES/.ftforge-keep"
fi

if [[ "$DEPS_PROFILE" == "conda-forge" ]]; then
    # The modules left out must really be absent (a half-linked module is worse).
    for module in $NOT_BUILT_MODULES; do
        if compgen -G "$PREFIX/lib/python$PY_SERIES*/lib-dynload/$module.*" > /dev/null; then
            echo "error: $module was built although it has no library here" >&2
            exit 1
        fi
    done
    exit 0
fi

# System profile: record the system libraries this build links (the profile's
# marker: it is not self-contained).
mkdir -p "$(dirname "$PREFIX/$LINKAGE_RECORD")"
{
    echo "# Shared libraries outside the conda prefix linked by this python build."
    echo "# Built with ftforge's 'system' dependency profile: these come from the build machine."
    find "$PREFIX/lib" "$PREFIX/bin" -type f \( -name '*.so*' -o -perm -u+x \) -print0 \
        | while IFS= read -r -d '' f; do ldd "$f" 2>/dev/null || true; done \
        | awk -v prefix="$PREFIX" '/=> \// && index($3, prefix) != 1 {print $1, $3}' \
        | sort -u
} > "$PREFIX/$LINKAGE_RECORD"
"""


def files_for(version: str, *, sha256: str | None = None,
              build_number: int = 0) -> tuple[str, dict[str, str]]:
    """``(directory name, files)`` for ``ftforge recipe python VERSION``."""
    from .cpython_sources import source_for

    recipe = PythonRecipe(source_for(version, sha256=sha256), build_number)
    return recipe_dir_name(recipe.source.series), generate(recipe)
