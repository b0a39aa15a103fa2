"""A fixed pyperformance subset: our interpreters against Debian trixie's python3.13, in one run.

Debian's ``python3.13`` 3.13.5 (PGO + LTO, GIL; built by someone else) is the
anchor (Debian applies PGO and LTO in its own build rules, so its CONFIG_ARGS,
printed for every interpreter, shows neither flag). It lives in a trixie root
filesystem made once with debootstrap and cached under
~/.cache/ftforge/anchor-rootfs/ (ftforge.anchor); every interpreter --
Debian's and each conda environment given with --interpreter, bound at its own
absolute path -- runs inside that root with bubblewrap, so all see the same
kernel, glibc and userland. pyperf and pyperformance come
from PyPI as pinned, checksummed pure-Python wheels (cached under
~/.cache/ftforge/pyperformance/); the subset's bm_*/run_benchmark.py scripts
need nothing but pyperf, which is put on PYTHONPATH (no psutil, no compiled
code). Benchmarks run one at a time; for each, every interpreter runs
--processes worker processes per round, --rounds rounds, in an order rotated
every round, appended to one pyperf file per interpreter and benchmark (loops
calibrated in the first round, then fixed), so load drift on a shared machine
hits every interpreter alike. Debian's interpreter also runs a second time as
if it were another one (debian-again): its ratio to Debian's is the run's noise
floor, printed next to the verdict (--no-noise-floor leaves it out).

The clock is each process's CPU time by default (--clock cpu: a sitecustomize
module on PYTHONPATH makes time.perf_counter time.process_time in every
interpreter and pyperf worker; the probe checks it took), because on this
shared 2-core machine wall time cannot resolve the 3% goal: with the -O3 builds
at load average 4-7, the same interpreter twice differed by 6.4% on the
geometric mean with --clock wall (up to 42% on one benchmark) and by 0.4% with
--clock cpu (at most 5%). --clock wall is pyperf's own clock, for an idle machine.

Printed and written to benchmarks/results/pyperformance.json: per benchmark the
mean of each interpreter, each interpreter's time over Debian's (geometric mean
over the subset; goal: our GIL build <= 1.03) and each free-threaded build's
time over its GIL twin (the single-thread cost of free threading), plus
``pyperf compare_to --table`` (pyperf's own statistics, significance included).
Raw pyperf suites: benchmarks/results/pyperformance/<label>.json.

The final measurement (PGO + LTO environments and the -O3 ones, made with
``ftforge create`` from a channel holding those builds; run as root, machine
otherwise idle, not under nice):

    .venv/bin/python benchmarks/bench_pyperformance.py \\
        --interpreter gil-pgo=/path/to/envs/gil-pgo/bin/python \\
        --interpreter ft-pgo=/path/to/envs/ft-pgo/bin/python \\
        --interpreter gil-o3=/path/to/envs/gil-o3/bin/python \\
        --interpreter ft-o3=/path/to/envs/ft-o3/bin/python

FT/GIL pairs are found by label (ft-X with gil-X) or given with --pair FT:GIL.
A quick try of the harness: add --only nbody,json_dumps --rounds 1 --processes 1.
With the defaults a run of Debian (twice) and two environments took 10.5-12 min.

Validation with the current -O3 builds (made with `ftforge create` from a channel
published from the cached builds of recipes/python-3.13 at c0109e0):

    .venv/bin/python benchmarks/bench_pyperformance.py \
        --interpreter gil-o3=ENV_GIL/bin/python --interpreter ft-o3=ENV_FT/bin/python

gave, two runs with --clock cpu: gil-o3 1.311x / 1.317x Debian's time, ft-o3
1.945x / 1.941x gil-o3's, noise floor 0.996 / 1.001; three runs with --clock
wall: gil-o3 1.368x / 1.443x / 1.288x, ft-o3/gil-o3 1.894x / 1.833x / 1.995x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ftforge import anchor, paths
from ftforge.atomic import built_once
from ftforge.build.mirror import sha256_of
from ftforge.errors import BenchmarkError, FtforgeError
from ftforge.perfcompare import (
    BASELINE,
    BASELINE_AGAIN,
    InterpreterArg,
    check_conda_python,
    compare,
    default_pairs,
    format_table,
    parse_interpreters,
    parse_pair,
    read_pyperf,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.project}-{self.version}-py3-none-any.whl"


PYPERF = Wheel("pyperf", "2.11.0",
               "11c0034bb29a79796417a6e5a7852ff4814a33cce24aeb6d268676c3a52dfda6")
PYPERFORMANCE = Wheel("pyperformance", "1.14.0",
                      "94068ac2935b6952ccb5e8a302eb9cebc26e82454494bef6e53822738adf0049")

# name -> (pyperformance's bm_* directory, extra arguments as its manifest gives them).
# Pure-Python, stdlib + pyperf only, single-threaded, run on 3.13 and 3.13t alike.
SUBSET: dict[str, tuple[str, tuple[str, ...]]] = {
    "chaos": ("bm_chaos", ()),
    "deltablue": ("bm_deltablue", ()),
    "fannkuch": ("bm_fannkuch", ()),
    "float": ("bm_float", ()),
    "generators": ("bm_generators", ()),
    "go": ("bm_go", ()),
    "hexiom": ("bm_hexiom", ()),
    "json_dumps": ("bm_json_dumps", ()),
    "json_loads": ("bm_json_loads", ()),
    "nbody": ("bm_nbody", ()),
    "nqueens": ("bm_nqueens", ()),
    "pickle_pure_python": ("bm_pickle", ("--pure-python", "pickle")),
    "raytrace": ("bm_raytrace", ()),
    "regex_compile": ("bm_regex_compile", ()),
    "richards": ("bm_richards", ()),
    "spectral_norm": ("bm_spectral_norm", ()),
}

# Inside the anchor root.
BENCH = PurePosixPath("/bench")
SITE = BENCH / "site"            # pyperf, read-only
SCRIPTS = BENCH / "benchmarks"   # the subset's bm_* directories, read-only
OUT = BENCH / "out"              # pyperf files, writable
CLOCK = BENCH / "clock"          # --clock cpu: a sitecustomize module, read-only

CPU_CLOCK = """\
# Written by ftforge's benchmarks/bench_pyperformance.py for --clock cpu. pyperf and the
# benchmarks time with time.perf_counter; here it is this process's CPU time, so time a
# loaded machine keeps the process waiting to run is not counted. Every interpreter of
# the run, and each pyperf worker (PYTHONPATH is passed on), gets the same clock.
import time

time.perf_counter = time.process_time
"""

PROBE = """\
import json, platform, sys, sysconfig, time
args = sysconfig.get_config_var("CONFIG_ARGS") or ""
print(json.dumps({"version": platform.python_version(),
                  "cpu_clock": time.perf_counter is time.process_time,
                  "implementation": sys.implementation.name,
                  "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
                  "config_args": args,
                  "pgo_flag": "--enable-optimizations" in args,
                  "lto_flag": "--with-lto" in args,
                  "glibc": "-".join(platform.libc_ver())}))
"""

MERGE = """\
import sys, pyperf
out, *files = sys.argv[1:]
suite = pyperf.BenchmarkSuite.load(files[0])
for name in files[1:]:
    for bench in pyperf.BenchmarkSuite.load(name):
        suite.add_benchmark(bench)
suite.dump(out, replace=True)
"""


def _extract(wheel: Path, prefix: str, into: Path) -> int:
    """Members of ``wheel`` under ``prefix`` into ``into`` (prefix stripped); names checked."""
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts:
                raise BenchmarkError(f"{wheel}: member {info.filename!r} escapes the wheel",
                                     hint="the checksum matched, so report it upstream")
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            target = into / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            count += 1
    return count


def ensure_kit(cache: Path | None = None) -> Path:
    """pyperf (site/) and pyperformance's subset scripts (benchmarks/), from the pinned
    wheels, cached. A wheel whose sha256 differs from the pin is refused."""
    kit = (cache or paths.cache_root() / "pyperformance") / \
        f"pyperf-{PYPERF.version}-pyperformance-{PYPERFORMANCE.version}"
    return built_once(kit, ".complete", _make_kit)  # one download; concurrent runs wait


def _make_kit(part: Path) -> str:
    """Download and check the wheels, extract the kit into ``part``; the marker's text."""
    wheels = part / "wheels"
    wheels.mkdir(parents=True)
    for wheel in (PYPERF, PYPERFORMANCE):
        spec = f"{wheel.project}=={wheel.version}"
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                                 "--only-binary=:all:", "--dest", str(wheels), "-q", spec],
                                capture_output=True, text=True, check=False)
        path = wheels / wheel.filename
        if result.returncode != 0 or not path.is_file():
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BenchmarkError(f"{spec}: pip download failed: {last}",
                                 hint="check that PyPI is reachable (pip config)")
        if sha256_of(path) != wheel.sha256:
            raise BenchmarkError(f"{path}: sha256 {sha256_of(path)}, pinned {wheel.sha256}",
                                 hint=f"nothing was used; if {spec} was re-uploaded, check it "
                                 "and update the pin in benchmarks/bench_pyperformance.py")
    if not _extract(wheels / PYPERF.filename, "pyperf/", part / "site" / "pyperf"):
        raise BenchmarkError(f"{PYPERF.filename}: no pyperf/ package in it")
    for directory in sorted({d for d, _ in SUBSET.values()}):
        prefix = f"pyperformance/data-files/benchmarks/{directory}/"
        if not _extract(wheels / PYPERFORMANCE.filename, prefix, part / "benchmarks" / directory):
            raise BenchmarkError(f"{PYPERFORMANCE.filename}: no {prefix} in it",
                                 hint="the subset names a benchmark this pyperformance lacks")
    shutil.rmtree(wheels)
    return f"{PYPERF.filename} {PYPERFORMANCE.filename}\n"


class Anchor:
    """Runs commands in the anchor root with the kit, the output and the envs bound."""

    def __init__(self, root: Path, kit: Path, out: Path, prefixes: list[Path],
                 clock: Path | None = None) -> None:
        self.root = root
        self.binds = [anchor.Bind(kit / "site", SITE), anchor.Bind(kit / "benchmarks", SCRIPTS),
                      anchor.Bind(out, OUT, writable=True),
                      *(anchor.Bind(p, PurePosixPath(str(p))) for p in prefixes)]
        path = [str(SITE)]
        if clock is not None:
            self.binds.append(anchor.Bind(clock, CLOCK))
            path.insert(0, str(CLOCK))
        self.env = {"PYTHONPATH": ":".join(path), "PYTHONDONTWRITEBYTECODE": "1"}

    def run(self, argv: list[str], what: str, log: Path | None = None) -> str:
        result = anchor.run_in_anchor(self.root, self.binds, argv, env=self.env)
        if log is not None:
            with open(log, "a") as f:
                f.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BenchmarkError(f"{what}: exit {result.returncode} in {self.root}: {last}",
                                 hint=f"full output in {log}" if log else None)
        return result.stdout


def _loops(path: Path) -> int | None:
    """The loop count the first round calibrated (one benchmark per file), or None."""
    read_pyperf(path)  # a well-formed pyperf file, or BenchmarkError naming it
    data = json.loads(path.read_text())
    benches = data["benchmarks"]
    if len(benches) != 1:
        return None
    common = {**data.get("metadata", {}), **benches[0].get("metadata", {})}
    for run in benches[0].get("runs", []):
        loops = run.get("metadata", {}).get("loops", common.get("loops"))
        if type(loops) is int and loops > 0 and run.get("values"):
            return loops
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interpreter", action="append", default=[], metavar="LABEL=PATH",
                        help="a conda environment's bin/python (repeat)")
    parser.add_argument("--pair", action="append", default=[], metavar="FT:GIL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="worker processes per round")
    parser.add_argument("--values", type=int, default=3, help="values per worker process")
    parser.add_argument("--warmups", type=int, default=1, help="warmups per worker process")
    parser.add_argument("--only", default="", help="comma-separated part of the subset")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: the process's CPU time (default); wall: pyperf's own "
                        "perf_counter, for an idle machine")
    parser.add_argument("--no-noise-floor", action="store_true",
                        help=f"do not run Debian's python a second time (as {BASELINE_AGAIN})")
    parser.add_argument("--output", type=Path, default=RESULTS / "pyperformance.json")
    args = parser.parse_args()
    try:
        return run(args)
    except FtforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def run(args: argparse.Namespace) -> int:
    interpreters: list[InterpreterArg] = parse_interpreters(args.interpreter)
    for option, value in (("rounds", args.rounds), ("processes", args.processes),
                         ("values", args.values)):
        if not 1 <= value <= 100:
            raise BenchmarkError(f"--{option} {value}: must be 1..100")
    if not 0 <= args.warmups <= 100:
        raise BenchmarkError(f"--warmups {args.warmups}: must be 0..100")
    subset = dict(SUBSET)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in SUBSET]
        if unknown:
            raise BenchmarkError(f"--only: {', '.join(unknown)} not in the subset",
                                 hint=f"choose from {', '.join(SUBSET)}")
        subset = {w: SUBSET[w] for w in wanted}
    prefixes = [check_conda_python(i) for i in interpreters]

    started = time.monotonic()
    root = anchor.ensure_anchor_root()
    debian = anchor.installed_version(root)
    print(f"anchor: Debian {anchor.ANCHOR.suite} {anchor.ANCHOR.package} {debian} "
          f"in {root}; clock: {args.clock}", flush=True)
    kit = ensure_kit()
    work = Path(tempfile.mkdtemp(prefix="ftforge-pyperformance-"))
    clock = None
    if args.clock == "cpu":
        clock = work / "clock"
        clock.mkdir()
        (clock / "sitecustomize.py").write_text(CPU_CLOCK)
    box = Anchor(root, kit, work, prefixes, clock)
    pythons = {BASELINE: anchor.ANCHOR.python, **{i.label: str(i.python) for i in interpreters}}
    if not args.no_noise_floor:
        pythons[BASELINE_AGAIN] = anchor.ANCHOR.python

    info = {}
    series = anchor.ANCHOR.upstream_version.rsplit(".", 1)[0]
    for label, python in pythons.items():
        info[label] = {"python": python, **json.loads(box.run([python, "-c", PROBE],
                                                              f"{label}: {python} -c PROBE"))}
        if info[label]["implementation"] != "cpython" or \
                not info[label]["version"].startswith(series + "."):
            raise BenchmarkError(f"--interpreter {label}={python}: CPython "
                                 f"{info[label]['version']} ({info[label]['implementation']}), "
                                 f"the anchor is {anchor.ANCHOR.upstream_version}",
                                 hint=f"compare CPython {series}.x builds only")
        if info[label]["cpu_clock"] != (args.clock == "cpu"):
            raise BenchmarkError(f"{label}: {python} does not time with the {args.clock} clock "
                                 f"(sitecustomize in {CLOCK} not loaded)",
                                 hint="run with --clock wall, or find what bypasses PYTHONPATH")
        yes_no = {True: "yes", False: "no"}
        print(f"  {label}: {info[label]['version']}"
              f"{' free-threaded' if info[label]['free_threaded'] else ''}, {python}, "
              f"{info[label]['glibc']}; CONFIG_ARGS has --enable-optimizations: "
              f"{yes_no[info[label]['pgo_flag']]}, --with-lto: {yes_no[info[label]['lto_flag']]}",
              flush=True)
    labels = list(pythons)
    pairs = [parse_pair(p, labels) for p in args.pair] or \
        default_pairs({label: info[label]["free_threaded"] for label in labels})
    for ft, gil in pairs:
        if not info[ft]["free_threaded"] or info[gil]["free_threaded"]:
            raise BenchmarkError(f"--pair {ft}:{gil}: {ft} must be free-threaded and {gil} not",
                                 hint="FT first, then GIL")

    load: dict[str, list[float]] = {}
    failed: dict[str, dict[str, str]] = {}  # label -> benchmark -> why (left out, not fatal)
    for index, (name, (directory, extra)) in enumerate(subset.items()):
        before = os.getloadavg()[0]
        script = str(SCRIPTS / directory / "run_benchmark.py")
        loops: dict[str, int | None] = {}
        for round_ in range(args.rounds):
            shift = (index + round_) % len(labels)
            for label in labels[shift:] + labels[:shift]:
                if name in failed.get(label, {}):
                    continue
                out = work / label
                out.mkdir(exist_ok=True)
                argv = [pythons[label], script, *extra, "--processes", str(args.processes),
                        "--values", str(args.values), "--warmups", str(args.warmups),
                        "--append", str(OUT / label / f"{name}.json")]
                if loops.get(label):
                    argv += ["--loops", str(loops[label])]
                try:
                    box.run(argv, f"{name} on {label}", log=out / f"{name}.log")
                    if round_ == 0:
                        loops[label] = _loops(out / f"{name}.json")
                except BenchmarkError as exc:
                    failed.setdefault(label, {})[name] = exc.message
                    (out / f"{name}.json").unlink(missing_ok=True)
                    print(f"  {name} FAILED on {label}, left out: {exc.message}", flush=True)
        load[name] = [round(before, 2), round(os.getloadavg()[0], 2)]
        print(f"  {name} done ({index + 1}/{len(subset)}, load {before:.1f} -> "
              f"{os.getloadavg()[0]:.1f}, {time.monotonic() - started:.0f} s)", flush=True)

    raw = args.output.with_suffix("")
    raw.mkdir(parents=True, exist_ok=True)
    means = {}
    for label in labels:
        files = [str(OUT / label / f"{name}.json") for name in subset
                 if name not in failed.get(label, {})]
        if not files:
            raise BenchmarkError(f"{label}: every benchmark failed",
                                 hint=f"read the logs in {work / label}")
        box.run([anchor.ANCHOR.python, "-c", MERGE, str(OUT / f"{label}.json"), *files],
                f"merging {label}'s results")
        shutil.copyfile(work / f"{label}.json", raw / f"{label}.json")
        means[label] = read_pyperf(raw / f"{label}.json")
    table = compare(means, pairs=pairs)
    compare_to = box.run([anchor.ANCHOR.python, "-m", "pyperf", "compare_to", "--table",
                          *(str(OUT / f"{label}.json") for label in labels)],
                         "pyperf compare_to (against Debian's)")
    pair_texts = {f"{ft}/{gil}": box.run(
        [anchor.ANCHOR.python, "-m", "pyperf", "compare_to", "--table",
         str(OUT / f"{gil}.json"), str(OUT / f"{ft}.json")], f"pyperf compare_to {ft} {gil}")
        for ft, gil in pairs}
    gil_labels = [label for label in labels[1:]
                  if not info[label]["free_threaded"] and label != BASELINE_AGAIN]
    text = format_table(table, gil_labels=gil_labels)
    print()
    print(text)
    print("\npyperf compare_to --table (reference: debian):")
    print(compare_to)
    for key, value in pair_texts.items():
        print(f"pyperf compare_to --table ({key}):\n{value}")
    result = {
        "what": "pyperformance subset, mean seconds per loop; ratios are time / reference time",
        "anchor": {"suite": anchor.ANCHOR.suite, "package": anchor.ANCHOR.package,
                   "debian_version": debian},
        "pyperf": PYPERF.version, "pyperformance": PYPERFORMANCE.version,
        "settings": {"clock": args.clock, "rounds": args.rounds,
                     "processes_per_round": args.processes,
                     "values": args.values, "warmups": args.warmups,
                     "subset": list(subset), "full_subset": not args.only},
        "interpreters": info, "failed": failed,
        "cpus": os.cpu_count(), "load_before_after": load,
        "wall_seconds": round(time.monotonic() - started, 1),
        **table.to_json(),
        "pyperf_compare_to": compare_to, "pyperf_compare_to_pairs": pair_texts,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.output} and {raw}/")
    if failed:
        print(f"error: {sum(len(f) for f in failed.values())} benchmark run(s) failed and were "
              f"left out: {json.dumps(failed)}; logs in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
