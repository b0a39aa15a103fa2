"""``ftforge demo``: build the interpreters and pip, publish, install, prove it.

recipes (generated) -> ftforge build (the C libraries the interpreter links,
then both ABIs against them -- self-contained -- then pip's backend and pip) ->
channel publish (variant-complete, linkage-audited) -> a dry-run solve of plain ``python``
(must be the GIL build) -> ftforge create python-freethreading (pip comes
with it, as with conda) -> a CPU-bound workload on 1 and 2 threads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .bootstrap import build_bootstrap, write_bootstrap_recipes
from .build.driver import BuildReporter
from .channel.publish import publish
from .environments import SolvedPackage, create, solve
from .errors import FtforgeError
from .recipes import python as python_recipe
from .recipes.cpython_sources import DEFAULT_VERSION
from .variants import PythonVariant
from .workload import ThreadScaling, env_python, measure

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    work_dir: Path
    python: SolvedPackage
    """The interpreter ``python-freethreading`` installed."""
    default_python: SolvedPackage
    """What a plain ``python`` request gets from the same channel (the GIL build)."""
    installed: list[SolvedPackage]
    scaling: ThreadScaling
    build_cached: bool
    build_seconds: float
    optimization: str
    """The interpreter's ``python_optimization`` variant (PGO + LTO unless ``none``)."""


def _python(packages: list[SolvedPackage]) -> SolvedPackage:
    return next(p for p in packages if p.name == "python")


def run_demo(work_dir: Path, *, reporter: BuildReporter, version: str = DEFAULT_VERSION,
             iterations: int = 3_000_000,
             optimization: str = python_recipe.DEFAULT_OPTIMIZATION) -> DemoResult:
    if optimization not in python_recipe.OPTIMIZATIONS:
        raise FtforgeError(f"unknown interpreter optimization {optimization!r}",
                           hint=f"use one of {', '.join(python_recipe.OPTIMIZATIONS)}")
    work_dir = work_dir.resolve()
    # The demo owns these: start from a clean channel, output and env each run
    # (a rebuilt package must not meet the previous run's immutable channel).
    for owned in ("output", "channel", "env"):
        shutil.rmtree(work_dir / owned, ignore_errors=True)
    ft, gil = PythonVariant.ft(version), PythonVariant.gil(version)
    reporter.step("writing the interpreter and pip recipes")
    recipe_dirs = write_bootstrap_recipes(work_dir / "recipes", version=version)
    built = build_bootstrap(recipe_dirs, work_dir / "output", reporter=reporter,
                            overrides=(("python_optimization", optimization),))
    channel = work_dir / "channel"
    reporter.step(f"publishing {len(built.packages)} packages to {channel}")
    publish(built.packages, channel)
    reporter.step("solving plain `python` from the channel (must be the GIL build)")
    default_python = _python(solve([str(channel)], ["python"]))
    if not default_python.build.endswith(f"_{gil.abi_tag}"):
        raise FtforgeError(
            f"{channel}: a plain `python` request got {default_python.build}, not the GIL build",
            hint="the channel's down-weighting is broken; run `ftforge channel check`")
    reporter.step(f"installing {ft.metapackage} into {work_dir / 'env'}")
    installed = create(work_dir / "env", [str(channel)], [ft.metapackage], force=True)
    reporter.step("running the workload on 1 and 2 threads")
    scaling = measure(env_python(work_dir / "env"), iterations=iterations)
    return DemoResult(work_dir, _python(installed), default_python, installed, scaling,
                      built.cached, built.seconds, optimization)
