"""``ftforge recipe pypi NAME[==VERSION]``: PyPI metadata + the sdist -> recipe files.

``ftforge recipe pypi ./pkg-1.0.tar.gz`` takes a local sdist instead (private
packages, test fixtures): its recipe points at the file (``file://``) with its
sha256. All network and disk reads happen here; ``recipes.pypi`` stays pure.
Nothing is written unless the whole recipe was generated.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from packaging.requirements import InvalidRequirement, Requirement

from .. import paths, pypi
from ..build.mirror import sha256_of
from ..errors import FtforgeError
from . import pypi as pypi_recipe
from .pep517 import dynamic_build_requires
from .sdist import SdistError, SdistFacts, inspect_sdist, is_cython_requirement

__all__ = ["RECIPE_FORMATS", "RecipeFormat", "RootOptions", "closure_from_pypi", "local_sdist",
           "parse_requirement", "recipe_from_pypi"]

RecipeFormat = Literal["recipe.yaml", "meta.yaml"]
RECIPE_FORMATS: tuple[str, ...] = get_args(RecipeFormat)

_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(?P<version>[^\s=]+))?\s*$")


SDIST_SUFFIXES = (".tar.gz", ".tgz", ".zip")


def local_sdist(spec: str) -> Path | None:
    """The sdist file ``spec`` names, if it is a path (has a ``/`` or an sdist suffix)."""
    if "/" not in spec and not spec.endswith(SDIST_SUFFIXES):
        return None
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SdistError(f"{spec}: no such sdist file",
                         hint="give the path of a .tar.gz or .zip sdist, or NAME[==VERSION]")
    if not path.name.endswith(SDIST_SUFFIXES):
        raise SdistError(f"{spec}: not an sdist (expected {' or '.join(SDIST_SUFFIXES)})",
                         hint="build one with `python -m build --sdist`")
    return path.resolve()


@dataclass(frozen=True)
class RootOptions:
    """What the user said about the package asked for (not its dependencies)."""

    gil_reenabled_ok: str | None = None
    pure_build_ok: str | None = None
    apt: tuple[str, ...] = ()
    build_number: int = 0


def parse_requirement(text: str) -> tuple[str, str | None]:
    match = _SPEC.match(text)
    if not match:
        raise FtforgeError(f"'{text}' is not NAME or NAME==VERSION",
                           hint="for example: ftforge recipe pypi msgpack==1.1.1")
    return match["name"], match["version"]


def _with_dynamic_requirements(sdist: Path, facts: SdistFacts) -> SdistFacts:
    dynamic = dynamic_build_requires(sdist, facts)
    if not dynamic:
        return facts
    cython = any(map(is_cython_requirement, dynamic))
    evidence = facts.compiled_evidence + (
        ("the build backend asks for Cython (get_requires_for_build_wheel)",) if cython else ())
    return dataclasses.replace(
        facts, build_requires=facts.build_requires + dynamic,
        uses_cython=facts.uses_cython or cython,
        compiled=facts.compiled or cython, compiled_evidence=evidence,
        notes=facts.notes + (
            "build requirements the backend adds when asked "
            f"(get_requires_for_build_wheel): {', '.join(dynamic)}",))


def _keep_in_mirror(sdist: Path, sha256: str) -> None:
    """A copy in the source mirror, so builds and `ftforge stress` find the sdist by name
    after the original moves. A rebuilt sdist of the same name replaces the copy (a
    recipe made from the old one then fails its sha256 check, which says so)."""
    import shutil

    mirror = paths.source_mirror_dir()
    target = mirror / sdist.name
    if target.is_file() and sha256_of(target) == sha256:
        return
    mirror.mkdir(parents=True, exist_ok=True)
    part = mirror / f".{sdist.name}.part"
    shutil.copyfile(sdist, part)
    part.replace(target)


def recipe_from_pypi(
    spec: str,
    *,
    fmt: RecipeFormat = "recipe.yaml",
    names: Mapping[str, str] | None = None,
    gil_reenabled_ok: str | None = None,
    build_number: int = 0,
    fetch: pypi.Fetcher | None = None,
    strict_names: bool = False,
    apt: tuple[str, ...] = (),
    pure_build_ok: str | None = None,
) -> tuple[str, dict[str, str]]:
    """Return ``(directory name, files)`` for the sdist of ``spec`` (NAME[==VERSION] or a path)."""
    from . import clibs as _clibs

    local = local_sdist(spec)
    if local is not None:
        sdist, sha256, source_url = local, sha256_of(local), local.as_uri()
        _keep_in_mirror(local, sha256)
    else:
        name, version = parse_requirement(spec)
        kwargs = {"fetch": fetch} if fetch else {}
        project = pypi.fetch_project(name, **kwargs)
        version, dist = pypi.select_sdist(project, version)
        sdist = pypi.download(dist, paths.source_mirror_dir(), **kwargs)
        sha256, source_url = dist.sha256, pypi.canonical_sdist_url(project.name, dist.filename)
    facts = _with_dynamic_requirements(sdist, inspect_sdist(sdist))
    recipe = pypi_recipe.PypiRecipe(
        facts=facts,
        source_url=source_url,
        sha256=sha256,
        build_number=build_number,
        gil_reenabled_ok=gil_reenabled_ok,
        extra_names=dict(names or {}),
        strict_names=strict_names,
        apt_build_dependencies=tuple(apt),
        # self-contained: the conda packages of its C libraries, unless --apt (system profile)
        c_libraries=() if apt else _clibs.libraries_for_project(facts.name),
        pure_build_ok=pure_build_ok,
    )
    files = (pypi_recipe.generate_meta(recipe) if fmt == "meta.yaml"
             else pypi_recipe.generate(recipe))
    return recipe.package_name, files


def closure_from_pypi(spec: str, *, names: Mapping[str, str] | None = None,
                      fmt: RecipeFormat = "recipe.yaml", root: RootOptions = RootOptions(),
                      strict_names: bool = False):
    """Recipes for ``spec`` (NAME[==VERSION] or a local sdist) and every host/run
    requirement, in build order. ``root`` options apply to ``spec`` alone."""
    from .closure import build_order, plan_closure

    local = local_sdist(spec)
    local_project = None
    if local is not None:
        facts = inspect_sdist(local)
        local_project = pypi.Project(facts.name, facts.version, {facts.version: (
            pypi.DistFile(local.name, local.as_uri(), sha256_of(local), "sdist"),)}, {})
        spec = f"{facts.name}=={facts.version}"
    try:
        root_name = pypi.normalize(Requirement(spec).name)
    except InvalidRequirement:
        raise FtforgeError(f"'{spec}' is not a requirement (NAME, NAME==VERSION, NAME>=X)",
                           hint="for example: ftforge recipe pypi msgpack==1.1.1") from None

    def generate(pinned: str, form: RecipeFormat = "recipe.yaml") -> tuple[str, dict[str, str]]:
        is_root = pypi.normalize(parse_requirement(pinned)[0]) == root_name
        options = dataclasses.asdict(root) if is_root else {}
        target = str(local) if is_root and local is not None else pinned
        return recipe_from_pypi(target, fmt=form, names=names, strict_names=strict_names,
                                **options)

    def project_of(name: str) -> pypi.Project:
        if local_project is not None and pypi.normalize(name) == root_name:
            return local_project
        return pypi.fetch_project(name)

    # C libraries (yaml, zlib, ...) are conda packages of the native generator, not PyPI's
    from .closure import PROVIDED
    from .native import LIBRARIES

    native = {n for lib in LIBRARIES for n in (lib.name, *lib.aliases)}
    ordered = build_order(plan_closure(spec, generate, names=names, project_of=project_of,
                                       provided=PROVIDED | native))
    if fmt == "meta.yaml":
        return [(p, generate(f"{p.pypi_name}=={p.version}", fmt)[1]) for p in ordered]
    return [(p, p.files) for p in ordered]
