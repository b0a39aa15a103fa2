"""Cold first runs: what an optimized interpreter costs the first `scripts/demo` and
`scripts/test`, measured in one run.

(a) the native stack (openssl, sqlite, ...) built cold in a private, empty cache
    -- every cold demo and test run starts with it;
(b) for each interpreter optimization (``--optimization``, default ``pgo-lto-bolt``,
    the published build that the demo and the tests build, and ``none``, plain
    -O3): ``ftforge demo --optimization X`` in a
    private cache holding only (a)'s stack -- both interpreters, pip, publish,
    install, workload -- then once more warm. A cold demo of X takes (a) + (b, X);
    the PGO cost is (b, X) - (b, none);
(c) with ``--test``: the whole ``scripts/test`` in a private, empty cache (what a
    CI runner without a cache does), wall time and pytest's summary line.

    .venv/bin/python benchmarks/bench_cold_runs.py [--optimization pgo-lto-quick ...] [--test]
    .venv/bin/python benchmarks/bench_cold_runs.py --test-only   # (c) alone: cold_test.json

The source mirror is shared with the real cache (downloads are not builds).
Run it on an otherwise idle machine: every figure is a wall time.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env(cache: Path) -> dict[str, str]:
    from ftforge import paths

    return {**os.environ, "FTFORGE_SOURCE_MIRROR": str(paths.source_mirror_dir()),
            "FTFORGE_CACHE": str(cache)}


def stack_cold(work: Path) -> float:
    """Seconds to build the native stack into ``work/stack-cache`` (empty before)."""
    cache = work / "stack-cache"
    started = time.monotonic()
    subprocess.run([sys.executable, "-c",
                    "import sys; from pathlib import Path; from ftforge.build.stack import "
                    "build_stack; build_stack(Path(sys.argv[1]))", str(work / "stack-out")],
                   check=True, env=_env(cache), stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def demo_given_stack(work: Path, optimization: str) -> dict[str, float]:
    """Cold and warm ``ftforge demo`` in a copy of the stack-only cache."""
    cache = work / f"cache-{optimization}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(work / "stack-cache", cache, symlinks=True)
    out = {}
    for label in ("cold", "warm"):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "ftforge.cli", "demo", "--work-dir",
                        str(work / f"demo-{optimization}"), "--optimization", optimization],
                       check=True, env=_env(cache), stdout=subprocess.DEVNULL)
        out[label] = time.monotonic() - started
    return out


def test_cold(work: Path) -> dict[str, object]:
    cache = work / "test-cache"
    started = time.monotonic()
    result = subprocess.run([str(REPO / "scripts" / "test"), "-q", "-p", "no:cacheprovider",
                             "--durations=15",
                             f"--basetemp={work / 'pytest'}"], env=_env(cache),
                            capture_output=True, text=True)
    seconds = time.monotonic() - started
    (work / "test.log").write_text(result.stdout + result.stderr)  # --durations, failures
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    return {"seconds": seconds, "exit": result.returncode, "summary": summary}


def _stack_and_demos(work: Path, optimizations: list[str]) -> dict[str, object]:
    """(a) and (b): the stack cold, then per optimization a cold and a warm demo."""
    results: dict[str, object] = {"stack_cold_s": stack_cold(work)}
    print(f"(a) native stack, cold: {results['stack_cold_s'] / 60:.1f} min", flush=True)
    demos = {}
    for optimization in optimizations:
        demos[optimization] = demo_given_stack(work, optimization)
        d = demos[optimization]
        whole = (results["stack_cold_s"] + d["cold"]) / 60
        print(f"(b) demo --optimization {optimization}: cold given the stack "
              f"{d['cold'] / 60:.1f} min (cold demo {whole:.1f} min), warm {d['warm']:.0f} s",
              flush=True)
    results["demo"] = demos
    if "none" in demos:
        for optimization, d in demos.items():
            if optimization != "none":
                print(f"    PGO cost of {optimization}: "
                      f"{(d['cold'] - demos['none']['cold']) / 60:+.1f} min, "
                      f"{d['cold'] / demos['none']['cold']:.2f}x the -O3 demo (given the stack)")
    return results


def main() -> None:
    from ftforge.recipes.python import DEFAULT_OPTIMIZATION, OPTIMIZATIONS

    parser = argparse.ArgumentParser()
    parser.add_argument("--optimization", action="append", choices=OPTIMIZATIONS)
    parser.add_argument("--test", action="store_true", help="also a cold scripts/test")
    parser.add_argument("--test-only", action="store_true",
                        help="only (c): a cold scripts/test (the stack included), no demos")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ftforge-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    if not args.test_only:
        results.update(_stack_and_demos(work, args.optimization or [DEFAULT_OPTIMIZATION, "none"]))
    if args.test or args.test_only:
        results["test"] = test_cold(work)
        t = results["test"]
        print(f"(c) scripts/test, cold: {t['seconds'] / 60:.1f} min, exit {t['exit']}: "
              f"{t['summary']}", flush=True)
    results["loadavg_end"] = os.getloadavg()
    name = "cold_test.json" if args.test_only else "cold_runs.json"
    out = REPO / "benchmarks" / "results" / name
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
