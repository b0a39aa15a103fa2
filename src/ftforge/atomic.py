"""Replace a file so that a reader (or a crash) sees the old content or the new, never part.

The temporary file sits next to the target (same filesystem, so ``os.replace``
is atomic) and is named ``.<name>.<pid>.tmp``: dot-prefixed, so channel
servers never serve it, and recognisable, so a crashed writer's leftovers can
be cleared.

:func:`built_once` does the same for a cached directory: made once under a lock
in ``<name>.part``, marked complete, then renamed into place.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["built_once", "write_atomic"]


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    with open(tmp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def built_once(target: Path, marker: str, make: Callable[[Path], str]) -> Path:
    """``target``, a cached directory: if ``target/marker`` is missing, ``make(part)``
    fills ``<target>.part`` (made or cleared by nobody else: ``make`` creates it) and
    returns the marker's text; the marked part then replaces ``target``. One maker at a
    time (``<target>.lock``); the others wait, then reuse. A failed ``make`` leaves
    ``target`` as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / marker).is_file():
            part = target.with_name(target.name + ".part")
            shutil.rmtree(part, ignore_errors=True)
            text = make(part)
            (part / marker).write_text(text)
            shutil.rmtree(target, ignore_errors=True)
            part.rename(target)
    return target
