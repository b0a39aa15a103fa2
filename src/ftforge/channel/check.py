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
- no record depends on two different ``python_abi`` tags.

The ABI facts come from :mod:`ftforge.variants`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..variants import (
    PythonVariant,
    variant_of_build_string,
    variant_of_python_abi_dependency,
)
from .index import channel_records

__all__ = ["CHECKS", "Violation", "check_channels", "check_records"]

CHECKS = {
    "python-abi-missing": "built against python but depends on no python_abi",
    "python-abi-count": "depends on more than one python_abi",
    "marker-disagrees": "the build-string ABI marker disagrees with the python_abi pin",
    "not-down-weighted": "a free-threaded interpreter or python_abi without a track feature",
    "abi-not-constrained": "python_abi does not constrain python to its own ABI tag",
    "interpreter-abi": "the interpreter does not depend on the python_abi of its own tag",
    "metapackage-abi": "an opt-in metapackage does not pin the python_abi of its ABI",
}

_METAPACKAGES = {v.metapackage: v for v in (PythonVariant.ft(), PythonVariant.gil())}


@dataclass(frozen=True)
class Violation:
    check: str
    fn: str
    channel: str
    message: str

    def __str__(self) -> str:
        return f"{self.channel}: {self.fn}: [{self.check}] {self.message}"


def _name(spec: str) -> str:
    return spec.split()[0] if spec.strip() else ""


def _constrains_python_to(record: dict, variant: PythonVariant) -> bool:
    want_tag = f"*_{variant.abi_tag}"
    for spec in record.get("constrains", []):
        parts = spec.split()
        if parts and parts[0] == "python" and len(parts) >= 3 and parts[2] == want_tag:
            return True
    return False


def check_record(record: dict, channel: str = "") -> list[Violation]:
    fn = record.get("fn") or f"{record['name']}-{record['version']}-{record['build']}"
    out: list[Violation] = []

    def bad(check: str, message: str) -> None:
        out.append(Violation(check, fn, channel, message))

    name, build = record["name"], record["build"]
    depends = list(record.get("depends", []))
    abi_deps = [d for d in depends if _name(d) == "python_abi"]
    abi_variants = {v for d in abi_deps if (v := variant_of_python_abi_dependency(d))}
    marker = variant_of_build_string(build)
    noarch = record.get("noarch") or record.get("subdir") == "noarch"

    if name == "python_abi":
        if marker is None:
            return out
        if marker.freethreaded and not record.get("track_features"):
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
        if marker is not None and marker.freethreaded and not record.get("track_features"):
            bad("not-down-weighted", f"free-threaded python {record['version']} ({build}) has "
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


def check_channels(channels: Iterable[Path]) -> tuple[int, list[Violation]]:
    """(records checked, violations) over every channel's repodata."""
    count, violations = 0, []
    for channel in channels:
        records = channel_records(Path(channel))
        count += len(records)
        violations.extend(check_records(records, str(channel)))
    return count, violations
