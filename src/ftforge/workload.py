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

__all__ = ["OVERLAP_SCRIPT", "SCRIPT", "ThreadScaling", "env_python", "measure",
           "process_ceiling", "python_runs_in_two_threads_at_once"]

_BURN = r"""
def burn(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total
"""
"""The loop every measurement here runs: threads in :data:`SCRIPT`, processes in
:func:`process_ceiling` (one text, so the ceiling is of the very same work)."""

SCRIPT = r"""
import json, sys, sysconfig, threading, time
""" + _BURN + r"""
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


_ONE_BURN = r"""
import sys, time
n = int(sys.argv[1])
""" + _BURN + r"""
burn(n // 20)
start = time.perf_counter()
burn(n)
print(time.perf_counter() - start)
"""


def process_ceiling(python: Path, *, iterations: int = 3_000_000, repeats: int = 3) -> float:
    """The machine's own 2-way speedup on the same loop: 2 * t(1 process) / t(2 processes
    at once). Processes share nothing, so this is what the cores, their caches and the
    rest of the machine's load allow -- the ceiling a 2-thread speedup is measured against
    (two vCPUs of one physical core, or a busy neighbour, keep it below 2.0)."""
    def run(count: int) -> float:
        procs = [subprocess.Popen([str(python), "-c", _ONE_BURN, str(iterations)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(count)]
        times = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        if any(p.returncode for p in procs):
            raise RuntimeError(f"{python}: the workload failed")
        return max(times)
    one = min(run(1) for _ in range(repeats))
    two = min(run(2) for _ in range(repeats))
    return 2 * one / two


OVERLAP_SCRIPT = r"""
import sys, threading, time

# A thread that never blocks keeps the GIL for the whole switch interval: make it
# longer than the test, so only an interpreter without a GIL can run the other
# thread's Python code while this one spins. The OS still time-slices threads on
# a busy machine, so the answer does not depend on load -- only on the GIL.
sys.setswitchinterval(1000.0)
rounds, deadline = int(sys.argv[1]), float(sys.argv[2])
ball = [0]

def partner():
    end = time.monotonic() + deadline
    for i in range(rounds):
        while ball[0] != 2 * i + 1:      # wait for the serve, in Python code
            if time.monotonic() > end:
                return
        ball[0] = 2 * i + 2              # return it

t = threading.Thread(target=partner, daemon=True)
t.start()
end = time.monotonic() + deadline
done = 0
for i in range(rounds):
    ball[0] = 2 * i + 1
    while ball[0] != 2 * i + 2:          # spin without ever blocking
        if time.monotonic() > end:
            break
    else:
        done += 1
        continue
    break
print(done)
"""


def python_runs_in_two_threads_at_once(python: Path, *, rounds: int = 200,
                                       deadline_s: float = 20.0) -> bool:
    """True if two threads of ``python`` executed Python code at the same time.

    One thread serves a value and spins, never blocking; the other must answer
    from Python code while the first is still spinning, ``rounds`` times. With a
    GIL (and a switch interval longer than ``deadline_s``) the spinning thread
    never lets the other run, so not one round completes; without it the OS
    schedules both, loaded machine or not.
    """
    result = subprocess.run([str(python), "-c", OVERLAP_SCRIPT, str(rounds), str(deadline_s)],
                            capture_output=True, text=True, check=True,
                            timeout=deadline_s * 3 + 30)
    return int(result.stdout.strip().splitlines()[-1]) == rounds
