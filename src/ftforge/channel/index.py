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
from pathlib import Path

from ..atomic import write_atomic
from .layout import PACKAGE_SUFFIXES, internal_dir, served_subdirs

__all__ = ["INDEX_FILES", "channel_records", "read_repodata", "reindex"]

INDEX_FILES = ("repodata_shards.msgpack.zst", "repodata.json.zst", "repodata.json")
"""Promotion order: ``repodata.json`` is always the last file replaced."""


def _shadow_root(channel: Path, subdir: str) -> Path:
    """Each subdir is indexed as its own little channel (``noarch/`` empty unless it is
    noarch), so a publish re-indexes only the subdirs it touched."""
    return internal_dir(channel) / "index" / subdir


def _sync_shadow(channel: Path, subdir: str, exclude: frozenset[str]) -> None:
    """Make the shadow subdir hold exactly the served packages (hard links)."""
    served = channel / subdir
    shadow = _shadow_root(channel, subdir) / subdir
    shadow.mkdir(parents=True, exist_ok=True)
    (_shadow_root(channel, subdir) / "noarch").mkdir(exist_ok=True)
    want = _package_names(served) - exclude
    have = _package_names(shadow)
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


def _package_names(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {p.name for p in directory.iterdir() if p.name.endswith(PACKAGE_SUFFIXES)}


def _stale(channel: Path, subdir: str) -> bool:
    """A subdir whose served packages differ from what its index was made from
    (a crashed publish moved files in) or that has no index yet."""
    if not (channel / subdir / "repodata.json").exists():
        return True
    shadow = _shadow_root(channel, subdir) / subdir
    return _package_names(channel / subdir) != _package_names(shadow)


def read_repodata(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def channel_records(channel: Path) -> list[dict]:
    """Every record in the channel's repodata, with ``subdir`` and ``fn`` set."""
    records = []
    for subdir in served_subdirs(channel):
        repodata = read_repodata(channel / subdir / "repodata.json") or {}
        for key in ("packages", "packages.conda"):
            entries = repodata.get(key)
            if not isinstance(entries, dict):
                continue
            for fn, record in entries.items():
                if isinstance(record, dict):
                    records.append({**record, "fn": fn, "subdir": subdir})
    return records


def _promote(channel: Path, subdir: str) -> None:
    shadow = _shadow_root(channel, subdir) / subdir
    served = channel / subdir
    shards = shadow / "shards"
    if shards.is_dir():
        (served / "shards").mkdir(exist_ok=True)
        for shard in shards.iterdir():
            target = served / "shards" / shard.name
            if not target.exists():  # content-addressed: an existing name is the same bytes
                write_atomic(target, shard.read_bytes())
    for name in INDEX_FILES:
        if (shadow / name).exists():
            write_atomic(served / name, (shadow / name).read_bytes())
    # Leftover temporaries of a crashed promotion are never read; clear them.
    for stale in served.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def reindex(channel: Path, *, subdirs: set[str] | None = None, force: bool = False,
            exclude: set[str] = frozenset()) -> None:
    """Index served subdirs on their shadow trees, then promote atomically.

    ``subdirs``: only these (default: every served subdir, and any without an index);
    ``exclude``: package file names to leave out of the index (being removed).
    """
    from rattler import Subdir
    from rattler.index import index_fs

    served = served_subdirs(channel)
    todo = [s for s in served if subdirs is None or s in subdirs or _stale(channel, s)]
    for subdir in todo:
        _sync_shadow(channel, subdir, frozenset(exclude))
        # rattler compresses repodata.json.zst at a level that costs ~1 s per 2,500 records
        # on every publish; the .zst is written below at a level that keeps publishing one
        # package into a 5,000-package channel well under a second (benchmarks/).
        asyncio.run(index_fs(_shadow_root(channel, subdir), target_platform=Subdir(subdir),
                             write_zst=False, write_shards=True, force=force))
        _compress(_shadow_root(channel, subdir) / subdir / "repodata.json")
        _promote(channel, subdir)


ZSTD_LEVEL = 9


def _compress(repodata: Path) -> None:
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd  # a dependency of conda-package-streaming

    write_atomic(repodata.with_name("repodata.json.zst"),
                 zstd.compress(repodata.read_bytes(), level=ZSTD_LEVEL))
