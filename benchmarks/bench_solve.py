"""What the no-mixing constraints cost the solver, on channels padded to 5,000 packages.

    .venv/bin/python benchmarks/bench_solve.py [--packages 5000] [--repeat 7]

Builds (synthetic, metadata-faithful records: the interpreter, python_abi with
its constraint and track feature, the metapackages, extension packages per
ABI and noarch ones) a **base** channel and an **ft** channel with N packages
between them, then times py-rattler solves of the scenarios, median of
repeated solves, against the same request on base alone (no ft packages).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.environments import solve
from ftforge.variants import PythonVariant

GIL, FT = PythonVariant.gil("3.13"), PythonVariant.ft("3.13")


def interpreter(variant: PythonVariant, version: str) -> list[SyntheticPackage]:
    feature = {"track_features": "python-p-0"} if variant.freethreaded else {}
    abi_feature = {"track_features": "python_abi-p-0"} if variant.freethreaded else {}
    return [
        SyntheticPackage("python", version, variant.python_build_string("abc1234", 0),
                         subdir="linux-64", depends=[variant.python_abi_spec], **feature),
        SyntheticPackage("python_abi", variant.series, variant.python_abi_build_string(0),
                         constrains=[variant.python_abi_run_constraint], **abi_feature),
        SyntheticPackage(variant.metapackage, version, f"0_{variant.abi_tag}",
                         depends=[f"python {version}.*", variant.python_abi_spec]),
    ]


def extension(i: int, variant: PythonVariant) -> SyntheticPackage:
    return SyntheticPackage(f"ext{i}", "1.0", variant.extension_build_string("abcdef0", 0),
                            subdir="linux-64",
                            depends=[variant.python_abi_spec, "python >=3.13,<3.14.0a0"])


def noarch(i: int) -> SyntheticPackage:
    return SyntheticPackage(f"pure{i}", "1.0", "pyh4616a5c_0", noarch="python",
                            depends=["python >=3.10", f"ext{i % 50}"])


def build_channel(root: Path, packages: list[SyntheticPackage]) -> str:
    from rattler.index import index_fs

    for pkg in packages:
        write_package(pkg, root / pkg.subdir)
    (root / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    return str(root)


def median_solve(channels: list[str], specs: list[str], priority: str, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = solve(channels, specs, priority=priority)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    python = next(p for p in result if p.name == "python")
    return statistics.median(times), f"{python.version} {python.build}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ftforge-bench-solve-"))
    try:
        n_ext = args.packages // 4
        base = interpreter(GIL, "3.13.5") + [extension(i, GIL) for i in range(n_ext)] + \
            [noarch(i) for i in range(args.packages // 2)]
        ft = interpreter(FT, "3.13.6") + [extension(i, FT) for i in range(n_ext)]
        base_dir = build_channel(work / "base", base)
        ft_dir = build_channel(work / "ft", ft)
        print(f"channels: base {len(base)} packages, ft {len(ft)} packages "
              f"({len(base) + len(ft)} in all)")
        request = ["pure1", "pure2", "ext3"]
        scenarios = [
            ("python + 3 packages (flexible)", [base_dir, ft_dir], ["python", *request],
             "disabled", [base_dir], ["python", *request]),
            ("python + 3 packages (strict)", [base_dir, ft_dir], ["python", *request],
             "strict", [base_dir], ["python", *request]),
            ("python-freethreading + 3 (flexible)", [ft_dir, base_dir],
             [FT.metapackage, *request], "disabled", [base_dir], [GIL.metapackage, *request]),
        ]
        print(f"\nmedian of {args.repeat} solves; baseline = same request on base alone")
        for label, chans, specs, priority, base_chans, base_specs in scenarios:
            baseline, base_python = median_solve(base_chans, base_specs, priority, args.repeat)
            both, python = median_solve(chans, specs, priority, args.repeat)
            print(f"  {label:<38} {both * 1000:7.1f} ms (python {python})  "
                  f"baseline {baseline * 1000:7.1f} ms (python {base_python})  "
                  f"ratio {both / baseline:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
