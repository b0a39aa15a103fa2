"""``ftforge migrate run``: one branch, one commit per ready feedstock.

The commit writes the migration file conda-smithy reads
(``.ci_support/migrations/python313t.yaml``), bumps the build number (for
``recipe.yaml`` the ruamel.yaml round-trip loader locates ``build.number`` and
only that value is rewritten; for ``meta.yaml``, whose Jinja no YAML tool can
round-trip, a one-line edit of the ``number:`` / ``set build_number`` line), and regenerates
the ``.ci_support/linux_64_*.yaml`` variant files as a rerender would. The
branch is made without checking it out (a temporary index), so the working
tree and HEAD of every feedstock stay as they were. A second run is a no-op;
a feedstock with local changes or an existing branch is reported, never
overwritten.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..variants import PYTHON_MIN, PythonVariant
from .git import default_branch, git, has_branch, is_dirty
from .plan import Migration, Plan
from .recipe_reader import RecipeError

__all__ = ["MigrationRun", "migration_file_text", "run_migration", "variant_files"]

BOT = ("ftforge-migration-bot", "bot@ftforge.invalid")
MIGRATOR_TS = 1732492800  # fixed, so a migration file is reproducible


@dataclass
class MigrationRun:
    migrated: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    pr_bodies: dict[str, Path] = field(default_factory=dict)


def migration_file_text(migration: Migration) -> str:
    v = migration.variant
    return f"""__migrator:
  build_number: 1
  commit_message: Rebuild for python {v.series} free-threading
  kind: version
  migration_number: {migration.version}
  operation: key_add
  primary_key: python
  additional_zip_keys:
    - is_freethreading
migrator_ts: {MIGRATOR_TS}
python:
  - {v.python_spec}
is_freethreading:
  - true
"""


def variant_files(migration: Migration, existing: dict[str, str]) -> dict[str, str]:
    """``.ci_support/linux_64_*.yaml`` after a rerender: every existing variant kept,
    plus one for the free-threaded python, keyed ``cp313t`` / ``is_freethreading: true``."""
    v = migration.variant
    out = dict(existing)
    gil = PythonVariant.gil(v.series)
    have_gil = any(f"- {gil.python_spec}" in text for text in existing.values())
    for variant in ([v] if have_gil else [gil, v]):
        flag = str(variant.freethreaded).lower()
        name = f"linux_64_is_freethreading{flag}python{variant.series}.____{variant.abi_tag}.yaml"
        out[name] = (
            "cdt_name:\n- conda\n"
            "channel_sources:\n- conda-forge\n"
            "channel_targets:\n- conda-forge main\n"
            "docker_image:\n- quay.io/condaforge/linux-anvil-x86_64:alma9\n"
            f"is_freethreading:\n- {str(variant.freethreaded).lower()}\n"
            f"python:\n- {variant.python_spec}\n"
            f"python_min:\n- '{PYTHON_MIN}'\n"
            "target_platform:\n- linux-64\n"
            "zip_keys:\n- - is_freethreading\n  - python\n"
        )
    return out


_META_NUMBER = re.compile(r"^(?P<pre>\s*number:\s*)(?P<num>\d+)(?P<post>.*)$", re.M)
_META_SET_NUMBER = re.compile(
    r"^(?P<pre>\{%-?\s*set\s+(?:build_number|build|number)\s*=\s*)(?P<num>\d+)(?P<post>\s*-?%\}.*)$",
    re.M)


def bump_build_number(path: Path, text: str) -> str:
    if path.name == "meta.yaml":
        for pattern in (_META_SET_NUMBER, _META_NUMBER):
            match = pattern.search(text)
            if match:
                new = int(match["num"]) + 1
                return text[:match.start("num")] + str(new) + text[match.end("num"):]
        raise RecipeError(path, None, "no build number line to bump")
    from ruamel.yaml import YAML

    # The round-trip loader says exactly where build.number is; only that value changes,
    # so comments, quoting, indentation and ${{ }} expressions stay byte-for-byte.
    data = YAML().load(text)
    build = data.get("build") if isinstance(data, dict) else None
    if build is None or "number" not in build:
        raise RecipeError(path, None, "no build.number to bump")
    line_no, col = build.lc.value("number")
    lines = text.splitlines(keepends=True)
    line = lines[line_no]
    match = re.match(r"\d+", line[col:])
    if not match:
        raise RecipeError(path, line_no + 1, f"build.number is {build['number']!r}, not a literal")
    lines[line_no] = f"{line[:col]}{int(match.group()) + 1}{line[col + match.end():]}"
    return "".join(lines)


def _commit_files(repo: Path, base: str, branch: str, files: dict[str, str],
                  message: str) -> None:
    """Commit ``files`` on top of ``base`` into ``branch`` without touching the work tree."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"),
               "GIT_AUTHOR_NAME": BOT[0], "GIT_AUTHOR_EMAIL": BOT[1],
               "GIT_COMMITTER_NAME": BOT[0], "GIT_COMMITTER_EMAIL": BOT[1],
               "GIT_AUTHOR_DATE": f"{MIGRATOR_TS} +0000",
               "GIT_COMMITTER_DATE": f"{MIGRATOR_TS} +0000"}
        git(repo, "read-tree", base, env=env)
        for rel, text in sorted(files.items()):
            blob = git(repo, "hash-object", "-w", "--stdin", input=text).strip()
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
        tree = git(repo, "write-tree", env=env).strip()
        commit = git(repo, "commit-tree", tree, "-p", base, "-m", message, env=env).strip()
        git(repo, "branch", branch, commit)


def _pr_body(name: str, migration: Migration, plan: Plan, changed: list[str]) -> str:
    state = plan.feedstocks[name]
    v = migration.variant
    parents = [p for p in state.parents if plan.feedstocks[p].category == "done"]
    lines = [
        f"# Rebuild for python {v.series} free-threading ({v.abi_tag})",
        "",
        f"This PR adds the `{migration.name}` migration to **{name}**: a new build "
        f"variant with `python {v.python_spec}` and `is_freethreading: true`, zipped with "
        "`python`. Existing GIL variants are unchanged.",
        "",
        "## What changed",
        "",
        *[f"- `{path}`" for path in changed],
        "",
        "## Why",
        "",
        f"- {state.reason}.",
    ]
    if state.abi3:
        lines.append(f"- This package builds the stable ABI; {v.series}t has "
                     + ("no stable ABI" if v.stable_abi_suffix is None else
                        f"only {v.stable_abi_suffix}")
                     + ", so the free-threaded build is version-specific "
                     f"(`{v.extension_suffix()}`). Make sure the build does not pass "
                     "`py_limited_api` when `Py_GIL_DISABLED` is set.")
    if parents:
        lines.append(f"- Unblocked by: {', '.join(parents)} (free-threaded builds available).")
    lines += [
        f"- Evidence: {'; '.join(state.evidence)}." if state.evidence else "",
        "",
        "## What to check",
        "",
        f"- The `{v.abi_tag}` build's import test passes **with the GIL still disabled** "
        "(`sys._is_gil_enabled()` is False after import; a module without `Py_mod_gil` "
        "re-enables it).",
        f"- No `.abi3.so` ships in the {v.abi_tag} package; extension modules end in "
        f"`{v.extension_suffix()}`.",
        "- The build string carries the `t` marker "
        f"(`{v.extension_build_prefix}h…`).",
        "",
        "_Prepared by ftforge migrate._",
        "",
    ]
    return "\n".join(lines)


def run_migration(plan: Plan, migration: Migration, *, pr_dir: Path) -> MigrationRun:
    result = MigrationRun()
    pr_dir.mkdir(parents=True, exist_ok=True)
    for name in plan.order:
        state = plan.feedstocks[name]
        if state.category != "ready":
            continue
        repo = Path(state.path)
        if is_dirty(repo):
            result.skipped[name] = "uncommitted local changes: not touched"
            continue
        if has_branch(repo, migration.branch):
            result.skipped[name] = f"branch {migration.branch} exists: not overwritten"
            continue
        base = default_branch(repo)
        recipe_rel = "recipe/recipe.yaml" if state.recipe_format == "recipe.yaml" \
            else "recipe/meta.yaml"
        recipe_text = git(repo, "show", f"{base}:{recipe_rel}")
        files = {
            migration.migration_file: migration_file_text(migration),
            recipe_rel: bump_build_number(repo / recipe_rel, recipe_text),
        }
        listing = git(repo, "ls-tree", "--name-only", base, "--", ".ci_support/").split()
        existing = {Path(p).name: git(repo, "show", f"{base}:{p}") for p in listing
                    if Path(p).name.startswith("linux_64_") and p.endswith(".yaml")}
        for fname, text in variant_files(migration, existing).items():
            if existing.get(fname) != text:
                files[f".ci_support/{fname}"] = text
        _commit_files(repo, base, migration.branch, files,
                      f"Rebuild for python {migration.variant.series} free-threading "
                      f"({migration.name})\n\nPrepared by ftforge migrate.")
        body = pr_dir / f"{name}.md"
        body.write_text(_pr_body(name, migration, plan, sorted(files)))
        result.migrated.append(name)
        result.pr_bodies[name] = body
    return result
