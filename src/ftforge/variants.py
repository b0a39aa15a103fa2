"""THE single source of truth for ABI facts: GIL vs free-threaded CPython.

Every other module derives names, specs, paths and build strings from
:class:`PythonVariant`; nothing else spells out ``cp313t``, ``_cp313t``,
``python3.13t`` or a ``py313t`` build-string prefix.

The spelling follows conda-forge (python-feedstock, python_abi,
conda-forge-pinning) so a recipe made here renders there, with two deliberate
fixes: extension build strings carry the ``t`` marker (``py313th<hash>_0``),
and every free-threaded ``python_abi`` is down-weighted, 3.14t/3.15t included.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .errors import UnknownPythonVersion

__all__ = [
    "ABI_PREFIX",
    "DEFAULT_SERIES",
    "FREETHREADED_MARKER",
    "GIL_INTERPRETER_BUILD_NUMBER_OFFSET",
    "PLATFORM_TRIPLETS",
    "PYTHON_MIN",
    "SUPPORTED_SERIES",
    "ExtensionModuleAbi",
    "Platform",
    "PythonVariant",
    "abi_pin",
    "all_variants",
    "classify_extension_module",
    "conda_build_config",
    "parse_series",
    "freethreaded_pin",
    "is_python_abi_spec",
    "variant_of_build_string",
    "variant_of_package",
    "variant_of_python_abi_dependency",
    "variants_admitted",
]

ABI_PREFIX = "cp"
"""CPython's ABI tag prefix (PEP 425/3149)."""

FREETHREADED_MARKER = "t"
"""The ABI flag PEP 703 adds for free-threaded builds (``cp313t``)."""

SUPPORTED_SERIES: tuple[str, ...] = ("3.13", "3.14", "3.15")
"""CPython series that have a free-threaded build."""

DEFAULT_SERIES = "3.13"

GIL_INTERPRETER_BUILD_NUMBER_OFFSET = 100
"""conda-forge raises the GIL interpreter's build number by 100 (python-feedstock)."""

PYTHON_MIN = "3.10"
"""conda-forge's ``python_min`` for noarch: python packages."""

Platform = Literal["linux-64", "linux-aarch64"]
PLATFORM_TRIPLETS: dict[str, str] = {
    "linux-64": "x86_64-linux-gnu",
    "linux-aarch64": "aarch64-linux-gnu",
}

# PEP 803 (abi3t) lands in 3.15: the first free-threaded stable ABI.
_FIRST_ABI3T_SERIES = (3, 15)

_SERIES_RE = re.compile(r"^(?P<major>3)\.(?P<minor>\d{1,2})(?:\.(?P<micro>\d+))?$")


def parse_series(version: str) -> str:
    """``"3.13.5"`` or ``"3.13"`` -> ``"3.13"``; refuse what ftforge does not support."""
    match = _SERIES_RE.match(version.strip())
    if not match:
        raise UnknownPythonVersion(
            f"'{version}' is not a CPython version (expected e.g. 3.13 or 3.13.5)",
            hint=f"supported series: {', '.join(SUPPORTED_SERIES)}",
        )
    series = f"{match['major']}.{match['minor']}"
    if series not in SUPPORTED_SERIES:
        raise UnknownPythonVersion(
            f"Python {version}: series {series} has no free-threaded build ftforge supports",
            hint=f"use one of {', '.join(SUPPORTED_SERIES)}",
        )
    return series


@dataclass(frozen=True, order=True)
class PythonVariant:
    """One interpreter ABI: a CPython series, GIL or free-threaded."""

    series: str
    freethreaded: bool

    def __post_init__(self) -> None:
        parse_series(self.series)

    @classmethod
    def gil(cls, series: str = DEFAULT_SERIES) -> PythonVariant:
        return cls(parse_series(series), False)

    @classmethod
    def ft(cls, series: str = DEFAULT_SERIES) -> PythonVariant:
        return cls(parse_series(series), True)

    @classmethod
    def from_abi_tag(cls, tag: str) -> PythonVariant:
        """``"cp313t"`` -> free-threaded 3.13."""
        match = re.fullmatch(rf"{ABI_PREFIX}3(\d{{1,2}})({FREETHREADED_MARKER}?)", tag)
        if not match:
            raise UnknownPythonVersion(f"'{tag}' is not a CPython ABI tag like cp313 or cp313t")
        return cls(f"3.{match[1]}", bool(match[2]))

    # -- names ---------------------------------------------------------------
    @property
    def nodot(self) -> str:
        return self.series.replace(".", "")

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.series.split(".")
        return int(major), int(minor)

    @property
    def marker(self) -> str:
        return FREETHREADED_MARKER if self.freethreaded else ""

    @property
    def abi_tag(self) -> str:
        """``cp313`` / ``cp313t``."""
        return f"{ABI_PREFIX}{self.nodot}{self.marker}"

    @property
    def label(self) -> str:
        return f"{self.series}{self.marker} ({'free-threaded' if self.freethreaded else 'GIL'})"

    # -- conda specs -----------------------------------------------------------
    @property
    def python_spec(self) -> str:
        """The ``python`` variant value in conda_build_config: ``3.13.* *_cp313t``."""
        return f"{self.series}.* *_{self.abi_tag}"

    @property
    def python_abi_spec(self) -> str:
        """What a package built against this python depends on."""
        return f"python_abi {self.series}.* *_{self.abi_tag}"

    @property
    def python_abi_run_constraint(self) -> str:
        """``python_abi``'s ``run_constrained``: only this interpreter ABI."""
        return f"python {self.series}.* *_{self.abi_tag}"

    @property
    def python_abi_version(self) -> str:
        return self.series

    @property
    def metapackage(self) -> str:
        """``python-freethreading`` / ``python-gil``: the opt-in names."""
        return "python-freethreading" if self.freethreaded else "python-gil"

    @property
    def interpreter_build_number_offset(self) -> int:
        """Added to the interpreter's build number: 100 for the GIL build, 0 for the
        free-threaded one (conda-forge's practice), so every solver that ranks build
        numbers prefers the GIL interpreter -- on top of the track features."""
        return 0 if self.freethreaded else GIL_INTERPRETER_BUILD_NUMBER_OFFSET

    def interpreter_build_number(self, build_number: int) -> int:
        """The ``python`` package's build number for a recipe build number."""
        return build_number + self.interpreter_build_number_offset

    def python_build_string(self, build_hash: str, build_number: int) -> str:
        """``h<hash>_<bn>_cp313t`` (``bn`` is the interpreter's own build number)."""
        return f"h{build_hash}_{self.interpreter_build_number(build_number)}_{self.abi_tag}"

    def python_abi_build_string(self, build_number: int) -> str:
        """``<bn>_cp313t``."""
        return f"{build_number}_{self.abi_tag}"

    @property
    def extension_build_prefix(self) -> str:
        """``py313t``: the start of an extension package's build string."""
        return f"py{self.nodot}{self.marker}"

    def extension_build_string(self, build_hash: str, build_number: int) -> str:
        """``py313th<hash>_<bn>`` (conda-forge omits the ``t``; we do not)."""
        return f"{self.extension_build_prefix}h{build_hash}_{build_number}"

    @property
    def down_prioritize(self) -> int:
        """Solver penalty (track features) so the GIL build wins by default."""
        return 1 if self.freethreaded else 0

    # -- files -------------------------------------------------------------------
    @property
    def stdlib_dir(self) -> str:
        """``lib/python3.13t``."""
        return f"lib/python{self.series}{self.marker}"

    @property
    def site_packages(self) -> str:
        """``lib/python3.13t/site-packages`` (CEP-17 ``python_site_packages_path``)."""
        return f"{self.stdlib_dir}/site-packages"

    @property
    def noarch_site_packages(self) -> str:
        """Where installers that ignore CEP-17 put noarch: python packages."""
        return f"lib/python{self.series}/site-packages"

    @property
    def executable(self) -> str:
        """``bin/python3.13t``: the versioned interpreter name ``make install`` writes."""
        return f"bin/python{self.series}{self.marker}"

    @property
    def libpython(self) -> str:
        return f"lib/libpython{self.series}{self.marker}.so"

    def extension_suffix(self, platform: str = "linux-64") -> str:
        """``.cpython-313t-x86_64-linux-gnu.so``."""
        try:
            triplet = PLATFORM_TRIPLETS[platform]
        except KeyError:
            raise UnknownPythonVersion(
                f"no platform triplet known for '{platform}'",
                hint=f"known: {', '.join(PLATFORM_TRIPLETS)}",
            ) from None
        return f".cpython-{self.nodot}{self.marker}-{triplet}.so"

    @property
    def stable_abi_suffix(self) -> str | None:
        """The stable-ABI suffix that may ship for this ABI, or None.

        GIL builds load ``.abi3.so``. A free-threaded 3.13t/3.14t interpreter
        has no stable ABI at all; 3.15t has ``abi3t`` (PEP 803).
        """
        if not self.freethreaded:
            return ".abi3.so"
        if self.version_tuple >= _FIRST_ABI3T_SERIES:
            return ".abi3t.so"
        return None

    # -- configuration keys ----------------------------------------------------------
    @property
    def py_gil_disabled(self) -> int:
        """``sysconfig.get_config_var("Py_GIL_DISABLED")``."""
        return 1 if self.freethreaded else 0

    @property
    def is_freethreading(self) -> bool:
        """conda-forge's ``is_freethreading`` key, zipped with ``python``."""
        return self.freethreaded

    @property
    def recipe_freethreading(self) -> str:
        """The python recipe's own variant key: ``freethreading: yes|no``."""
        return "yes" if self.freethreaded else "no"

    @property
    def pinning_values(self) -> dict[str, object]:
        """This ABI's value for each conda-forge pinning key that describes an interpreter
        ABI and is zipped with ``python`` by a migration: ``is_freethreading``, ``is_abi3``
        (the classic stable ABI can be built) and ``is_python_min``."""
        return {"python": self.python_spec, "is_freethreading": self.freethreaded,
                "is_abi3": self.stable_abi_suffix == ".abi3.so",
                "is_python_min": self.series == PYTHON_MIN}

    @property
    def configure_flags(self) -> tuple[str, ...]:
        return ("--disable-gil",) if self.freethreaded else ()


def all_variants(series: tuple[str, ...] = SUPPORTED_SERIES) -> list[PythonVariant]:
    return [PythonVariant(s, ft) for s in series for ft in (False, True)]


def conda_build_config(variants: list[PythonVariant]) -> dict[str, object]:
    """The conda-forge-keyed variant matrix (``python`` zipped with ``is_freethreading``)."""
    return {
        "python": [v.python_spec for v in variants],
        "is_freethreading": [v.is_freethreading for v in variants],
        "python_min": [PYTHON_MIN],
        "zip_keys": [["python", "is_freethreading"]],
    }


# -- reading the facts back from artefacts ---------------------------------------

_EXTENSION_RE = re.compile(
    rf"\.(?:cpython-3(?P<minor>\d{{1,2}})(?P<t>{FREETHREADED_MARKER}?)-[a-z0-9_]+-linux-gnu"
    rf"|(?P<stable>abi3{FREETHREADED_MARKER}?))\.so$"
)


@dataclass(frozen=True)
class ExtensionModuleAbi:
    """What an extension module's file name says it was built for."""

    variant: PythonVariant | None
    """The version-specific ABI (``.cpython-313t-...so``), None for stable-ABI modules."""
    stable: str | None
    """``abi3`` / ``abi3t`` for stable-ABI modules."""

    @property
    def freethreaded(self) -> bool:
        if self.variant is not None:
            return self.variant.freethreaded
        return self.stable == f"abi3{FREETHREADED_MARKER}"


def classify_extension_module(path: str) -> ExtensionModuleAbi | None:
    """``.../x.cpython-313t-x86_64-linux-gnu.so`` -> 3.13t; ``x.abi3.so`` -> abi3; else None."""
    match = _EXTENSION_RE.search(path)
    if not match:
        return None
    if match["stable"]:
        return ExtensionModuleAbi(None, match["stable"])
    series = f"3.{match['minor']}"
    if series not in SUPPORTED_SERIES:
        return ExtensionModuleAbi(None, None)
    return ExtensionModuleAbi(PythonVariant(series, bool(match["t"])), None)


MODULE_INIT_PREFIX = "PyInit_"
"""What every CPython extension module exports (``PyInit_<name>``), whatever its file name."""
FREETHREADED_ONLY_SYMBOLS = frozenset({"_Py_DecRefShared", "_Py_MergeZeroLocalRefcount"})
"""Linked only by code compiled for the free-threaded ABI (its inline Py_DECREF)."""
GIL_REFCOUNT_SYMBOL = "_Py_Dealloc"
"""The GIL build's inline Py_DECREF calls this and never the free-threaded ones."""


def freethreaded_by_symbols(undefined: set[str] | frozenset[str]) -> bool | None:
    """From the symbols an ELF object links: True free-threaded, False GIL, None unsure."""
    if undefined & FREETHREADED_ONLY_SYMBOLS:
        return True
    if GIL_REFCOUNT_SYMBOL in undefined:
        return False
    return None


_INTERPRETER_NAMES = ("python", "python_abi")


@functools.lru_cache(maxsize=8192)
def variants_admitted(spec: str) -> frozenset[PythonVariant] | None:
    """The interpreter ABIs a conda match spec on ``python``, ``python_abi`` or an opt-in
    metapackage lets through, whatever its spelling (``python_abi=3.13=*_cp313t``,
    ``python_abi[build=*_cp313t]``, ``conda-forge::python_abi 3.13.* *_cp313t``);
    None for a spec on another package or one that does not parse.

    The spec is parsed by py-rattler (name, version, build matcher); its build matcher
    is tried on the build strings python and python_abi have for each ABI, its version
    on each series."""
    if "python" not in spec or len(spec) > 1000:
        return None
    import rattler

    try:
        match = rattler.MatchSpec(spec.strip())
    except Exception:
        return None
    if match.name is None:
        return None
    name = match.name.normalized
    metapackages = {PythonVariant.ft().metapackage: True, PythonVariant.gil().metapackage: False}
    if name in metapackages:
        return frozenset(PythonVariant(series, metapackages[name]) for series in SUPPORTED_SERIES)
    if name not in _INTERPRETER_NAMES:
        return None
    version = rattler.VersionSpec(match.version) if match.version else None
    admitted = set()
    for series in SUPPORTED_SERIES:
        for freethreaded in (False, True):
            variant = PythonVariant(series, freethreaded)
            if not _build_matches(match.build, name, variant):
                continue
            if version is None or _version_matches(version, name, series):
                admitted.add(variant)
    return frozenset(admitted)


def _build_matches(matcher: str | None, name: str, variant: PythonVariant) -> bool:
    if matcher is None:
        return True
    builds = ([variant.python_abi_build_string(0)] if name == "python_abi" else
              [variant.python_build_string("h0000000", n) for n in (0, 100)])
    if len(matcher) > 1 and matcher.startswith("^") and matcher.endswith("$"):
        try:
            pattern = re.compile(matcher)
        except re.error:
            return False
        return any(pattern.fullmatch(build) for build in builds)
    return any(fnmatch.fnmatchcase(build, matcher) for build in builds)


def _version_matches(version, name: str, series: str) -> bool:  # noqa: ANN001 -- VersionSpec
    import rattler

    tried = [series] if name == "python_abi" else [series] + [f"{series}.{micro}"
                                                              for micro in range(0, 40)]
    return any(version.matches(rattler.Version(v)) for v in tried)


def freethreaded_pin(spec: str) -> PythonVariant | None:
    """The free-threaded ABI a spec forces (every build it can match is free-threaded):
    the lowest series it lets through; None if it also admits a GIL build, or is not
    about the interpreter."""
    admitted = variants_admitted(spec)
    if not admitted or not all(v.freethreaded for v in admitted):
        return None
    return min(admitted)


def abi_pin(spec: str) -> PythonVariant | None:
    """The one ABI kind a spec forces (all free-threaded or all GIL), lowest series."""
    admitted = variants_admitted(spec)
    if not admitted or len({v.freethreaded for v in admitted}) != 1:
        return None
    return min(admitted)


def is_python_abi_spec(spec: str) -> bool:
    """Whether a match spec names the ``python_abi`` package (in any spelling)."""
    if "python_abi" not in spec:
        return False
    import rattler

    try:
        match = rattler.MatchSpec(spec.strip())
    except Exception:
        return False
    return match.name is not None and match.name.normalized == "python_abi"


def variant_of_python_abi_dependency(dep: str) -> PythonVariant | None:
    """``"python_abi 3.13.* *_cp313t"`` (or ``python_abi=3.13=*_cp313t``,
    ``python_abi[build=*_cp313t]``...) -> 3.13t; None if it does not pin one ABI."""
    if not is_python_abi_spec(dep):
        return None
    admitted = variants_admitted(dep)
    return next(iter(admitted)) if admitted and len(admitted) == 1 else None


_BUILD_MARKERS = (
    re.compile(rf"^py3(?P<minor>\d{{2}})(?P<t>{FREETHREADED_MARKER}?)h"),  # extension packages
    re.compile(rf"_{ABI_PREFIX}3(?P<minor>\d{{2}})(?P<t>{FREETHREADED_MARKER}?)$"),  # interpreter
    re.compile(rf"^\d+_{ABI_PREFIX}3(?P<minor>\d{{2}})(?P<t>{FREETHREADED_MARKER}?)$"),  # python_abi
)


def variant_of_build_string(build: str) -> PythonVariant | None:
    """The ABI a build string's marker names (``py313th..._0``, ``..._cp313t``), or None."""
    for pattern in _BUILD_MARKERS:
        match = pattern.search(build)
        if match:
            series = f"3.{int(match['minor'])}"
            if series in SUPPORTED_SERIES:
                return PythonVariant(series, bool(match["t"]))
    return None


def variant_of_package(depends: Iterable[str], build: str,
                       constrains: Iterable[str] = ()) -> PythonVariant | None:
    """The ABI a package is built for or forces: the pins among its ``depends`` and
    ``constrains`` (any spec on python, python_abi or an opt-in metapackage that admits
    only one ABI kind), else its build-string marker; None for packages with neither.
    Contradicting pins: the marker if it is one of them, else a free-threaded one (so
    the variant-completeness rule still asks for its GIL twin)."""
    pins = {v for spec in (*depends, *constrains) if isinstance(spec, str)
            and (v := abi_pin(spec)) is not None}
    marker = variant_of_build_string(build)
    if len(pins) == 1:
        return pins.pop()
    if not pins:
        return marker
    if marker in pins:
        return marker
    return min(pins, key=lambda v: (not v.freethreaded, v))
