"""A CPU-bound pure-Python workload, run inside an environment's interpreter.

Each thread does the same amount of work, so with 2 threads the total work
doubles: ``speedup = 2 * t(1 thread) / t(2 threads)``. Perfect scaling on two
free cores gives 2.0; a GIL serialises the threads and gives about 1.0.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SCRIPT", "ThreadScaling", "env_python", "measure"]

SCRIPT = r"""
import json, sys, sysconfig, threading, time

def burn(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total

def timed(threads, n):
    workers = [threading.Thread(target=burn, args=(n,)) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start

n, repeats = int(sys.argv[1]), int(sys.argv[2])
burn(n // 20)
one = min(timed(1, n) for _ in range(repeats))
two = min(timed(2, n) for _ in range(repeats))
gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
print(json.dumps({
    "version": sys.version.split()[0],
    "gil_enabled": gil,
    "py_gil_disabled": sysconfig.get_config_var("Py_GIL_DISABLED"),
    "one_thread_s": one,
    "two_threads_s": two,
}))
"""


@dataclass(frozen=True)
class ThreadScaling:
    version: str
    gil_enabled: bool
    py_gil_disabled: int | None
    one_thread_s: float
    two_threads_s: float

    @property
    def speedup(self) -> float:
        return 2 * self.one_thread_s / self.two_threads_s


def env_python(prefix: Path) -> Path:
    return prefix / "bin" / "python"


def measure(python: Path, *, iterations: int = 3_000_000, repeats: int = 3) -> ThreadScaling:
    result = subprocess.run(
        [str(python), "-c", SCRIPT, str(iterations), str(repeats)],
        capture_output=True, text=True, check=True,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return ThreadScaling(**data)
