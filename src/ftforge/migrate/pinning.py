"""A conda-forge pinning checkout, and the migration file a feedstock gets from it.

Two of conda-smithy's rules decide whether a migration survives the next rerender:

- a feedstock's ``.ci_support/migrations/NAME.yaml`` is kept only when the
  pinning has a file of the same name with the same ``migrator_ts`` (and
  migration number), or when its ``__migrator`` says ``use_local: true``;
  any other is deleted as a finished migration;
- a ``key_add`` migration must give a value for every key the pinning zips
  with its primary key (``python``), or rendering fails with "Required zip_key
  ... not specified".

So a feedstock gets the pinning's own file byte for byte when the pinning has
it; otherwise a complete file of ftforge's own, marked ``use_local: true``,
whose zip keys are read from the pinning (or, without one, from the
feedstock's last rerender) and whose values come from :mod:`ftforge.variants`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FtforgeError
from ..limits import RecipeLimits
from ..variants import PythonVariant

__all__ = ["MigrationFile", "Pinning", "PinningError", "migration_file_for", "read_yaml_file"]

CONFIG_FILES = ("conda_build_config.yaml", "recipe/conda_build_config.yaml",
                "share/conda-forge/conda_build_config.yaml")
"""Where a pinning keeps its variant matrix: the ``--pinning`` directory itself, a
checkout of the pinning feedstock, or an installed pinning package."""

PRIMARY_KEY = "python"


class PinningError(FtforgeError):
    """A pinning or migration file that cannot be used."""


def read_yaml_file(path: Path, *, what: str, limits: RecipeLimits = RecipeLimits(),
                   selectors: bool = False) -> dict:
    """A YAML mapping from a file ftforge did not write: size-checked, safe-loaded,
    ``# [selector]`` lines evaluated for linux-64 when ``selectors``."""
    from ruamel.yaml import YAML, YAMLError

    try:
        size = path.stat().st_size
        if size > limits.max_recipe_bytes:
            raise PinningError(f"{path}: {what} is {size} bytes, over the "
                               f"{limits.max_recipe_bytes}-byte limit (max_recipe_bytes)",
                               hint="check that this is the right file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PinningError(f"{path}: cannot read {what} ({exc})",
                           hint="check the path and its permissions") from None
    if selectors:
        text = _select_linux_64(text)
    try:
        data = YAML(typ="safe").load(io.StringIO(text))
    except YAMLError as exc:
        raise PinningError(f"{path}: {what} is not valid YAML ({str(exc).splitlines()[0]})",
                           hint="fix the file or point at another checkout") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PinningError(f"{path}: {what} is not a YAML mapping",
                           hint="fix the file or point at another checkout")
    return data


def _select_linux_64(text: str) -> str:
    """conda-build line selectors for the linux-64 build; an expression the selector
    evaluator refuses (``os.environ.get(...)``) drops its line."""
    from .recipe_reader import _selector_names, evaluate_selector

    names = _selector_names((3, 13), False)
    out = []
    for line in text.splitlines():
        body, hash_, rest = line.partition("#")
        rest = rest.strip()
        if hash_ and rest.startswith("[") and rest.endswith("]"):
            try:
                keep = evaluate_selector(rest[1:-1], names)
            except (ValueError, SyntaxError):
                keep = False
            line = body.rstrip() if keep else ""
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Pinning:
    """``--pinning DIR``: the variant matrix and the ``migrations/`` directory."""

    root: Path
    config_path: Path
    migrations_dir: Path
    config: dict = field(repr=False)

    @classmethod
    def load(cls, root: Path) -> Pinning:
        root = Path(root)
        config_path = next((root / c for c in CONFIG_FILES if (root / c).is_file()), None)
        if config_path is None:
            raise PinningError(f"{root}: no conda_build_config.yaml (looked in "
                               f"{', '.join(CONFIG_FILES)})",
                               hint="pass a checkout of the conda-forge pinning feedstock")
        migrations_dir = config_path.parent / "migrations"
        config = read_yaml_file(config_path, what="the pinning's conda_build_config.yaml",
                                selectors=True)
        pinning = cls(root, config_path, migrations_dir, config)
        if not isinstance(config.get(PRIMARY_KEY), list):
            raise PinningError(f"{config_path}: no '{PRIMARY_KEY}' list",
                               hint="pass a checkout of the conda-forge pinning feedstock")
        pinning.zip_group(PRIMARY_KEY)  # validates zip_keys
        return pinning

    def zip_group(self, key: str) -> list[str]:
        """The keys the pinning zips with ``key`` (``key`` first), as written there."""
        groups = self.config.get("zip_keys") or []
        if not isinstance(groups, list) or not all(
                isinstance(g, list) and all(isinstance(k, str) for k in g) for g in groups):
            raise PinningError(f"{self.config_path}: zip_keys is not a list of key lists",
                               hint="fix the pinning's conda_build_config.yaml")
        for group in groups:
            if key in group:
                return [key, *(k for k in group if k != key)]
        return [key]

    def migration_path(self, name: str) -> Path | None:
        path = self.migrations_dir / f"{name}.yaml"
        return path if path.is_file() else None

    def has_series(self, variant: PythonVariant) -> bool:
        """Whether the matrix already builds ``variant`` (its migration is closed)."""
        return variant.python_spec in [str(v) for v in self.config.get(PRIMARY_KEY) or []]


@dataclass(frozen=True)
class MigrationFile:
    """One ``.ci_support/migrations/NAME.yaml``: its text and what conda-smithy reads."""

    name: str
    text: str
    origin: str
    """The pinning file it is a copy of, or ``ftforge`` for a file of ftforge's own."""
    data: dict = field(repr=False)

    @property
    def migrator(self) -> dict:
        return self.data.get("__migrator") or {}

    @property
    def migrator_ts(self) -> str:
        """As conda-smithy compares it: the text of the value."""
        return str(self.data.get("migrator_ts", ""))

    @property
    def use_local(self) -> bool:
        return str(self.migrator.get("use_local", "false")).lower() == "true"

    @property
    def wait_for_migrators(self) -> list[str]:
        return [str(m) for m in self.migrator.get("wait_for_migrators") or []]

    @property
    def additional_zip_keys(self) -> list[str]:
        return [str(k) for k in self.migrator.get("additional_zip_keys") or []]

    def value(self, key: str) -> object:
        """The migration's (single) value for ``key``; KeyError when it gives none."""
        values = self.data[key]
        return values[0] if isinstance(values, list) else values

    def missing_zip_keys(self, group: list[str]) -> list[str]:
        """conda-smithy's check: every key zipped with python needs a value here."""
        return [k for k in dict.fromkeys([*group, *self.additional_zip_keys])
                if k not in self.data]


def _load_pinning_migration(path: Path, name: str, variant: PythonVariant) -> MigrationFile:
    data = read_yaml_file(path, what=f"the pinning's {name} migration")
    text = path.read_text(encoding="utf-8")
    migrator = data.get("__migrator")
    if not isinstance(migrator, dict) or migrator.get("operation") != "key_add" \
            or migrator.get("primary_key") != PRIMARY_KEY:
        raise PinningError(f"{path}: not a key_add migration of '{PRIMARY_KEY}'",
                           hint=f"check that this is the pinning's {name} migration")
    pythons = [str(v) for v in data.get(PRIMARY_KEY) or []]
    if pythons != [variant.python_spec]:
        raise PinningError(f"{path}: adds python {pythons}, not ['{variant.python_spec}']",
                           hint=f"check that this is the pinning's {name} migration")
    if "migrator_ts" not in data:
        raise PinningError(f"{path}: no migrator_ts",
                           hint="conda-smithy keeps a migration by its migrator_ts; "
                           "use a released pinning checkout")
    return MigrationFile(name, text, str(path), data)


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    return f"'{text}'" if any(c in text for c in "*:#'\"") or text != text.strip() else text


def own_migration_file(name: str, variant: PythonVariant, *, zip_keys: list[str],
                       migrator_ts: int, wait_for: list[str], zipped_already: list[str],
                       known_keys: set[str] | None = None) -> MigrationFile:
    """A complete ``key_add`` migration of ftforge's own (kept by ``use_local: true``)."""
    values = variant.pinning_values
    unknown = [k for k in zip_keys if k not in values]
    if unknown:
        raise PinningError(
            f"migration {name}: the pinning zips python with {', '.join(unknown)}, "
            "and ftforge knows no value for it on a new python entry",
            hint="pass --pinning with a checkout that has this migration's file")
    # the keys that tell the two ABIs of the series apart are zipped with python too
    gil = PythonVariant.gil(variant.series).pinning_values
    additional = [k for k in values if k != PRIMARY_KEY and k not in zipped_already
                  and values[k] != gil[k] and (known_keys is None or k in known_keys)]
    lines = ["__migrator:",
             f"  commit_message: Rebuild for python {variant.series} free-threading",
             "  migration_number: 1",
             "  operation: key_add",
             f"  primary_key: {PRIMARY_KEY}",
             "  use_local: true  # written by ftforge: kept by conda-smithy without a pinning file"]
    if additional:
        lines += ["  additional_zip_keys:", *[f"    - {k}" for k in additional]]
    if wait_for:
        lines += ["  wait_for_migrators:", *[f"    - {m}" for m in wait_for]]
    lines += [f"migrator_ts: {migrator_ts}"]
    for key in dict.fromkeys([PRIMARY_KEY, *zip_keys, *additional]):
        lines += [f"{key}:", f"- {_yaml_scalar(values[key])}"]
    text = "\n".join(lines) + "\n"
    from ruamel.yaml import YAML

    return MigrationFile(name, text, "ftforge", YAML(typ="safe").load(text))


def migration_file_for(name: str, variant: PythonVariant, pinning: Pinning | None, *,
                       feedstock_zip_group: list[str], migrator_ts: int,
                       wait_for: list[str] = ()) -> MigrationFile:
    """The pinning's file verbatim when it has one; else ftforge's own, complete.

    ``feedstock_zip_group`` is the python zip group of the feedstock's last rerender,
    used when there is no pinning to read it from."""
    if pinning is not None:
        path = pinning.migration_path(name)
        if path is not None:
            return _load_pinning_migration(path, name, variant)
        group, known = pinning.zip_group(PRIMARY_KEY), set(pinning.config)
    else:
        known = None
        group = feedstock_zip_group or [PRIMARY_KEY]
    zipped = [k for k in group if k != PRIMARY_KEY]
    return own_migration_file(name, variant, zip_keys=zipped, migrator_ts=migrator_ts,
                              wait_for=list(wait_for), zipped_already=zipped,
                              known_keys=known)
