"""``ftforge recipe pypi NAME[==VERSION]``: PyPI metadata + the sdist -> recipe files.

All network and disk reads happen here; ``recipes.pypi`` stays pure. Nothing
is written unless the whole recipe was generated.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal, get_args

from .. import paths, pypi
from ..errors import FtforgeError
from . import pypi as pypi_recipe
from .pep517 import dynamic_build_requires
from .sdist import inspect_sdist, is_cython_requirement

__all__ = ["RECIPE_FORMATS", "RecipeFormat", "parse_requirement", "recipe_from_pypi"]

RecipeFormat = Literal["recipe.yaml", "meta.yaml"]
RECIPE_FORMATS: tuple[str, ...] = get_args(RecipeFormat)

_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(?P<version>[^\s=]+))?\s*$")


def parse_requirement(text: str) -> tuple[str, str | None]:
    match = _SPEC.match(text)
    if not match:
        raise FtforgeError(f"'{text}' is not NAME or NAME==VERSION",
                           hint="for example: ftforge recipe pypi msgpack==1.1.1")
    return match["name"], match["version"]


def recipe_from_pypi(
    spec: str,
    *,
    fmt: RecipeFormat = "recipe.yaml",
    names: Mapping[str, str] | None = None,
    gil_reenabled_ok: str | None = None,
    build_number: int = 0,
    fetch: pypi.Fetcher | None = None,
    assign_unknown_names: bool = False,
    apt: tuple[str, ...] = (),
) -> tuple[str, dict[str, str]]:
    """Return ``(directory name, files)`` for the sdist of ``spec``."""
    name, version = parse_requirement(spec)
    kwargs = {"fetch": fetch} if fetch else {}
    project = pypi.fetch_project(name, **kwargs)
    version, dist = pypi.select_sdist(project, version)
    sdist = pypi.download(dist, paths.source_mirror_dir(), **kwargs)
    facts = inspect_sdist(sdist)
    dynamic = dynamic_build_requires(sdist, facts)
    if dynamic:
        cython = any(map(is_cython_requirement, dynamic))
        evidence = facts.compiled_evidence + (
            ("the build backend asks for Cython (get_requires_for_build_wheel)",) if cython else ())
        facts = dataclasses.replace(
            facts, build_requires=facts.build_requires + dynamic,
            uses_cython=facts.uses_cython or cython,
            compiled=facts.compiled or cython, compiled_evidence=evidence,
            notes=facts.notes + (
                "build requirements the backend adds when asked "
                f"(get_requires_for_build_wheel): {', '.join(dynamic)}",))
    recipe = pypi_recipe.PypiRecipe(
        facts=facts,
        source_url=pypi.canonical_sdist_url(project.name, dist.filename),
        sha256=dist.sha256,
        build_number=build_number,
        gil_reenabled_ok=gil_reenabled_ok,
        extra_names=dict(names or {}),
        assign_unknown_names=assign_unknown_names,
        apt_build_dependencies=tuple(apt),
    )
    files = (pypi_recipe.generate_meta(recipe) if fmt == "meta.yaml"
             else pypi_recipe.generate(recipe))
    return recipe.package_name, files


def closure_from_pypi(spec: str, *, names: Mapping[str, str] | None = None,
                      fmt: RecipeFormat = "recipe.yaml"):
    """Recipes for ``spec`` and every host/run requirement, in build order."""
    from .closure import build_order, plan_closure

    planned = plan_closure(
        spec, lambda s: recipe_from_pypi(s, fmt="recipe.yaml", names=names,
                                         assign_unknown_names=True),
        names=names)
    ordered = build_order(planned)
    if fmt == "meta.yaml":
        return [(p, recipe_from_pypi(f"{p.pypi_name}=={p.version}", fmt=fmt, names=names,
                                     assign_unknown_names=True)[1])
                for p in ordered]
    return [(p, p.files) for p in ordered]
