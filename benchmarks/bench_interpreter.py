"""Interpreter benchmarks, measured in one run and reported as ratios.

(a) 2-thread speedup of a CPU-bound pure-Python workload, free-threaded vs GIL
    (each thread does the same work; speedup = 2 * t1 / t2; 2.0 is perfect).
(b) single-thread slowdown of the free-threaded build against the GIL build.
(c) wall time of `ftforge build` (py-rattler-build, uncached, recipe tests
    skipped) against a plain `configure && make && make install` of the same
    source running the recipe's own build-python.sh with the same flags.

    .venv/bin/python benchmarks/bench_interpreter.py [--skip-build-overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ftforge import paths
from ftforge.build.driver import BuildRequest, build
from ftforge.build.timeline import TIMELINE_FILE, phases, read_timeline
from ftforge.channel.publish import publish
from ftforge.environments import create
from ftforge.recipes.cpython_sources import DEFAULT_VERSION, source_for
from ftforge.variants import PythonVariant
from ftforge.workload import measure

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "python-3.13"


def interpreters(work: Path) -> dict[str, Path]:
    channel = work / "channel"
    envs = {}
    for value, variant in (("yes", PythonVariant.ft()), ("no", PythonVariant.gil())):
        outcome = build(BuildRequest(RECIPE, work / "output", overrides=(
            ("freethreading", value), ("python_deps_profile", "system"))))
        publish(outcome.packages, channel)
        prefix = work / "envs" / variant.abi_tag
        create(prefix, [str(channel)], [variant.metapackage], force=True)
        envs[variant.abi_tag] = prefix / "bin" / "python"
    return envs


def plain_build_seconds(work: Path, variant: PythonVariant, recipe: Path = RECIPE) -> float:
    src = source_for(DEFAULT_VERSION)
    tree = work / "plain"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    with tarfile.open(paths.source_mirror_dir() / src.filename) as archive:
        archive.extractall(tree, filter="data")
    source = tree / f"Python-{src.version}"
    env = {
        **os.environ,
        "PREFIX": str(tree / "prefix"),
        "CPU_COUNT": str(os.cpu_count() or 2),
        "CONFIGURE_EXTRA": " ".join(variant.configure_flags),
        "PY_SERIES": variant.series,
        "PY_STDLIB_DIR": variant.stdlib_dir,
        "PY_SITE_PACKAGES": variant.site_packages,
        "PY_NOARCH_SITE_PACKAGES": variant.noarch_site_packages,
        "LINKAGE_RECORD": "share/ftforge/linkage/python.txt",
        "DEPS_PROFILE": "system",  # like the ftforge builds below: the build machine's libraries
        "NOT_BUILT_MODULES": "",
    }
    started = time.monotonic()
    subprocess.run(["bash", str(recipe / "build-python.sh")], cwd=source, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def ftforge_build(work: Path, variant: PythonVariant, recipe: Path = RECIPE,
                  variant_files: tuple[Path, ...] = ()) -> tuple[float, dict[str, float]]:
    """Seconds of an uncached `ftforge build` of one ABI, and where they went: the driver's
    phases with rattler-build's replaced by the phases of its timeline."""
    started = time.monotonic()
    outcome = build(BuildRequest(recipe, work / "overhead-output",
                                 overrides=(("freethreading", variant.recipe_freethreading),
                                            ("python_deps_profile", "system")),
                                 variant_files=variant_files, test="skip", use_cache=False))
    seconds = time.monotonic() - started
    breakdown = {f"driver:{k}": v for k, v in outcome.phases.items() if k != "rattler-build"}
    timeline = outcome.log_file.with_name(TIMELINE_FILE) if outcome.log_file else None
    if timeline and timeline.is_file():
        breakdown.update({f"rattler-build:{k}": v for k, v in phases(read_timeline(timeline)).items()})
    return seconds, breakdown


def build_overhead(work: Path, recipe: Path, variant_files: tuple[Path, ...]) -> dict[str, object]:
    variant = PythonVariant.ft()
    plain = plain_build_seconds(work, variant, recipe)
    forged, breakdown = ftforge_build(work, variant, recipe, variant_files)
    return {
        "plain_build_s": round(plain, 1),
        "ftforge_build_s": round(forged, 1),
        "ftforge_build_overhead_ratio": round(forged / plain, 3),
        "ftforge_build_phases_s": {k: round(v, 1) for k, v in breakdown.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--skip-build-overhead", action="store_true")
    parser.add_argument("--build-overhead-only", action="store_true",
                        help="only part (c), with its phase breakdown")
    parser.add_argument("--recipe", type=Path, default=RECIPE,
                        help="the python recipe directory for part (c) (e.g. a copy)")
    parser.add_argument("--variant-file", type=Path, action="append", default=[],
                        help="variant file(s) for part (c) when --recipe is outside the repo")
    parser.add_argument("--iterations", type=int, default=4_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, object] = {"cpus": os.cpu_count()}
    if args.build_overhead_only:
        with tempfile.TemporaryDirectory(prefix="ftforge-bench-") as tmp:
            results.update(build_overhead(Path(tmp), args.recipe.resolve(),
                                          tuple(args.variant_file)))
        print(json.dumps(results, indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="ftforge-bench-") as tmp:
        work = Path(tmp)
        pythons = interpreters(work)
        ft = measure(pythons["cp313t"], iterations=args.iterations, repeats=args.repeats)
        gil = measure(pythons["cp313"], iterations=args.iterations, repeats=args.repeats)
        results.update({
            "ft_gil_enabled": ft.gil_enabled,
            "ft_2thread_speedup": round(ft.speedup, 3),
            "gil_2thread_speedup": round(gil.speedup, 3),
            "ft_single_thread_slowdown": round(ft.one_thread_s / gil.one_thread_s, 3),
            "ft_one_thread_s": round(ft.one_thread_s, 3),
            "gil_one_thread_s": round(gil.one_thread_s, 3),
        })
        if not args.skip_build_overhead:
            results.update(build_overhead(work, args.recipe.resolve(), tuple(args.variant_file)))
    print(json.dumps(results, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "interpreter.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
