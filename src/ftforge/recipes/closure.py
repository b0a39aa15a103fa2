"""A package and everything it needs, as recipes: the closure over host and run requirements.

One version per project, chosen as the newest release with an sdist that
satisfies every constraint met anywhere in the closure (a fixpoint: a new
constraint re-picks the project). Names already provided by a channel (the
interpreter, ``python_abi``, ``pip``) and the conda packages of C libraries
(``recipes.clibs``: built by the native recipes, not from PyPI) are left out. The build order is a topological
sort of the requirement graph (networkx).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import networkx as nx
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .. import pypi
from ..errors import FtforgeError
from .conda_names import KNOWN

__all__ = ["ClosureError", "PlannedRecipe", "build_order", "plan_closure"]

PROVIDED = frozenset({"python", "python_abi", "pip"})


def c_library_packages() -> frozenset[str]:
    """conda names of C libraries (``yaml``, ``zlib``, ...): never PyPI projects."""
    from . import clibs

    return frozenset({*clibs.BY_HEADER.values(), *clibs.BY_PKG_CONFIG.values(),
                      *clibs.BY_DEBIAN_PACKAGE.values(),
                      *(name for names in clibs.KNOWN_PROJECTS.values() for name in names)})


class ClosureError(FtforgeError):
    """The requirement closure cannot be satisfied from PyPI sdists."""


@dataclass(frozen=True)
class PlannedRecipe:
    pypi_name: str
    version: str
    conda_name: str
    files: dict[str, str]
    depends_on: tuple[str, ...]  # conda names


def _newest_matching(project: pypi.Project, spec: SpecifierSet) -> str:
    candidates = []
    for version, files in project.releases.items():
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        if parsed.is_prerelease or not any(f.packagetype == "sdist" and not f.yanked
                                           for f in files):
            continue
        if parsed in spec:
            candidates.append(parsed)
    if not candidates:
        raise ClosureError(
            f"{project.name}: no release with an sdist satisfies '{spec or 'any'}'",
            hint="relax the constraint, or provide the package in a channel",
        )
    return str(max(candidates))


def _requirement_names(files: dict[str, str]) -> list[tuple[str, str]]:
    """(conda name, conda spec) pairs of host and run requirements in a generated recipe."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(files["recipe.yaml"])
    reqs = data.get("requirements") or {}
    out = []
    for section in ("host", "run"):
        for item in reqs.get(section) or []:
            if isinstance(item, str) and "${{" not in item.split()[0]:
                name, _, spec = item.partition(" ")
                out.append((name, spec.replace(" ", "")))
    return out


def plan_closure(
    root: str,
    generate: Callable[[str], tuple[str, dict[str, str]]],
    *,
    provided: Iterable[str] = PROVIDED,
    project_of: Callable[[str], pypi.Project] = pypi.fetch_project,
    names: Mapping[str, str] | None = None,
    max_projects: int = 60,
) -> list[PlannedRecipe]:
    """Plan recipes for ``root`` (NAME or NAME==VERSION) and its requirement closure.

    ``generate`` takes ``NAME==VERSION`` and returns ``(conda name, files)``.
    """
    conda_to_pypi = {v: k for k, v in {**KNOWN, **(names or {})}.items()}
    provided = set(provided) | c_library_packages()
    root_req = Requirement(root)
    pinned_root = pypi.normalize(root_req.name)
    constraints: dict[str, SpecifierSet] = {pinned_root: root_req.specifier}
    planned: dict[str, PlannedRecipe] = {}
    projects: dict[str, pypi.Project] = {}
    queue = [pinned_root]
    while queue:
        pypi_name = queue.pop(0)
        if len(projects) >= max_projects and pypi_name not in projects:
            raise ClosureError(f"{root}: the closure grew past {max_projects} projects",
                               hint="build the large dependencies separately into a channel")
        project = projects.get(pypi_name) or project_of(pypi_name)
        projects[pypi_name] = project
        version = _newest_matching(project, constraints[pypi_name])
        current = planned.get(pypi_name)
        if current is not None and current.version == version:
            continue
        conda_name, files = generate(f"{project.name}=={version}")
        deps = []
        for dep_conda, spec in _requirement_names(files):
            if dep_conda in provided or dep_conda == conda_name:
                continue
            dep_pypi = pypi.normalize(conda_to_pypi.get(dep_conda, dep_conda))
            deps.append(dep_conda)
            combined = constraints.get(dep_pypi, SpecifierSet()) & SpecifierSet(spec)
            if constraints.get(dep_pypi) != combined or dep_pypi not in planned:
                constraints[dep_pypi] = combined
                if dep_pypi not in queue:
                    queue.append(dep_pypi)
        planned[pypi_name] = PlannedRecipe(project.name, version, conda_name, files,
                                           tuple(sorted(set(deps))))
    return list(planned.values())


def build_order(recipes: list[PlannedRecipe]) -> list[PlannedRecipe]:
    """Dependencies first; a cycle is an error naming its members."""
    graph = nx.DiGraph()
    by_conda = {r.conda_name: r for r in recipes}
    for recipe in recipes:
        graph.add_node(recipe.conda_name)
        for dep in recipe.depends_on:
            if dep in by_conda:
                graph.add_edge(dep, recipe.conda_name)
    try:
        order = list(nx.lexicographical_topological_sort(graph))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(graph)
        raise ClosureError(
            "dependency cycle: " + " -> ".join(a for a, _ in cycle) + f" -> {cycle[0][0]}",
            hint="provide one member of the cycle in a channel first",
        ) from None
    return [by_conda[name] for name in order]
