"""``ftforge migrate plan``: which feedstocks need the free-threaded rebuild, which are
ready, in what order — the autotick bot's graph, with its known gaps fixed:

- abi3 feedstocks *are* migrated (as version-specific free-threaded builds);
- test-only dependencies never block (the graph uses build/host/run only);
- the allowlist is derived from evidence (an import test in the recipe, or
  PyPI publishing a ``cp313t`` wheel when that metadata is given), not kept by
  hand; a denylist stays explicit.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import networkx as nx

from ..channel.index import channel_records
from ..errors import FtforgeError
from ..limits import RecipeLimits
from ..variants import PythonVariant, parse_series, variant_of_python_abi_dependency
from .git import DEFAULT_BRANCHES, default_branch, exists, git, git_ok, is_dirty
from .pinning import MigrationFile, Pinning, migration_file_for
from .recipe_reader import Recipe, RecipeError, read_recipes
from .rerender import sanitize

__all__ = ["CATEGORIES", "Migration", "Plan", "FeedstockState", "plan_migration"]

GIT_QUERIES = 4
"""git subprocesses the plan runs at once."""

CATEGORIES = ("done", "branch-made", "ready", "awaiting-parents", "awaiting-migrators",
              "not-solvable", "local-changes", "bot-error", "not-needed")
"""``branch-made``: the migration branch exists (``run`` made it) and is neither merged
nor built into the channel yet; ``local-changes``: a ready feedstock whose checkout
has uncommitted work, which the bot never touches."""


@dataclass(frozen=True)
class Migration:
    """``python313t``, ``python314t``: the free-threaded migration of one series."""

    name: str
    variant: PythonVariant
    version: int = 1

    @classmethod
    def parse(cls, name: str) -> Migration:
        if not re.fullmatch(r"python\d\d+t", name):  # `pythont` was an IndexError
            raise FtforgeError(f"unknown migration '{name}'",
                               hint="use python313t, python314t or python315t")
        digits = name[len("python"):-1]
        series = parse_series(f"{digits[0]}.{digits[1:]}")
        return cls(name, PythonVariant.ft(series))

    @property
    def branch(self) -> str:
        return f"rebuild-{self.name}-{self.version}"

    @property
    def migration_file(self) -> str:
        return f".ci_support/migrations/{self.name}.yaml"

    @property
    def gil_migration(self) -> str:
        """The migration that adds the GIL python of the same series (``python314``)."""
        return f"python{self.variant.nodot}"

    @property
    def gil_variant(self) -> PythonVariant:
        return PythonVariant.gil(self.variant.series)


@dataclass
class FeedstockState:
    name: str
    path: str
    category: str
    reason: str = ""
    outputs: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    """Thread-safety findings from ``ftforge stress`` records (``--evidence``): listed, not
    blocking -- the build exists; the findings are upstream's to fix."""
    abi3: bool = False
    recipe_format: str = ""
    needs_migration: bool = False
    branch: str = ""
    """The migration branch, once it exists."""
    pr_body: str = ""
    """The PR body file, once written."""


@dataclass
class Plan:
    migration: str
    feedstocks: dict[str, FeedstockState]
    order: list[str]
    graph: nx.DiGraph = field(repr=False)
    migrator_ts: int = 0
    """The ``migrator_ts`` the feedstocks get: the pinning file's, or the one of the file
    ftforge writes itself (default: when the plan was made)."""
    migration_origin: str = "ftforge"
    """The pinning's migration file that feedstocks get verbatim, or ``ftforge``."""
    wait_for_migrators: list[str] = field(default_factory=list)
    pinning: Pinning | None = field(default=None, repr=False)
    channels: list[Path] = field(default_factory=list)

    def migration_file_for(self, migration: Migration,
                           feedstock_zip_group: list[str]) -> MigrationFile:
        """The file this plan gives a feedstock (see :mod:`ftforge.migrate.pinning`)."""
        return migration_file_for(migration.name, migration.variant, self.pinning,
                                  feedstock_zip_group=feedstock_zip_group,
                                  migrator_ts=self.migrator_ts,
                                  wait_for=self.wait_for_migrators)

    def by_category(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
        for name, state in sorted(self.feedstocks.items()):
            out[state.category].append(name)
        return out

    def to_json(self) -> dict:
        return {
            "migration": self.migration,
            "migration_file": self.migration_origin,
            "migrator_ts": self.migrator_ts,
            "wait_for_migrators": self.wait_for_migrators,
            "order": self.order,
            "categories": self.by_category(),
            "feedstocks": {n: asdict(s) for n, s in sorted(self.feedstocks.items())},
            "edges": sorted([list(e) for e in self.graph.edges]),
        }


def merged_or_branched(repo: Path, migration: Migration) -> tuple[bool, bool]:
    """Whether the migration file is on the default branch (an open branch is not
    done), and whether the migration branch exists.

    One ``git cat-file --batch-check`` asks which default branch exists, whether the
    file is on it and whether the branch exists (this runs for every feedstock that
    needs the migration)."""
    names = DEFAULT_BRANCHES
    found = exists(repo, *(f"refs/heads/{b}" for b in names),
                   *(f"{b}:{migration.migration_file}" for b in names),
                   f"refs/heads/{migration.branch}")
    branches, files, branched = found[:len(names)], found[len(names):-1], found[-1]
    for has, has_file in zip(branches, files):
        if has:
            return has_file, branched
    return git_ok(repo, "cat-file", "-e",
                  f"{default_branch(repo)}:{migration.migration_file}"), branched


def merged(repo: Path, migration: Migration) -> bool:
    return merged_or_branched(repo, migration)[0]


def builds_python(repo: Path, variant: PythonVariant) -> bool:
    """Whether the checkout's ``.ci_support`` has a variant file for ``variant``'s python
    (conda-smithy names it ``..._python3.14.____cp314...yaml``; the file's text decides)."""
    ci = repo / ".ci_support"
    needle = f"python{sanitize(variant.python_spec)}"
    line = f"- {variant.python_spec}\n"
    try:
        names = [n for n in os.listdir(ci) if needle in n and n.endswith(".yaml")]
        # a variant file is a few hundred bytes; a huge one is not read (and not counted)
        return any(line in (ci / n).read_text(errors="replace") for n in names
                   if (ci / n).stat().st_size <= RecipeLimits().max_recipe_bytes)
    except OSError:
        return False


def _build_failure(repo: Path, migration: Migration, pr_dir: Path | None,
                   name: str) -> str:
    """The error of the last ``run --build`` of this branch, if it failed and the branch
    has not changed since (the record names the commit); else ``""``."""
    if pr_dir is None:
        return ""
    record = Path(pr_dir) / f"{name}.build-failed.json"
    try:
        if record.stat().st_size > 1 << 20:
            return ""
        data = json.loads(record.read_text())
        head = git(repo, "rev-parse", f"refs/heads/{migration.branch}").strip()
    except (OSError, ValueError, FtforgeError):
        return ""
    if not isinstance(data, dict) or data.get("commit") != head:
        return ""
    return f"the build of branch {migration.branch} failed: {str(data.get('error'))[:500]}"


def _awaited(repo: Path, migration: Migration, waits: list[str],
             pinning: Pinning | None) -> list[str]:
    """The migrations this feedstock still waits for: the GIL python of the series
    (the free-threaded variant files are derived from its), and every
    ``wait_for_migrators`` entry not landed on the checkout (a migration the pinning
    has closed counts as landed)."""
    out = []
    if not builds_python(repo, migration.gil_variant):
        out.append(migration.gil_migration)
    for name in waits:
        if name == migration.gil_migration or name in out:
            continue
        closed = pinning is not None and pinning.migration_path(name) is None
        if not closed and not (repo / ".ci_support" / "migrations" / f"{name}.yaml").is_file():
            out.append(name)
    return out


def _channel_ft_names(channels: Iterable[Path], migration: Migration) -> set[str]:
    """Names with a build for the migration's ABI in any of the channels' repodata."""
    return {record["name"] for channel in channels for record in channel_records(Path(channel))
            if any(variant_of_python_abi_dependency(d) == migration.variant
                   for d in record.get("depends", []))}


def _needs(recipe: Recipe) -> tuple[bool, str]:
    if recipe.noarch == "python":
        return False, "noarch: python (pure Python, one build serves every interpreter)"
    if "python" not in recipe.host and "python" not in recipe.build:
        return False, "does not build against python"
    if recipe.abi3:
        return True, "abi3: needs a version-specific free-threaded build (no stable ABI)"
    return True, "compiled against python"


def plan_migration(
    feedstocks_dir: Path,
    migration: Migration,
    *,
    channels: Iterable[Path] = (),
    denylist: Iterable[str] = (),
    pypi_wheels: dict[str, list[str]] | None = None,
    stress: dict[str, list[tuple[bool, str]]] | None = None,
    pinning: Path | Pinning | None = None,
    pr_dir: Path | None = None,
    migrator_ts: int | None = None,
) -> Plan:
    """Read every ``*-feedstock`` (or any git dir with ``recipe/``) and classify it.

    ``pinning``: a conda-forge pinning checkout; its migration file (when it has one)
    is what feedstocks get, and its ``wait_for_migrators`` are honoured.
    ``pr_dir``: where ``run`` writes PR bodies (shown for ``branch-made`` feedstocks).
    ``migrator_ts``: for a migration file of ftforge's own (default: now)."""
    feedstocks_dir = Path(feedstocks_dir)
    if not feedstocks_dir.is_dir():
        raise FtforgeError(f"{feedstocks_dir}: no such directory",
                           hint="pass the directory that holds the feedstock checkouts")
    denied = set(denylist)
    channels = [Path(c) for c in channels]
    for channel in channels:
        if not (channel / "noarch").is_dir():
            raise FtforgeError(f"{channel}: not a channel (no noarch/ subdir)",
                               hint="pass the channel directory that ftforge publishes to")
    in_channel = _channel_ft_names(channels, migration)
    if pinning is not None and not isinstance(pinning, Pinning):
        pinning = Pinning.load(Path(pinning))
    pinned = pinning.migration_path(migration.name) if pinning is not None else None
    if pinned is not None:
        pinned_file = migration_file_for(migration.name, migration.variant, pinning,
                                         feedstock_zip_group=[], migrator_ts=0)
        origin, waits = pinned_file.origin, pinned_file.wait_for_migrators
        try:  # the feedstocks get the pinning's timestamp: record that one
            migrator_ts = int(float(pinned_file.migrator_ts))
        except ValueError:
            pass
        excluded = {str(n) for n in pinned_file.migrator.get("exclude") or []}
    else:
        origin, excluded = "ftforge", set()
        waits = [migration.gil_migration] if pinning is not None and \
            not pinning.has_series(migration.gil_variant) else []
    states: dict[str, FeedstockState] = {}
    recipes: dict[str, Recipe] = {}
    repos = sorted(p for p in feedstocks_dir.iterdir() if (p / "recipe").is_dir())
    # read in worker processes (time/memory limits), several at once
    read = read_recipes(repos, python=migration.variant.version_tuple, freethreading=True)
    for repo in repos:
        name = repo.name.removesuffix("-feedstock")
        recipe = read[repo]
        if isinstance(recipe, RecipeError):
            states[name] = FeedstockState(name, str(repo), "bot-error", recipe.message)
            continue
        recipes[name] = recipe
        states[name] = FeedstockState(name, str(repo), "", outputs=recipe.outputs,
                                      abi3=recipe.abi3, recipe_format=recipe.format)

    producer = {out: name for name, r in recipes.items() for out in r.outputs}
    graph = nx.DiGraph()
    graph.add_nodes_from(states)
    for name, recipe in recipes.items():
        # build/host/run only: a test-only dependency never blocks a migration
        for dep in sorted(recipe.build | recipe.host | recipe.run):
            parent = producer.get(dep)
            if parent and parent != name:
                graph.add_edge(parent, name)

    # the git questions (merged? branch made? dirty?) are subprocesses: asked a few at a
    # time, so one feedstock's git start-up overlaps another's
    asked = [n for n, r in recipes.items() if _needs(r)[0]
             and not excluded & {n, *r.outputs} and not set(r.outputs) & in_channel]
    with ThreadPoolExecutor(max_workers=GIT_QUERIES) as pool:
        git_states = dict(zip(asked, pool.map(
            lambda n: merged_or_branched(Path(states[n].path), migration), asked)))

    needs = {}
    for name, recipe in recipes.items():
        need, reason = _needs(recipe)
        needs[name] = need
        state = states[name]
        state.needs_migration = need
        state.parents = sorted(graph.predecessors(name))
        state.evidence = [f"import test: {m}" for m in recipe.imports[:3]]
        tags = (pypi_wheels or {}).get(name, [])
        if any(migration.variant.abi_tag in tag for tag in tags):
            state.evidence.append(f"PyPI has {migration.variant.abi_tag} wheels")
        for output in recipe.outputs:  # `ftforge stress` records (stress.evidence)
            for clean, text in (stress or {}).get(output, ()):
                (state.evidence if clean else state.findings).append(text)
        if not need:
            state.category, state.reason = "not-needed", reason
        elif excluded & {name, *recipe.outputs}:
            state.category = "not-solvable"
            state.reason = f"excluded by the pinning's {migration.name} migration (exclude:)"
        elif set(recipe.outputs) & in_channel:
            state.category, state.reason = "done", "free-threaded build is in the channel"
        else:
            is_merged, branched = git_states[name]
            if is_merged:
                state.category, state.reason = "done", "migration merged on the default branch"
            elif branched:
                state.branch = migration.branch
                body = Path(pr_dir) / f"{name}.md" if pr_dir is not None else None
                state.pr_body = str(body) if body is not None and body.is_file() else ""
                state.category = "branch-made"
                state.reason = f"branch {migration.branch} made; " + (
                    f"PR body written to {body}" if state.pr_body else
                    "no PR body found (pass the --pr-dir run wrote to)")
                failed = _build_failure(Path(state.path), migration, pr_dir, name)
                if failed:
                    state.category, state.reason = "bot-error", failed
            else:
                state.reason = reason

    for name in nx.topological_sort(graph) if nx.is_directed_acyclic_graph(graph) else states:
        state = states[name]
        if state.category:
            continue
        if name in denied:
            state.category, state.reason = "not-solvable", "on the denylist"
            continue
        if not state.evidence:
            state.category, state.reason = "not-solvable", (
                "no evidence it works free-threaded: add an import test to the recipe")
            continue
        awaited = _awaited(Path(state.path), migration, waits, pinning)
        if awaited:
            state.category, state.reason = "awaiting-migrators", (
                f"waiting for the {', '.join(awaited)} migration(s) to land on this feedstock")
            continue
        blocking = [p for p in state.parents if needs.get(p, False) or p not in needs]
        # an unreadable parent cannot migrate; one whose branch failed to build is fixable,
        # so its children wait for it
        stuck = [p for p in blocking if states[p].category == "not-solvable"
                 or (states[p].category == "bot-error" and not states[p].branch)]
        waiting = [p for p in blocking if states[p].category != "done"]
        if stuck:
            state.category, state.reason = "not-solvable", f"parent(s) {', '.join(stuck)} cannot migrate"
        elif waiting:
            state.category, state.reason = "awaiting-parents", f"waiting for {', '.join(waiting)}"
        else:
            state.category = "ready"
    ready = [n for n, state in states.items() if state.category == "ready"]
    with ThreadPoolExecutor(max_workers=GIT_QUERIES) as pool:
        dirty = [n for n, d in zip(ready, pool.map(
            lambda n: is_dirty(Path(states[n].path)), ready)) if d]
    for name in dirty:
        states[name].category, states[name].reason = "local-changes", (
            "the checkout has uncommitted local changes; the bot will not touch it")

    migrating = [n for n in states if needs.get(n)]
    sub = graph.subgraph(migrating)
    order = list(nx.lexicographical_topological_sort(sub)) if nx.is_directed_acyclic_graph(sub) \
        else sorted(migrating)
    return Plan(migration.name, states, order, graph,
                migrator_ts=int(time.time()) if migrator_ts is None else int(migrator_ts),
                migration_origin=origin, wait_for_migrators=waits, pinning=pinning,
                channels=channels)


def blocking_parents(plan: Plan, name: str) -> list[str]:
    """Parents that must be done first: those that need the migration (or are unreadable)."""
    return [p for p in plan.feedstocks[name].parents
            if plan.feedstocks[p].needs_migration or plan.feedstocks[p].category == "bot-error"]
