"""Re-index a published channel so that readers never see a half-written index.

py-rattler's ``index_fs`` writes ``repodata.json`` in place. A channel that
is being served cannot be indexed that way: a reader (or a crash) in the
middle would see a truncated file. So the indexer runs on a *shadow* tree
(``.ftforge/index/<subdir>``, hard links to the published packages plus the
previous index, which ``index_fs`` reuses so only new packages are read), and
each index file is then promoted into the served subdir with ``os.replace``:
content-addressed shards first, then ``repodata_shards.msgpack.zst``, then
``repodata.json.zst``, and ``repodata.json`` last. Every file a reader can
open is whole, old or new.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from .layout import PACKAGE_SUFFIXES, internal_dir, served_subdirs

__all__ = ["INDEX_FILES", "read_repodata", "reindex"]

INDEX_FILES = ("repodata_shards.msgpack.zst", "repodata.json.zst", "repodata.json")
"""Promotion order: ``repodata.json`` is always the last file replaced."""


def _shadow_root(channel: Path) -> Path:
    return internal_dir(channel) / "index"


def _sync_shadow(channel: Path, subdir: str, exclude: frozenset[str]) -> None:
    """Make the shadow subdir hold exactly the served packages (hard links)."""
    served = channel / subdir
    shadow = _shadow_root(channel) / subdir
    shadow.mkdir(parents=True, exist_ok=True)
    want = {p.name for p in served.iterdir() if p.name.endswith(PACKAGE_SUFFIXES)} - exclude
    have = {p.name for p in shadow.iterdir() if p.name.endswith(PACKAGE_SUFFIXES)}
    for name in have - want:
        (shadow / name).unlink()
    for name in want:
        target = shadow / name
        if name in have and os.path.samefile(target, served / name):
            continue
        target.unlink(missing_ok=True)
        os.link(served / name, target)
    # A crash while index_fs wrote here may have left a broken index: drop it.
    repodata = shadow / "repodata.json"
    if repodata.exists() and read_repodata(repodata) is None:
        for name in INDEX_FILES:
            (shadow / name).unlink(missing_ok=True)


def read_repodata(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _replace_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


def _promote(channel: Path, subdir: str) -> None:
    shadow = _shadow_root(channel) / subdir
    served = channel / subdir
    shards = shadow / "shards"
    if shards.is_dir():
        (served / "shards").mkdir(exist_ok=True)
        for shard in shards.iterdir():
            target = served / "shards" / shard.name
            if not target.exists():  # content-addressed: an existing name is the same bytes
                _replace_copy(shard, target)
    for name in INDEX_FILES:
        if (shadow / name).exists():
            _replace_copy(shadow / name, served / name)
    # Leftover temporaries of a crashed promotion are never read; clear them.
    for stale in served.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def reindex(channel: Path, *, force: bool = False, exclude: set[str] = frozenset()) -> None:
    """Index every served subdir on the shadow tree, then promote atomically.

    ``exclude``: package file names to leave out of the index (being removed).
    """
    from rattler.index import index_fs

    subdirs = served_subdirs(channel)
    for subdir in subdirs:
        _sync_shadow(channel, subdir, frozenset(exclude))
    asyncio.run(index_fs(_shadow_root(channel), write_zst=True, write_shards=True, force=force))
    for subdir in subdirs:
        _promote(channel, subdir)
