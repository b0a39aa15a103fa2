"""The audit spread over worker processes, for large publishes.

Packages are audited independently (:func:`ftforge.channel.audit.audit_package`),
so with enough of them (:data:`POOL_MIN_PACKAGES`, :data:`POOL_MIN_BYTES`) and
more than one CPU they are audited in batches by one worker process per CPU. A
worker is a new ``python -P -c`` importing this module (:func:`_serve`): it reads
batches as length-prefixed pickles on its stdin and writes the reports back on a
pipe of its own (its stdout and stderr go to a temporary file, so nothing a
``sitecustomize`` or an import prints is mistaken for an answer); it runs nothing
of the caller's, and ``-P`` keeps the current directory off its ``sys.path`` (a
``queue.py`` or ``pickle.py`` where the user stands is not imported). It finds
ftforge where the caller did (:mod:`ftforge.pychild`). If workers cannot be started (no
file descriptors left, say), the packages are audited here.

Not :mod:`multiprocessing`: its ``spawn`` and ``forkserver`` start methods run
the caller's main script again in every worker, so a script without an
``if __name__ == "__main__":`` guard would publish again from each worker and
wait forever on the channel lock its parent holds; ``fork`` is unsafe in a
process with threads (the staging copies, rich's refresh thread).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import queue
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from .. import pychild
from ..errors import ChannelError
from ..limits import ArchiveLimits
from .audit import AuditReport, Limits, audit_package

__all__ = ["POOL_MIN_BYTES", "POOL_MIN_PACKAGES", "audit_each"]

POOL_MIN_PACKAGES = 1000
"""From this many packages, the audit is spread over worker processes ..."""
POOL_MIN_BYTES = 64 << 20
"""... or from this many bytes of packages. Starting a worker costs about 0.2 s of
CPU (a new interpreter importing the audit); the audit reads ~0.5 ms per small
package and roughly 100-200 MB/s of larger ones, so below both thresholds (about
0.5 s of auditing) the pool would cost more than it saves."""
BATCHES_PER_WORKER = 8
"""Packages go to the workers in this many batches each: few messages between
processes, and enough batches that one large package does not hold the rest back."""
_HEADER = struct.Struct(">Q")
MAX_ANSWER_BYTES = 1 << 30
"""An answer longer than this is not one (a worker's reports for a batch are far
smaller): the worker is treated as dead."""


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pool_workers(paths: list[Path], sized_by: list[Path] | None) -> int:
    """How many worker processes to audit ``paths`` with (0: audit them here); the
    bytes are counted on ``sized_by`` (default: ``paths``)."""
    cpus = _cpus()
    if cpus < 2 or len(paths) < 2 or not sys.executable:
        return 0
    if len(paths) < POOL_MIN_PACKAGES:
        total = 0
        for path in sized_by or paths:
            try:
                total += path.stat().st_size
            except OSError:
                pass  # the audit itself reports it
        if total < POOL_MIN_BYTES:
            return 0
    return min(cpus, len(paths))


def audit_each(paths: list[Path], limits: ArchiveLimits = Limits(), *,
               subdirs_here: list[str | None] | None = None,
               ready: Callable[[Path], Path] | None = None,
               sized_by: list[Path] | None = None) -> Iterator[AuditReport]:
    """:func:`audit_package` on each of ``paths``, the reports in the same order.

    In worker processes when there is enough work (the bytes counted on
    ``sized_by`` if given, e.g. the originals of staged copies). ``ready`` is
    called with each path, in order, before that path is read or handed to a
    worker (it may wait for a staged copy). A worker
    that dies (killed, out of memory) raises a :class:`ChannelError`: nothing is
    published on a partial audit.
    """
    heres = subdirs_here or [None] * len(paths)
    started = _start(_pool_workers(paths, sized_by))
    if not started:
        for path, here in zip(paths, heres):
            yield audit_package(ready(path) if ready else path, limits, subdir_here=here)
        return
    workers = len(started)
    size = max(1, len(paths) // (workers * BATCHES_PER_WORKER))
    batches = [list(zip(paths[i:i + size], heres[i:i + size]))
               for i in range(0, len(paths), size)]
    idle: queue.Queue[_Worker] = queue.Queue()
    for worker in started:
        idle.put(worker)
    # the limits as plain ArchiveLimits: a subclass defined in the caller's script
    # could not be unpickled in a worker
    plain = ArchiveLimits(**{f.name: getattr(limits, f.name)
                             for f in dataclasses.fields(ArchiveLimits)})
    threads = ThreadPoolExecutor(max_workers=workers)
    futures = []
    finished = False
    try:
        def run(batch: list[tuple[Path, str | None]]) -> list[AuditReport]:
            worker = idle.get()
            try:
                return worker.audit(batch, plain)
            finally:
                idle.put(worker)

        for batch in batches:
            for path, _ in batch:
                if ready:
                    ready(path)
            futures.append(threads.submit(run, batch))
        for future in futures:
            try:
                yield from future.result()
            except _WorkerDied as died:
                raise ChannelError(
                    f"auditing {len(paths)} packages: a worker process died ({died}); "
                    "nothing was published",
                    hint="the worker's last error is in parentheses; unless a package "
                    "caused it, fix that (memory, process or file limits, the Python "
                    "environment) and run again; else audit those packages one by one "
                    "with `ftforge channel audit PACKAGE`") from None
        finished = True
    finally:
        # An error, Ctrl-C or a caller that stopped reading: batches not started are
        # dropped and the workers killed (the threads waiting on them see the end of
        # their output), then the threads are joined; on success, workers are told to
        # end (end of input) and waited for.
        for future in futures:
            future.cancel()
        for worker in started:
            worker.close(kill=not finished)
        threads.shutdown(wait=True, cancel_futures=True)


def _start(count: int) -> list[_Worker]:
    """``count`` workers, or none if they cannot all be started (too many open
    files, no processes left, ...): the caller then audits here."""
    started: list[_Worker] = []
    try:
        for _ in range(count):
            started.append(_Worker())
    except OSError:
        for worker in started:
            worker.close(kill=True)
        return []
    return started


class _WorkerDied(Exception):
    pass


class _Worker:
    """One audit worker; its stdout and stderr go to a private temporary file, read
    back for the error if it dies; its answers come on a pipe of their own."""

    def __init__(self) -> None:
        self.child = pychild.start("ftforge.channel.audit_pool", "_serve")
        self.process = self.child.process
        self.answers = self.child.answers

    def audit(self, batch: list[tuple[Path, str | None]], limits: ArchiveLimits
              ) -> list[AuditReport]:
        which = (batch[0][0].name if len(batch) == 1
                 else f"one of {batch[0][0].name} ... {batch[-1][0].name}")
        try:
            _send(self.process.stdin, (limits, batch))
            reports = _receive(self.answers)
        except Exception as exc:  # a broken pipe, a short or garbled answer: the same
            raise _WorkerDied(f"auditing {which}: {self._why(exc)}") from None
        if not isinstance(reports, list) or len(reports) != len(batch):
            raise _WorkerDied(f"auditing {which}: it answered with something other than "
                              "the reports")
        return reports

    def _why(self, exc: BaseException) -> str:
        code = self.process.poll()
        if code is None:
            try:
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        last = self.child.last_words()
        why = f"exit status {code}" if code is not None else type(exc).__name__
        return f"{why}: {last}" if last else why

    def close(self, *, kill: bool = False) -> None:
        try:
            if kill:
                self.process.kill()
            elif self.process.stdin:
                self.process.stdin.close()  # end of input: the worker exits
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            self.child.close_streams()


def _send(stream: IO[bytes] | None, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    assert stream is not None
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes] | None) -> object:
    assert stream is not None
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the worker closed its output")
    (length,) = _HEADER.unpack(header)
    if length > MAX_ANSWER_BYTES:
        raise EOFError(f"a message of {length} bytes is not an answer")
    data = stream.read(length)
    if len(data) < length:
        raise EOFError("the worker closed its output mid-answer")
    return pickle.loads(data)


def _serve(answer_fd: int) -> None:
    """The worker's loop: a batch in (stdin), its reports out (``answer_fd``),
    until stdin ends."""
    answers = os.fdopen(answer_fd, "wb")
    requests = sys.stdin.buffer
    while True:
        try:
            limits, batch = _receive(requests)
        except EOFError:
            return
        _send(answers, [audit_package(Path(path), limits, subdir_here=here)
                        for path, here in batch])
