"""``ftforge migrate plan``: which feedstocks need the free-threaded rebuild, which are
ready, in what order — the autotick bot's graph, with its known gaps fixed:

- abi3 feedstocks *are* migrated (as version-specific free-threaded builds);
- test-only dependencies never block (the graph uses build/host/run only);
- the allowlist is derived from evidence (an import test in the recipe, or
  PyPI publishing a ``cp313t`` wheel when that metadata is given), not kept by
  hand; a denylist stays explicit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import networkx as nx

from ..channel.index import channel_records
from ..errors import FtforgeError
from ..variants import PythonVariant, parse_series, variant_of_python_abi_dependency
from .git import DEFAULT_BRANCHES, default_branch, exists, git_ok, is_dirty
from .recipe_reader import Recipe, RecipeError, read_recipe

__all__ = ["CATEGORIES", "Migration", "Plan", "FeedstockState", "plan_migration"]

CATEGORIES = ("done", "ready", "awaiting-parents", "not-solvable", "bot-error", "not-needed")


@dataclass(frozen=True)
class Migration:
    """``python313t``, ``python314t``: the free-threaded migration of one series."""

    name: str
    variant: PythonVariant
    version: int = 1

    @classmethod
    def parse(cls, name: str) -> Migration:
        if not (name.startswith("python") and name.endswith("t")):
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


@dataclass
class FeedstockState:
    name: str
    path: str
    category: str
    reason: str = ""
    outputs: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    abi3: bool = False
    recipe_format: str = ""


@dataclass
class Plan:
    migration: str
    feedstocks: dict[str, FeedstockState]
    order: list[str]
    graph: nx.DiGraph = field(repr=False)

    def by_category(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
        for name, state in sorted(self.feedstocks.items()):
            out[state.category].append(name)
        return out

    def to_json(self) -> dict:
        return {
            "migration": self.migration,
            "order": self.order,
            "categories": self.by_category(),
            "feedstocks": {n: asdict(s) for n, s in sorted(self.feedstocks.items())},
            "edges": sorted([list(e) for e in self.graph.edges]),
        }


def merged(repo: Path, migration: Migration) -> bool:
    """The migration file is on the default branch (an open branch is not done).

    One ``git cat-file --batch-check`` asks which default branch exists and whether
    the file is on it (this runs for every feedstock that needs the migration)."""
    names = DEFAULT_BRANCHES
    found = exists(repo, *(f"refs/heads/{b}" for b in names),
                   *(f"{b}:{migration.migration_file}" for b in names))
    branches, files = found[:len(names)], found[len(names):]
    for has, has_file in zip(branches, files):
        if has:
            return has_file
    return git_ok(repo, "cat-file", "-e", f"{default_branch(repo)}:{migration.migration_file}")


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
) -> Plan:
    """Read every ``*-feedstock`` (or any git dir with ``recipe/``) and classify it."""
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
    states: dict[str, FeedstockState] = {}
    recipes: dict[str, Recipe] = {}
    for repo in sorted(p for p in feedstocks_dir.iterdir() if (p / "recipe").is_dir()):
        name = repo.name.removesuffix("-feedstock")
        try:
            recipe = read_recipe(repo, python=migration.variant.version_tuple,
                                 freethreading=True)
        except RecipeError as exc:
            states[name] = FeedstockState(name, str(repo), "bot-error", exc.message)
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

    needs = {}
    for name, recipe in recipes.items():
        need, reason = _needs(recipe)
        needs[name] = need
        state = states[name]
        state.parents = sorted(graph.predecessors(name))
        state.evidence = [f"import test: {m}" for m in recipe.imports[:3]]
        tags = (pypi_wheels or {}).get(name, [])
        if any(migration.variant.abi_tag in tag for tag in tags):
            state.evidence.append(f"PyPI has {migration.variant.abi_tag} wheels")
        if not need:
            state.category, state.reason = "not-needed", reason
        elif set(recipe.outputs) & in_channel:
            state.category, state.reason = "done", "free-threaded build is in the channel"
        elif merged(Path(state.path), migration):
            state.category, state.reason = "done", "migration merged on the default branch"
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
        blocking = [p for p in state.parents if needs.get(p, False) or p not in needs]
        stuck = [p for p in blocking if states[p].category in ("not-solvable", "bot-error")]
        waiting = [p for p in blocking if states[p].category != "done"]
        if stuck:
            state.category, state.reason = "not-solvable", f"parent(s) {', '.join(stuck)} cannot migrate"
        elif waiting:
            state.category, state.reason = "awaiting-parents", f"waiting for {', '.join(waiting)}"
        else:
            state.category = "ready"
    for name, state in states.items():
        if state.category == "bot-error" or not state.category:
            continue
        if state.category == "ready" and is_dirty(Path(state.path)):
            state.category, state.reason = "bot-error", (
                "the checkout has uncommitted local changes; the bot will not touch it")

    migrating = [n for n in states if needs.get(n)]
    sub = graph.subgraph(migrating)
    order = list(nx.lexicographical_topological_sort(sub)) if nx.is_directed_acyclic_graph(sub) \
        else sorted(migrating)
    return Plan(migration.name, states, order, graph)
