"""Interpreter benchmarks, measured in one run and reported as ratios.

(a) 2-thread speedup of a CPU-bound pure-Python workload, free-threaded vs GIL
    (each thread does the same work; speedup = 2 * t1 / t2; 2.0 is perfect),
    and the machine's own ceiling on the same loop: two *processes* at once
    (ftforge.workload.process_ceiling) -- the share of it the threads reach is
    what the interpreter is responsible for. The interpreters are the published
    build (self-contained, PGO + LTO; cached when the test suite has run), or
    --env-ft/--env-gil environments given.
(b) single-thread slowdown of the free-threaded build against the GIL build.
(c) wall time of `ftforge build` (py-rattler-build, uncached, recipe tests
    skipped) against a plain `configure && make && make install` of the same
    source running the recipe's own build-python.sh with the same flags; also
    CPU seconds, and the phases of the build from its timeline
    (ftforge.build.timeline, build.timeline.tsv next to build.log).

    .venv/bin/python benchmarks/bench_interpreter.py [--skip-build-overhead]

Part (c), one ABI (cp313t, python_deps_profile=system, python_optimization
none), before and after issue 16, each pair in ONE run, 2 cores shared with
PGO+LTO builds of other sessions (wall seconds are inflated, and each build
ran under its own load: the "outside the script" ratio and the CPU ratio
take most of that out; the build script is the plain build's work):

    cp -r recipes/python-3.13 /tmp/O4/recipe    # as of commit b7aee81
    cp conda_build_config.yaml /tmp/O4/
    nice -n 10 .venv/bin/python benchmarks/bench_interpreter.py --build-overhead-only \
        --compare-rattler-defaults --recipe /tmp/O4/recipe \
        --variant-file /tmp/O4/conda_build_config.yaml

                                             run 1 (load 4-7)  run 2 (load 1-3)
    phase (seconds, wall)                      before   after    before   after
    source: extract, copy into each output      10.4    22.9      16.1    25.3
    rattler-build indexing its output dir        0.7     0.5       0.5     0.5
    host/build environments                      0.1     0.1       0.0     0.1
    build script (= the plain build's work)    404.8   369.7     215.5   278.9
    post-process: collect, relink, .pyc, hash    7.0     2.7       2.6     3.0
    archive: zstd of 242 MiB (level 15 -> 12)   66.9     7.5      42.0     6.9
    after the archive: rattler-build clean-up   44.2     0.2       2.2     0.2
    driver: remove build folders, src_cache      8.5     2.5       0.5     2.6
    driver: prepare, copy-out, runtime, index    1.3     0.9       0.9     0.9
    total                                      544.1   407.0     280.2   318.3
    plain build (same run)                     374.0             158.7
    wall ratio                                 1.455   1.088     1.766   2.006
    outside the script                         139.2    37.3      64.8    39.3
    (plain + outside the script) / plain       1.372   1.100     1.408   1.248
    CPU seconds (plain: 226.3 | 211.7)         295.8   259.1     278.8   258.8
    CPU ratio                                  1.307   1.145     1.317   1.223

"before" is the driver with rattler-build's defaults (zstd level 15, its own
clean-up of each output's build folder); "after" is PACKAGE_FORMAT conda:12
and KEEP_BUILD (run 1: the driver removed bld/ once at the end; run 2, the
code as it is: after each output). The archive cut is steady (35-59 s). The
clean-up after the interpreter's archive took 44.2 s in run 1 and 47.7 s in
an earlier separate run, with no CPU to match, but 2.2 s in run 2: it depends
on the machine's I/O; the driver's removal took 0.2-2.6 s in every run. What
is left outside the script is mostly the source: the CPython tree is copied
into the work folder of each of the three outputs (6-10 s each in run 2),
because the recipe's source is top-level and python_abi and
python-freethreading, noarch outputs without a script, get it too. The goal
(<= 1.15) holds in run 1 (1.100 outside the script, CPU 1.145), not in run 2
(1.248, CPU 1.223), where the plain build was fast and those copies slow.

zstd level of the interpreter's payload (241.6 MiB), one thread, CPU seconds
and size; conda-forge's builds use 19, rattler-build's default is 15:

    nice -n 10 .venv/bin/python benchmarks/bench_interpreter.py \
        --compression-levels <python-3.13.5-...-cp313t.conda>

    level      3      9     12     15     19
    CPU s   0.88   3.82   8.28  52.21  81.37
    MiB    47.74  43.19  42.80  42.46  37.93  (x1.124 x1.017 x1.008 1 x0.893)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Self

from ftforge import paths
from ftforge.build import driver
from ftforge.build.driver import BuildRequest, build
from ftforge.build.timeline import TIMELINE_FILE, phases, read_timeline
from ftforge.channel.publish import publish
from ftforge.environments import create
from ftforge.recipes import python as python_recipe
from ftforge.recipes.cpython_sources import DEFAULT_VERSION, source_for
from ftforge.variants import PythonVariant
from ftforge.workload import measure, process_ceiling

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "python-3.13"


def interpreters(work: Path) -> dict[str, Path]:
    channel = work / "channel"
    envs = {}
    for value, variant in (("yes", PythonVariant.ft()), ("no", PythonVariant.gil())):
        outcome = build(BuildRequest(RECIPE, work / "output", overrides=(
            ("freethreading", value),)))
        publish(outcome.packages, channel)
        prefix = work / "envs" / variant.abi_tag
        create(prefix, [str(channel)], [variant.metapackage], force=True)
        envs[variant.abi_tag] = prefix / "bin" / "python"
    return envs


class _Stopwatch:
    """Wall seconds and CPU seconds (this process, its threads, and the children it waited
    for: rattler-build runs in-process and waits for the build script). CPU seconds move far
    less with the machine's load than wall seconds."""

    def __enter__(self) -> Self:
        self.wall, self.cpu = time.monotonic(), self._cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.monotonic() - self.wall, self._cpu() - self.cpu

    @staticmethod
    def _cpu() -> float:
        own, children = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.user + own.system + children.ru_utime + children.ru_stime


def _optimization_override(recipe: Path, optimization: str) -> tuple[tuple[str, str], ...]:
    """The python_optimization variant for a recipe that has the key (older copies do not)."""
    own = recipe / "variants.yaml"
    has_key = own.is_file() and "python_optimization" in own.read_text()
    return (("python_optimization", optimization),) if has_key else ()


def plain_build(work: Path, variant: PythonVariant, recipe: Path = RECIPE,
                optimization: str = "none") -> _Stopwatch:
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
        "PY_EXECUTABLE": variant.executable,
        "LINKAGE_RECORD": "share/ftforge/linkage/python.txt",
        "DEPS_PROFILE": "system",  # like the ftforge builds below: the build machine's libraries
        "NOT_BUILT_MODULES": "",
        "PY_OPTIMIZATION": optimization,  # read by recipes with the python_optimization key
    }
    with _Stopwatch() as watch:
        subprocess.run(["bash", str(recipe / "build-python.sh")], cwd=source, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return watch


@contextlib.contextmanager
def _rattler_build_defaults():
    """The driver as it was before issue 16: rattler-build's default package format (zstd
    level 15) and its own removal of the build folder after each output."""
    saved = driver.PACKAGE_FORMAT, driver.KEEP_BUILD
    driver.PACKAGE_FORMAT, driver.KEEP_BUILD = None, False
    try:
        yield
    finally:
        driver.PACKAGE_FORMAT, driver.KEEP_BUILD = saved


def ftforge_build(work: Path, variant: PythonVariant, recipe: Path = RECIPE,
                  variant_files: tuple[Path, ...] = (), optimization: str = "none",
                  ) -> tuple[_Stopwatch, dict[str, float]]:
    """An uncached `ftforge build` of one ABI, and where its seconds went: the driver's
    phases with rattler-build's replaced by the phases of its timeline."""
    shutil.rmtree(work / "overhead-output", ignore_errors=True)
    with _Stopwatch() as watch:
        outcome = build(BuildRequest(recipe, work / "overhead-output",
                                     overrides=(("freethreading", variant.recipe_freethreading),
                                                ("python_deps_profile", "system"),
                                                *_optimization_override(recipe, optimization)),
                                     variant_files=variant_files, test="skip", use_cache=False))
    breakdown = {f"driver:{k}": v for k, v in outcome.phases.items() if k != "rattler-build"}
    timeline = outcome.log_file.with_name(TIMELINE_FILE) if outcome.log_file else None
    if timeline and timeline.is_file():
        breakdown.update({f"rattler-build:{k}": v for k, v in phases(read_timeline(timeline)).items()})
    return watch, breakdown


def build_overhead(work: Path, recipe: Path, variant_files: tuple[Path, ...],
                   compare_defaults: bool = False, optimization: str = "none",
                   ) -> dict[str, object]:
    """Plain build vs `ftforge build`, wall and CPU; with ``compare_defaults`` also the
    driver with rattler-build's defaults, in the same run. ``overhead_outside_script_s`` is
    the build's seconds outside the build script (which is the plain build's work), and
    ``overhead_ratio_outside_script`` = (plain + that) / plain: the wall ratio with the load
    difference between the two builds taken out."""
    variant = PythonVariant.ft()
    plain = plain_build(work, variant, recipe, optimization)
    results: dict[str, object] = {"plain_build_s": round(plain.wall, 1),
                                  "plain_build_cpu_s": round(plain.cpu, 1)}
    runs = [("rattler_defaults", _rattler_build_defaults)] if compare_defaults else []
    runs.append(("ftforge", contextlib.nullcontext))
    for label, setting in runs:
        with setting():
            watch, breakdown = ftforge_build(work, variant, recipe, variant_files, optimization)
        outside = sum(v for k, v in breakdown.items() if k != "rattler-build:script")
        results[label] = {
            "build_s": round(watch.wall, 1),
            "build_cpu_s": round(watch.cpu, 1),
            "overhead_ratio": round(watch.wall / plain.wall, 3),
            "cpu_ratio": round(watch.cpu / plain.cpu, 3),
            "overhead_outside_script_s": round(outside, 1),
            "overhead_ratio_outside_script": round((plain.wall + outside) / plain.wall, 3),
            "phases_s": {k: round(v, 1) for k, v in breakdown.items()},
        }
    return results


def compression_levels(package: Path, levels: tuple[int, ...] = (3, 9, 12, 15, 19)
                       ) -> dict[str, dict[str, float]]:
    """CPU seconds and size of the package's payload (pkg-*.tar.zst, decompressed) compressed
    at each zstd level, one thread, as ratios to rattler-build's default level 15. CPU time of
    one thread does not move with the machine's load, unlike wall time."""
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd
    with zipfile.ZipFile(package) as archive:
        member = next(n for n in archive.namelist() if n.startswith("pkg-"))
        payload = zstd.decompress(archive.read(member))
    measured = {}
    for level in levels:
        started = time.process_time()
        size = len(zstd.compress(payload, level=level))
        measured[level] = (time.process_time() - started, size)
    base_cpu, base_size = measured[15] if 15 in measured else next(iter(measured.values()))
    return {f"level_{level}": {"cpu_s": round(cpu, 2), "mib": round(size / 2**20, 2),
                               "cpu_ratio_to_15": round(cpu / base_cpu, 3),
                               "size_ratio_to_15": round(size / base_size, 4)}
            for level, (cpu, size) in measured.items()} | {
        "payload_mib": round(len(payload) / 2**20, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--skip-build-overhead", action="store_true")
    parser.add_argument("--compression-levels", type=Path, metavar="PACKAGE.conda",
                        help="only the zstd level comparison on this package's payload")
    parser.add_argument("--build-overhead-only", action="store_true",
                        help="only part (c), with its phase breakdown")
    parser.add_argument("--optimization", choices=python_recipe.OPTIMIZATIONS,
                        default="none",
                        help="python_optimization of both part (c) builds (default: none)")
    parser.add_argument("--compare-rattler-defaults", action="store_true",
                        help="part (c) also with rattler-build's defaults (the driver before "
                        "issue 16), in the same run")
    parser.add_argument("--recipe", type=Path, default=RECIPE,
                        help="the python recipe directory for part (c) (e.g. a copy)")
    parser.add_argument("--variant-file", type=Path, action="append", default=[],
                        help="variant file(s) for part (c) when --recipe is outside the repo")
    parser.add_argument("--iterations", type=int, default=4_000_000)
    parser.add_argument("--env-ft", type=Path, help="a python-freethreading environment")
    parser.add_argument("--env-gil", type=Path, help="a python-gil environment")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, object] = {"cpus": os.cpu_count()}
    if args.compression_levels:
        results["zstd_levels"] = compression_levels(args.compression_levels)
        print(json.dumps(results, indent=2))
        return 0
    if args.build_overhead_only:
        with tempfile.TemporaryDirectory(prefix="ftforge-bench-") as tmp:
            results.update(build_overhead(Path(tmp), args.recipe.resolve(),
                                          tuple(args.variant_file), args.compare_rattler_defaults,
                                          args.optimization))
        print(json.dumps(results, indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="ftforge-bench-") as tmp:
        work = Path(tmp)
        if args.env_ft and args.env_gil:
            pythons = {"cp313t": args.env_ft / "bin" / "python",
                       "cp313": args.env_gil / "bin" / "python"}
        else:
            pythons = interpreters(work)
        ft = measure(pythons["cp313t"], iterations=args.iterations, repeats=args.repeats)
        ceiling = process_ceiling(pythons["cp313t"], iterations=args.iterations,
                                  repeats=args.repeats)
        gil = measure(pythons["cp313"], iterations=args.iterations, repeats=args.repeats)
        results.update({
            "ft_gil_enabled": ft.gil_enabled,
            "ft_2thread_speedup": round(ft.speedup, 3),
            "machine_2process_ceiling": round(ceiling, 3),
            "ft_speedup_share_of_ceiling": round(ft.speedup / ceiling, 3),
            "gil_2thread_speedup": round(gil.speedup, 3),
            "ft_single_thread_slowdown": round(ft.one_thread_s / gil.one_thread_s, 3),
            "ft_one_thread_s": round(ft.one_thread_s, 3),
            "gil_one_thread_s": round(gil.one_thread_s, 3),
        })
        if not args.skip_build_overhead:
            results.update(build_overhead(work, args.recipe.resolve(), tuple(args.variant_file),
                                          args.compare_rattler_defaults, args.optimization))
    print(json.dumps(results, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "interpreter.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
