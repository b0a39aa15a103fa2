"""``ftforge migrate run``: one branch, one commit per ready feedstock, and with
``build`` the loop closed on ftforge's own channel.

The commit holds what a conda-forge rerender with the migration would hold:

- the migration file (:mod:`ftforge.migrate.pinning`: the pinning's own,
  verbatim, or a complete one of ftforge's own marked ``use_local: true``);
- the build number bumped (for ``recipe.yaml`` the ruamel.yaml round-trip
  loader locates ``build.number`` and only that value is rewritten; for
  ``meta.yaml``, whose Jinja no YAML tool can round-trip, a one-line edit of
  the ``number:`` / ``set build_number`` line);
- the new variant files for every platform, and the CI job lists and README
  table that name them (:mod:`ftforge.migrate.rerender`); what cannot be
  derived is listed in the PR body under "Needs a rerender".

The branch is made without checking it out (a temporary index), so the
working tree and HEAD of every feedstock stay as they were; commits are dated
now. A second run is a no-op; a feedstock with local changes or an existing
branch is reported, never overwritten.

With ``build`` (:class:`BuildLoop`), each migrated feedstock's recipe is built
from its branch for the free-threaded python and its GIL twin (a
variant-complete channel), in plan order, published, and marked done; its
children become ready in the same run. A failed build is that feedstock's
``bot-error`` and its children keep waiting.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FtforgeError
from ..variants import conda_build_config
from .git import default_branch, git, has_branch, is_dirty, read_tree_files
from .pinning import PRIMARY_KEY, MigrationFile
from .plan import Migration, Plan, blocking_parents
from .recipe_reader import RecipeError
from .rerender import OTHER_CI, Rerender, load_variant_file, rerender

__all__ = ["BuildLoop", "MigrationRun", "branch_files", "run_migration"]

BOT = ("ftforge-migration-bot", "bot@ftforge.invalid")


@dataclass
class MigrationRun:
    migrated: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    pr_bodies: dict[str, Path] = field(default_factory=dict)
    needs_rerender: dict[str, list[str]] = field(default_factory=dict)
    built: dict[str, list[Path]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildLoop:
    """Where ``run --build`` builds and publishes."""

    channel: Path
    """The channel builds are published to (and read from by later builds)."""
    output_dir: Path
    """Where packages are built before publishing (never inside a channel)."""
    channels: tuple[Path, ...] = ()
    """Channels build dependencies come from (the interpreter's, ...)."""
    test: str = "native"


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
    """Commit ``files`` on top of ``base`` into ``branch`` without touching the work tree
    (dated now, like any commit)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"),
               "GIT_AUTHOR_NAME": BOT[0], "GIT_AUTHOR_EMAIL": BOT[1],
               "GIT_COMMITTER_NAME": BOT[0], "GIT_COMMITTER_EMAIL": BOT[1]}
        git(repo, "read-tree", base, env=env)
        for rel, text in sorted(files.items()):
            blob = git(repo, "hash-object", "-w", "--stdin", input=text).strip()
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
        tree = git(repo, "write-tree", env=env).strip()
        commit = git(repo, "commit-tree", tree, "-p", base, "-m", message, env=env).strip()
        git(repo, "branch", branch, commit)


def _python_zip_group(files: dict[str, str]) -> list[str]:
    """The keys the feedstock's last rerender zipped with python (every variant file)."""
    group: list[str] = [PRIMARY_KEY]
    for path, text in sorted(files.items()):
        if path.count("/") != 1 or not path.endswith(".yaml"):
            continue
        for chunk in (load_variant_file(text) or {}).get("zip_keys") or []:
            if isinstance(chunk, list) and PRIMARY_KEY in chunk:
                group += [k for k in chunk if isinstance(k, str) and k not in group]
    return group


@dataclass
class BranchContent:
    files: dict[str, str]
    migration_file: MigrationFile
    rerendered: Rerender


def branch_files(repo: Path, base: str, recipe_format: str, migration: Migration,
                 plan: Plan) -> BranchContent:
    """Everything the migration commit writes, path -> text."""
    recipe_rel = "recipe/recipe.yaml" if recipe_format == "recipe.yaml" else "recipe/meta.yaml"
    recipe_text = git(repo, "show", f"{base}:{recipe_rel}")
    current = read_tree_files(repo, base, ".ci_support/", ".azure-pipelines/", "README.md",
                              *OTHER_CI)
    ci_files = {p: t for p, t in current.items() if p.startswith(".ci_support/")
                and p.count("/") == 1}
    migration_file = plan.migration_file_for(migration, _python_zip_group(ci_files))
    missing = migration_file.missing_zip_keys(_python_zip_group(ci_files))
    if missing:
        raise FtforgeError(
            f"{repo}: the {migration.name} migration file ({migration_file.origin}) gives no "
            f"value for {', '.join(missing)}, which this feedstock zips with python",
            hint="pass --pinning with a current conda-forge pinning checkout")
    rerendered = rerender(current, migration_file, migration.variant,
                          feedstock=repo.name.removesuffix("-feedstock"),
                          recipe_text=recipe_text)
    files = {migration.migration_file: migration_file.text,
             recipe_rel: bump_build_number(repo / recipe_rel, recipe_text)}
    files.update(rerendered.files)
    return BranchContent(files, migration_file, rerendered)


def _pr_body(name: str, migration: Migration, plan: Plan, content: BranchContent) -> str:
    state = plan.feedstocks[name]
    v = migration.variant
    mf = content.migration_file
    parents = [p for p in state.parents if plan.feedstocks[p].category == "done"]
    if mf.origin == "ftforge":
        origin = (f"ftforge's own, with `use_local: true` so the next rerender keeps it "
                  f"(`migrator_ts: {mf.migrator_ts}`, recorded in the plan); "
                  + ("the pinning has no such file" if plan.pinning is not None
                     else "no pinning was given (`--pinning`)"))
    else:
        origin = (f"the pinning's own file, verbatim (`migrator_ts: {mf.migrator_ts}`), "
                  "so the next rerender keeps it")
    lines = [
        f"# Rebuild for python {v.series} free-threading ({v.abi_tag})",
        "",
        f"This PR adds the `{migration.name}` migration to **{name}**: a new build "
        f"variant with `python {v.python_spec}` for every platform that builds "
        f"`python {migration.gil_variant.python_spec}`. Existing GIL variants are unchanged.",
        "",
        f"The migration file is {origin}.",
        "",
        "## What changed",
        "",
        *[f"- `{path}`" for path in sorted(content.files)],
        "",
    ]
    notes = content.rerendered.notes
    if notes or not content.rerendered.new_configs:
        lines += ["## Needs a rerender", "",
                  "ftforge could not derive everything a conda-smithy rerender writes; "
                  "run `conda smithy rerender` on this branch before merging:", ""]
        lines += [f"- {note}" for note in notes] or [
            f"- no variant file for python {migration.gil_variant.python_spec} to derive from"]
        lines.append("")
    lines += ["## Why", "", f"- {state.reason}."]
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


def _make_branch(name: str, plan: Plan, migration: Migration, pr_dir: Path,
                 result: MigrationRun) -> bool:
    state = plan.feedstocks[name]
    repo = Path(state.path)
    if is_dirty(repo):
        result.skipped[name] = "uncommitted local changes: not touched"
        state.category, state.reason = "local-changes", result.skipped[name]
        return False
    if has_branch(repo, migration.branch):
        result.skipped[name] = f"branch {migration.branch} exists: not overwritten"
        return False
    base = default_branch(repo)
    try:
        content = branch_files(repo, base, state.recipe_format, migration, plan)
    except FtforgeError as exc:
        result.skipped[name] = exc.message
        state.category, state.reason = "bot-error", exc.message
        return False
    _commit_files(repo, base, migration.branch, content.files,
                  f"Rebuild for python {migration.variant.series} free-threading "
                  f"({migration.name})\n\nPrepared by ftforge migrate.")
    body = pr_dir / f"{name}.md"
    body.write_text(_pr_body(name, migration, plan, content))
    result.migrated.append(name)
    result.pr_bodies[name] = body
    if content.rerendered.notes or not content.rerendered.new_configs:
        result.needs_rerender[name] = content.rerendered.notes or ["no variant file derived"]
    state.category, state.branch, state.pr_body = "branch-made", migration.branch, str(body)
    state.reason = f"branch {migration.branch} made; PR body written to {body}"
    return True


def build_feedstock(name: str, plan: Plan, migration: Migration, loop: BuildLoop) -> list[Path]:
    """Build the branch's recipe for the migration's python, free-threaded and GIL."""
    from ..build.driver import BuildRequest, build

    repo = Path(plan.feedstocks[name].path)
    with tempfile.TemporaryDirectory(prefix=f"ftforge-migrate-{name}-") as tmp:
        archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar",
                                  migration.branch, "recipe"], capture_output=True, check=False)
        if archive.returncode != 0:
            raise FtforgeError(f"{repo}: cannot read recipe/ from branch {migration.branch}: "
                               f"{archive.stderr.decode(errors='replace').strip()}",
                               hint="run `ftforge migrate run` again to make the branch")
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        recipe_dir = Path(tmp) / "recipe"
        if not (recipe_dir / "recipe.yaml").is_file():
            raise FtforgeError(
                f"{repo}/recipe: {name} has a meta.yaml recipe; ftforge builds recipe.yaml "
                "(v1) recipes with rattler-build",
                hint="convert the feedstock's recipe to recipe.yaml, or build it elsewhere")
        config = Path(tmp) / "variants.yaml"
        from ruamel.yaml import YAML

        with config.open("w") as handle:
            YAML().dump(conda_build_config([migration.gil_variant, migration.variant]), handle)
        # the publish channel is read once it has something (the parents' builds)
        channels = [c for c in loop.channels if Path(c) != Path(loop.channel)]
        if (loop.channel / "noarch" / "repodata.json").is_file():
            channels.append(loop.channel)
        outcome = build(BuildRequest(recipe_dir, loop.output_dir / name, variant_files=(config,),
                                     channels=tuple(str(c) for c in dict.fromkeys(channels)),
                                     test=loop.test))
    return outcome.packages


def build_failure_record(pr_dir: Path, name: str) -> Path:
    """Where a failed ``--build`` is remembered, so the status shows it until the branch
    changes (the record names the branch commit that failed)."""
    return pr_dir / f"{name}.build-failed.json"


def _build_and_publish(name: str, plan: Plan, migration: Migration, loop: BuildLoop,
                       result: MigrationRun, pr_dir: Path) -> None:
    from ..atomic import write_atomic
    from ..channel.publish import publish

    state = plan.feedstocks[name]
    record = build_failure_record(pr_dir, name)
    try:
        packages = build_feedstock(name, plan, migration, loop)
        publish(packages, loop.channel, recipe=f"{name}-feedstock")
    except FtforgeError as exc:
        result.failed[name] = exc.message
        state.category, state.reason = "bot-error", f"build failed: {exc.message}"
        commit = git(Path(state.path), "rev-parse", f"refs/heads/{migration.branch}").strip()
        write_atomic(record, json.dumps({"branch": migration.branch, "commit": commit,
                                         "error": exc.message}, indent=2) + "\n")
        return
    record.unlink(missing_ok=True)
    result.built[name] = packages
    state.category = "done"
    state.reason = f"built from branch {migration.branch} and published to {loop.channel}"


def _unblocked(plan: Plan, name: str) -> bool:
    """An awaiting child whose blocking parents are all done now."""
    state = plan.feedstocks[name]
    return state.category == "awaiting-parents" and all(
        plan.feedstocks[p].category == "done" for p in blocking_parents(plan, name))


def run_migration(plan: Plan, migration: Migration, *, pr_dir: Path,
                  build: BuildLoop | None = None,
                  progress: Callable[[str], None] | None = None) -> MigrationRun:
    """Make the branch of every ready feedstock, in plan order; with ``build``, also
    build, publish and mark done, so children become ready in the same run.
    ``plan``'s states are updated to what the run did."""
    say = progress or (lambda _message: None)
    result = MigrationRun()
    pr_dir.mkdir(parents=True, exist_ok=True)
    for name in plan.order:
        state = plan.feedstocks[name]
        if build is not None and _unblocked(plan, name):
            state.category = "ready"
            state.reason = "parents built and published: " + ", ".join(
                blocking_parents(plan, name))
            if is_dirty(Path(state.path)):
                state.category = "local-changes"
        if state.category == "ready":
            say(f"{name}: making branch {migration.branch}")
            _make_branch(name, plan, migration, pr_dir, result)
        elif state.category == "branch-made" and build is None:
            result.skipped[name] = f"branch {migration.branch} exists: not overwritten"
        elif state.category == "bot-error" and state.branch:
            result.skipped[name] = f"{state.reason} (fix the branch, then run again)"
        if build is not None and state.category == "branch-made":
            say(f"{name}: building the {migration.variant.abi_tag} and "
                f"{migration.gil_variant.abi_tag} variants")
            _build_and_publish(name, plan, migration, build, result, pr_dir)
    return result
