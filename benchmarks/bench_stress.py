"""Thread-safety evidence over the committed PyPI list: `ftforge stress` per package.

For each package in benchmarks/pypi_packages.txt:
  build     `recipe pypi --with-deps`, the closure built for both ABIs (publishing a
            free-threaded build needs its GIL twin), published to a scratch channel;
  stress    `ftforge stress` on it: its sdist's tests, plainly then under
            pytest-run-parallel (--threads, --iterations), in a free-threaded
            environment with its test requirements (built from PyPI when missing).
Reports: packages whose tests ran, thread-safety findings (test names), GIL
re-enabled at run time, minutes per package, and the ratio of the parallel run's
time to the plain run's (the baseline measured in the same run).

    .venv/bin/python benchmarks/bench_stress.py --channel CHANNEL [--only NAME...]

CHANNEL holds the interpreter and pip (the channel `ftforge demo` publishes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ftforge.build.driver import BuildRequest, build_in_order
from ftforge.channel.layout import index_channel, mark_channel
from ftforge.channel.publish import publish
from ftforge.errors import FtforgeError
from ftforge.recipes import files as recipe_files
from ftforge.recipes.from_pypi import closure_from_pypi
from ftforge.stress import StressOptions, stress_channel

REPO = Path(__file__).resolve().parents[1]
CBC = REPO / "conda_build_config.yaml"


def packages() -> list[str]:
    lines = (REPO / "benchmarks" / "pypi_packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def build_and_publish(spec: str, work: Path, interpreter: str, channel: Path) -> str:
    """The package and its closure, both ABIs, published; returns its conda name."""
    planned = closure_from_pypi(spec)
    dirs = []
    for plan, files in planned:
        recipe_files.write_files(work / "recipes" / plan.conda_name, files)
        dirs.append(work / "recipes" / plan.conda_name)
    outcomes = build_in_order([BuildRequest(d, work / "out", variant_files=(CBC,),
                                            channels=(interpreter, str(channel)))
                               for d in dirs])
    publish(sorted({p for o in outcomes for p in o.packages}), channel)
    return planned[-1][0].conda_name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--channel", required=True, help="channel holding the interpreter")
    parser.add_argument("--only", nargs="+", help="run these packages of the list only")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    specs = [s for s in packages() if not args.only or s in args.only
             or s.split("==")[0] in args.only]
    options = StressOptions(threads=args.threads, iterations=args.iterations)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftforge-bench-stress-") as tmp:
        channel = Path(tmp) / "channel"
        mark_channel(channel)  # an empty, indexed channel the first build can read
        index_channel(channel)
        for spec in specs:
            started = time.monotonic()
            row: dict = {"package": spec}
            try:
                name = build_and_publish(spec, Path(tmp) / spec, args.channel, channel)
                row["built_minutes"] = round((time.monotonic() - started) / 60, 2)
                [record] = [r for r in stress_channel(channel, [name],
                                                      interpreter_channels=[args.channel],
                                                      options=options)
                            if r.build.startswith("py313t")] or [None]
                if record is None:
                    raise FtforgeError(f"{name}: no free-threaded build to stress")
                row.update(status=record.status, collected=record.collected,
                           passed_parallel=record.passed_parallel,
                           failed_serial=len(record.failed_serial),
                           findings=record.failed_only_in_parallel,
                           gil_reenabled=record.gil_reenabled,
                           gil_reenabled_after=record.gil_reenabled_after,
                           note=record.note,
                           parallel_over_serial=round(record.parallel_seconds
                                                      / record.serial_seconds, 2)
                           if record.serial_seconds else None)
            except FtforgeError as exc:
                row.update(status="build-failed", note=exc.message.splitlines()[0][:240])
            row["minutes"] = round((time.monotonic() - started) / 60, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    ran = [r for r in rows if r.get("collected")]
    ratios = [r["parallel_over_serial"] for r in ran if r.get("parallel_over_serial")]
    summary = {
        "packages": len(rows),
        "tests_ran": len(ran),
        "no_tests": [r["package"] for r in rows if r.get("status") == "no-tests"],
        "not_run": {r["package"]: r.get("note", "") for r in rows
                    if r.get("status") in ("error", "build-failed")},
        "findings": {r["package"]: r["findings"] for r in ran if r.get("findings")},
        "gil_reenabled_at_run_time": [r["package"] for r in ran if r.get("gil_reenabled")],
        "minutes_per_package": round(statistics.mean(r["minutes"] for r in rows), 2)
        if rows else None,
        "parallel_over_serial_median": statistics.median(ratios) if ratios else None,
        "threads": args.threads, "iterations": args.iterations,
    }
    print(json.dumps(summary, indent=2))
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / ("stress_subset.json" if args.only else "stress.json")).write_text(
        json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
