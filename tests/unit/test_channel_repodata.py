"""ftforge's record writer (:mod:`ftforge.channel.repodata`) against py-rattler's index_fs.

Both writers index the same packages into copies of the same indexed subdir;
``repodata.json`` must come out byte for byte the same, the shards and the shard
index with the same content. The packages cover what a record can carry:
``.conda`` and ``.tar.bz2``, noarch and linux-64, ``run_exports`` (which
``index_fs`` reads from a ``.conda`` only), ``purls``, ``license_family``,
``track_features``, a timestamp in seconds, a new name and a name that already
has a shard. Where the writer must decline (the caller then runs index_fs),
it writes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import shutil
from pathlib import Path

import msgpack
import pytest

from ftforge.channel import repodata as writer
from ftforge.channel.audit import audit_package
from ftforge.channel.synthetic import Member, SyntheticPackage, write_package
from ftforge.variants import PythonVariant


def _zstd():
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd


def run_exports(data: dict) -> Member:
    return Member("info/run_exports.json", json.dumps(data).encode())


def pure(name: str, version: str = "1.0", **extra) -> SyntheticPackage:
    return SyntheticPackage(name=name, version=version, build="pyh4616a5c_0", noarch="python",
                            depends=["python >=3.10"],
                            files={f"site-packages/{name}/__init__.py": f"# {version}\n".encode()},
                            **extra)


def ext(name: str, version: str = "1.0", ft: bool = False, **extra) -> SyntheticPackage:
    variant = PythonVariant(series="3.13", freethreaded=ft)
    return SyntheticPackage(
        name=name, version=version, build=variant.extension_build_string("abcdef0", 0),
        subdir="linux-64", depends=[variant.python_abi_spec],
        files={f"{variant.site_packages}/{name}/__init__.py": b"X = 1\n"}, **extra)


def index_fs(root: Path, subdir: str) -> None:
    from rattler import Subdir
    from rattler.index import index_fs as rattler_index

    asyncio.run(rattler_index(root, target_platform=Subdir(subdir), write_zst=False,
                              write_shards=True, force=False))


def unpack(path: Path) -> object:
    return msgpack.unpackb(_zstd().decompress(path.read_bytes()), raw=False)


def channel_root(tmp_path: Path, name: str, base: list[tuple[SyntheticPackage, str]]) -> Path:
    root = tmp_path / name
    for sub in ("noarch", "linux-64"):
        (root / sub).mkdir(parents=True)
    for pkg, fmt in base:
        write_package(pkg, root / pkg.subdir, fmt)
    for sub in ("noarch", "linux-64"):
        index_fs(root, sub)
    return root


BASE = [(pure("alpha"), ".conda"), (pure("omega"), ".tar.bz2"),
        (ext("ext-a"), ".conda"), (ext("ext-a", ft=True), ".conda"),
        (ext("old", "0.9"), ".tar.bz2")]

ADDED = [
    # a new noarch name with every optional field index_fs carries over
    (pure("beta", extra_members=[run_exports(
        {"weak": ["beta >=1.0"], "strong": [], "noarch": ["python"]})],
        index_overrides={"purls": ["pkg:pypi/beta@1.0"], "license_family": "BSD",
                         "timestamp": 1764028800}), ".conda"),
    # a new version of a name that already has a shard, as .tar.bz2 with run_exports
    # (index_fs reads none from a .tar.bz2)
    (pure("omega", "2.0", extra_members=[run_exports({"weak": ["omega"]})]), ".tar.bz2"),
    # linux-64: a name with a shard, down-weighted, and an empty run_exports.json
    (ext("ext-a", "1.1", ft=True, track_features="ft",
         extra_members=[run_exports({})]), ".conda"),
    (ext("ext-a", "1.1", extra_members=[run_exports(
        {"strong_constrains": ["x <2"], "weak": ["libext-a >=1.1"], "noarch": ["n"],
         "weak_constrains": ["y"], "strong": ["libext-a-core 1.1.*"]})]), ".conda"),
    (ext("zz-new", "3.0", constrains=["pip <0"]), ".tar.bz2"),
    (ext("old", "1.0", index_overrides={"license": "MIT"}), ".tar.bz2"),
]


@pytest.fixture
def two_channels(tmp_path):
    """Two identical indexed channels, and the packages to add to each."""
    base = channel_root(tmp_path, "rattler", BASE)
    ours = tmp_path / "ours"
    shutil.copytree(base, ours)
    new = [write_package(pkg, tmp_path / "new" / pkg.subdir, fmt) for pkg, fmt in ADDED]
    return base, ours, new


@pytest.mark.parametrize("md5_from", ["audit", "file"])
def test_record_writer_matches_index_fs_byte_for_byte(two_channels, md5_from):
    """``md5_from``: the audit's digest, or (a record without one) the file read again."""
    theirs, ours, new = two_channels
    by_subdir: dict[str, list[Path]] = {}
    for path in new:
        by_subdir.setdefault(path.parent.name, []).append(path)
    for subdir, paths in by_subdir.items():
        for path in paths:
            shutil.copyfile(path, theirs / subdir / path.name)
            shutil.copyfile(path, ours / subdir / path.name)
        index_fs(theirs, subdir)
        theirs_repodata = json.loads((theirs / subdir / "repodata.json").read_bytes())
        stamps = {theirs_repodata[writer._section(p.name)][p.name]["indexed_timestamp"]
                  for p in paths}
        assert len(stamps) == 1
        moment = datetime.datetime.fromtimestamp(stamps.pop() / 1000, datetime.UTC)
        added = [(ours / subdir / p.name, audit_package(p).record) for p in paths]
        assert all(record is not None and record.md5 for _, record in added)
        if md5_from == "file":
            added = [(path, dataclasses.replace(record, md5="")) for path, record in added]
        records = writer.extend(ours / subdir, subdir, added, now=moment)
        assert records is not None, f"the writer declined {subdir}"
        theirs_records = [{**r, "fn": fn, "subdir": subdir}
                          for key in ("packages", "packages.conda")
                          for fn, r in theirs_repodata[key].items()]
        assert records == theirs_records

        assert (ours / subdir / "repodata.json").read_bytes() == \
            (theirs / subdir / "repodata.json").read_bytes()

        mine_index = unpack(ours / subdir / writer.SHARDS_INDEX)
        their_index = unpack(theirs / subdir / writer.SHARDS_INDEX)
        for index in (mine_index, their_index):
            created = index["info"].pop("created_at")
            datetime.datetime.fromisoformat(created.replace("Z", "+00:00")[:26] + "+00:00")
        assert mine_index["info"] == their_index["info"]
        assert set(mine_index["shards"]) == set(their_index["shards"])
        for name in their_index["shards"]:
            mine = unpack(ours / subdir / "shards"
                          / f"{mine_index['shards'][name].hex()}.msgpack.zst")
            their = unpack(theirs / subdir / "shards"
                           / f"{their_index['shards'][name].hex()}.msgpack.zst")
            assert mine == their, name
    # the fields the packages were chosen for made it into the records
    repodata = json.loads((ours / "noarch" / "repodata.json").read_bytes())
    beta = repodata["packages.conda"]["beta-1.0-pyh4616a5c_0.conda"]
    assert beta["run_exports"] == {"weak": ["beta >=1.0"], "noarch": ["python"]}
    assert beta["purls"] == ["pkg:pypi/beta@1.0"] and beta["timestamp"] == 1764028800
    assert "run_exports" not in repodata["packages"]["omega-2.0-pyh4616a5c_0.tar.bz2"]
    linux = json.loads((ours / "linux-64" / "repodata.json").read_bytes())
    ft = linux["packages.conda"]["ext-a-1.1-py313thabcdef0_0.conda"]
    assert ft["run_exports"] == {} and ft["track_features"] == "ft"


@pytest.mark.parametrize("count", [1, 3, 12])
def test_records_spliced_at_every_place_match_index_fs(tmp_path, count):
    """Records spliced into the index text -- first of a section, last of a section,
    into an empty section, between two -- or, past SPLICE_MAX, the whole index written
    again: the bytes index_fs writes."""
    base = channel_root(tmp_path, "rattler", [(ext("m"), ".conda"), (ext("m", ft=True), ".conda")])
    ours = tmp_path / "ours"
    shutil.copytree(base, ours)
    new = [ext("a"), ext("z"), ext("m", "2.0"), ext("m", "1.5")]
    formats = [".conda", ".conda", ".tar.bz2", ".tar.bz2"]
    extra = [(ext(f"n{i:02d}"), ".conda") for i in range(max(0, count - 3))]
    batch = (list(zip(new, formats, strict=True)) + extra)[:count] if count > 1 \
        else [(new[2], ".tar.bz2")]
    paths = [write_package(pkg, tmp_path / "new", fmt) for pkg, fmt in batch]
    for path in paths:
        for root in (base, ours):
            shutil.copyfile(path, root / "linux-64" / path.name)
    index_fs(base, "linux-64")
    raw = (base / "linux-64" / "repodata.json").read_bytes()
    stamp = json.loads(raw)[writer._section(paths[0].name)][paths[0].name]["indexed_timestamp"]
    moment = datetime.datetime.fromtimestamp(stamp / 1000, datetime.UTC)
    folder = ours / "linux-64"
    assert writer.extend(folder, "linux-64", [(folder / p.name, audit_package(p).record)
                                               for p in paths], now=moment) is not None
    assert (folder / "repodata.json").read_bytes() == raw


def test_first_index_matches_index_fs_byte_for_byte(tmp_path):
    """A subdir indexed for the first time: every package of BASE and ADDED at once."""
    from rattler import Subdir
    from rattler.index import index_fs as rattler_index

    theirs, ours = tmp_path / "rattler", tmp_path / "ours"
    for root in (theirs, ours):
        for sub in ("noarch", "linux-64"):
            (root / sub).mkdir(parents=True)
    for pkg, fmt in BASE + ADDED:
        path = write_package(pkg, tmp_path / "pkgs" / pkg.subdir, fmt)
        for root in (theirs, ours):
            shutil.copyfile(path, root / pkg.subdir / path.name)
    for root in (theirs, ours):
        (root / "linux-aarch64").mkdir()  # an empty subdir has an index too
    for subdir in ("noarch", "linux-64", "linux-aarch64"):
        asyncio.run(rattler_index(theirs, target_platform=Subdir(subdir), write_zst=False,
                                  write_shards=True, force=True))
        raw = (theirs / subdir / "repodata.json").read_bytes()
        stamps = {r["indexed_timestamp"] for key in ("packages", "packages.conda")
                  for r in json.loads(raw)[key].values()} or {0}
        assert len(stamps) == 1
        moment = datetime.datetime.fromtimestamp(stamps.pop() / 1000, datetime.UTC)
        folder = ours / subdir
        added = [(p, audit_package(p).record) for p in sorted(folder.iterdir())]
        assert writer.extend(folder, subdir, added, first=True, now=moment) is not None
        assert (folder / "repodata.json").read_bytes() == raw
        mine_index = unpack(folder / writer.SHARDS_INDEX)
        their_index = unpack(theirs / subdir / writer.SHARDS_INDEX)
        assert mine_index["info"].pop("created_at") and their_index["info"].pop("created_at")
        assert mine_index["info"] == their_index["info"]
        assert set(mine_index["shards"]) == set(their_index["shards"])
        for name, digest in their_index["shards"].items():
            assert unpack(folder / "shards" / f"{mine_index['shards'][name].hex()}.msgpack.zst") \
                == unpack(theirs / subdir / "shards" / f"{digest.hex()}.msgpack.zst"), name


def test_py_rattler_reads_the_written_index(two_channels):
    """The merged index is what py-rattler loads (sparse repodata, by name)."""
    from rattler import Channel, PackageName, SparseRepoData

    _, ours, new = two_channels
    linux = [p for p in new if p.parent.name == "linux-64"]
    for path in linux:
        shutil.copyfile(path, ours / "linux-64" / path.name)
    assert writer.extend(ours / "linux-64", "linux-64",
                         [(ours / "linux-64" / p.name, audit_package(p).record) for p in linux])
    sparse = SparseRepoData(Channel(str(ours)), "linux-64", ours / "linux-64" / "repodata.json")
    records = sparse.load_records(PackageName("ext-a"))
    names = sorted(f"{r.version}-{r.build}" for r in records)
    assert names == ["1.0-py313habcdef0_0", "1.0-py313thabcdef0_0",
                     "1.1-py313habcdef0_0", "1.1-py313thabcdef0_0"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _compact(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def nest_a_record_key(raw: bytes, section: str = "packages.conda") -> bytes:
    """Hand edit, still compact and sorted: the first record of ``packages`` gains a
    field whose object is keyed by the last record key of ``section``."""
    data = json.loads(raw)
    key = max(data[section])
    fn = next(iter(data["packages"]))
    data["packages"][fn] = dict(sorted({**data["packages"][fn], "x": {key: {"a": 1}}}.items()))
    return _compact(data)


def duplicate_a_record_key(raw: bytes, section: str = "packages.conda") -> bytes:
    """Hand edit: the last record of ``section`` written twice, the first copy with
    another version (a JSON reader keeps the second)."""
    text = raw.decode()
    key = max(json.loads(raw)[section])
    start = text.index(f'"{key}":{{')
    value, _ = json.JSONDecoder().raw_decode(text, start + len(key) + 3)
    fake = _compact({**value, "version": "666"}).decode()
    return f'{text[:start]}"{key}":{fake},{text[start:]}'.encode()


@pytest.mark.parametrize("spoil", ["unlisted-package", "missing-shards-index", "broken-repodata",
                                   "v3-entries", "bracket-spec", "already-listed",
                                   "nested-record-key", "duplicate-record-key"])
def test_writer_declines_what_it_does_not_reproduce_and_writes_nothing(tmp_path, spoil):
    root = channel_root(tmp_path, "ch", BASE)
    folder = root / "linux-64"
    pkg = ext("fresh", "1.0")
    if spoil == "bracket-spec":
        pkg.depends = [*pkg.depends, "libfoo[version='>=1']"]
    path = write_package(pkg, folder)
    added = [(path, audit_package(path).record)]
    assert added[0][1] is not None
    if spoil == "unlisted-package":  # a package copied in without being indexed
        write_package(ext("stray", "1.0"), folder)
    elif spoil == "missing-shards-index":
        (folder / writer.SHARDS_INDEX).unlink()
    elif spoil == "broken-repodata":
        (folder / "repodata.json").write_bytes(b'{"info": {"subdir": "linux-64"}, "packa')
    elif spoil == "v3-entries":
        data = json.loads((folder / "repodata.json").read_bytes())
        data["v3"] = {"conda": {"x-1-0.conda": {}}}
        (folder / "repodata.json").write_text(json.dumps(data))
    elif spoil == "nested-record-key":  # splicing before that key would land in a record
        (folder / "repodata.json").write_bytes(
            nest_a_record_key((folder / "repodata.json").read_bytes()))
    elif spoil == "duplicate-record-key":
        (folder / "repodata.json").write_bytes(
            duplicate_a_record_key((folder / "repodata.json").read_bytes()))
    elif spoil == "already-listed":
        added = [(folder / "old-0.9-py313habcdef0_0.tar.bz2",
                  audit_package(folder / "old-0.9-py313habcdef0_0.tar.bz2").record)]
    before = _snapshot(folder)
    assert writer.extend(folder, "linux-64", added) is None
    assert _snapshot(folder) == before


# --- through publish: the writer's index is the one served, and index_fs agrees ---


@pytest.fixture
def index_fs_calls(monkeypatch) -> list[str]:
    """The subdirs publish handed to py-rattler's index_fs."""
    from ftforge.channel import index as index_module

    calls: list[str] = []
    original = index_module._index_fs

    def spy(channel, subdir, force):
        calls.append(subdir)
        return original(channel, subdir, force)

    monkeypatch.setattr(index_module, "_index_fs", spy)
    return calls


def assert_served_index_consistent(channel: Path) -> None:
    """Every subdir: the .zst is the JSON, the shadow holds the served bytes, and each
    name's shard holds exactly that name's records of repodata.json."""
    from ftforge.channel.layout import internal_dir, served_subdirs

    for subdir in served_subdirs(channel):
        folder = channel / subdir
        raw = (folder / "repodata.json").read_bytes()
        assert _zstd().decompress((folder / "repodata.json.zst").read_bytes()) == raw
        shadow = internal_dir(channel) / "index" / subdir / subdir
        for name in ("repodata.json", writer.SHARDS_INDEX):
            assert (shadow / name).read_bytes() == (folder / name).read_bytes()
        repodata = json.loads(raw)
        by_name: dict[str, dict] = {}
        for key in ("packages", "packages.conda"):
            for fn, record in repodata[key].items():
                by_name.setdefault(record["name"], {"packages": {}, "packages.conda": {}})
                by_name[record["name"]][key][fn] = writer._shard_record(record)
        shards = unpack(folder / writer.SHARDS_INDEX)["shards"]
        assert set(shards) == set(by_name)
        for name, digest in shards.items():
            shard = unpack(folder / "shards" / f"{digest.hex()}.msgpack.zst")
            assert {k: shard[k] for k in ("packages", "packages.conda")} == by_name[name]


def test_publishes_skip_index_fs_and_index_fs_agrees(tmp_path, index_fs_calls):
    """A first publish, then one package, a pair of twins, a .tar.bz2 are indexed by
    the writer. The served index stays consistent, the page is the whole
    render, and a re-index by index_fs afterwards rewrites repodata.json to the same
    bytes (it re-serialises every record the writer wrote)."""
    from ftforge.channel.page import render
    from ftforge.channel.publish import publish, recover

    channel = tmp_path / "ch"
    out = tmp_path / "pkgs"
    token = publish([write_package(pkg, out / "0", fmt) for pkg, fmt in BASE], channel,
                    recipe="r").tokens["r"]
    assert index_fs_calls == []  # a first index too
    assert_served_index_consistent(channel)
    batches = [[(pure("beta", extra_members=[run_exports({"weak": ["beta"]})]), ".conda")],
               [(ext("ext-b", ft=True), ".conda"), (ext("ext-b"), ".conda")],
               [(pure("omega", "2.0"), ".tar.bz2")]]
    for i, batch in enumerate(batches, 1):
        result = publish([write_package(pkg, out / str(i), fmt) for pkg, fmt in batch],
                         channel, recipe="r", token=token)
        assert len(result.added) == len(batch)
        assert index_fs_calls == []
        assert_served_index_consistent(channel)
        assert (channel / "index.html").read_text() == render(channel)
    served = {sub: (channel / sub / "repodata.json").read_bytes() for sub in ("noarch", "linux-64")}
    recover(channel)
    assert sorted(index_fs_calls) == ["linux-64", "noarch"]
    for sub, raw in served.items():
        assert (channel / sub / "repodata.json").read_bytes() == raw


def test_a_package_the_writer_leaves_to_index_fs_is_indexed_by_it(tmp_path, index_fs_calls):
    """A spec the writer does not classify (brackets: maybe repodata revision 3) goes to
    index_fs, in the subdir it touches only."""
    from ftforge.channel.publish import publish

    channel = tmp_path / "ch"
    token = publish([write_package(pkg, tmp_path / "0", fmt) for pkg, fmt in BASE], channel,
                    recipe="r").tokens["r"]
    bracket = ext("brackets")
    bracket.depends = [*bracket.depends, "libfoo[version='>=1']"]
    publish([write_package(bracket, tmp_path / "1")], channel, recipe="r", token=token)
    assert index_fs_calls == ["linux-64"]
    assert_served_index_consistent(channel)
    assert "brackets-1.0-py313habcdef0_0.conda" in json.loads(
        (channel / "linux-64" / "repodata.json").read_bytes())["packages.conda"]


def test_writer_failure_rolls_back_and_the_next_publish_is_consistent(tmp_path, monkeypatch,
                                                                       index_fs_calls):
    """The writer fails after writing a shard and the shard index into the shadow:
    the publish is rolled back (the channel serves what it served), and the next
    publish of another version of that name does not pick up the abandoned shard
    (the shadow no longer matches what is served, so index_fs re-indexes)."""
    from ftforge.channel.publish import publish
    from ftforge.errors import ChannelError

    channel = tmp_path / "ch"
    token = publish([write_package(pkg, tmp_path / "0", fmt) for pkg, fmt in BASE], channel,
                    recipe="r").tokens["r"]
    before = {p: p.read_bytes() for p in sorted(channel.rglob("*"))
              if p.is_file() and ".ftforge" not in p.parts}
    original = writer._replace

    def fail_on_repodata(path: Path, data: bytes) -> None:
        if path.name == "repodata.json":
            raise OSError(5, "Input/output error", str(path))
        original(path, data)

    monkeypatch.setattr(writer, "_replace", fail_on_repodata)
    index_fs_calls.clear()
    with pytest.raises(ChannelError, match="rolled back"):
        publish([write_package(pure("alpha", "2.0"), tmp_path / "1")], channel,
                recipe="r", token=token)
    after = {p: p.read_bytes() for p in sorted(channel.rglob("*"))
             if p.is_file() and ".ftforge" not in p.parts}
    assert after == before
    monkeypatch.setattr(writer, "_replace", original)
    publish([write_package(pure("alpha", "3.0"), tmp_path / "2")], channel, recipe="r",
            token=token)
    assert index_fs_calls == ["noarch"]
    assert_served_index_consistent(channel)
    versions = sorted(r["version"] for r in json.loads(
        (channel / "noarch" / "repodata.json").read_bytes())["packages.conda"].values()
        if r["name"] == "alpha")
    assert versions == ["1.0", "3.0"]


@pytest.mark.parametrize("new_name", ["aaa", "beta", "zzz"])
@pytest.mark.parametrize("edit", [nest_a_record_key, duplicate_a_record_key])
def test_hand_edited_index_is_left_to_index_fs_and_served_whole(tmp_path, index_fs_calls,
                                                                edit, new_name):
    """The served and the internal repodata.json edited by hand (a record holding an
    object keyed by another record's file name; a record key written twice): the
    writer does not splice into that text, index_fs re-indexes, and the index served
    lists the new package at the top of its section, each file once, with the
    version of its package, consistent with the shards."""
    from ftforge.channel.layout import internal_dir
    from ftforge.channel.publish import publish

    channel = tmp_path / "ch"
    token = publish([write_package(pkg, tmp_path / "0", fmt) for pkg, fmt in BASE], channel,
                    recipe="r").tokens["r"]
    served = channel / "noarch" / "repodata.json"
    edited = edit(served.read_bytes())
    served.write_bytes(edited)
    (internal_dir(channel) / "index" / "noarch" / "noarch" / "repodata.json").write_bytes(edited)
    index_fs_calls.clear()
    publish([write_package(pure(new_name), tmp_path / "1")], channel, recipe="r", token=token)
    assert index_fs_calls == ["noarch"]
    raw = served.read_bytes()
    data = json.loads(raw, object_pairs_hook=writer.unique_keys)  # no key twice anywhere
    files = {p.name for p in (channel / "noarch").iterdir()
             if p.name.endswith((".conda", ".tar.bz2"))}
    assert set(data["packages"]) | set(data["packages.conda"]) == files
    assert f"{new_name}-1.0-pyh4616a5c_0.conda" in data["packages.conda"]
    assert {r["version"] for r in data["packages.conda"].values()} == {"1.0"}
    assert_served_index_consistent(channel)
