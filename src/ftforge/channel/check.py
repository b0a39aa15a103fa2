"""``ftforge channel check``: prove the no-mixing invariants from repodata, without solving.

For every record of one or more channels:

- a package built against python (a platform package depending on ``python``,
  or one whose build string carries an ABI marker) depends on exactly one
  ``python_abi`` pin, and the marker agrees with it;
- every free-threaded interpreter and free-threaded ``python_abi`` carries the
  down-weighting track feature, so nobody gets it by accident;
- ``python_abi`` constrains ``python`` to its own ABI tag, the interpreter
  depends on the ``python_abi`` of its own tag, and the opt-in metapackages
  (``python-freethreading`` / ``python-gil``) pin the matching tag: with these,
  no environment can hold two ABI tags;
- no record depends on two different ``python_abi`` tags;
- the channel is **variant-complete**: every package that pins a free-threaded
  ``python_abi`` (interpreter, ``python_abi``, metapackage, extension) has, in
  the same channel and subdir, a build of the same name and version for the
  GIL ABI of the same series (``python-freethreading``'s twin is
  ``python-gil``). So the channel is safe on its own, listed first or last,
  under any priority: no free-threaded build is ever newer than its GIL twin.

And for a channel directory, that the index agrees with the files served: every
record's file is there with the recorded size (and, with ``hashes``, sha256), and
no package file lies in a subdir unlisted.

The ABI facts come from :mod:`ftforge.variants`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..build.mirror import sha256_of
from ..errors import ChannelError
from ..variants import (
    PythonVariant,
    is_python_abi_spec,
    variant_of_build_string,
    variant_of_package,
    variant_of_python_abi_dependency,
    variants_admitted,
)
from .index import channel_records
from .layout import CHANNEL_MARKER, is_channel, served_subdirs

__all__ = ["CHECKS", "FILE_CHECKS", "Violation", "check_channels", "check_records",
           "files_agree", "missing_twins"]

CHECKS = {
    "python-abi-missing": "built against python but depends on no python_abi",
    "python-abi-count": "depends on more than one python_abi",
    "marker-disagrees": "the build-string ABI marker disagrees with the python_abi pin",
    "not-down-weighted": "a free-threaded interpreter or python_abi without a track feature",
    "abi-not-constrained": "python_abi does not constrain python to its own ABI tag",
    "interpreter-abi": "the interpreter does not depend on the python_abi of its own tag",
    "metapackage-abi": "an opt-in metapackage does not pin the python_abi of its ABI",
    "abi-contradiction": "a python/python_abi spec excludes the ABI the package is built for",
    "gil-down-weighted": "a GIL interpreter or python_abi carrying track_features",
    "twin-outranked": "a free-threaded build with a higher build number than its GIL twin",
    "variant-incomplete": "a free-threaded build without its GIL twin (same name, version, "
    "subdir) in the channel",
}
FILE_CHECKS = {
    "file-missing": "a record whose package file is not in its subdir",
    "file-size": "a package file whose size differs from its record",
    "file-sha256": "a package file whose sha256 differs from its record (--hashes)",
    "file-unlisted": "a package file in a subdir that its index does not list",
}
_PACKAGE_SUFFIXES = (".conda", ".tar.bz2")

_METAPACKAGES = {v.metapackage: v for v in (PythonVariant.ft(), PythonVariant.gil())}


@dataclass(frozen=True)
class Violation:
    check: str
    fn: str
    channel: str
    message: str

    def __str__(self) -> str:
        return f"{self.channel}: {self.fn}: [{self.check}] {self.message}"


@functools.lru_cache(maxsize=8192)
def _name(spec: str) -> str:
    """The package a match spec names, however it is spelled (``python>=3.13``,
    ``conda-forge::python 3.13.*``, ``python[version=...]``); "" if it does not parse."""
    import rattler

    try:
        name = rattler.MatchSpec(spec.strip()).name
    except Exception:
        return ""
    return name.normalized if name is not None else ""


def _strings(value: object) -> list[str]:
    """A repodata list of specs, minus anything that is not a string (hand-edited repodata)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _features(record: dict) -> list[str]:
    """The record's track features (a space- or comma-separated string, or a list);
    blank means none."""
    value = record.get("track_features")
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [v for v in _strings(value) if v.strip()]


def _constrains_python_to(record: dict, variant: PythonVariant) -> bool:
    """A ``constrains`` entry on python that admits only this ABI (any spelling)."""
    return any(_name(spec) == "python" and variants_admitted(spec) == {variant}
               for spec in _strings(record.get("constrains")))


def check_record(record: dict, channel: str = "") -> list[Violation]:
    name, build = str(record.get("name", "")), str(record.get("build", ""))
    fn = str(record.get("fn") or f"{name}-{record.get('version')}-{build}")
    out: list[Violation] = []

    def bad(check: str, message: str) -> None:
        out.append(Violation(check, fn, channel, message))

    depends = _strings(record.get("depends"))
    abi_deps = [d for d in depends if is_python_abi_spec(d)]
    abi_variants = {v for d in abi_deps if (v := variant_of_python_abi_dependency(d))}
    marker = variant_of_build_string(build)
    noarch = record.get("noarch") or record.get("subdir") == "noarch"

    constrains = _strings(record.get("constrains"))
    built_for = variant_of_package(depends, build, constrains)
    if built_for is not None and len(abi_deps) <= 1:
        for spec in (*depends, *constrains):
            admitted = variants_admitted(spec)
            if admitted is not None and built_for not in admitted:
                bad("abi-contradiction", f"'{spec}' excludes {built_for.label}, the ABI it is "
                    "built for: it can never be installed (an uninstallable GIL twin leaves "
                    "solvers only the free-threaded build)")
                break
    features = _features(record)
    if name in ("python", "python_abi") and marker is not None and not marker.freethreaded \
            and features:
        bad("gil-down-weighted", f"GIL {name} {record.get('version')} ({build}) carries "
            f"track_features {' '.join(features)!r}: the default interpreter must not be "
            "down-weighted (a solver would pick the free-threaded build)")
    if name == "python_abi":
        if marker is None:
            return out
        if marker.freethreaded and not features:
            bad("not-down-weighted", f"free-threaded python_abi {marker.abi_tag} has no "
                "track_features: a solver may pick it without being asked")
        if not _constrains_python_to(record, marker):
            bad("abi-not-constrained",
                f"python_abi {marker.abi_tag} must constrain '{marker.python_abi_run_constraint}'")
        return out
    if len(abi_variants) > 1 or len(abi_deps) > 1:
        bad("python-abi-count", f"depends on {', '.join(abi_deps)}: two interpreter ABIs")
        return out
    variant = next(iter(abi_variants), None)
    if name == "python":
        if marker is not None and marker.freethreaded and not features:
            bad("not-down-weighted", f"free-threaded python {record.get('version')} ({build}) has "
                "no track_features: it would win over the GIL build as the newer package")
        if marker is not None and variant != marker:
            bad("interpreter-abi", f"python {build} must depend on '{marker.python_abi_spec}', "
                f"has {abi_deps or 'no python_abi'}")
        return out
    if name in _METAPACKAGES:
        want = _METAPACKAGES[name]
        if variant is None or variant.freethreaded != want.freethreaded:
            bad("metapackage-abi", f"{name} must pin python_abi *_{want.abi_tag}-style "
                f"({want.label}); has {abi_deps or 'no python_abi'}")
        return out
    depends_on_python = any(_name(d) == "python" for d in depends)
    built_against_python = marker is not None or (depends_on_python and not noarch)
    if built_against_python and variant is None:
        bad("python-abi-missing", "a platform package depending on python "
            f"({', '.join(d for d in depends if _name(d) == 'python')}) must pin one python_abi")
    elif variant is not None and marker is not None and marker != variant:
        bad("marker-disagrees", f"build string '{build}' says {marker.abi_tag}, "
            f"python_abi says {variant.abi_tag}")
    return out


def check_records(records: Iterable[dict], channel: str = "") -> list[Violation]:
    return [v for record in records for v in check_record(record, channel)]


def _twin_name(name: str) -> str:
    ft, gil = PythonVariant.ft(), PythonVariant.gil()
    return gil.metapackage if name == ft.metapackage else name


def _variant(record: dict) -> PythonVariant | None:
    return variant_of_package(_strings(record.get("depends")), str(record.get("build", "")),
                              _strings(record.get("constrains")))


def _build_number(record: dict) -> int:
    number = record.get("build_number", 0)
    return number if isinstance(number, int) and not isinstance(number, bool) else 0


def missing_twins(records: Iterable[dict], channel: str = "", *,
                  only: set[str] | None = None, without: set[str] = frozenset()
                  ) -> list[Violation]:
    """Variant completeness over one channel's records (each with ``subdir`` and ``fn``).

    ``only``: report just these file names (a publish checks its own packages);
    ``without``: file names to leave out, as if removed (a removal checks what stays).
    """
    kept = [r for r in records if r.get("fn") not in without]
    if only is not None:  # a publish: only its own records' twins matter, not the channel's
        kept_only = [r for r in kept if r.get("fn") in only]
        twins = {_twin_name(str(r.get("name"))) for r in kept_only}
        gil_side = [r for r in kept if str(r.get("name")) in twins]
    else:
        kept_only = gil_side = kept
    gil_builds: dict[tuple, int] = {}
    for record in gil_side:
        variant = _variant(record)
        if variant is not None and not variant.freethreaded:
            key = (record.get("subdir"), record.get("name"), record.get("version"),
                   variant.series)
            gil_builds[key] = max(gil_builds.get(key, -1), _build_number(record))
    out = []
    for record in kept_only:
        variant = _variant(record)
        if variant is None or not variant.freethreaded:
            continue
        twin = _twin_name(str(record.get("name")))
        subdir = record.get("subdir")
        key = (subdir, twin, record.get("version"), variant.series)
        if key in gil_builds:
            if _build_number(record) > gil_builds[key]:
                out.append(Violation(
                    "twin-outranked", str(record.get("fn")), channel,
                    f"free-threaded {record.get('name')} {record.get('version')} has build "
                    f"number {_build_number(record)}, above its GIL twin's "
                    f"{gil_builds[key]}: a solver ranking build numbers would prefer it; "
                    "rebuild the GIL twin with a build number at least as high"))
            continue
        gil = PythonVariant.gil(variant.series)
        out.append(Violation(
            "variant-incomplete", str(record.get("fn")), channel,
            f"free-threaded {record.get('name')} {record.get('version')} has no GIL twin: "
            f"{twin} {record.get('version')} built for {gil.abi_tag} ('{gil.python_abi_spec}') "
            f"is missing from {subdir}/; publish both variants together (`ftforge build` "
            "builds both)"))
    return out


def files_agree(channel: Path, records: list[dict], *, hashes: bool = False) -> list[Violation]:
    """The index against the files: each record's file present with its size (and
    sha256 with ``hashes``); no package file unlisted."""
    out = []
    where = str(channel)
    listed: dict[str, set[str]] = {}
    for record in records:
        subdir, fn = str(record.get("subdir", "")), str(record.get("fn", ""))
        listed.setdefault(subdir, set()).add(fn)
        path = channel / subdir / fn
        if "/" in fn or fn in ("", ".", "..") or not path.is_file() or path.is_symlink():
            out.append(Violation("file-missing", fn, where, f"listed in {subdir}/repodata.json "
                                 "but not a file there; run `ftforge channel reindex`"))
            continue
        size = path.stat().st_size
        if record.get("size") != size:
            out.append(Violation("file-size", fn, where, f"{size} bytes, the index says "
                                 f"{record.get('size')}; run `ftforge channel reindex`"))
        elif hashes and record.get("sha256") != sha256_of(path):
            out.append(Violation("file-sha256", fn, where, "the file's sha256 differs from the "
                                 "index; run `ftforge channel reindex`, then audit the file"))
    for subdir in served_subdirs(channel):
        folder = channel / subdir
        if not folder.is_dir():
            continue
        for name in sorted(p.name for p in folder.iterdir()):
            if name.endswith(_PACKAGE_SUFFIXES) and name not in listed.get(subdir, set()):
                out.append(Violation("file-unlisted", name, where, f"in {subdir}/ but not in "
                                     "its repodata.json; run `ftforge channel reindex`"))
    return out


def check_channels(channels: Iterable[Path], *, files: bool = True,
                   hashes: bool = False) -> tuple[int, list[Violation]]:
    """(records checked, violations) over every channel's repodata, and (``files``)
    whether its index agrees with the package files beside it."""
    count, violations = 0, []
    for channel in channels:
        channel = Path(channel)
        if not channel.is_dir():
            raise ChannelError(f"{channel}: no such channel directory",
                               hint="give the directory a channel was published into")
        records = channel_records(channel)
        if not records and not is_channel(channel):
            raise ChannelError(f"{channel}: not a channel (no {CHANNEL_MARKER} and no "
                               "repodata.json in any subdir)",
                               hint="give the directory a channel was published into")
        count += len(records)
        violations.extend(check_records(records, str(channel)))
        violations.extend(missing_twins(records, str(channel)))
        if files:
            violations.extend(files_agree(channel, records, hashes=hashes))
    return count, violations
