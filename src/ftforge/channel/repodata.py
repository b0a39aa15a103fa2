"""Add audited packages to an existing subdir index without re-reading the channel.

py-rattler's ``index_fs`` is the channel's indexer: it writes every first index,
every re-index after a crash or a removal, and every big batch. For a publish of
a few packages into an indexed subdir it costs more than the whole rest of the
publish (it lists and re-checks the subdir, rewrites every shard name and
compresses), and py-rattler has no call that adds one record to an index. So
this module writes what ``index_fs`` would write for those packages, from what
the audit already knows (``info/index.json``, sha256, size):

* the record itself is made by py-rattler (``PackageRecord.from_index_json``,
  the parser and field rules ``index_fs`` uses) and serialised by it; the
  fields ``index_fs`` adds on top (``indexed_timestamp``, and ``run_exports``
  from ``info/run_exports.json`` of a ``.conda``) are added here;
* ``repodata.json`` is merged and written as ``index_fs`` writes it (compact
  JSON, keys sorted), ``repodata_shards.msgpack.zst`` and the shard of each
  added name are re-encoded the way its sharded-repodata writer does.

``tests/unit/test_channel_repodata.py`` compares both writers field for field
and byte for byte on the same packages (``.conda`` and ``.tar.bz2``, noarch
and linux-64, run_exports, purls), so they cannot drift apart unnoticed.

Whenever the existing index is not one this module fully understands -- it is
missing, unreadable, lists other packages than the folder holds, has entries
of a newer repodata revision (``v3``) or a package needs one -- :func:`extend`
declines and the caller runs ``index_fs``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .audit import PackageRecord as Audited
from .layout import PACKAGE_SUFFIXES

__all__ = ["MAX_ADDED", "extend", "repodata_record"]

MAX_ADDED = 32
"""At most this many packages per subdir are added here; a bigger batch goes to
``index_fs``, which reads packages in parallel and whose fixed cost is then shared."""

SHARDS_INDEX = "repodata_shards.msgpack.zst"
SHARD_ZSTD_LEVEL = 3
"""zstd's default level, the one py-rattler's sharded writer uses."""

_TOP_KEYS = {"info", "packages", "packages.conda", "repodata_version", "v3"}
_SHARDS_INFO_KEYS = {"subdir", "base_url", "shards_base_url", "created_at"}
_RUN_EXPORTS_ORDER = ("weak", "strong", "noarch", "weak_constrains", "strong_constrains")
"""py-rattler's field order for a record's ``run_exports`` (empty lists left out)."""


class _Decline(Exception):
    """The existing index or a package is outside what this writer reproduces."""


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


def _run_exports(package: Path) -> dict | None:
    """``info/run_exports.json`` of a ``.conda``, as py-rattler puts it in a record
    (it reads no run_exports from a ``.tar.bz2``)."""
    if not package.name.endswith(".conda"):
        return None
    from conda_package_streaming.package_streaming import stream_conda_component
    from rattler import RunExportsJson

    text = None
    stream = stream_conda_component(str(package), component="info")
    try:
        for tar, member in stream:
            if member.name == "info/run_exports.json" and member.isfile():
                text = tar.extractfile(member).read().decode("utf-8")
                break
    finally:
        stream.close()
    if text is None:
        return None
    parsed = RunExportsJson.from_str(text)  # py-rattler's reader: what index_fs accepts
    out = {}
    for key in _RUN_EXPORTS_ORDER:
        values = list(getattr(parsed, key))
        if values:
            out[key] = values
    return out


def repodata_record(package: Path, audited: Audited, indexed_ms: int) -> dict:
    """The repodata record of ``package`` (whose audit gave ``audited``), as
    ``index_fs`` writes it when indexing the package at ``indexed_ms``."""
    from rattler import PackageRecord

    with open(package, "rb") as handle:
        md5 = hashlib.file_digest(handle, "md5").hexdigest()
    with tempfile.TemporaryDirectory(prefix="ftforge-record-") as tmp:
        index_json = Path(tmp) / "index.json"
        index_json.write_text(json.dumps(audited.index))
        record = PackageRecord.from_index_json(index_json, size=audited.size,
                                               sha256=audited.sha256, md5=md5)
    record.indexed_timestamp = datetime.datetime.fromtimestamp(indexed_ms / 1000,
                                                               datetime.timezone.utc)
    data = json.loads(record.to_json())
    run_exports = _run_exports(package)
    if run_exports is not None:
        data["run_exports"] = run_exports
    return dict(sorted(data.items()))


def _dump_json(repodata: dict) -> bytes:
    """Compact JSON, UTF-8 unescaped: what serde_json writes for the same values."""
    return json.dumps(repodata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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


def _read_repodata(folder: Path, subdir: str) -> dict:
    try:
        repodata = json.loads((folder / "repodata.json").read_bytes())
    except (OSError, ValueError):
        raise _Decline("no readable repodata.json") from None
    if not isinstance(repodata, dict) or not set(repodata) <= _TOP_KEYS \
            or repodata.get("info") != {"subdir": subdir} or repodata.get("v3") not in (None, {}) \
            or not all(isinstance(repodata.get(k), dict) for k in ("packages", "packages.conda")):
        raise _Decline("repodata.json has fields this writer does not reproduce")
    return repodata


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


def _shard_of(folder: Path, index: dict, name: str) -> dict:
    digest = index["shards"].get(name)
    if digest is None:
        return {"packages": {}, "packages.conda": {}, "removed": []}
    if not isinstance(digest, bytes):
        raise _Decline(f"the shard of {name} is not named by a digest")
    path = folder / "shards" / f"{digest.hex()}.msgpack.zst"
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
           now: datetime.datetime | None = None) -> list[dict] | None:
    """Add ``added`` (each package file in ``folder`` with its audit record) to the
    index ``index_fs`` last wrote in ``folder`` (a subdir folder), as ``index_fs``
    would. Returns every record of the index now, in its order (``packages``, then
    ``packages.conda``), each with ``fn`` and ``subdir`` as
    :func:`ftforge.channel.index.channel_records` gives them; or None -- and
    nothing written -- when the index is not one this writer can extend: then run
    ``index_fs``. ``now``: the indexing time (``indexed_timestamp``)."""
    if not added or len(added) > MAX_ADDED:
        return None
    try:
        return _extend(folder, subdir, added, now)
    except _Decline:
        return None


def _extend(folder: Path, subdir: str, added: Sequence[tuple[Path, Audited]],
            now: datetime.datetime | None) -> list[dict]:
    repodata = _read_repodata(folder, subdir)
    listed = set(repodata["packages"]) | set(repodata["packages.conda"])
    new = {audited.filename for _, audited in added}
    if len(new) != len(added) or new & listed or _package_files(folder) != listed | new:
        raise _Decline("the index does not list exactly the other packages of the folder")
    for path, audited in added:
        if path.name != audited.filename or audited.subdir != subdir \
                or _needs_newer_revision(audited.index):
            raise _Decline(f"{audited.filename} is for index_fs")
    shards_index = _read_shards_index(folder, subdir)

    moment = now or datetime.datetime.now(datetime.timezone.utc)
    indexed_ms = int(moment.timestamp() * 1000)
    try:
        records = [(audited.filename, repodata_record(path, audited, indexed_ms))
                   for path, audited in added]
    except Exception as exc:  # py-rattler refuses the metadata: index_fs says why
        raise _Decline(str(exc)) from None

    shards: dict[str, dict] = {}
    for fn, record in records:
        name = record["name"]
        shard = shards.get(name) or _shard_of(folder, shards_index, name)
        shard[_section(fn)][fn] = _shard_record(record)
        shards[name] = shard
        section = repodata[_section(fn)]
        section[fn] = record
    for key in ("packages", "packages.conda"):
        repodata[key] = dict(sorted(repodata[key].items()))

    # shards first, then the shard index naming them, then repodata.json
    (folder / "shards").mkdir(exist_ok=True)
    for name, shard in shards.items():
        shard = {k: dict(sorted(v.items())) if isinstance(v, dict) else v
                 for k, v in shard.items()}
        encoded = _pack(shard)
        digest = hashlib.sha256(encoded).digest()
        target = folder / "shards" / f"{digest.hex()}.msgpack.zst"
        if not target.exists():
            _replace(target, encoded)
        shards_index["shards"][name] = digest
    shards_index["info"]["created_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _replace(folder / SHARDS_INDEX, _pack(shards_index))
    _replace(folder / "repodata.json", _dump_json(repodata))
    return [{**record, "fn": fn, "subdir": subdir}
            for key in ("packages", "packages.conda") for fn, record in repodata[key].items()]
