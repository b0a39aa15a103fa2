"""The channel against an attacker and a careless user (issue 13): a hostile corpus of
packages generated here, each refused with one line naming the file and the rule,
the channel byte-for-byte unchanged, nothing written outside; then the crashes and
unclear messages of the channel commands, and the HTTP server's paths."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ftforge.channel import index as channel_index
from ftforge.channel.audit import RULES, Limits, PackageRefused, audit_package
from ftforge.channel.owners import OwnershipRefused
from ftforge.channel.publish import publish, remove
from ftforge.channel.serve import serving_channels
from ftforge.channel.synthetic import Member, SyntheticPackage, write_package
from ftforge.errors import ChannelError
from ftforge.variants import PythonVariant

from ..servers import http_status

FT, GIL = PythonVariant.ft("3.13"), PythonVariant.gil("3.13")
SMALL = Limits(max_total_bytes=1 << 20, max_members=64, max_header_bytes=4096,
               max_metadata_bytes=64 << 10)


def _compile(tmp: Path, name: str, body: str, soname: str | None = None) -> bytes:
    src = tmp / f"{name}.c"
    src.write_text(body)
    out = tmp / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def elves(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("elf")
    return {
        "gil": _compile(tmp, "gil", "extern void _Py_Dealloc(void*);\n"
                        "void PyInit__x(void *o){ _Py_Dealloc(o); }\n"),
        "ft": _compile(tmp, "ft", "extern void _Py_DecRefShared(void*);\n"
                       "void PyInit__x(void *o){ _Py_DecRefShared(o); }\n"),
        "plain": _compile(tmp, "plain", "int answer(void){ return 42; }\n"),
    }


def ext_path(variant: PythonVariant, stem: str = "m") -> str:
    return f"{variant.site_packages}/pkg/{stem}{variant.extension_suffix()}"


def compiled(variant: PythonVariant, files: dict[str, bytes], **kw) -> SyntheticPackage:
    kw.setdefault("depends", [variant.python_abi_spec])
    return SyntheticPackage(
        name=kw.pop("name", "pkg"), version=kw.pop("version", "1.0"),
        build=kw.pop("build", variant.extension_build_string("abcdef0", 0)),
        subdir=kw.pop("subdir", "linux-64"), files=files, **kw)


def pure(name: str = "purepkg", **kw) -> SyntheticPackage:
    files = kw.pop("files", {f"site-packages/{name}/__init__.py": b"x = 1\n"})
    return SyntheticPackage(name=name, version=kw.pop("version", "1.0"),
                            build=kw.pop("build", "pyh4616a5c_0"), noarch="python",
                            depends=kw.pop("depends", ["python >=3.10"]), files=files, **kw)


# -- raw archives, for what the synthetic writer refuses to make --------------------------

def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _zst(data: bytes) -> bytes:
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd.compress(data)


def _components(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rezip(good: Path, out: Path, entries: list[tuple[str, bytes]], hide: str | None = None) -> Path:
    """A .conda written entry by entry (duplicates allowed); ``hide``: written but left
    out of the central directory, as a streaming client would still read it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
            if hide:
                info = next(i for i in zf.filelist if i.filename == hide)
                zf.filelist.remove(info)
                del zf.NameToInfo[hide]
    return out


def smuggle(good: Path, out_dir: Path, name: str, members: list[tuple[str, bytes]],
            hide: bool = False) -> Path:
    comps = _components(good)
    payload = _zst(_tar([(_info(n, d), d) for n, d in members]))
    entries = list(comps.items()) + [(name, payload)]
    return rezip(good, out_dir / good.name, entries, hide=name if hide else None)


def _info(name: str, data: bytes = b"", **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def with_pkg_tar(good: Path, out_dir: Path, pkg_tar: bytes, info_tar: bytes | None = None) -> Path:
    comps = _components(good)
    stem = good.name[: -len(".conda")]
    comps[f"pkg-{stem}.tar.zst"] = _zst(pkg_tar)
    if info_tar is not None:
        comps[f"info-{stem}.tar.zst"] = _zst(info_tar)
    return rezip(good, out_dir / good.name, list(comps.items()))


def info_tar_of(good: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    from conda_package_streaming.package_streaming import stream_conda_component

    return [(m, t.extractfile(m).read()) for t, m in stream_conda_component(str(good),
                                                                             component="info")]


def pax_bomb(tmp: Path, good: Path) -> Path:
    """A pkg component whose first header claims a 1 GiB PAX payload."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 1 << 30
    raw = header.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 4096
    return with_pkg_tar(good, tmp, raw)


# -- the corpus ----------------------------------------------------------------------------

def corpus(elves: dict[str, bytes]) -> dict[str, tuple[str, object]]:
    """kind -> (rule expected in the refusal, SyntheticPackage or callable(tmp) -> Path)."""
    ok_ft = {ext_path(FT): elves["ft"]}

    def good_ft(tmp: Path, **kw) -> Path:
        return write_package(compiled(FT, ok_ft, **kw), tmp / "good")

    def extra_tar_zst(tmp):
        return smuggle(good_ft(tmp), tmp, "zzz.tar.zst",
                       [("bin/evil.sh", b"#!/bin/sh\nrm -rf ~\n"),
                        (f"{FT.site_packages}/pkg/_x.so", elves["gil"])])

    def hidden_entry(tmp):
        return smuggle(good_ft(tmp), tmp, "zzz.tar.zst", [("bin/evil.sh", b"#!/bin/sh\n")],
                       hide=True)

    def duplicate_pkg(tmp):
        good = good_ft(tmp)
        comps = _components(good)
        stem = good.name[: -len(".conda")]
        evil = _zst(_tar([(_info("bin/evil.sh", b"x"), b"x")]))
        return rezip(good, tmp / good.name, [*comps.items(), (f"pkg-{stem}.tar.zst", evil)])

    def info_holds_payload(tmp):
        good = good_ft(tmp)
        members = info_tar_of(good) + [(_info("bin/evil.sh", b"x"), b"x")]
        return with_pkg_tar(good, tmp, _tar([(_info(ext_path(FT), elves["ft"]),
                                               elves["ft"])]), _tar(members))

    def duplicate_member_bz2(tmp):
        target = tmp / "pkg-1.0-0.tar.bz2"
        pkg = compiled(FT, ok_ft)
        index = {**pkg.index_json(), "build": "0"}
        with tarfile.open(target, "w:bz2") as tar:
            for name, data in [("info/index.json", json.dumps(index).encode()),
                               ("info/paths.json", json.dumps(pkg.paths_json()).encode()),
                               (ext_path(FT), elves["ft"]), (ext_path(FT), elves["gil"])]:
                tar.addfile(_info(name, data), io.BytesIO(data))
        return target

    def non_utf8_name(tmp):
        good = good_ft(tmp)
        bad = f"{FT.site_packages}/pkg/\udcff.py"
        return with_pkg_tar(good, tmp, _tar([(_info(ext_path(FT), elves["ft"]), elves["ft"]),
                                             (_info(bad, b""), b"")], fmt=tarfile.GNU_FORMAT))

    def pax_header_bomb(tmp):
        return pax_bomb(tmp, good_ft(tmp))

    def empty_file(tmp):
        target = tmp / "pkg-1.0-py313thabcdef0_0.conda"
        target.write_bytes(b"")
        return target

    def fifo(tmp):
        target = tmp / "pkg-1.0-py313thabcdef0_0.conda"
        os.mkfifo(target)
        return target

    def misplaced(tmp):  # a linux-64 package given from a noarch/ folder
        return write_package(compiled(FT, ok_ft), tmp / "noarch")

    def ln(name, target):
        return Member(name, type=tarfile.SYMTYPE, linkname=target)

    kinds: dict[str, tuple[str, object]] = {
        # 1. everything that installs is audited
        "extra-tar-zst-in-conda": ("archive.member-set", extra_tar_zst),
        "entry-hidden-from-central-directory": ("archive.member-set", hidden_entry),
        "duplicate-pkg-entry": ("archive.member-set", duplicate_pkg),
        "payload-in-info-component": ("archive.misplaced-member", info_holds_payload),
        "duplicate-member-tar-bz2": ("archive.duplicate-member", duplicate_member_bz2),
        # 2. subdir is a path
        **{f"subdir-{label}": ("metadata.subdir", compiled(FT, ok_ft, index_overrides={
            "subdir": value})) for label, value in (
            ("absolute", "/tmp/evil"), ("parent", "../../x"), ("internal", ".ftforge"),
            ("dot", "."), ("owners", "owners.yaml"), ("number", 64))},
        "subdir-not-where-the-file-is": ("metadata.subdir", misplaced),
        "noarch-in-linux-64": ("metadata.subdir", pure(index_overrides={"subdir": "linux-64"})),
        # 7. what the indexer rejects, refused before anything moves
        "name-shell": ("metadata.field", pure("x", index_overrides={"name": "$(touch pwned)"})),
        "name-newline": ("metadata.field", pure("x", index_overrides={"name": "a\nb"})),
        "name-missing": ("metadata.field", pure("x", index_overrides={"name": None})),
        "version-bad": ("metadata.field", pure(index_overrides={"version": "1 0"})),
        "depends-empty": ("metadata.field", pure(depends=["python >=3.10", ""])),
        "depends-string": ("metadata.field", pure(index_overrides={"depends": "python"})),
        "depends-number": ("metadata.field", pure(depends=[3])),
        "depends-not-a-spec": ("metadata.field", pure(depends=["foo $(x)"])),
        "build-number-text": ("metadata.field", pure(build_number="7")),
        "non-utf8-member-name": ("archive.bad-name", non_utf8_name),
        # 10. ELF objects classified by what they link, not their name
        **{f"gil-elf-named-{label}": ("abi.module-built-for-other-abi", compiled(
            FT, {**ok_ft, f"{FT.site_packages}/pkg/{fname}": elves["gil"]})) for label, fname in (
            ("plain", "_x.so"), ("so-1", "_x.so.1"), ("musl", "_x.cpython-313t-x86_64-linux-musl.so"),
            ("upper", "_X.SO"))},
        "gil-elf-untagged-in-noarch": ("abi.compiled-in-noarch", pure(files={
            "site-packages/purepkg/__init__.py": b"", "site-packages/purepkg/_x.so": elves["gil"]})),
        "plain-elf-in-noarch": ("abi.compiled-in-noarch", pure(files={
            "site-packages/purepkg/__init__.py": b"", "site-packages/purepkg/lib.bin": elves["plain"]})),
        "untagged-extension-without-python-abi": ("abi.python-abi-count", SyntheticPackage(
            "cext", "1.0", "h1234567_0", subdir="linux-64",
            files={"lib/python3.13t/site-packages/_x.so": elves["ft"]})),
        # 11. links resolved as paths
        "link-through-link": ("archive.link-escape", compiled(FT, ok_ft, extra_members=[
            ln("lib/l1", ".."), ln("lib/l2", "l1/..")])),
        "link-loop": ("archive.link-escape", compiled(FT, ok_ft, extra_members=[
            ln("lib/a", "b"), ln("lib/b", "a")])),
        "link-absolute": ("archive.link-escape", compiled(FT, ok_ft, extra_members=[
            ln("lib/x", "/etc/shadow")])),
        # 12. memory and time bombs
        "pax-header-bomb": ("archive.header-too-large", pax_header_bomb),
        "index-json-huge": ("archive.metadata-too-large", pure(index_overrides={
            "about": "x" * (128 << 10)})),
        "empty-file": ("archive.unreadable", empty_file),
        "fifo-input": ("input.not-a-file", fifo),
        # crashes: paths.json with the wrong types
        "paths-path-list": ("metadata.paths-malformed", pure(paths_overrides={
            "site-packages/purepkg/__init__.py": {"_path": ["a"]}})),
        "paths-sha256-number": ("metadata.paths-malformed", pure(paths_overrides={
            "site-packages/purepkg/__init__.py": {"sha256": 12}})),
        "paths-file-mode-unknown": ("metadata.paths-malformed", pure(paths_overrides={
            "site-packages/purepkg/__init__.py": {"file_mode": "exec",
                                                  "prefix_placeholder": "/opt/x"}})),
        # issue 11: a free-threaded build without its GIL twin
        "freethreaded-without-gil-twin": ("channel.variant-incomplete", compiled(
            FT, ok_ft, name="lonely")),
    }
    # paths.json softlink / directory entries with unsafe _path values
    kinds["paths-softlink-parent"] = ("metadata.paths-malformed", _paths_extra(
        ok_ft, {"_path": "../../x", "path_type": "softlink"}))
    kinds["paths-directory-absolute"] = ("metadata.paths-malformed", _paths_extra(
        ok_ft, {"_path": "/etc/cron.d/x", "path_type": "directory"}))
    # paths the client itself creates at install time
    kinds["entry-point-escapes-bin"] = ("metadata.install-path", _link_json(
        {"noarch": {"type": "python", "entry_points": ["../../etc/cron.d/x = purepkg:main"]},
         "package_metadata_version": 1}))
    kinds["site-packages-path-escapes"] = ("metadata.install-path", pure(index_overrides={
        "python_site_packages_path": "../../../tmp/evil"}))
    return kinds


def _link_json(link: dict):
    def make(tmp: Path) -> Path:
        good = write_package(pure(), tmp / "good")
        data = json.dumps(link).encode()
        members = info_tar_of(good) + [(_info("info/link.json", data), data)]
        comps = _components(good)
        stem = good.name[: -len(".conda")]
        comps[f"info-{stem}.tar.zst"] = _zst(_tar(members))
        return rezip(good, tmp / good.name, list(comps.items()))
    return make


def _paths_extra(files: dict[str, bytes], entry: dict):
    def make(tmp: Path) -> Path:
        pkg = compiled(FT, files)
        good = write_package(pkg, tmp / "good")
        members = []
        for info, data in info_tar_of(good):
            if info.name == "info/paths.json":
                paths = json.loads(data)
                paths["paths"].append(entry)
                data = json.dumps(paths).encode()
                info.size = len(data)
            members.append((info, data))
        comps = _components(good)
        stem = good.name[: -len(".conda")]
        comps[f"info-{stem}.tar.zst"] = _zst(_tar(members))
        return rezip(good, tmp / good.name, list(comps.items()))
    return make


PRE_AUDIT = {"fifo-input": "not a regular file"}
"""Kinds that publish refuses before auditing (``channel audit`` gives them a rule)."""


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (the channel's state included) -> sha256; dirs -> 'dir'."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


@pytest.fixture
def world(tmp_path, elves):
    """tmp/channel (published: a GIL+FT pair and a pure package) and tmp/inputs."""
    channel = tmp_path / "work" / "channel"
    pkgs = [write_package(compiled(FT, {ext_path(FT): elves["ft"]}, name="good"), tmp_path / "in"),
            write_package(compiled(GIL, {ext_path(GIL): elves["gil"]}, name="good"),
                          tmp_path / "in"),
            write_package(pure("seed"), tmp_path / "in")]
    result = publish(pkgs, channel, recipe="good-feedstock")
    return channel, result.tokens


def test_hostile_corpus_is_refused_and_changes_nothing(tmp_path, elves, world):
    channel, _ = world
    kinds = corpus(elves)
    assert len(kinds) >= 40
    outside = tmp_path / "work"
    tried = refused = changed = 0
    for kind, (rule, spec) in kinds.items():
        assert rule in RULES or rule == "channel.variant-incomplete", rule
        inputs = tmp_path / "inputs" / kind
        inputs.mkdir(parents=True)
        path = spec(inputs) if callable(spec) else write_package(spec, inputs)
        before, around = snapshot(channel), snapshot(outside)
        tried += 1
        with pytest.raises((PackageRefused, ChannelError)) as err:
            publish([path], channel, limits=SMALL)
        text = str(err.value)
        if isinstance(err.value, PackageRefused):
            assert f"[{rule}]" in text, f"{kind}: expected [{rule}], got {text}"
            line = next(line for line in text.splitlines() if f"[{rule}]" in line)
            assert line.strip().startswith(path.name), f"{kind}: names the file: {line}"
        else:  # refused before the audit (the input is not a file): one line naming it
            assert kind in PRE_AUDIT and PRE_AUDIT[kind] in err.value.message, (kind, text)
            assert str(path) in err.value.message and "\n" not in err.value.message
        refused += 1
        if snapshot(channel) != before or snapshot(outside) != around:
            changed += 1
        assert not (tmp_path / "x").exists() and not Path("/tmp/evil").exists()
        assert not (Path.cwd() / "pwned").exists()
    print(f"\nhostile corpus: {tried} kinds tried, {refused} refused, {changed} states changed")
    assert tried == refused == len(kinds) and changed == 0


def test_audit_alone_names_file_and_rule_on_one_line(tmp_path, elves):
    for kind, (rule, spec) in corpus(elves).items():
        if rule.startswith("channel."):
            continue
        inputs = tmp_path / kind
        inputs.mkdir()
        path = spec(inputs) if callable(spec) else write_package(spec, inputs)
        report = audit_package(path, SMALL, subdir_here=path.parent.name
                               if path.parent.name in ("noarch", "linux-64") else None)
        assert rule in {f.rule for f in report.findings}, (kind, report.findings)
        for finding in report.findings:
            assert "\n" not in str(finding), (kind, str(finding))


def test_pax_bomb_is_refused_without_reading_it(tmp_path, elves):
    import resource

    good = write_package(compiled(FT, {ext_path(FT): elves["ft"]}), tmp_path / "good")
    bomb = pax_bomb(tmp_path, good)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = audit_package(bomb)  # the default limits
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert [f.rule for f in report.findings] == ["archive.header-too-large"]
    assert grown_kib < 100 << 10, f"the audit grew by {grown_kib} KiB"


def test_good_elf_with_untagged_name_passes(tmp_path, elves):
    """The ELF rules refuse by symbols, so an untagged module of the right ABI is fine."""
    pkg = compiled(FT, {ext_path(FT): elves["ft"], f"{FT.site_packages}/pkg/_x.so": elves["ft"],
                        "lib/libplain.so.1": elves["plain"]})
    assert audit_package(write_package(pkg, tmp_path)).ok


def test_links_inside_the_prefix_pass(tmp_path, elves):
    ln = lambda n, t: Member(n, type=tarfile.SYMTYPE, linkname=t)  # noqa: E731
    pkg = compiled(FT, {ext_path(FT): elves["ft"]}, extra_members=[
        ln("lib/l1", ".."), ln("lib/l3", "l1/lib"), ln("bin/py", "../lib/l3/python3.13t")])
    rules = {f.rule for f in audit_package(write_package(pkg, tmp_path)).findings}
    assert "archive.link-escape" not in rules


# -- publish: failures roll back, errors are one line ------------------------------------

def test_index_failure_rolls_the_publish_back(tmp_path, elves, world, monkeypatch):
    channel, tokens = world
    before = snapshot(channel)
    pair = [write_package(compiled(v, {ext_path(v): elves["ft" if v.freethreaded else "gil"]},
                                   name="newpkg"), tmp_path / "pair") for v in (FT, GIL)]
    real = channel_index.reindex
    calls = []

    def failing(ch, **kw):
        calls.append(kw)
        if len(calls) == 1:
            raise RuntimeError("indexer rejected a record")
        return real(ch, **kw)

    monkeypatch.setattr("ftforge.channel.publish.reindex", failing)
    with pytest.raises(ChannelError, match="rolled back") as err:
        publish(pair, channel, recipe="new-feedstock")
    assert "\n" not in err.value.message
    after = snapshot(channel)
    assert {k: v for k, v in after.items() if not k.startswith(".ftforge/index")} == {
        k: v for k, v in before.items() if not k.startswith(".ftforge/index")}
    monkeypatch.setattr("ftforge.channel.publish.reindex", real)
    publish(pair, channel, recipe="new-feedstock")  # the next publish works


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "the disk is full"),
                                        (errno.EROFS, "read-only")])
def test_disk_full_and_read_only_are_one_line(tmp_path, elves, world, monkeypatch, code, words):
    channel, _ = world
    before = snapshot(channel)
    pkg = write_package(pure("late"), tmp_path / "late")

    def broken(src, dst, *a, **kw):
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr("ftforge.channel.publish.shutil.copyfile", broken)
    with pytest.raises(ChannelError, match=words) as err:
        publish([pkg], channel)
    assert "\n" not in err.value.message
    assert {k for k in snapshot(channel) if "staging" not in k} == {
        k for k in before if "staging" not in k}


@pytest.mark.parametrize("damage", ["not-utf8", "directory", "deleted", "tokens-deleted"])
def test_a_damaged_owners_file_is_an_error(tmp_path, world, damage):
    channel, tokens = world
    owners = channel / "owners.yaml"
    if damage == "tokens-deleted":
        owners = channel / ".ftforge" / "recipe-tokens.json"
        owners.unlink()
        pkg = write_package(pure("seed", version="2.0"), tmp_path / "p")
        with pytest.raises(ChannelError, match="recipe-tokens.json: missing"):
            publish([pkg], channel, recipe="good-feedstock")
        return
    if damage == "not-utf8":
        owners.write_bytes(b"good: \xff\xfe\n")
    else:
        owners.unlink()
        if damage == "directory":
            owners.mkdir()
    pkg = write_package(pure("seed", version="2.0"), tmp_path / "p")
    with pytest.raises(ChannelError) as err:
        publish([pkg], channel)
    assert "owners.yaml" in err.value.message and "\n" not in err.value.message


def test_a_channel_path_that_is_a_file_or_a_foreign_directory(tmp_path):
    pkg = write_package(pure(), tmp_path / "p")
    as_file = tmp_path / "file"
    as_file.write_text("x")
    with pytest.raises(ChannelError, match="is a file"):
        publish([pkg], as_file)
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ChannelError, match="not a channel"):
        publish([pkg], foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_remove_on_a_non_channel_touches_nothing(tmp_path):
    with pytest.raises(ChannelError, match="not a channel"):
        remove(["x-1.0-0.conda"], tmp_path, reason="r")
    assert list(tmp_path.iterdir()) == []


def test_ownership_cannot_be_spoofed_by_naming_the_recipe(tmp_path, elves, world):
    channel, tokens = world
    newer = [write_package(compiled(v, {ext_path(v): elves["ft" if v.freethreaded else "gil"]},
                                    name="good", version="2.0"), tmp_path / "n")
             for v in (FT, GIL)]
    with pytest.raises(OwnershipRefused, match="token given for it is missing"):
        publish(newer, channel, recipe="good-feedstock")
    with pytest.raises(OwnershipRefused, match="needs recipe 'good-feedstock''s token"):
        remove([p.name for p in newer[:0]] + ["good-1.0-py313habcdef0_0.conda"], channel,
               reason="spoof", recipe="good-feedstock", token="x" * 43)
    publish(newer, channel, recipe="good-feedstock", token=tokens["good-feedstock"])


def test_removing_a_gil_twin_alone_is_refused(tmp_path, world, elves):
    channel, tokens = world
    gil_fn = f"good-1.0-{GIL.extension_build_string('abcdef0', 0)}.conda"
    ft_fn = f"good-1.0-{FT.extension_build_string('abcdef0', 0)}.conda"
    before = snapshot(channel)
    with pytest.raises(ChannelError, match=f"would leave {ft_fn} without its GIL twin"):
        remove([gil_fn], channel, reason="r", recipe="good-feedstock",
               token=tokens["good-feedstock"])
    assert snapshot(channel) == before
    remove([gil_fn, ft_fn], channel, reason="both", recipe="good-feedstock",
           token=tokens["good-feedstock"])


def test_publishing_the_twin_later_completes_the_pair(tmp_path, world, elves):
    channel, tokens = world
    ft = write_package(compiled(FT, {ext_path(FT): elves["ft"]}, name="good", version="3.0"),
                       tmp_path / "a")
    gil = write_package(compiled(GIL, {ext_path(GIL): elves["gil"]}, name="good",
                                 version="3.0"), tmp_path / "a")
    token = tokens["good-feedstock"]
    with pytest.raises(PackageRefused, match="good 3.0 built for cp313"):
        publish([ft], channel, recipe="good-feedstock", token=token)
    publish([gil], channel, recipe="good-feedstock", token=token)  # GIL alone is fine
    publish([ft], channel, recipe="good-feedstock", token=token)   # its twin is there now


# -- the command line --------------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftforge.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_audit_of_odd_inputs_is_one_line_each(tmp_path):
    (tmp_path / "adir.conda").mkdir()
    fifo = tmp_path / "pipe-1.0-0.conda"
    os.mkfifo(fifo)
    empty = tmp_path / "empty-1.0-0.conda"
    empty.write_bytes(b"")
    for path, words in ((tmp_path / "adir.conda", "a directory"),
                        (tmp_path / "missing-1.0-0.conda", "no such file"),
                        (fifo, "a FIFO"), (empty, "an empty file")):
        result = cli("channel", "audit", str(path))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert words in result.stdout and path.name in result.stdout


def test_cli_keeps_square_brackets_in_messages(tmp_path):
    bad = tmp_path / "x[freebsd]-1.0-[build-system].conda"
    bad.write_bytes(b"PK\x03\x04 not really")
    result = cli("channel", "audit", str(bad))
    assert result.returncode == 1
    assert "x[freebsd]-1.0-[build-system].conda" in result.stdout
    assert "[archive.unreadable]" in result.stdout


def test_nginx_config_quotes_paths_and_refuses_what_it_cannot_quote(tmp_path):
    pkg = write_package(pure(), tmp_path / "p")
    odd = tmp_path / "a;b {c}" / "ft"
    publish([pkg], odd)
    result = cli("channel", "nginx-config", str(odd))
    assert result.returncode == 0, result.stderr
    assert f'alias "{odd.resolve()}/";' in result.stdout and "location /ft/ {" in result.stdout
    assert "location = /ft/owners.yaml { return 404; }" in result.stdout
    dollar = tmp_path / "$host" / "ft"
    publish([pkg], dollar)
    result = cli("channel", "nginx-config", str(dollar))
    assert result.returncode == 1 and "'$'" in result.stderr and "Traceback" not in result.stderr


# -- serving -------------------------------------------------------------------------------

def test_serve_decodes_before_hiding_state_and_serves_each_channel_by_name(tmp_path, world):
    channel, tokens = world
    other = tmp_path / "other" / "base"
    publish([write_package(pure("basepkg"), tmp_path / "b")], other)
    seed = "seed-1.0-pyh4616a5c_0.conda"
    remove([seed], channel, reason="test", recipe="good-feedstock",
           token=tokens["good-feedstock"])
    with serving_channels([channel, other]) as urls:
        assert set(urls) == {"channel", "base"}
        ft, base = urls["channel"], urls["base"]
        assert ft.endswith("/channel/") and base.endswith("/base/")
        root = ft[: -len("channel/")]
        assert http_status(ft + "noarch/repodata.json") == 200
        assert http_status(base + "noarch/repodata.json") == 200
        assert http_status(root) == 200
        hidden = ["owners.yaml", "%6fwners.yaml", ".ftforge/log.jsonl", "%2eftforge/log.jsonl",
                  "%2Eftforge/lock",
                  "%2eftforge-channel", ".ftforge/recipe-tokens.json",
                  f"%2eftforge/removed/{next((channel / '.ftforge/removed').iterdir()).name}"
                  f"/noarch/{seed}", f"noarch/{seed}", "..%2f..%2fetc/passwd", "noarch/"]
        for path in hidden:
            assert http_status(ft + path) == 404, path
        for path in ("noarch/%00", "noarch/%0a", "%c3%28"):
            assert http_status(ft + path) == 400, path
        assert http_status(root + "nosuch/noarch/repodata.json") == 404


def test_serve_port_errors_are_one_line(tmp_path, world):
    channel, _ = world
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli("channel", "serve", str(channel), "--port", str(port))
        assert result.returncode == 1 and "in use" in result.stderr
        assert "Traceback" not in result.stderr
    result = cli("channel", "serve", str(channel), "--port", "99999")
    assert result.returncode == 1 and "not a TCP port" in result.stderr
    assert "Traceback" not in result.stderr


def test_reindex_of_a_channel_broken_by_an_older_version_says_how_to_recover(tmp_path, world):
    """A package an older ftforge moved in without checking (name with a newline): the
    re-index fails in one line naming the way out, and the old index keeps serving."""
    channel, _ = world
    bad = write_package(pure("x", index_overrides={"name": "a\nb"}), tmp_path / "bad")
    os.replace(bad, channel / "noarch" / bad.name)
    before = (channel / "noarch" / "repodata.json").read_bytes()
    result = cli("channel", "reindex", str(channel))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    # the reindex audits files the publish log does not record before indexing them
    assert "fail the audit" in result.stderr and "move those files out" in result.stderr
    assert "metadata.field" in result.stderr
    assert (channel / "noarch" / "repodata.json").read_bytes() == before


def test_reindex_refusal_of_many_unlogged_files_is_bounded(tmp_path, world):
    """Hundreds of bad files moved in by hand: the re-index refusal names the first ones
    with their findings, says how many more were refused, and stays a bounded message
    (it listed every finding of every file); a control character in a name is escaped."""
    from ftforge.channel.audit import SHOWN_IN_ALL

    channel, _ = world
    for i in range(SHOWN_IN_ALL + 30):
        bad = write_package(pure(f"x{i}", index_overrides={"name": "a\nb"}), tmp_path / f"b{i}")
        os.replace(bad, channel / "noarch" / bad.name)
    odd = write_package(pure("y", index_overrides={"name": "a\nb"}), tmp_path / "odd")
    os.replace(odd, channel / "noarch" / "y\x1b[2J-1.0-0.conda")
    before = (channel / "noarch" / "repodata.json").read_bytes()
    result = cli("channel", "reindex", str(channel))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{SHOWN_IN_ALL + 31} package file(s) the publish log does not record" \
        in " ".join(result.stderr.split())
    assert "noarch/x0-1.0-pyh4616a5c_0.conda: [metadata.field]" in result.stderr
    assert "more package(s) refused" in result.stderr
    assert len(result.stderr.splitlines()) <= SHOWN_IN_ALL + 12
    assert "\x1b" not in result.stderr
    assert (channel / "noarch" / "repodata.json").read_bytes() == before


def test_check_after_an_interrupted_publish_says_to_reindex(tmp_path, world):
    """A publish interrupted between its moves and its index leaves a file the index
    does not list and its journal: `channel check` names the way out, and after
    `channel reindex` the check passes."""
    channel, _ = world
    late = write_package(pure("late"), tmp_path / "late")
    os.replace(late, channel / "noarch" / late.name)
    digest = hashlib.sha256((channel / "noarch" / late.name).read_bytes()).hexdigest()
    (channel / ".ftforge" / "publishing.json").write_text(json.dumps(
        {"files": [{"file": f"noarch/{late.name}", "sha256": digest}], "recipe": None,
         "by": "test"}))
    checked = cli("channel", "check", str(channel))
    assert checked.returncode == 1 and "Traceback" not in checked.stderr, checked.stderr
    assert "a publish or a removal was interrupted in" in checked.stderr
    assert "`ftforge channel reindex CHANNEL` finishes it" in checked.stderr
    assert cli("channel", "reindex", str(channel)).returncode == 0
    again = cli("channel", "check", str(channel))
    assert again.returncode == 0, again.stderr


def test_cli_publish_prints_the_token_once_and_takes_it_from_the_environment(tmp_path):
    channel = tmp_path / "ch"
    first = write_package(pure("tok"), tmp_path / "1")
    result = cli("channel", "publish", str(first), "--channel", str(channel), "--recipe", "tok-fs")
    assert result.returncode == 0, result.stderr
    assert "token for recipe tok-fs" in result.stdout
    token = next(line for line in result.stdout.splitlines()
                 if line.startswith("  token: ")).split(": ", 1)[1].strip()
    newer = write_package(pure("tok", version="2.0"), tmp_path / "2")
    refused = cli("channel", "publish", str(newer), "--channel", str(channel), "--recipe", "tok-fs")
    assert refused.returncode == 1 and "token given for it is missing" in refused.stderr
    env_run = subprocess.run(
        [sys.executable, "-m", "ftforge.cli", "channel", "publish", str(newer), "--channel",
         str(channel), "--recipe", "tok-fs"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "FTFORGE_CHANNEL_TOKEN": token})
    assert env_run.returncode == 0, env_run.stderr
    assert "token for recipe" not in env_run.stdout


def test_cli_serve_prints_one_url_per_channel(tmp_path, world):
    channel, _ = world
    other = tmp_path / "more" / "base"
    publish([write_package(pure("b"), tmp_path / "b")], other)
    proc = subprocess.Popen([sys.executable, "-m", "ftforge.cli", "channel", "serve",
                             str(channel), str(other), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.kill()
        proc.wait(timeout=30)
    urls = [line.split()[1] for line in lines]
    assert [u.rsplit("/", 2)[1] for u in urls] == ["channel", "base"], lines
    assert all(u.startswith("http://127.0.0.1:") and u.endswith("/") for u in urls)


def test_serve_is_quiet_when_clients_hang_up(tmp_path, capfd):
    import struct
    import time

    channel = tmp_path / "big" / "ft"
    blob = os.urandom(8 << 20)  # incompressible: the response outlives the client
    pkg = write_package(pure("bigpkg", files={"site-packages/bigpkg/data.bin": blob,
                                              "site-packages/bigpkg/__init__.py": b""}),
                        tmp_path / "in")
    publish([pkg], channel)
    with serving_channels([channel]) as urls:
        host, port = urls["ft"].split("/")[2].split(":")
        for _ in range(5):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(f"GET /ft/noarch/{pkg.name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.recv(1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # reset mid-response
        time.sleep(0.5)
        assert http_status(urls["ft"] + "noarch/repodata.json") == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err


def test_oci_push_refuses_an_index_naming_files_elsewhere(tmp_path, world):
    """A hand-edited repodata.json must not make `channel push` read (and upload) a file
    outside the channel; a missing channel is one line."""
    from ftforge.channel.oci import push_channel

    channel, _ = world
    repodata = channel / "noarch" / "repodata.json"
    data = json.loads(repodata.read_text())
    data["packages.conda"]["../../../etc/passwd.conda"] = {"sha256": "0" * 64}
    repodata.write_text(json.dumps(data))
    with pytest.raises(ChannelError, match="not a package file of this subdir"):
        push_channel(channel, "127.0.0.1:9/ft")  # refused before any connection
    with pytest.raises(ChannelError, match="no such channel directory"):
        push_channel(tmp_path / "missing", "127.0.0.1:9/ft")
