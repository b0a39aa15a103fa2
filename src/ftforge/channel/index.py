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

A publish hands over the audit records of what it moved in: the shadow index
is then extended by :mod:`ftforge.channel.repodata` (what ``index_fs`` would
write, without reading the packages again) when that is safe, and ``index_fs``
runs otherwise; promotion is the same either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .audit import PackageRecord
from .durable import sync_paths, write_atomic_many
from .layout import PACKAGE_SUFFIXES, internal_dir, served_subdirs
from .repodata import unique_keys

__all__ = ["INDEX_FILES", "channel_records", "read_repodata", "reindex"]

INDEX_FILES = ("repodata_shards.msgpack.zst", "repodata.json.zst", "repodata.json")
"""Promotion order: ``repodata.json`` is always the last file replaced."""


def _shadow_root(channel: Path, subdir: str) -> Path:
    """Each subdir is indexed as its own little channel (``noarch/`` empty unless it is
    noarch), so a publish re-indexes only the subdirs it touched."""
    return internal_dir(channel) / "index" / subdir


def _sync_shadow(channel: Path, subdir: str, exclude: frozenset[str]) -> bool:
    """Make the shadow subdir hold exactly the served packages (hard links). One
    directory read each side: a link already in place has the served file's inode.
    True when the shadow's ``repodata.json`` and shard index are, byte for byte, the
    ones served (a rolled-back publish may have left others there)."""
    served = channel / subdir
    shadow = _shadow_root(channel, subdir) / subdir
    shadow.mkdir(parents=True, exist_ok=True)
    (_shadow_root(channel, subdir) / "noarch").mkdir(exist_ok=True)
    want = _package_inodes(served)
    for name in exclude:
        want.pop(name, None)
    have = _package_inodes(shadow)
    for name in have.keys() - want.keys():
        (shadow / name).unlink()
    for name, inode in want.items():
        if have.get(name) == inode:
            continue
        target = shadow / name
        target.unlink(missing_ok=True)
        os.link(served / name, target)
    # A crash while index_fs wrote here may have left a broken index: drop it. The
    # usual case, the shadow holding the served (whole, promoted) bytes, needs no parse.
    repodata = shadow / "repodata.json"
    if not repodata.exists():
        return False
    if _same_bytes(repodata, served / "repodata.json"):
        return _same_bytes(shadow / INDEX_FILES[0], served / INDEX_FILES[0])
    if read_repodata(repodata) is None:
        for name in INDEX_FILES:
            (shadow / name).unlink(missing_ok=True)
    return False


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _package_inodes(directory: Path) -> dict[str, int]:
    """``{file name: inode}`` of the package files in ``directory`` (no stat per file)."""
    if not directory.is_dir():
        return {}
    with os.scandir(directory) as entries:
        return {e.name: e.inode() for e in entries if e.name.endswith(PACKAGE_SUFFIXES)}


def _package_names(directory: Path) -> set[str]:
    return set(_package_inodes(directory))


def _stale(channel: Path, subdir: str) -> bool:
    """A subdir whose served packages differ from what its index was made from
    (a crashed publish moved files in) or that has no index yet."""
    if not (channel / subdir / "repodata.json").exists():
        return True
    shadow = _shadow_root(channel, subdir) / subdir
    return _package_names(channel / subdir) != _package_names(shadow)


def read_repodata(path: Path) -> dict | None:
    try:
        return _parse_repodata(path.read_bytes())
    except OSError:
        return None


def _parse_repodata(raw: bytes) -> dict | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def channel_records(channel: Path, subdirs: Iterable[str] | None = None, *,
                    digests: dict[str, str] | None = None,
                    parsed: dict[str, tuple[str, dict]] | None = None) -> list[dict]:
    """Every record in the channel's repodata, with ``subdir`` and ``fn`` set, subdir by
    subdir (``noarch`` first); ``subdirs``: only these. ``digests``: filled with the
    sha256 of each subdir's ``repodata.json`` as read (what the records came from);
    ``parsed``: with ``{subdir: (that sha256, the parsed repodata)}``, for each subdir
    whose ``repodata.json`` is an object naming no key twice in any object."""
    records = []
    wanted = None if subdirs is None else set(subdirs)
    for subdir in served_subdirs(channel):
        if wanted is not None and subdir not in wanted:
            continue
        try:
            raw = (channel / subdir / "repodata.json").read_bytes()
        except OSError:
            raw = b""
        digest = hashlib.sha256(raw).hexdigest() if digests is not None or parsed is not None \
            else ""
        if digests is not None:
            digests[subdir] = digest
        if parsed is not None:  # handed to the record writer: refused if a key is there twice
            try:
                repodata = json.loads(raw, object_pairs_hook=unique_keys)
            except ValueError:
                repodata = None
            if isinstance(repodata, dict) and repodata:
                parsed[subdir] = (digest, repodata)
            else:
                repodata = _parse_repodata(raw)
        else:
            repodata = _parse_repodata(raw)
        repodata = repodata or {}
        for key in ("packages", "packages.conda"):
            entries = repodata.get(key)
            if not isinstance(entries, dict):
                continue
            for fn, record in entries.items():
                if isinstance(record, dict):
                    records.append({**record, "fn": fn, "subdir": subdir})
    return records


def _promote(channel: Path, subdir: str) -> None:
    """New shards, then the index files in :data:`INDEX_FILES` order, each replaced
    atomically; every one of them is durable before the first replacement.

    A shard is content-addressed (its name is the sha256 of its bytes) and py-rattler
    writes each name once and never again (``test_rattler_never_rewrites_a_shard``
    pins that), so a new shard is hard-linked from the shadow instead of copied: one
    ``link`` + ``fsync`` + ``rename`` each, instead of reading and writing 2,500 small
    files on a first publish of 5,000 packages. The index files, which py-rattler
    rewrites every time, are copied."""
    shadow = _shadow_root(channel, subdir) / subdir
    served = channel / subdir
    shards = shadow / "shards"
    linked: list[tuple[Path, Path]] = []
    if shards.is_dir():
        (served / "shards").mkdir(exist_ok=True)
        have = set(os.listdir(served / "shards"))
        for name in sorted(os.listdir(shards)):
            if name in have or name.startswith("."):  # an existing name is the same bytes
                continue
            source, tmp = shards / name, served / "shards" / f".{name}.{os.getpid()}.tmp"
            os.chmod(source, 0o644)
            tmp.unlink(missing_ok=True)
            os.link(source, tmp)
            linked.append((tmp, served / "shards" / name))
        sync_paths(tmp for tmp, _ in linked)
        for tmp, final in linked:
            os.replace(tmp, final)
        if linked:
            sync_paths([served / "shards"])
    files: list[tuple[Path, bytes]] = []
    for name in INDEX_FILES:
        if (shadow / name).exists():
            files.append((served / name, (shadow / name).read_bytes()))
    write_atomic_many(files)
    # Leftover temporaries of a crashed promotion are never read; clear them.
    for folder in (served, served / "shards"):
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def reindex(channel: Path, *, subdirs: set[str] | None = None, force: bool = False,
            exclude: set[str] = frozenset(),
            added: dict[str, list[PackageRecord]] | None = None,
            written: dict[str, list[dict]] | None = None,
            known: dict[str, tuple[str, dict]] | None = None) -> list[str]:
    """Index served subdirs on their shadow trees, then promote atomically.

    ``subdirs``: only these (default: every served subdir, and any without an index);
    ``exclude``: package file names to leave out of the index (being removed);
    ``added``: ``{subdir: audit records}`` of the packages a publish just moved in.
    When those are the only change to a subdir whose index ``index_fs`` made, their
    records are added by :func:`ftforge.channel.repodata.extend` (py-rattler's index
    has no call that adds one record; ``index_fs`` re-lists and re-writes the whole
    subdir; the shadow index must be the served one, which the caller read before),
    and ``written`` receives ``{subdir: every record of its new index}``
    (as :func:`channel_records` reads them); ``known``: ``parsed`` from
    :func:`channel_records`, so the writer need not parse the index again (it
    changes those dicts); anything else
    is indexed by ``index_fs``. Returns the subdirs re-indexed (``subdirs`` and any
    left stale by a crash).
    """
    from .repodata import extend

    served = served_subdirs(channel)
    todo = [s for s in served if subdirs is None or s in subdirs or _stale(channel, s)]
    for subdir in todo:
        served_index = _sync_shadow(channel, subdir, frozenset(exclude))
        folder = _shadow_root(channel, subdir) / subdir
        fresh = None
        first = not (channel / subdir / "repodata.json").exists()
        mine = (added or {}).get(subdir, [])
        # a first index of packages all just audited (or of none: noarch is always
        # indexed), or packages added to the index served
        if added is not None and not force and not exclude and (first or (served_index and mine)):
            fresh = extend(folder, subdir, [(folder / r.filename, r) for r in mine],
                           first=first, known=(known or {}).get(subdir),
                           shards_to=channel / subdir)
        if fresh is None:
            _index_fs(channel, subdir, force)
        elif written is not None:
            written[subdir] = fresh
        _compress(folder / "repodata.json")
        _promote(channel, subdir)
    return todo


def _index_fs(channel: Path, subdir: str, force: bool) -> None:
    from rattler import Subdir
    from rattler.index import index_fs

    # rattler compresses repodata.json.zst at a level that costs ~1 s per 2,500 records
    # on every publish; the .zst is written by _compress at a level that keeps publishing
    # one package into a 5,000-package channel well under a second (benchmarks/).
    asyncio.run(index_fs(_shadow_root(channel, subdir), target_platform=Subdir(subdir),
                         write_zst=False, write_shards=True, force=force))


ZSTD_LEVEL = 9


def _compress(repodata: Path) -> None:
    """``repodata.json.zst`` beside the shadow's ``repodata.json``. Not synced: the
    shadow is re-made by every re-index, and :func:`_promote` makes the served copy
    durable."""
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd  # a dependency of conda-package-streaming

    target = repodata.with_name("repodata.json.zst")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(zstd.compress(repodata.read_bytes(), level=ZSTD_LEVEL))
    os.replace(tmp, target)
