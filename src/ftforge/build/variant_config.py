"""Compose the variant matrix a build uses: files, toolchain keys, command-line overrides.

Pure functions over plain dicts, so the cascade is testable without rattler-build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from ..errors import FtforgeError

__all__ = ["VariantMatrix", "compose", "expand", "load_variant_file", "parse_override"]


class VariantOverrideError(FtforgeError):
    """A ``--variant KEY=VALUE`` that does not fit the matrix."""


@dataclass(frozen=True)
class VariantMatrix:
    values: dict[str, list[str]] = field(default_factory=dict)
    zip_keys: list[list[str]] = field(default_factory=list)

    def merged(self, other: VariantMatrix) -> VariantMatrix:
        """``other`` wins key by key; zip groups touching an overridden key are replaced."""
        values = {**self.values, **other.values}
        overridden = set(other.values)
        zips = [z for z in self.zip_keys if not overridden.intersection(z)] + list(other.zip_keys)
        return VariantMatrix(values, zips)


def _stringify(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_variant_file(path: Path) -> VariantMatrix:
    """Read a ``variants.yaml`` / ``conda_build_config.yaml`` (no selectors) into a matrix."""
    try:
        data = YAML(typ="safe").load(path.read_text()) or {}
    except Exception as exc:  # ruamel raises many types; all mean "not valid YAML"
        raise FtforgeError(
            f"{path}: not a valid variant file ({exc})",
            hint="fix the YAML; each key maps to a list of values",
        ) from None
    if not isinstance(data, dict):
        raise FtforgeError(f"{path}: expected a mapping of keys to lists of values")
    zips = [list(map(str, group)) for group in data.pop("zip_keys", []) or []]
    values: dict[str, list[str]] = {}
    for key, raw in data.items():
        items = raw if isinstance(raw, list) else [raw]
        values[str(key)] = [_stringify(v) for v in items]
    return VariantMatrix(values, zips)


def parse_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise VariantOverrideError(
            f"--variant '{text}' is not KEY=VALUE",
            hint="for example --variant freethreading=yes",
        )
    return key.strip(), value.strip()


def compose(base: VariantMatrix, overrides: list[tuple[str, str]]) -> VariantMatrix:
    """Pin each overridden key to one value, keeping zipped keys aligned with it."""
    values = {k: list(v) for k, v in base.values.items()}
    zips = [list(z) for z in base.zip_keys]
    for key, value in overrides:
        group = next((z for z in zips if key in z), None)
        if group is None:
            values[key] = [value]
            continue
        current = values.get(key, [])
        if value not in current:
            raise VariantOverrideError(
                f"--variant {key}={value}: '{key}' is zipped with {', '.join(group)} and "
                f"'{value}' is not one of its values ({', '.join(current)})",
                hint=f"choose one of: {', '.join(current)}",
            )
        index = current.index(value)
        for member in group:
            if member in values:
                values[member] = [values[member][index]]
    return VariantMatrix(values, zips)


def expand(matrix: VariantMatrix) -> list[VariantMatrix]:
    """Every single combination of ``matrix``; zipped keys move together."""
    groups: list[list[str]] = []
    for group in matrix.zip_keys:
        members = [k for k in group if k in matrix.values]
        lengths = {len(matrix.values[k]) for k in members}
        if len(lengths) > 1:
            raise VariantOverrideError(
                f"zip_keys {', '.join(group)}: the zipped lists have different lengths",
                hint="give every zipped key the same number of values",
            )
        if members:
            groups.append(members)
    zipped = {k for g in groups for k in g}
    groups += [[k] for k in matrix.values if k not in zipped]
    combos: list[dict[str, list[str]]] = [{}]
    for group in groups:
        length = len(matrix.values[group[0]])
        combos = [{**c, **{k: [matrix.values[k][i]] for k in group}}
                  for c in combos for i in range(length)]
    return [VariantMatrix(c, matrix.zip_keys) for c in combos]
