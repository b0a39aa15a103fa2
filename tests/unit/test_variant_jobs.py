"""Variants of one recipe built side by side: how many at once, and what a failure or an
interruption does to the others (the tasks here stand in for builds)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ftforge.build import isolated
from ftforge.build.driver import BuildRequest, variant_jobs
from ftforge.build.isolated import run_concurrently
from ftforge.errors import FtforgeError


def test_tasks_run_at_once_and_results_keep_their_order():
    both = threading.Barrier(2, timeout=30)  # each task waits for the other to start

    def task(value):
        both.wait()
        return value

    assert run_concurrently([lambda: task("a"), lambda: task("b")], 2) == ["a", "b"]


def test_one_job_runs_the_tasks_one_after_the_other_in_this_thread():
    seen = []
    run_concurrently([lambda: seen.append(threading.current_thread()) for _ in range(3)], 1)
    assert seen == [threading.main_thread()] * 3


def test_a_failure_waits_for_the_others_then_is_raised():
    finished = []

    def fails():
        raise ValueError("first variant failed")

    def slow():
        time.sleep(0.5)
        finished.append("slow")

    with pytest.raises(ValueError, match="first variant failed"):
        run_concurrently([fails, slow], 2)
    assert finished == ["slow"]  # the other variant's build was not thrown away


def test_an_interruption_ends_every_running_child(monkeypatch):
    """Ctrl-C / SIGTERM reach the main thread alone: it ends every build child (here, a
    stand-in that releases the waiting tasks) before it goes on."""
    release = threading.Event()
    ended = []
    monkeypatch.setattr(isolated, "end_every_child", lambda: (ended.append(1), release.set()))

    def waits_for_its_child():
        assert release.wait(30), "never released"

    real_wait = isolated.wait
    calls = []

    def wait(futures):  # the first wait is interrupted, as a signal in the main thread would
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_wait(futures)

    monkeypatch.setattr(isolated, "wait", wait)
    with pytest.raises(KeyboardInterrupt):
        run_concurrently([waits_for_its_child, waits_for_its_child], 2)
    assert ended == [1] and release.is_set()


GIB = 1 << 30


@pytest.mark.parametrize(("env", "cpus", "memory", "expected"), [
    (None, 2, 22 * GIB, 2), (None, 16, 64 * GIB, 2), (None, 1, 22 * GIB, 1),
    (None, 2, 7 * GIB, 1), (None, 2, 0, 1), ("3", 2, 0, 3), ("1", 8, 64 * GIB, 1),
])
def test_variant_jobs_default_and_environment(monkeypatch, env, cpus, memory, expected):
    """Two at once with two CPUs and memory for two interpreter builds; the environment
    variable overrides; the request's own value overrides both."""
    from ftforge.build import driver

    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    monkeypatch.setattr(driver, "_available_memory", lambda: memory)
    if env is None:
        monkeypatch.delenv("FTFORGE_VARIANT_JOBS", raising=False)
    else:
        monkeypatch.setenv("FTFORGE_VARIANT_JOBS", env)
    assert variant_jobs(BuildRequest(Path("r"), Path("o"))) == expected
    assert variant_jobs(BuildRequest(Path("r"), Path("o"), variant_jobs=1)) == 1


def test_available_memory_is_read_from_this_machine():
    from ftforge.build.driver import _available_memory

    assert _available_memory() > 0


@pytest.mark.parametrize("env", ["0", "two", "-1", "1.5"])
def test_a_bad_variant_jobs_setting_is_one_line(monkeypatch, env):
    monkeypatch.setenv("FTFORGE_VARIANT_JOBS", env)
    with pytest.raises(FtforgeError, match="FTFORGE_VARIANT_JOBS"):
        variant_jobs(BuildRequest(Path("r"), Path("o")))
