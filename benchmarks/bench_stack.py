"""The self-contained interpreter's costs, measured in one run and reported as ratios.

(a) cold build of the native stack (openssl, ca-certificates, libffi, zlib, xz,
    bzip2, sqlite, ncurses, readline, expat, libuuid) in a private, empty builds
    cache, and the warm rebuild (every recipe a cache hit); ratio warm/cold.
(b) ``ftforge demo`` cold (private empty cache: stack + both interpreters + pip)
    and warm (same cache); ratio warm/cold; goals: cold <= 15 min on 2 cores,
    warm < 1 min.  --skip-demo leaves it out (the cold demo is the expensive part).
(c) size on disk of a python-freethreading environment, self-contained (the
    default profile) vs the system profile; ratio. Built with the real cache
    (sizes do not depend on build times), before (a) and (b).

    .venv/bin/python benchmarks/bench_stack.py [--skip-stack] [--skip-demo] [--skip-size] [--work DIR]

For (a) and (b) the source mirror is shared with the real cache (seeding is not
a build); every package build is cold. Run it on an otherwise idle machine:
2 cores shared with other work make every figure larger.
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


def _private_cache(work: Path) -> None:
    from ftforge import paths

    os.environ.setdefault("FTFORGE_SOURCE_MIRROR", str(paths.source_mirror_dir()))
    os.environ["FTFORGE_CACHE"] = str(work / "cache")


def stack_times(work: Path) -> dict[str, float]:
    from ftforge.build.stack import build_stack

    out = {}
    for label in ("cold", "warm"):
        started = time.monotonic()
        result = build_stack(work / f"stack-{label}" / "output")
        out[label] = time.monotonic() - started
        assert result.cached == (label == "warm"), f"{label} run: cached={result.cached}"
    return out


def demo_times(work: Path) -> dict[str, float]:
    out = {}
    for label in ("cold", "warm"):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "ftforge.cli", "demo", "--work-dir",
                        str(work / "demo")], check=True, env=os.environ.copy(),
                       stdout=subprocess.DEVNULL)
        out[label] = time.monotonic() - started
    return out


def _du(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def env_sizes(work: Path) -> dict[str, int]:
    """python-freethreading (+ its run dependencies) for each profile, in bytes."""
    from ftforge.bootstrap import build_bootstrap, write_bootstrap_recipes
    from ftforge.channel.publish import publish
    from ftforge.environments import create
    from ftforge.variants import PythonVariant

    sizes = {}
    ft = PythonVariant.ft()
    for profile in ("conda-forge", "system"):
        base = work / f"size-{profile}"
        dirs = write_bootstrap_recipes(base / "recipes")
        built = build_bootstrap(dirs, base / "output",
                                overrides=(("python_deps_profile", profile),))
        publish(built.packages, base / "channel")
        prefix = base / "env"
        create(prefix, [str(base / "channel")], [ft.metapackage], force=True)
        sizes[profile] = _du(prefix)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-stack", action="store_true")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-size", action="store_true")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ftforge-bench-stack-"))
    results: dict[str, object] = {"cpus": os.cpu_count()}
    if not args.skip_size:
        sizes = env_sizes(work)
        results["env_bytes"] = sizes
        print(f"(c) python-freethreading env: self-contained {sizes['conda-forge'] / 2**20:.1f} "
              f"MiB, system profile {sizes['system'] / 2**20:.1f} MiB, ratio "
              f"{sizes['conda-forge'] / sizes['system']:.2f}")
    _private_cache(work)
    if not args.skip_stack:
        stack = stack_times(work)
        results["stack"] = stack
        print(f"(a) native stack: cold {stack['cold']:.0f} s, warm {stack['warm']:.1f} s, "
              f"warm/cold {stack['warm'] / stack['cold']:.3f}")
    if not args.skip_demo:
        shutil.rmtree(work / "cache" / "builds", ignore_errors=True)  # the demo starts cold
        demo = demo_times(work)
        results["demo"] = demo
        print(f"(b) ftforge demo: cold {demo['cold'] / 60:.1f} min (goal <= 15), warm "
              f"{demo['warm']:.0f} s (goal < 60), warm/cold {demo['warm'] / demo['cold']:.3f}")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
