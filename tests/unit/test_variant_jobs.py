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
    finished, heard = [], []

    def fails():
        raise ValueError("first variant failed")

    def slow():
        time.sleep(0.5)
        finished.append("slow")

    with pytest.raises(ValueError, match="first variant failed"):
        run_concurrently([fails, slow], 2, on_failure=heard.append)
    assert finished == ["slow"]  # the other variant's build was not thrown away
    assert [str(e) for e in heard] == ["first variant failed"]  # told as it happened


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
    assert ended and release.is_set()


GIB = 1 << 30


@pytest.mark.parametrize(("env", "cpus", "memory", "expected"), [
    (None, 2, 22 * GIB, 2), (None, 16, 64 * GIB, 2), (None, 1, 22 * GIB, 1),
    (None, 2, 7 * GIB, 1), (None, 2, 0, 1), ("3", 2, 0, 3), ("1", 8, 64 * GIB, 1),
])
def test_variant_jobs_default_and_environment(monkeypatch, env, cpus, memory, expected):
    """Two at once with two CPUs and memory for two interpreter builds; the environment
    variable overrides; the request's own value overrides both."""
    from ftforge.build import driver

    monkeypatch.setattr(driver, "_usable_cpus", lambda: cpus)
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


def test_no_build_child_starts_once_every_child_was_ended():
    """After an interruption ended the running children, a thread that was about to
    start one (between two outputs, or just out of a lock) gets BuildsStopped instead."""
    isolated.end_every_child()
    try:
        with pytest.raises(isolated.BuildsStopped):
            isolated.run_in_child(isolated.BuildJob(
                recipe="/nonexistent", values={}, zip_keys=[], variant="[]", output_dir="/",
                channels=[], test="skip", keep_build=False, package_format="conda"), object())
    finally:
        isolated._stopping.clear()


def test_a_thread_waiting_for_a_cache_lock_gives_up_when_interrupted(tmp_path):
    """Another ftforge holds the build's lock (here another open file of this process,
    which flock treats alike): the waiting thread leaves when the build is interrupted."""
    import fcntl

    from ftforge.build.driver import _key_lock

    cache_dir = tmp_path / "builds" / "abc"
    cache_dir.parent.mkdir()
    holder = open(cache_dir.with_name("abc.lock"), "w")
    fcntl.flock(holder, fcntl.LOCK_EX)
    outcome = []

    def waiter():
        try:
            with _key_lock(cache_dir):
                outcome.append("got the lock")
        except isolated.BuildsStopped as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        time.sleep(0.5)
        assert outcome == []  # still waiting
        isolated.end_every_child()
        thread.join(30)
    finally:
        isolated._stopping.clear()
        holder.close()
    assert not thread.is_alive()
    assert outcome and outcome[0].startswith("interrupted waiting for")


def test_every_group_is_told_to_stop_at_once(tmp_path, monkeypatch):
    """Two build groups that ignore SIGTERM: both get it together (not the second only
    after the first's grace period), then SIGKILL ends both."""
    import subprocess

    monkeypatch.setattr(isolated, "GRACE_SECONDS", 3.0)
    children = []
    for name in ("a", "b"):
        mark = tmp_path / name
        children.append(subprocess.Popen(
            ["bash", "-c", f"trap 'date +%s.%N > {mark}' TERM; touch {mark}.up; "
                           "while :; do sleep 0.1; done"], start_new_session=True))
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{n}.up").exists() for n in "ab"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    isolated._end_groups(children)
    assert all(child.poll() is not None for child in children)
    told = [float((tmp_path / n).read_text()) for n in "ab"]
    assert abs(told[0] - told[1]) < 2.0, told  # one after the other would be >= 3 s apart


def test_a_second_signal_during_the_clean_up_waits_for_its_end():
    """The first Ctrl-C interrupts the wait; a second one, during the clean-up that
    follows, does not cut it short (it is only noted)."""
    import os
    import signal

    done = []
    with pytest.raises(KeyboardInterrupt):
        with isolated.interrupt_once():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
                done.append("never: the first signal interrupts the wait")
            except KeyboardInterrupt:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # a handler that raised would do so here
                done.append("clean-up finished")
                raise
    assert done == ["clean-up finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_labels_name_only_what_tells_the_variants_apart():
    from ftforge.build.driver import _labels

    class Rendered:
        def __init__(self, **variant):
            self.variant = variant

    gil = [Rendered(freethreading="no", python_optimization="pgo-lto-bolt",
                    target_platform="linux-64")]
    ft = [Rendered(freethreading="yes", python_optimization="pgo-lto-bolt",
                   target_platform="linux-64")]
    assert _labels([gil, ft]) == ["freethreading=no", "freethreading=yes"]
    assert _labels([gil]) == [""]
    # python_abi (first) uses freethreading alone; python's other keys still count
    quick = [Rendered(freethreading="no"),
             Rendered(freethreading="no", python_optimization="pgo-lto-quick")]
    bolt = [Rendered(freethreading="no"),
            Rendered(freethreading="no", python_optimization="pgo-lto-bolt")]
    assert _labels([quick, bolt]) == ["python_optimization=pgo-lto-quick",
                                      "python_optimization=pgo-lto-bolt"]
