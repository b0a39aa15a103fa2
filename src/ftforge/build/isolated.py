"""One rattler-build variant built in a child process that can be ended.

py-rattler-build's ``run_build`` holds the GIL for the whole build: in the
process that calls it no Python code runs until it returns -- not a signal
handler, not another thread. A SIGTERM sent to ftforge alone (``kill PID``, a
supervisor, a CI timeout) waited for the build to finish, and a SIGKILL left the
build script (make, gcc) running. So the variant is built by a child Python
(:mod:`ftforge.pychild`) leading a process group of its own; this process reads
the child's progress events from a pipe, feeds them to the caller's progress
callback (the build log, the timeline, the progress display), and on Ctrl-C,
SIGTERM or any error while it waits ends the whole group -- the child, the build
script and everything it started -- before the interruption goes on.

The child renders the staged recipe again with the same variant matrix and
builds the variant whose variant values match (rendering is deterministic; a
mismatch is an error, not a guess).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TypeVar

from .. import pychild

__all__ = ["BuildJob", "BuildsStopped", "ChildBuildFailed", "end_every_child", "run_concurrently",
           "interrupt_once", "run_in_child", "stop_requested", "variant_identity"]

GRACE_SECONDS = 5.0
"""How long the build's process group gets between SIGTERM and SIGKILL."""
MAX_EVENT_BYTES = 1 << 20
"""A progress event longer than this (one log line) is cut."""


_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()
"""The build children running now (variants build concurrently, one per thread)."""
_stopping = threading.Event()
"""Set by :func:`end_every_child`: no build child starts after it, and a thread
waiting for a cache lock gives up (:func:`stop_requested`)."""


class BuildsStopped(Exception):
    """This thread's build was not started, or was ended: ftforge is being interrupted."""


def stop_requested() -> bool:
    return _stopping.is_set()


def end_every_child() -> None:
    """End every running build child's process group, all at once, and let no new one
    start: what the main thread does on Ctrl-C or SIGTERM while other threads wait for
    their children (a signal reaches the main thread only). Each waiting thread then
    sees its child gone and fails."""
    with _live_lock:
        _stopping.set()
        running = list(_live)
    _end_groups(running)


T = TypeVar("T")


def run_concurrently(tasks: list[Callable[[], T]], jobs: int, *,
                     on_failure: Callable[[BaseException], None] | None = None) -> list[T]:
    """Run ``tasks`` (each one waits on build children) at most ``jobs`` at a time; their
    results in order. With more than one job a task that fails does not stop the others
    -- what they build is kept; ``on_failure`` hears of each failure as it happens, and
    the first is raised once all are done. With one job the tasks run here, one after
    another, and the first failure stops them. Ctrl-C or SIGTERM (in the main thread)
    ends every build child -- a second one waits until that is done -- waits for the
    tasks to see it, and goes on."""
    _stopping.clear()
    if jobs <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]

    def reported(task: Callable[[], T]) -> T:
        try:
            return task()
        except BaseException as exc:
            if on_failure is not None and not stop_requested():
                on_failure(exc)
            raise

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ftforge-variant")
    futures: list = []
    with interrupt_once():
        try:
            for task in tasks:
                futures.append(pool.submit(reported, task))
            wait(futures)
        except BaseException:
            end_every_child()
            pool.shutdown(wait=True, cancel_futures=True)
            end_every_child()  # a child started as the first round ran
            _stopping.clear()  # every thread has seen it
            raise
    pool.shutdown(wait=True)
    for future in futures:
        if future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [future.result() for future in futures]


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """Around a wait for build children and the clean-up after it (main thread only):
    the first Ctrl-C, SIGTERM or SIGHUP goes to the handler it was meant for (which
    raises KeyboardInterrupt); any later one, until the block is done, is only noted --
    a second signal must not cut short the ending of the build groups -- and delivered
    once the handlers are back. (A signal mask would not do: the kernel hands a signal
    the main thread blocks to another thread, and CPython still runs the handler in
    the main thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: handler for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
              if (handler := signal.getsignal(signum)) not in (None, signal.SIG_IGN)}
    # (a C-level handler, None here, and an ignored signal are left as they are)
    fired: list[int] = []
    noted: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:
            noted.append(signum)
            return
        fired.append(signum)
        original = before[signum]
        if callable(original):
            original(signum, frame)
        raise KeyboardInterrupt

    for signum in before:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, original in before.items():
            signal.signal(signum, original)
        later = [signum for signum in dict.fromkeys(noted) if signum not in fired]
        if later:  # e.g. SIGTERM after a Ctrl-C: the exit status should say so
            signal.raise_signal(later[0])


class ChildBuildFailed(Exception):
    """rattler-build refused or failed the build (its message), or the child died."""


@dataclass(frozen=True)
class BuildJob:
    recipe: str
    """The staged recipe.yaml."""
    values: dict[str, list[str]]
    zip_keys: list[list[str]]
    variant: str
    """:func:`variant_identity` of the rendered variant to build."""
    output_dir: str
    channels: list[str]
    test: str
    keep_build: bool
    package_format: str


def variant_identity(rendered: object) -> str:
    """A rendered variant's output name and variant values (outputs of one recipe can
    share their values: python_abi and python-gil both use freethreading alone)."""
    name = rendered.recipe.package.name  # type: ignore[attr-defined]
    values = sorted(dict(rendered.variant).items())  # type: ignore[attr-defined]
    return json.dumps([str(name), values], default=str)


def _end_group(process: subprocess.Popen) -> None:
    _end_groups([process])


def _group_gone(process: subprocess.Popen) -> bool:
    try:  # the group is gone when no process is left in it
        os.killpg(process.pid, 0)
    except (ProcessLookupError, PermissionError):
        process.wait()
        return True
    process.poll()  # reap the child itself, so only the rest keeps the group
    return False


def _end_groups(processes: list[subprocess.Popen]) -> None:
    """SIGTERM the children's process groups, SIGKILL what is left of them after
    GRACE_SECONDS (all groups against one deadline), reap the children."""
    left = list(processes)
    for signum, grace in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, 30.0)):
        for process in left:
            try:
                os.killpg(process.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while left and time.monotonic() < deadline:
            left = [process for process in left if not _group_gone(process)]
            if left:
                time.sleep(0.05)
        if not left:
            return
    for process in left:
        process.wait()


def run_in_child(job: BuildJob, callback: object) -> None:
    """Build ``job`` in a child process; its progress goes to ``callback`` (an object
    with ``on_build_step``, ``on_log``, ``on_download_start`` like rattler-build's).
    Raises ChildBuildFailed with rattler-build's message, or with the child's last
    words if it died."""
    if _stopping.is_set():
        raise BuildsStopped("interrupted before the build started")
    with interrupt_once():
        child = pychild.start("ftforge.build.isolated", "_serve", new_session=True)
        with _live_lock:
            _live.add(child.process)
            stopped = _stopping.is_set()  # end_every_child ran as this child started
        try:
            if stopped:
                raise BuildsStopped("interrupted as the build started")
            assert child.process.stdin is not None
            child.process.stdin.write(json.dumps(asdict(job)).encode())
            child.process.stdin.close()
            outcome = _relay(child.answers, callback) or {}
            code = child.process.wait()
            if _stopping.is_set():  # ended by end_every_child: an interruption
                raise BuildsStopped("interrupted")
            if outcome.get("kind") == "error":
                raise ChildBuildFailed(str(outcome.get("message", "")))
            if outcome.get("kind") != "done" or code != 0:
                last = child.last_words()
                raise ChildBuildFailed(f"the build process ended with exit status {code}"
                                       + (f": {last}" if last else ""))
        finally:  # done, failed or interrupted: the group goes (with anything the build
            _end_group(child.process)  # script left in the background)
            child.close_streams()
            with _live_lock:
                _live.discard(child.process)


class _Event:
    def __init__(self, fields: dict) -> None:
        self.__dict__.update(fields)


def _relay(answers: IO[bytes], callback: object) -> dict | None:
    """Feed the child's events to ``callback`` until it says done or error (returned)."""
    while True:
        line = answers.readline(MAX_EVENT_BYTES)
        if not line:
            return None
        if not line.endswith(b"\n"):  # cut: drop the rest of the line
            while (more := answers.readline(MAX_EVENT_BYTES)) and not more.endswith(b"\n"):
                pass
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("kind")
        if kind in ("done", "error"):
            return event
        handler = getattr(callback, f"on_{kind}", None) if kind in (
            "build_step", "log", "download_start") else None
        if handler is not None:
            handler(_Event(event))


class _Writer:
    """The child's progress callback: every event one JSON line on the answer pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def _send(self, **fields: object) -> None:
        self.stream.write(json.dumps(fields) + "\n")
        self.stream.flush()

    def on_download_start(self, event) -> None:
        self._send(kind="download_start", url=str(event.url))

    def on_download_progress(self, event) -> None:
        pass

    def on_download_complete(self, event) -> None:
        pass

    def on_build_step(self, event) -> None:
        self._send(kind="build_step", step_name=str(event.step_name), message=str(event.message))

    def on_log(self, event) -> None:
        self._send(kind="log", message=str(event.message))


def _serve(answer_fd: int) -> None:
    """The child: one BuildJob (JSON on stdin), its events and outcome on ``answer_fd``."""
    # The build gets default signal dispositions whatever ftforge inherited or set: run
    # with SIGINT ignored (`nohup cmd &` from a script, cron), CPython's own tests in its
    # PGO training task fail; and ftforge ignores a second SIGTERM while it cleans up.
    # (A fresh Python has handlers of its own for SIGINT alone; every other signal is
    # SIG_DFL or what it inherited ignored -- SIGTERM, SIGQUIT, SIGHUP included.)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in signal.valid_signals():  # SIGPIPE stays: rattler-build resets it itself
        if signum not in (signal.SIGINT, signal.SIGPIPE, signal.SIGKILL, signal.SIGSTOP) \
                and signal.getsignal(signum) in (signal.SIG_IGN, None):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_DFL)
    # only this process writes events: the build's processes must not keep the pipe
    # open (ftforge reads until it closes)
    os.set_inheritable(answer_fd, False)
    from rattler_build import RattlerBuildError, ToolConfiguration

    from .driver import render
    from .variant_config import VariantMatrix

    answers = os.fdopen(answer_fd, "w", buffering=1)
    writer = _Writer(answers)
    job = BuildJob(**json.loads(sys.stdin.read()))
    rendered = render(Path(job.recipe), VariantMatrix(job.values, job.zip_keys))
    chosen = [v for v in rendered if variant_identity(v) == job.variant]
    if len(chosen) != 1:
        writer._send(kind="error", message=f"rendering {job.recipe} again gave "
                     f"{len(chosen)} variants for {job.variant}, not one")
        sys.exit(1)
    try:
        chosen[0].run_build(
            tool_config=ToolConfiguration(test_strategy=job.test, keep_build=job.keep_build),
            output_dir=Path(job.output_dir), channels=job.channels,
            progress_callback=writer, package_format=job.package_format)
    except RattlerBuildError as exc:
        writer._send(kind="error", message=str(exc))
        sys.exit(1)
    writer._send(kind="done")
