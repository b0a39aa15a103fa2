"""``ftforge demo``: build the free-threaded interpreter, publish, install, prove it.

recipe (generated) -> ftforge build (freethreading=yes) -> channel publish ->
ftforge create python-freethreading -> a CPU-bound workload on 1 and 2 threads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .build.driver import BuildReporter, BuildRequest, build
from .channel.publish import publish
from .environments import SolvedPackage, create
from .recipes import files as recipe_files
from .recipes import python as python_recipe
from .recipes.cpython_sources import DEFAULT_VERSION
from .variants import PythonVariant
from .workload import ThreadScaling, env_python, measure

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    work_dir: Path
    python: SolvedPackage
    installed: list[SolvedPackage]
    scaling: ThreadScaling
    build_cached: bool
    build_seconds: float


def run_demo(work_dir: Path, *, reporter: BuildReporter, version: str = DEFAULT_VERSION,
             iterations: int = 3_000_000) -> DemoResult:
    work_dir = work_dir.resolve()
    # The demo owns these: start from a clean channel, output and env each run
    # (a rebuilt package must not meet the previous run's immutable channel).
    for owned in ("output", "channel", "env"):
        shutil.rmtree(work_dir / owned, ignore_errors=True)
    variant = PythonVariant.ft(version)
    name, files = python_recipe.files_for(version)
    recipe_dir = work_dir / "recipes" / name
    recipe_files.write_files(recipe_dir, files)

    outcome = build(
        BuildRequest(recipe_dir, work_dir / "output",
                     overrides=(("freethreading", variant.recipe_freethreading),)),
        reporter=reporter,
    )
    reporter.step(f"publishing {len(outcome.packages)} packages to {work_dir / 'channel'}")
    publish(outcome.packages, work_dir / "channel")
    reporter.step(f"installing {variant.metapackage} into {work_dir / 'env'}")
    installed = create(work_dir / "env", [str(work_dir / "channel")], [variant.metapackage],
                       force=True)
    python = next(p for p in installed if p.name == "python")
    reporter.step("running the workload on 1 and 2 threads")
    scaling = measure(env_python(work_dir / "env"), iterations=iterations)
    return DemoResult(work_dir, python, installed, scaling, outcome.cached, outcome.seconds)
