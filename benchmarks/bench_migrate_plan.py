"""Planning the free-threaded migration over a generated set of feedstocks.

    .venv/bin/python benchmarks/bench_migrate_plan.py [--feedstocks 2000]

Synthetic but realistic: git repositories in conda-forge layout, half
meta.yaml / half recipe.yaml, about 30% noarch: python, 5% abi3, 10% with no
python at all (C libraries), each depending on 0-4 earlier feedstocks (a
preferential-attachment graph: a few, like numpy, are depended on by many).
Reports time to plan (best of --repeat runs, after one warm-up) and peak
Python memory (tracemalloc, in a run of its own), per 1,000 feedstocks, next
to the time to only read the recipes (the baseline, in the same process), and
the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftforge.migrate.plan import Migration, plan_migration  # noqa: E402
from ftforge.migrate.recipe_reader import read_recipe  # noqa: E402
from tests.feedstocks import REQUESTS, make_feedstock, meta_ext, v1_ext  # noqa: E402


def generate(root: Path, n: int, rng: random.Random) -> None:
    names: list[str] = []
    weights: list[int] = []
    for i in range(n):
        name = f"pkg{i:05d}"
        deps = sorted(set(rng.choices(names, weights=weights, k=rng.randint(0, 4)))) if names else []
        kind = rng.random()
        if kind < 0.30:
            text = REQUESTS.replace('"requests"', f'"{name}"').replace("- urllib3 >=1.21.1,<3",
                                                                         "\n    - ".join(
                ["- urllib3"] + deps))
            recipe_file = "meta.yaml"
        elif kind < 0.40:
            text, recipe_file = meta_ext(name, "1.0", host=deps).replace(
                "    - python\n    - pip\n    - setuptools\n", ""), "meta.yaml"
        elif i % 2:
            text, recipe_file = v1_ext(name, "1.0", host=deps, abi3=kind > 0.95), "recipe.yaml"
        else:
            text, recipe_file = meta_ext(name, "1.0", host=deps), "meta.yaml"
        make_feedstock(root, name, recipe_file, text)
        names.append(name)
        weights.append(1)
        for dep in deps:
            weights[names.index(dep)] += 3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feedstocks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs of reading and of planning; the best one counts "
                        "(the machine is shared: the best run is the least disturbed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ftforge-bench-migrate-"))
    try:
        start = time.perf_counter()
        generate(work, args.feedstocks, random.Random(313))
        print(f"generated {args.feedstocks} feedstocks (git repositories) in "
              f"{time.perf_counter() - start:.1f}s")
        migration = Migration.parse("python313t")
        plan_migration(work, migration)  # warm: worker processes started, files cached
        read_runs, plan_runs = [], []
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            for repo in sorted(work.iterdir()):
                read_recipe(repo, freethreading=True)
            read_runs.append(time.perf_counter() - start)
            start = time.perf_counter()
            plan = plan_migration(work, migration)
            plan_runs.append(time.perf_counter() - start)
        read_s, plan_s = min(read_runs), min(plan_runs)
        # memory in a run of its own: tracemalloc slows every allocation down
        tracemalloc.start()
        plan_migration(work, migration)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        per = 1000 / args.feedstocks
        counts = {c: len(v) for c, v in plan.by_category().items()}
        print(f"categories: {counts}; graph {plan.graph.number_of_nodes()} nodes, "
              f"{plan.graph.number_of_edges()} edges")
        print(f"read recipes only (baseline): {read_s * per:6.2f} s per 1,000 feedstocks "
              f"(best of {len(read_runs)})")
        print(f"full plan:                    {plan_s * per:6.2f} s per 1,000 feedstocks "
              f"(best of {len(plan_runs)}; ratio to baseline {plan_s / read_s:.2f})")
        print(f"peak Python memory of plan:   {peak / 2**20 * per:6.1f} MiB per 1,000 feedstocks")
        print(f"load average during the run:  {os.getloadavg()[0]:.1f} "
              f"({os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
