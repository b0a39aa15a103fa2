"""What reading an ``oci://`` channel's repodata again on every solve costs.

    nice -n 10 .venv/bin/python benchmarks/bench_oci_revalidation.py [--packages 20000] [--repeat 7]

(root: the test registry listens on 127.0.0.1:443, see tests/servers.py.)

A registry serves the repodata blob with ``Cache-Control: max-age=31536000``,
and py-rattler's cache took that for the channel's own freshness: a channel
pushed again stayed invisible for a year. ftforge's solves now read ``oci://``
channels with ``cache_action="no-cache"`` (``ftforge.environments.REVALIDATED_SCHEMES``;
py-rattler 0.28 has no "revalidate" action, so no 304 either). This measures,
in one process against the real test registry, median dry-run solves of one
package from a channel whose noarch repodata lists N records:

1. baseline: the old behaviour (``REVALIDATED_SCHEMES = ()``), warm cache: the
   solve reads the cached repodata and asks the registry nothing;
2. now: every solve fetches the manifest and the repodata blob again.

Printed: both medians (wall and this process's CPU), the ratio now/baseline,
the size of the ``repodata.json.zst`` blob fetched per solve and subdir.
The repodata is pushed with ``ftforge.channel.oci``'s own repodata push (the
records name files that are not in the registry: a dry run never fetches them).

Results (2 cores shared, load average 2.7-3.6, loopback registry, commit after
1c0fec5; ``nice -n 10 .venv/bin/python benchmarks/bench_oci_revalidation.py
--packages N --repeat 7``):

=============  ============  ================  ================  ============
records        zst blob      baseline median   now median        now/baseline
=============  ============  ================  ================  ============
20,000 (x3)    233 kB        22.9-24.1 ms      76.5-87.4 ms      3.34-3.62 wall,
                                                                 1.77-2.19 CPU
100,000        1,172 kB      94.4 ms           234.5 ms          2.48 wall, 1.94 CPU
=============  ============  ================  ================  ============

So about 55-140 ms more per solve on loopback; over a real network add the
round trips (per subdir: the manifest read four times, a HEAD and the blob) and
the blob's transfer. A py-rattler with an "always revalidate" action would turn
the blob into a 304 (docker-registry answers ``If-None-Match`` with 304).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _records(n: int) -> dict:
    out = {}
    for i in range(n):
        name = f"pkg{i}"
        out[f"{name}-1.0-h4616a5c_0.conda"] = {
            "build": "h4616a5c_0", "build_number": 0, "depends": [], "license": "MIT",
            "md5": f"{i:032x}", "name": name, "noarch": "generic",
            "sha256": f"{i:064x}", "size": 1000 + i, "subdir": "noarch",
            "timestamp": 1795616212317, "version": "1.0",
        }
    return out


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from ftforge import environments
    from ftforge.channel import oci
    from ftforge.channel.repodata import _zstd
    from tests.servers import oci_registry

    work = Path(tempfile.mkdtemp(prefix="bench-oci-"))
    try:
        return _run(args, work, environments, oci, _zstd, oci_registry)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args, work: Path, environments, oci, _zstd, oci_registry) -> int:
    os.environ["FTFORGE_CACHE"] = str(work / "cache")
    channel = work / "ft"
    for subdir, records in (("noarch", _records(args.packages)), ("linux-64", {})):
        (channel / subdir).mkdir(parents=True)
        data = json.dumps({"info": {"subdir": subdir}, "packages": {},
                           "packages.conda": records}, separators=(",", ":")).encode()
        (channel / subdir / "repodata.json").write_bytes(data)
        (channel / subdir / "repodata.json.zst").write_bytes(
            _zstd().compress(data))
    zst = (channel / "noarch" / "repodata.json.zst").stat().st_size
    with oci_registry(work / "registry") as registry:
        os.environ["SSL_CERT_FILE"] = str(registry.ca_bundle)
        target = f"{registry.host}/bench-{os.getpid()}"
        pushed = oci.PushResult()
        store = oci._Registry(target, str(registry.ca_bundle))
        for subdir in ("noarch", "linux-64"):
            oci._push_repodata(store, channel, subdir, pushed, lambda _m: None)
        url = f"oci://{target}"
        spec = f"pkg{args.packages - 1}"

        def solve() -> None:
            assert [p.name for p in environments.solve([url], [spec], with_pip=False)] == [spec]

        saved = environments.REVALIDATED_SCHEMES
        environments.REVALIDATED_SCHEMES = ()
        try:
            solve()  # fills the cache
            before = [_timed(solve) for _ in range(args.repeat)]
        finally:
            environments.REVALIDATED_SCHEMES = saved
        now = [_timed(solve) for _ in range(args.repeat)]

    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in (("baseline", before), ("now", now))}
    print(f"{args.packages} records, noarch repodata.json.zst {zst / 1e3:.1f} kB, "
          f"{args.repeat} solves each")
    for key, (wall, cpu) in med.items():
        print(f"  {key:9s} median {wall * 1e3:8.1f} ms wall {cpu * 1e3:8.1f} ms CPU")
    print(f"  ratio now/baseline: {med['now'][0] / med['baseline'][0]:.2f} wall, "
          f"{med['now'][1] / med['baseline'][1]:.2f} CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
