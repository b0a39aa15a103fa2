"""The part of a conda-smithy rerender a ``key_add`` python migration changes.

For every platform the feedstock builds, each existing variant file of the GIL
python of the migration's series is the template of one new file: the same
keys and values (compilers, stdlib, host-library pins, docker image, channel
targets, ``pin_run_as_build``), with ``python`` and the keys zipped with it set
from the migration file. The new file is named the way conda-smithy names it:
the platform, then ``key + value`` for every key that varies between the jobs
(the same keys as the template's name, which is parsed back to find them),
``*`` and blanks made ``_``. The CI job lists conda-smithy writes
(``.azure-pipelines/azure-pipelines-{linux,osx,win}.yml``) and the README's
variant table get one entry per new file, copied from the template's entry.

Anything that cannot be derived this way (a name conda-smithy shortened with a
hash, a new key the recipe starts to use, a CI provider other than Azure) is
reported as a note, and the PR body says the branch needs a rerender.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from dataclasses import dataclass, field

from ..variants import PythonVariant
from .pinning import PRIMARY_KEY, MigrationFile

__all__ = ["Rerender", "config_name", "load_variant_file", "loop_vars_of", "rerender",
           "sanitize"]

CI_SUPPORT = ".ci_support"
AZURE = ".azure-pipelines/azure-pipelines-{os}.yml"
OTHER_CI = (".github/workflows/conda-build.yml", ".circleci/config.yml", ".travis.yml",
            ".drone.yml", ".woodpecker.yml", ".appveyor.yml")
_PLATFORM = re.compile(r"^(?P<platform>(?P<os>linux|osx|win)_[a-z0-9]+)_(?P<key>.*)$")
_NOT_LOOP = {"target_platform", "zip_keys", "pin_run_as_build"}
_HASHED = re.compile(r"_h[0-9a-f]{8}$")


@dataclass
class Rerender:
    files: dict[str, str] = field(default_factory=dict)
    """Paths relative to the feedstock -> new text (new or changed files)."""
    new_configs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What could not be derived: each one means the branch needs a rerender."""


def sanitize(text: str) -> str:
    """A variant value as conda-smithy spells it in a file name (``3.14.* *_cp314t`` ->
    ``3.14.____cp314t``)."""
    return re.sub(r"[<>:?*,\"/|\\]", "", text.replace("*", "_").replace(" ", "_"))


def config_name(platform: str, config: dict, loop_vars: list[str], feedstock: str) -> str:
    """conda-smithy's variant file name (without ``.yaml``) for ``config``."""
    key = "".join(k + str(config[k][0]) for k in sorted(loop_vars) if k != "target_platform")
    name = sanitize(f"{platform}_{key}")
    repo = f"{feedstock}-feedstock"
    outer = len(f"C:/Users/runnerx/_work/{repo}/{repo}/{CI_SUPPORT}/")
    if outer + len(f"{name}.yaml") > 259:  # Windows' path limit, as conda-smithy counts it
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = name[:259 - outer - 15] + "_h" + digest
    return name


def short_config_name(name: str) -> str:
    """The short name some CI systems show (conda-smithy's ``config_name_short``)."""
    if len(name) >= 49:
        return name[:40] + "_h" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name


def loop_vars_of(key: str, config: dict) -> list[str] | None:
    """Which keys' values spell ``key`` (the file name after the platform), in
    conda-smithy's order; None when no subset of the file's keys does."""
    keys = sorted(k for k, v in config.items() if k not in _NOT_LOOP and isinstance(v, list)
                  and v and isinstance(v[0], str))
    pieces = {k: sanitize(k + config[k][0]) for k in keys}

    @functools.cache  # (start, pos) decides the answer: linear in keys x name length
    def search(start: int, pos: int) -> tuple[str, ...] | None:
        if pos == len(key):
            return ()
        for index in range(start, len(keys)):
            piece = pieces[keys[index]]
            if piece and key.startswith(piece, pos):
                rest = search(index + 1, pos + len(piece))
                if rest is not None:
                    return (keys[index], *rest)
        return None

    found = search(0, 0)
    return None if found is None else list(found)


# an anchor or alias starts a node: at a line start, after "- " / ": ", or in a flow
_ANCHOR_OR_ALIAS = re.compile(r"(?:^|[\[{,]|[:-][ \t])[ \t]*[&*][^\s,\[\]{}]", re.M)


def load_variant_file(text: str) -> dict | None:
    """A variant file as conda-build reads it: every scalar a string; None if unreadable.

    Files conda-smithy writes are small and plain: a file over the recipe size limit,
    or one with YAML anchors or aliases (the "billion laughs" shape), is unreadable
    here rather than expanded."""
    from ruamel.yaml import YAML, YAMLError

    from ..limits import RecipeLimits

    if len(text) > RecipeLimits().max_recipe_bytes or _ANCHOR_OR_ALIAS.search(text):
        return None
    try:
        data = YAML(typ="base").load(io.StringIO(text))  # every scalar a string, as conda-build
    except YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value)
    from ruamel.yaml import YAML

    plain = YAML(typ="safe").load(io.StringIO(text))
    return text if isinstance(plain, str) and plain == text else f"'{text}'"


def _replace_values(text: str, key: str, value: object) -> str | None:
    """Set top-level ``key``'s one-item list in conda-smithy's block style; None when
    the key is not written that way."""
    pattern = re.compile(rf"^{re.escape(key)}:\n- [^\n]*\n(?=\S|\Z)", re.M)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda _m: f"{key}:\n- {_scalar(value)}\n", text, count=1)


def _zip_group(config: dict, key: str) -> list[str]:
    for group in config.get("zip_keys") or []:
        if isinstance(group, list) and key in group:
            return [k for k in group if k != key]
    return []


def _uses(recipe_text: str, key: str) -> bool:
    return re.search(rf"\b{re.escape(key)}\b", recipe_text) is not None


def _derive_file(name: str, text: str, config: dict, platform: str, migration_file: MigrationFile,
                 ft: PythonVariant, feedstock: str, recipe_text: str,
                 notes: list[str]) -> tuple[str, str] | None:
    loop_vars = loop_vars_of(_PLATFORM.match(name)["key"], config)
    if loop_vars is None:
        why = "a hash-shortened name" if _HASHED.search(name) else "a name ftforge cannot parse"
        notes.append(f"{CI_SUPPORT}/{name}.yaml has {why}: its free-threaded twin was not derived")
        return None
    if PRIMARY_KEY not in loop_vars:
        notes.append(f"{CI_SUPPORT}/{name}.yaml builds one python only: adding {ft.python_spec} "
                     "renames every variant file of the platform")
        return None
    new_config = dict(config)
    new_text = _replace_values(text, PRIMARY_KEY, ft.python_spec)
    new_config[PRIMARY_KEY] = [ft.python_spec]
    for key in _zip_group(config, PRIMARY_KEY):
        if key not in migration_file.data:
            notes.append(f"{CI_SUPPORT}/{name}.yaml zips {key} with python and the "
                         f"{migration_file.name} migration gives no value for it")
            return None
        value = migration_file.value(key)
        new_text = new_text and _replace_values(new_text, key, value)
        new_config[key] = [_scalar(value).strip("'")]
    for key in migration_file.additional_zip_keys:
        if _uses(recipe_text, key) and key not in _zip_group(config, PRIMARY_KEY):
            notes.append(f"the recipe uses {key}, which the migration zips with python: "
                         f"{CI_SUPPORT}/{name}.yaml and its twin change beyond one new file")
            return None
    if new_text is None:
        notes.append(f"{CI_SUPPORT}/{name}.yaml is not in conda-smithy's layout "
                     "(block lists, one value per key)")
        return None
    return config_name(platform, new_config, loop_vars, feedstock), new_text


def _entries(lines: list[str], start: int, indent: int) -> list[tuple[str, int, int]]:
    """The mapping entries at ``indent`` from line ``start``: (key, first, end)."""
    out: list[tuple[str, int, int]] = []
    i = start
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip(" ")
        current = len(line) - len(stripped)
        if stripped and current < indent:
            break
        if stripped and current == indent and stripped.rstrip().endswith(":"):
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or
                                        len(lines[end]) - len(lines[end].lstrip(" ")) > indent):
                end += 1
            out.append((stripped.rstrip()[:-1].strip("'\""), i, end))
            i = end
            continue
        i += 1
    return out


def add_azure_job(text: str, template: str, new: str) -> str | None:
    """A copy of ``template``'s matrix entry named ``new``, where conda-smithy would
    write it (matrix keys sorted); None when the template has no entry."""
    lines = text.splitlines(keepends=True)
    matrix = next((i for i, line in enumerate(lines) if line.strip() == "matrix:"), None)
    if matrix is None or matrix + 1 >= len(lines):
        return None
    indent = len(lines[matrix + 1]) - len(lines[matrix + 1].lstrip(" "))
    entries = _entries(lines, matrix + 1, indent)
    found = next(((s, e) for k, s, e in entries if k == template), None)
    if found is None:
        return None
    if any(k == new for k, _s, _e in entries):
        return text
    replacements = [(template, new)]
    if short_config_name(template) != template or short_config_name(new) != new:
        replacements.insert(0, (short_config_name(template), short_config_name(new)))
    block = lines[found[0]:found[1]]
    copied = []
    for line in block:
        for old, repl in replacements:
            line = re.sub(rf"(?<![A-Za-z_.]){re.escape(old)}(?![\w.])", repl, line)
        copied.append(line)
    at = next((s for k, s, _e in entries if k > new), entries[-1][2])
    return "".join(lines[:at] + copied + lines[at:])


def add_readme_row(text: str, template: str, new: str) -> str | None:
    """A copy of the README variant-table row of ``template`` for ``new``, in sorted
    place; None when the README has no such row."""
    lines = text.splitlines(keepends=True)
    label = template.strip("_")
    cell = next((i for i, line in enumerate(lines) if line.strip() == f"<td>{label}</td>"), None)
    if cell is None:
        return None
    rows = []  # (label, first, end) of every variant row
    for i, line in enumerate(lines):
        match = re.fullmatch(r"\s*<td>([\w.\-]+)</td>\s*", line)
        if match and i > 0 and lines[i - 1].strip() == "<tr>":
            end = next((j for j in range(i, len(lines)) if lines[j].strip() == "</tr>"), None)
            if end is not None and "configuration=" in "".join(lines[i:end]):
                rows.append((match[1], i - 1, end + 1))
    row = next(((s, e) for k, s, e in rows if k == label), None)
    if row is None:
        return None
    if any(k == new.strip("_") for k, _s, _e in rows):
        return text
    copied = [re.sub(rf"(?<![A-Za-z_.]){re.escape(template)}(?![\w.])", new,
                     line.replace(f"<td>{label}</td>", f"<td>{new.strip('_')}</td>"))
              for line in lines[row[0]:row[1]]]
    at = next((s for k, s, _e in rows if k > new.strip("_")), rows[-1][2])
    return "".join(lines[:at] + copied + lines[at:])


def rerender(files: dict[str, str], migration_file: MigrationFile, ft: PythonVariant, *,
             feedstock: str, recipe_text: str) -> Rerender:
    """What a rerender with ``migration_file`` adds; ``files`` holds the feedstock's
    ``.ci_support/*.yaml``, ``.azure-pipelines/*.yml`` and ``README.md`` texts."""
    result = Rerender()
    gil = PythonVariant.gil(ft.series)
    variant_names = sorted(p for p in files if p.startswith(f"{CI_SUPPORT}/")
                           and p.count("/") == 1 and p.endswith(".yaml"))
    derived: list[tuple[str, str, str]] = []  # (os, template, new)
    for path in variant_names:
        name = path[len(CI_SUPPORT) + 1:-len(".yaml")]
        match = _PLATFORM.match(name)
        config = load_variant_file(files[path])
        if match is None or config is None:
            result.notes.append(f"{path} is not a conda-smithy variant file")
            continue
        if gil.python_spec not in (config.get(PRIMARY_KEY) or []):
            continue
        made = _derive_file(name, files[path], config, match["platform"], migration_file, ft,
                            feedstock, recipe_text, result.notes)
        if made is None:
            continue
        new_name, text = made
        new_path = f"{CI_SUPPORT}/{new_name}.yaml"
        if new_path in files:
            continue
        result.files[new_path] = text
        result.new_configs.append(new_name)
        derived.append((match["os"], name, new_name))

    readme = files.get("README.md")
    for os_name, template, new in derived:
        azure_path = AZURE.format(os=os_name)
        current = result.files.get(azure_path, files.get(azure_path))
        updated = add_azure_job(current, template, new) if current is not None else None
        if updated is None:
            result.notes.append(f"{azure_path} has no job for {template}: the job for {new} "
                                "was not added")
        else:
            result.files[azure_path] = updated
        if readme is not None:
            current = result.files.get("README.md", readme)
            updated = add_readme_row(current, template, new)
            if updated is None:
                result.notes.append(f"README.md has no variant row for {template}")
            else:
                result.files["README.md"] = updated
    if derived:
        for other in OTHER_CI:
            if other in files:
                result.notes.append(f"{other} lists jobs too and is not updated by ftforge")
    return result
