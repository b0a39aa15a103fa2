"""Durability for many files at once: the publisher's disk barrier.

A publish makes hundreds or thousands of files durable (package copies,
index shards) before the index that names them is promoted. One ``fsync``
after another costs a journal commit each (about 5 ms here, so 25 s for
5,000 packages); issued from a small pool of threads the same calls join the
same commits. Nothing is weakened: every file still gets its own ``fsync``
before anything that points to it is replaced, and the folders whose entries
changed are synced too, so a rename survives a crash.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["SYNC_THREADS", "sync_paths", "write_atomic_many"]

SYNC_THREADS = 16
"""Threads issuing ``fsync`` at once (they wait on the disk, not on a core)."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_paths(paths: Iterable[Path]) -> None:
    """``fsync`` every file or folder of ``paths`` (each once); the first error is raised."""
    unique = list(dict.fromkeys(Path(p) for p in paths))
    if len(unique) <= 1:
        for path in unique:
            _fsync(path)
        return
    with ThreadPoolExecutor(max_workers=min(SYNC_THREADS, len(unique))) as pool:
        for _ in pool.map(_fsync, unique):  # re-raises the first OSError
            pass


def write_atomic_many(files: Sequence[tuple[Path, bytes | str]], *, mode: int = 0o644,
                      modes: dict[Path, int] | None = None) -> None:
    """Write several files so that each is old or new, never part: every temporary
    copy is written and made durable first, then they replace their targets **in the
    given order** (a reader relying on that order -- shards before the index naming
    them -- sees it), then the folders are synced. Temporaries are named like
    :func:`ftforge.atomic.write_atomic`'s (``.<name>.<pid>.tmp``), so servers skip them
    and a crashed writer's leftovers are recognised."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            staged.append((tmp, path))
            payload = data.encode() if isinstance(data, str) else data
            with open(tmp, "wb") as handle:
                handle.write(payload)
            os.chmod(tmp, (modes or {}).get(path, mode))
        sync_paths(tmp for tmp, _ in staged)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
    sync_paths(path.parent for _, path in staged)
