"""The packages every ftforge channel starts with, built from source in order.

1. the interpreter recipe (``recipes/python-3.XY``): ``python`` for both ABIs,
   ``python_abi``, ``python-gil`` and ``python-freethreading`` -- a
   variant-complete set;
2. pip's build backend and pip itself (:data:`BOOTSTRAP_SPECS`), from their
   PyPI sdists through ftforge's own PyPI pipeline, installed with the pip
   wheel of CPython's standard library (:mod:`ftforge.recipes.installer`).

conda adds ``pip`` to every ``python`` by default (``add_pip_as_python_dependency``),
so a channel without it cannot give conda users a python at all; and python
bundles no pip of its own, so no file has two owners.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .build.driver import BuildOutcome, BuildReporter, BuildRequest, build_in_order
from .recipes import build_config
from .recipes import files as recipe_files
from .recipes import python as python_recipe
from .recipes.cpython_sources import DEFAULT_VERSION
from .recipes.from_pypi import recipe_from_pypi

__all__ = ["BOOTSTRAP_SPECS", "BootstrapBuild", "build_bootstrap", "write_bootstrap_recipes"]

BOOTSTRAP_SPECS: tuple[str, ...] = ("flit-core==4.2.0", "pip==26.3")
"""pip and its build backend, pinned so a rerun builds the same packages (build order)."""


@dataclass(frozen=True)
class BootstrapBuild:
    packages: list[Path]
    outcomes: list[BuildOutcome]

    @property
    def cached(self) -> bool:
        return all(o.cached for o in self.outcomes)

    @property
    def seconds(self) -> float:
        return sum(o.seconds for o in self.outcomes)


def write_bootstrap_recipes(recipes_dir: Path, *, version: str = DEFAULT_VERSION) -> list[Path]:
    """Write the interpreter recipe and the pip recipes under ``recipes_dir``, in build
    order. The pip recipes are generated from PyPI (their sdists land in the source
    mirror), so the sdists' checksums come from the index at generation time."""
    # The variant matrix (python_min for the noarch pip recipes) sits above the
    # recipes, where the build driver looks for it.
    recipe_files.write_files(recipes_dir, build_config.generate())
    name, files = python_recipe.files_for(version)
    dirs = [recipes_dir / name]
    recipe_files.write_files(dirs[0], files)
    for spec in BOOTSTRAP_SPECS:
        conda_name, files = recipe_from_pypi(spec)
        recipe_files.write_files(recipes_dir / conda_name, files)
        dirs.append(recipes_dir / conda_name)
    return dirs


def build_bootstrap(recipe_dirs: list[Path], output_dir: Path, *,
                    variant_files: tuple[Path, ...] = (),
                    overrides: tuple[tuple[str, str], ...] = (),
                    reporter: BuildReporter | None = None) -> BootstrapBuild:
    """Build the recipes from :func:`write_bootstrap_recipes` into one output directory;
    each sees the packages built before it. The self-contained (conda-forge) profile
    builds the interpreter's native libraries first (:mod:`ftforge.build.stack`)."""
    from .build.stack import build_stack

    profile = dict(overrides).get("python_deps_profile", python_recipe.DEFAULT_PROFILE)
    stack = build_stack(output_dir, reporter=reporter).outcomes if profile == "conda-forge" else []
    requests = [BuildRequest(d, output_dir, variant_files=variant_files,
                             overrides=overrides if i == 0 else (),
                             channels=(str(output_dir),) if stack else ())
                for i, d in enumerate(recipe_dirs)]
    outcomes = [*stack, *build_in_order(requests, reporter=reporter)]
    return BootstrapBuild([p for o in outcomes for p in o.packages], outcomes)
