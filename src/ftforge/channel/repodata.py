"""Index the packages a publish adds from their audit, without reading them again.

py-rattler's ``index_fs`` reads every package it has not indexed yet (the whole
archive, for its hashes and ``info/``), re-lists the subdir and writes every
shard name again; py-rattler has no call that adds one record to an index. A
publish has just audited each package (``info/index.json``, sha256, size), so
this module writes what ``index_fs`` would write for them:

* the record itself is made by py-rattler (``PackageRecord.from_index_json``,
  the parser and field rules ``index_fs`` uses) and serialised by it; the
  fields ``index_fs`` adds on top (``md5``, ``indexed_timestamp``, and
  ``run_exports`` from a ``.conda``'s ``info/run_exports.json``, which the
  audit keeps) are added here;
* ``repodata.json`` is merged and written as ``index_fs`` writes it (compact
  JSON, keys sorted), ``repodata_shards.msgpack.zst`` and the shard of each
  added name are re-encoded the way its sharded-repodata writer does.

``tests/unit/test_channel_repodata.py`` compares both writers byte for byte
(``repodata.json``) and field for field (shards) on the same packages
(``.conda`` and ``.tar.bz2``, noarch and linux-64, run_exports, purls, a first
index and an incremental one), so they cannot drift apart unnoticed.

Measured (``benchmarks/bench_channel_publish.py``): one package into a
5,000-package channel without ``index_fs``'s fixed cost, and a first index of
2,500 packages in about half ``index_fs``'s time, so a big batch is written
here too. ``index_fs`` stays the indexer of everything else: a subdir whose
index is missing, unreadable or not the one served, not laid out as ``index_fs``
writes it (edited by hand: a key written twice, a record holding an object keyed
by a file name, whitespace or escapes), that holds packages its
index does not list (a crashed publish, a file copied in), with entries of a
newer repodata revision (``v3``) or a package that needs one, removals and
``ftforge channel reindex``: :func:`extend` declines, writing nothing.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .audit import PackageRecord as Audited
from .durable import write_atomic_many
from .layout import PACKAGE_SUFFIXES

__all__ = ["extend", "repodata_record", "unique_keys"]

SHARDS_INDEX = "repodata_shards.msgpack.zst"
SHARD_ZSTD_LEVEL = 3
"""zstd's default level, the one py-rattler's sharded writer uses."""

_TOP_KEYS = {"info", "packages", "packages.conda", "repodata_version", "v3"}
_SHARDS_INFO_KEYS = {"subdir", "base_url", "shards_base_url", "created_at"}
_RUN_EXPORTS_ORDER = ("weak", "strong", "noarch", "weak_constrains", "strong_constrains")
"""py-rattler's field order for a record's ``run_exports`` (empty lists left out)."""


class _Decline(Exception):
    """The existing index or a package is outside what this writer reproduces."""


@functools.cache
def _zstd():
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd  # a dependency of conda-package-streaming
    return zstd


def _section(filename: str) -> str:
    return "packages.conda" if filename.endswith(".conda") else "packages"


def _needs_newer_revision(index: dict) -> bool:
    """True when py-rattler would file the package under repodata revision 3
    (``v3``) rather than the legacy sections. Conservative: a spec with brackets
    or a condition may need it, and is left to ``index_fs``."""
    if index.get("repodata_revision") is not None or index.get("extra_depends") \
            or index.get("flags"):
        return True
    specs = list(index.get("depends") or ()) + list(index.get("constrains") or ())
    return any(not isinstance(s, str) or "[" in s or ";" in s or " if " in s for s in specs)


def _run_exports(audited: Audited) -> dict | None:
    """``info/run_exports.json`` of a ``.conda`` (kept by the audit), as py-rattler puts
    it in a record (it reads no run_exports from a ``.tar.bz2``)."""
    if not audited.filename.endswith(".conda") or audited.run_exports is None:
        return None
    from rattler import RunExportsJson

    # py-rattler's reader: what index_fs accepts
    parsed = RunExportsJson.from_str(audited.run_exports.decode("utf-8"))
    out = {}
    for key in _RUN_EXPORTS_ORDER:
        values = list(getattr(parsed, key))
        if values:
            out[key] = values
    return out


class _Scratch:
    """One scratch file for py-rattler's ``index.json`` reader, which takes a path:
    anonymous memory where Linux offers it (``memfd``), else a temporary file.
    Rewriting a file on disk for each package costs a journal flush each."""

    def __init__(self) -> None:
        self._tmp = None
        try:
            self.fd = os.memfd_create("index.json", getattr(os, "MFD_CLOEXEC", 0))
            self.path = f"/proc/self/fd/{self.fd}"
            if not os.path.exists(self.path):
                raise OSError("no /proc")
        except (AttributeError, OSError):
            if getattr(self, "fd", None) is not None:
                os.close(self.fd)
            self._tmp = tempfile.NamedTemporaryFile(prefix="ftforge-index-", suffix=".json")
            self.fd, self.path = self._tmp.fileno(), self._tmp.name

    def write(self, data: bytes) -> str:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        return self.path

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.close()
        else:
            os.close(self.fd)

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _md5(package: Path) -> str:
    with open(package, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)
                                   ).hexdigest()


IO_THREADS = 8
"""Threads opening, reading and creating files at once (they wait on the disk)."""


def repodata_record(package: Path, audited: Audited, indexed_ms: int,
                    scratch: _Scratch | None = None, md5: str | None = None) -> dict:
    """The repodata record of ``package`` (whose audit gave ``audited``), as
    ``index_fs`` writes it when indexing the package at ``indexed_ms``; ``md5``:
    the file's, when known."""
    from rattler import PackageRecord

    md5 = md5 or _md5(package)
    own = scratch is None
    scratch = scratch or _Scratch()
    try:
        path = scratch.write(json.dumps(audited.index).encode("utf-8"))
        record = PackageRecord.from_index_json(path, size=audited.size,
                                               sha256=audited.sha256, md5=md5)
    finally:
        if own:
            scratch.close()
    record.indexed_timestamp = datetime.datetime.fromtimestamp(indexed_ms / 1000,
                                                               datetime.UTC)
    data = json.loads(record.to_json())
    run_exports = _run_exports(audited)
    if run_exports is not None:
        data["run_exports"] = run_exports
    return dict(sorted(data.items()))


def _dump_json(repodata: dict) -> bytes:
    """Compact JSON, UTF-8 unescaped: what serde_json writes for the same values."""
    return json.dumps(repodata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


SPLICE_MAX = 8
"""Up to this many records are spliced into the existing ``repodata.json`` text (each
insertion copies the text once); more, and the whole index is serialised again."""


def _record_keys_proven(text: str, sections: dict[str, dict]) -> bool:
    """True when each record key of ``text`` (valid JSON; ``sections``: its sections as
    parsed) is written exactly once as ``"<fn>":{``, and that occurrence is the record's own key
    at the top of its section -- so text inserted before it lands in the section, not
    inside another record (a hand-edited record may hold an object keyed by a file
    name) -- and no record key is written twice (duplicate keys parse as one).

    Proof, cheap (five scans of the text, no parse): without a backslash every quote
    delimits a string and every string is written as it reads, so each match of
    ``.conda"`` / ``.tar.bz2"`` ends a string ending so: the record keys (each at
    least once) and ``"packages.conda"``, ``records + 1`` matches when there is no
    other (nested key, duplicate key, value); the same number of matches followed by
    ``:{`` means each of them is written ``"<fn>":{``, the form searched for."""
    if not all(isinstance(r, dict) and fn.endswith(PACKAGE_SUFFIXES)
               for section in sections.values() for fn, r in section.items()):
        return False
    records = sum(len(section) for section in sections.values())
    if "\\" in text:
        return False
    return sum(text.count(f'{suffix}"') for suffix in PACKAGE_SUFFIXES) == records + 1 \
        == sum(text.count(f'{suffix}":{{') for suffix in PACKAGE_SUFFIXES)


def _empty_section_at(text: str, section: str, decoder: json.JSONDecoder) -> int | None:
    """Where the first record of ``section`` (empty) goes: ``packages`` is the key right
    after ``info``, the first one; ``packages.conda`` is written once (see
    :func:`_record_keys_proven`)."""
    if section == "packages":
        if not text.startswith('{"info":'):
            return None
        try:
            _, end = decoder.raw_decode(text, len('{"info":'))
        except ValueError:
            return None
        head = ',"packages":{}'
        return end + len(head) - 1 if text.startswith(head, end) else None
    head = f"{_json_text(section)}:{{"
    pos = text.find(head)
    return pos + len(head) if pos >= 0 and text.startswith("}", pos + len(head)) else None


def _spliced(raw: bytes, sections: dict[str, dict],
             records: list[tuple[str, dict]]) -> bytes | None:
    """``raw`` (compact JSON, each section's keys sorted, as index_fs writes it) with
    ``records`` inserted where a full serialisation would put them. ``sections``:
    each section's records as parsed from ``raw``, in order. None if a section's keys
    are not sorted or :func:`_record_keys_proven` does not hold."""
    keys = {name: list(fns) for name, fns in sections.items()}
    if any(order != sorted(order) for order in keys.values()):
        return None
    text = raw.decode("utf-8")
    if not _record_keys_proven(text, sections):
        return None
    decoder = json.JSONDecoder()
    for fn, record in records:
        section = _section(fn)
        order = keys[section]
        entry = f"{_json_text(fn)}:{_json_text(record)}"
        at = bisect.bisect_left(order, fn)
        if at < len(order):  # before the key that follows it
            pos = text.find(f"{_json_text(order[at])}:{{")
            if pos < 0:
                return None
            text = f"{text[:pos]}{entry},{text[pos:]}"
        elif order:  # after the last record of its section
            key = f"{_json_text(order[-1])}:"
            pos = text.find(key + "{")
            if pos < 0:
                return None
            try:
                _, end = decoder.raw_decode(text, pos + len(key))
            except ValueError:
                return None
            text = f"{text[:end]},{entry}{text[end:]}"
        else:  # the first record of an empty section
            pos = _empty_section_at(text, section, decoder)
            if pos is None:
                return None
            text = f"{text[:pos]}{entry}{text[pos:]}"
        order.insert(at, fn)
    return text.encode("utf-8")


def _shard_record(record: dict) -> dict:
    """A record as a shard holds it: digests as bytes."""
    return {k: bytes.fromhex(v) if k in ("md5", "sha256") and isinstance(v, str) else v
            for k, v in record.items()}


def _pack(value: object) -> bytes:
    import msgpack

    return _zstd().compress(msgpack.packb(value, use_bin_type=True), level=SHARD_ZSTD_LEVEL)


def _unpack(raw: bytes) -> object:
    import msgpack

    return msgpack.unpackb(_zstd().decompress(raw), raw=False, strict_map_key=True)


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook`` for ``json.loads`` refusing an object that names a key twice:
    such a text parses as one record where a client may read the other (or fail), and
    splicing into it would keep both."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return obj


def _read_repodata(folder: Path, subdir: str,
                   known: tuple[str, dict] | None) -> tuple[bytes, dict]:
    try:
        raw = (folder / "repodata.json").read_bytes()
        if known is not None and hashlib.sha256(raw).hexdigest() == known[0]:
            repodata = known[1]
        else:
            repodata = json.loads(raw, object_pairs_hook=unique_keys)
    except (OSError, ValueError):
        raise _Decline("no readable repodata.json, or one naming a key twice") from None
    if not isinstance(repodata, dict) or not set(repodata) <= _TOP_KEYS \
            or repodata.get("info") != {"subdir": subdir} or repodata.get("v3") not in (None, {}) \
            or not all(isinstance(repodata.get(k), dict) for k in ("packages", "packages.conda")):
        raise _Decline("repodata.json has fields this writer does not reproduce")
    return raw, repodata


def _read_shards_index(folder: Path, subdir: str) -> dict:
    try:
        index = _unpack((folder / SHARDS_INDEX).read_bytes())
    except Exception:  # missing, not zstd, not msgpack: index_fs writes it anew
        raise _Decline(f"no readable {SHARDS_INDEX}") from None
    if not isinstance(index, dict) or set(index) != {"info", "shards"} \
            or not isinstance(index["info"], dict) or not isinstance(index["shards"], dict) \
            or not set(index["info"]) <= _SHARDS_INFO_KEYS \
            or index["info"].get("subdir") != subdir:
        raise _Decline(f"{SHARDS_INDEX} has fields this writer does not reproduce")
    return index


def _shard_of(shards_dir: Path, index: dict, name: str) -> dict:
    digest = index["shards"].get(name)
    if digest is None:
        return {"packages": {}, "packages.conda": {}, "removed": []}
    if not isinstance(digest, bytes):
        raise _Decline(f"the shard of {name} is not named by a digest")
    path = shards_dir / f"{digest.hex()}.msgpack.zst"
    try:
        raw = path.read_bytes()
        shard = _unpack(raw)
    except Exception:
        raise _Decline(f"the shard of {name} is missing or unreadable") from None
    if hashlib.sha256(raw).digest() != digest or not isinstance(shard, dict) \
            or set(shard) != {"packages", "packages.conda", "removed"} \
            or not isinstance(shard["packages"], dict) \
            or not isinstance(shard["packages.conda"], dict):
        raise _Decline(f"the shard of {name} is not one this writer reproduces")
    return shard


def _package_files(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.name.endswith(PACKAGE_SUFFIXES)}


def _replace(path: Path, data: bytes) -> None:
    """Not synced: the folder is the shadow index, which promotion makes durable."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def extend(folder: Path, subdir: str, added: Sequence[tuple[Path, Audited]], *,
           first: bool = False, known: tuple[str, dict] | None = None,
           shards_to: Path | None = None,
           now: datetime.datetime | None = None) -> list[dict] | None:
    """Add ``added`` (each package file in ``folder`` with its audit record) to the
    index ``index_fs`` last wrote in ``folder`` (a subdir folder), as ``index_fs``
    would; ``first``: the subdir was never indexed, ``added`` is all it holds and the
    index is made from nothing (whatever index files ``folder`` holds are ignored);
    ``known``: the sha256 of a ``repodata.json`` and its parsed content, used (and
    changed) instead of parsing the file again when the file has that digest;
    ``shards_to``: the served subdir: shards are read from its ``shards/`` and new
    ones written there, each made durable (promotion would otherwise copy them from
    ``folder``, which is not synced); a rolled-back publish deletes them.

    Returns every record of the index now, in its order (``packages``, then
    ``packages.conda``), each with ``fn`` and ``subdir`` as
    :func:`ftforge.channel.index.channel_records` gives them; or None -- and
    nothing written -- when the index is not one this writer can extend: then run
    ``index_fs``. ``now``: the indexing time (``indexed_timestamp``)."""
    if not added and not first:
        return None
    try:
        return _extend(folder, subdir, added, first, known, shards_to, now)
    except _Decline:
        return None


def _empty(subdir: str) -> tuple[dict, dict]:
    """What ``index_fs`` writes for a subdir without packages: repodata, shard index."""
    return ({"info": {"subdir": subdir}, "packages": {}, "packages.conda": {},
             "repodata_version": 1, "v3": {}},
            {"info": {"subdir": subdir, "base_url": "", "shards_base_url": "./shards/",
                      "created_at": ""}, "shards": {}})


def _extend(folder: Path, subdir: str, added: Sequence[tuple[Path, Audited]], first: bool,
            known: tuple[str, dict] | None, shards_to: Path | None,
            now: datetime.datetime | None) -> list[dict]:
    shards_dir = (shards_to or folder) / "shards"
    if first:
        raw, (repodata, shards_index) = None, _empty(subdir)
    else:
        (raw, repodata), shards_index = _read_repodata(folder, subdir, known), None
    listed = set(repodata["packages"]) | set(repodata["packages.conda"])
    new = {audited.filename for _, audited in added}
    if len(new) != len(added) or new & listed or _package_files(folder) != listed | new:
        raise _Decline("the index does not list exactly the other packages of the folder")
    for path, audited in added:
        if path.name != audited.filename or audited.subdir != subdir \
                or _needs_newer_revision(audited.index):
            raise _Decline(f"{audited.filename} is for index_fs")
    if shards_index is None:
        shards_index = _read_shards_index(folder, subdir)

    moment = now or datetime.datetime.now(datetime.UTC)
    indexed_ms = int(moment.timestamp() * 1000)
    try:
        unknown = [path for path, audited in added if not audited.md5]
        read: dict[Path, str] = {}
        if unknown:  # the audit hashes both; a record made elsewhere may lack it
            with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(unknown))) as pool:
                read = dict(zip(unknown, pool.map(_md5, unknown), strict=True))
        md5s = [audited.md5 or read[path] for path, audited in added]
        with _Scratch() as scratch:
            records = [(audited.filename,
                        repodata_record(path, audited, indexed_ms, scratch, md5))
                       for (path, audited), md5 in zip(added, md5s, strict=True)]
    except Exception as exc:  # py-rattler refuses the metadata: index_fs says why
        raise _Decline(str(exc)) from None

    records.sort()
    text = None
    if raw is not None:
        sections = {key: repodata[key] for key in ("packages", "packages.conda")}
        if len(records) <= SPLICE_MAX:
            text = _spliced(raw, sections, records)
        # not laid out as index_fs writes it (edited by hand?): index_fs writes it anew
        if text is None and not _record_keys_proven(raw.decode("utf-8"), sections):
            raise _Decline("repodata.json is not laid out as index_fs writes it")
    shards: dict[str, dict] = {}
    for fn, record in records:  # every decline comes before ``repodata`` changes
        name = record["name"]
        shard = shards.get(name) or _shard_of(shards_dir, shards_index, name)
        shard[_section(fn)][fn] = _shard_record(record)
        shards[name] = shard
    for fn, record in records:
        repodata[_section(fn)][fn] = record
    for key in ("packages", "packages.conda"):
        repodata[key] = dict(sorted(repodata[key].items()))

    # shards first, then the shard index naming them, then repodata.json
    # content-addressed: a name already there holds these bytes (each is written to a
    # temporary name first, as index_fs may find them too)
    shards_dir.mkdir(parents=True, exist_ok=True)
    have = set(os.listdir(shards_dir))
    todo: list[tuple[Path, bytes]] = []
    for name, shard in shards.items():
        shard = {k: dict(sorted(v.items())) if isinstance(v, dict) else v
                 for k, v in shard.items()}
        encoded = _pack(shard)
        digest = hashlib.sha256(encoded).digest()
        shard_name = f"{digest.hex()}.msgpack.zst"
        if shard_name not in have:
            todo.append((shards_dir / shard_name, encoded))
        shards_index["shards"][name] = digest
    if shards_to is not None:  # served: each durable before the index that names it
        write_atomic_many(todo)
    for path, encoded in todo if shards_to is None else ():
        _replace(path, encoded)  # one after another: the kernel serialises creations anyway
    shards_index["info"]["created_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _replace(folder / SHARDS_INDEX, _pack(shards_index))
    _replace(folder / "repodata.json", text or _dump_json(repodata))
    return [{**record, "fn": fn, "subdir": subdir}
            for key in ("packages", "packages.conda") for fn, record in repodata[key].items()]
