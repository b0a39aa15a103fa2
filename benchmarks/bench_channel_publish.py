"""Publishing into a channel of 5,000 packages: audit + publish vs py-rattler's index alone.

    .venv/bin/python benchmarks/bench_channel_publish.py [--packages 5000]

Generates N small, valid packages (synthetic, half noarch, half linux-64
free-threaded/GIL extension-shaped), then in the same process:

1. baseline: ``rattler.index.index_fs`` alone on a copy of them (force);
2. ``ftforge.channel.publish.publish`` of all of them into an empty channel
   (stage, audit every package, move, shadow index, atomic promotion, page);
3. the audit alone over the same packages;
4. publishing one more package into the N-package channel (median of 5).

Ratios are against the baseline measured in this run.
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

from ftforge.channel.audit import audit_package
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.variants import PythonVariant


def make(i: int) -> SyntheticPackage:
    if i % 2 == 0:
        return SyntheticPackage(
            name=f"pure-{i}", version="1.0", build="pyh4616a5c_0", noarch="python",
            depends=["python >=3.10"],
            files={f"site-packages/pure_{i}/__init__.py": f"VALUE = {i}\n".encode()})
    variant = PythonVariant(series="3.13", freethreaded=(i % 4 == 1))
    return SyntheticPackage(
        # i % 4 == 1 (free-threaded) and i % 4 == 3 (GIL) are twins: a channel is variant-complete
        name=f"ext-{i - i % 4}", version="1.0",
        build=variant.extension_build_string("abcdef0", 0),
        subdir="linux-64", depends=[variant.python_abi_spec],
        files={f"{variant.site_packages}/ext_{i}/__init__.py": f"VALUE = {i}\n".encode()})


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ftforge-bench-publish-"))
    try:
        source = work / "packages"
        gen_s, paths = timed(lambda: [write_package(make(i), source / str(i % 50))
                                      for i in range(args.packages)])
        print(f"generated {len(paths)} packages in {gen_s:.1f}s")

        from rattler.index import index_fs

        plain = work / "plain"
        for sub in ("noarch", "linux-64"):
            (plain / sub).mkdir(parents=True)
        for p in paths:
            sub = "noarch" if p.name.startswith("pure-") else "linux-64"
            shutil.copyfile(p, plain / sub / p.name)
        index_s, _ = timed(lambda: asyncio.run(index_fs(plain, write_zst=True,
                                                        write_shards=True, force=True)))
        audit_s, reports = timed(lambda: [audit_package(p) for p in paths])
        assert all(r.ok for r in reports)
        channel = work / "channel"
        publish_s, result = timed(lambda: publish(paths, channel))
        assert len(result.added) == len(paths)

        one = []
        for k in range(5):
            extra = write_package(make(args.packages + 4 * k + 3), work / f"extra{k}")  # GIL
            seconds, _ = timed(lambda extra=extra: publish([extra], channel))
            one.append(seconds)
        one_s = statistics.median(one)

        n = len(paths)
        print(f"\nchannel publish benchmark, {n} packages (same process, same packages)")
        print(f"  baseline index_fs alone:        {index_s:7.2f}s  ({n / index_s:7.0f} pkg/s)")
        print(f"  audit alone:                    {audit_s:7.2f}s  ({n / audit_s:7.0f} pkg/s)"
              f"  audit/index = {audit_s / index_s:.2f}")
        print(f"  full publish (audit+index+...): {publish_s:7.2f}s  ({n / publish_s:7.0f} pkg/s)"
              f"  publish/index = {publish_s / index_s:.2f}")
        print(f"  one package into {n}: median {one_s:.3f}s of 5 "
              f"({', '.join(f'{s:.3f}' for s in one)})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
