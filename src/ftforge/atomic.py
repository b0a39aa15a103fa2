"""Replace a file so that a reader (or a crash) sees the old content or the new, never part.

The temporary file sits next to the target (same filesystem, so ``os.replace``
is atomic) and is named ``.<name>.<pid>.tmp``: dot-prefixed, so channel
servers never serve it, and recognisable, so a crashed writer's leftovers can
be cleared.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomic"]


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
