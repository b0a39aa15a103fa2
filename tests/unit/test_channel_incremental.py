"""The publisher's fast paths give exactly what the slow ones gave.

Issue 16 made a publish touch only what it changes: the page re-renders the
sections of changed names, owners.yaml is read without a YAML parser when it
is in the form ftforge writes, the log is parsed only on removal lines, many
files share one disk barrier, variant completeness looks only at the
transaction's names. Each test here compares a fast path with the slow one it
replaced (or checks the fallback a hostile or hand-edited file must take).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftforge.channel import page as page_module
from ftforge.channel.audit import audit_package
from ftforge.channel.check import missing_twins
from ftforge.channel.durable import write_atomic_many
from ftforge.channel.index import channel_records
from ftforge.channel.owners import OWNERS_FILE, _plain_owners, load_owners
from ftforge.channel.page import render
from ftforge.channel.publish import publish, remove
from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.errors import ChannelError
from ftforge.variants import PythonVariant


def pure(name: str, version: str = "1.0") -> SyntheticPackage:
    return SyntheticPackage(name=name, version=version, build="pyh4616a5c_0", noarch="python",
                            depends=["python >=3.10"],
                            files={f"site-packages/{name.replace('-', '_')}/__init__.py":
                                   f"# {name} {version}\n".encode()})


def twins(name: str, version: str = "1.0") -> list[SyntheticPackage]:
    out = []
    for ft in (True, False):
        variant = PythonVariant(series="3.13", freethreaded=ft)
        out.append(SyntheticPackage(
            name=name, version=version, build=variant.extension_build_string("abcdef0", 0),
            subdir="linux-64", depends=[variant.python_abi_spec],
            files={f"{variant.site_packages}/{name.replace('-', '_')}/__init__.py": b"X = 1\n"}))
    return out


@pytest.fixture
def splices(monkeypatch) -> dict[str, int]:
    """Counts how often the page was spliced (fast path) or rendered whole."""
    counts = {"spliced": 0, "refused": 0}
    original = page_module._splice

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        counts["spliced" if result is not None else "refused"] += 1
        return result

    monkeypatch.setattr(page_module, "_splice", spy)
    return counts


def test_spliced_page_is_byte_for_byte_the_whole_render(tmp_path, splices):
    """New names, new versions of old names (sorting inside a section), both subdirs,
    a name sorting before every other, a removal: after each publish the page equals
    the one rendered from scratch."""
    channel = tmp_path / "ch"
    out = tmp_path / "pkgs"
    token = publish([write_package(p, out / "0") for p in [pure("mid"), *twins("ext-b")]],
                    channel, recipe="r").tokens["r"]
    steps = [[pure("zzz")], [pure("mid", "2.0")], twins("ext-a"), [pure("aaa"), pure("mid", "0.5")],
             twins("ext-b", "1.1"), [pure("0first")]]
    for i, batch in enumerate(steps, 1):
        publish([write_package(p, out / str(i)) for p in batch], channel, recipe="r",
                token=token)
        assert (channel / "index.html").read_text() == render(channel), f"after step {i}"
    assert splices["spliced"] == len(steps) and splices["refused"] == 0

    records = channel_records(channel)
    assert {r["name"] for r in records} >= {"0first", "aaa", "mid", "zzz", "ext-a", "ext-b"}
    assert (channel / "index.html").read_text().count("<h2 id=") == 6


def test_removal_then_publish_keeps_the_page_whole(tmp_path, splices):
    channel = tmp_path / "ch"
    result = publish([write_package(pure("gone"), tmp_path / "a"),
                      write_package(pure("stays"), tmp_path / "a")], channel, recipe="r")
    token = result.tokens["r"]
    remove(["gone-1.0-pyh4616a5c_0.conda"], channel, reason="bad build", recipe="r",
           token=token)
    assert "id='gone'" not in (channel / "index.html").read_text()
    publish([write_package(pure("new"), tmp_path / "b")], channel, recipe="r", token=token)
    page = (channel / "index.html").read_text()
    assert page == render(channel) and "id='gone'" not in page and "id='new'" in page


@pytest.mark.parametrize("damage", ["edited", "truncated", "state-deleted", "state-garbage",
                                    "section-dropped"])
def test_a_page_that_is_not_the_recorded_one_is_rendered_whole(tmp_path, splices, damage):
    channel = tmp_path / "ch"
    publish([write_package(pure(n), tmp_path / "a") for n in ("alpha", "beta", "gamma")],
            channel)
    page_path, state = channel / "index.html", channel / ".ftforge" / "page.json"
    text = page_path.read_text()
    if damage == "edited":
        page_path.write_text(text.replace("beta", "BETA-by-hand"))
    elif damage == "truncated":
        page_path.write_text(text[: len(text) // 2])
    elif damage == "state-deleted":
        page_path.write_text(text.replace("gamma", "x"))
        state.unlink()
    elif damage == "state-garbage":
        state.write_text("[not json")
    else:  # a section dropped and the record rewritten to match the damaged page
        start = text.index("<h2 id='beta'>")
        damaged = text[:start] + text[text.index("<h2 id='gamma'>"):]
        page_path.write_text(damaged)
        record = json.loads(state.read_text())
        record["page"] = hashlib.sha256(damaged.encode()).hexdigest()
        state.write_text(json.dumps(record))
    publish([write_package(pure("delta"), tmp_path / "b")], channel)
    assert page_path.read_text() == render(channel)
    if damage == "state-garbage":
        assert splices["spliced"] == 0
    if damage == "section-dropped":  # the record matched, the page's shape did not
        assert splices["refused"] == 1


def test_a_new_stress_record_is_shown_by_the_next_publish(tmp_path, splices):
    from ftforge import stress

    channel = tmp_path / "ch"
    publish([write_package(p, tmp_path / "a") for p in twins("racy")], channel)
    fn = next(r["fn"] for r in channel_records(channel) if "313th" in r["build"])
    record = stress.StressRecord(package="racy", version="1.0", build=fn[len("racy-1.0-"):-6],
                                 subdir="linux-64", fn=fn, sdist="racy-1.0.tar.gz", threads=2,
                                 iterations=3, collected=3, passed_parallel=1,
                                 status="findings",
                                 failed_only_in_parallel=["t.py::test_shared"])
    path = stress.record_path(channel, "linux-64", fn)
    path.write_text(json.dumps(record.__dict__))  # by hand: no page rewrite
    publish([write_package(pure("other"), tmp_path / "b")], channel)
    page = (channel / "index.html").read_text()
    assert "stress-findings" in page and page == render(channel)
    assert splices["spliced"] == 0  # the stress records changed: rendered whole


# -- owners.yaml: the plain reader and ruamel.yaml agree ------------------------------------

_names = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                 max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_names, _names, max_size=8))
def test_plain_owners_reader_agrees_with_yaml(owners):
    from ruamel.yaml import YAML

    body = "# header\n" + "".join(f"{json.dumps(k)}: {json.dumps(v)}\n"
                                  for k, v in sorted(owners.items()))
    assert (YAML(typ="safe").load(body) or {}) == owners
    fast = _plain_owners(body)
    if fast is not None:
        assert fast == owners
    if not any(c in k + v for k, v in owners.items() for c in '"\\'):
        assert fast == owners  # the written form of plain names takes the fast path


@pytest.mark.parametrize("text", [
    '"a": "b"  # trailing comment\n',
    '"a": "b"\n"a": "c"\n',               # a repeated name: ruamel decides
    '  "a": "b"\n',                       # indented
    '"a": "\\u0062"\n',                   # an escape
    "a: b\n",                             # plain YAML
    '"a": "b"\r\n',                       # CRLF
    '%YAML 1.2\n---\n"a": "b"\n',
])
def test_other_yaml_goes_through_ruamel(tmp_path, text):
    assert _plain_owners(text) is None
    channel = tmp_path / "ch"
    channel.mkdir()
    (channel / OWNERS_FILE).write_text(text)
    try:
        loaded = load_owners(channel)
    except ChannelError as exc:  # ruamel's verdict, as one line
        assert "\n" not in exc.message and OWNERS_FILE in exc.message
    else:
        from ruamel.yaml import YAML

        assert loaded == YAML(typ="safe").load(text)


# -- burned names: only removal lines are parsed, escapes included ---------------------------

def test_a_removal_record_spelled_with_escapes_still_burns_the_name(tmp_path):
    channel = tmp_path / "ch"
    first = write_package(pure("alpha"), tmp_path / "a")
    publish([write_package(pure("seed"), tmp_path / "s")], channel)
    log = channel / ".ftforge" / "log.jsonl"
    with open(log, "a") as handle:  # a record written by another tool: every letter escaped
        handle.write('{"action": "\\u0072\\u0065move", "file": "noarch/%s"}\n' % first.name)
        handle.write("{cut short by a crash\n")
        handle.write('["not", "a", "record", "remove"]\n')
    with pytest.raises(ChannelError, match="removed"):
        publish([first], channel)


# -- the disk barrier --------------------------------------------------------------------------

def test_write_atomic_many_replaces_in_order_or_not_at_all(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old a")
    with pytest.raises(OSError):
        write_atomic_many([(a, "new a"), (tmp_path / "missing" / "b", "new b")])
    assert a.read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporaries left
    write_atomic_many([(a, "new a"), (b, b"new b")], modes={b: 0o600})
    assert a.read_text() == "new a" and b.read_bytes() == b"new b"
    assert b.stat().st_mode & 0o777 == 0o600 and a.stat().st_mode & 0o777 == 0o644


# -- the linkage pass is skipped only when nothing links anything ----------------------------

def test_audit_counts_elf_objects(tmp_path):
    elf = b"\x7fELF" + b"\x02\x01\x01" + b"\x00" * 57  # a header-shaped object, not loadable
    variant = PythonVariant(series="3.13", freethreaded=False)
    pkg = SyntheticPackage("native", "1.0", variant.extension_build_string("abcdef0", 0),
                           subdir="linux-64", depends=[variant.python_abi_spec],
                           files={"lib/libnative.so": elf, "lib/README": b"text\n"})
    assert audit_package(write_package(pkg, tmp_path)).elf_objects == 1
    assert audit_package(write_package(pure("plain"), tmp_path)).elf_objects == 0


# -- variant completeness for a transaction: only its names, same answer --------------------

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "python-freethreading",
                                           "python-gil"]),
                          st.sampled_from(["1.0", "2.0"]),
                          st.sampled_from(["linux-64", "noarch"]),
                          st.sampled_from(["ft", "gil", "none"])), max_size=12),
       st.randoms(use_true_random=False))
def test_missing_twins_for_some_files_is_the_full_check_filtered(rows, rnd):
    records = []
    for i, (name, version, subdir, kind) in enumerate(rows):
        depends = {"ft": ["python_abi 3.13.* *_cp313t"], "gil": ["python_abi 3.13.* *_cp313"],
                   "none": []}[kind]
        records.append({"name": name, "version": version, "subdir": subdir, "build": f"b{i}",
                        "depends": depends, "fn": f"{name}-{version}-b{i}.conda"})
    only = {r["fn"] for r in records if rnd.random() < 0.5}
    fast = missing_twins(records, "ch", only=only)
    full = [v for v in missing_twins(records, "ch") if v.fn in only]
    assert fast == full


# -- the linkage pass reads what the closure reaches, not the whole channel -----------------

@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to make ELF objects")
def test_linkage_reads_only_the_packages_the_closure_reaches(tmp_path, monkeypatch):
    from ftforge.channel import linkage
    from ftforge.channel.audit import PackageRefused

    src = tmp_path / "c"
    src.mkdir()
    (src / "foo.c").write_text("int foo(void) { return 42; }\n")
    (src / "user.c").write_text("int foo(void);\nint user(void) { return foo(); }\n")
    run = lambda *a: subprocess.run(a, cwd=src, check=True, capture_output=True)  # noqa: E731
    run("gcc", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", "libfoo.so.1", "foo.c")
    run("gcc", "-shared", "-fPIC", "-o", "libuser.so", "user.c", "-L.", "-l:libfoo.so.1")

    def native(name: str, files: dict[str, bytes], depends: list[str]) -> Path:
        return write_package(SyntheticPackage(name, "1.0", "h0000000_0", subdir="linux-64",
                                              depends=depends, files=files), tmp_path / name)

    channel = tmp_path / "ch"
    publish([write_package(pure(f"filler-{i}"), tmp_path / "f") for i in range(25)]
            + [native("libfoo", {"lib/libfoo.so.1": (src / "libfoo.so.1").read_bytes()}, [])],
            channel)
    read: list[str] = []
    original = linkage.read_linkage
    monkeypatch.setattr(linkage, "read_linkage", lambda p: read.append(p.name) or original(p))
    linkage._cached.cache_clear()
    user = (src / "libuser.so").read_bytes()
    publish([native("user", {"lib/libuser.so": user}, ["libfoo"])], channel)
    assert sorted(n.split("-")[0] for n in read) == ["libfoo", "user"]  # not the 25 fillers
    with pytest.raises(PackageRefused, match="the channel's libfoo provides it"):
        publish([native("stray", {"lib/libstray.so": user}, [])], channel)


# -- publishing the same files again does not audit them again ------------------------------

def test_an_identical_republish_is_unchanged_without_a_second_audit(tmp_path, monkeypatch):
    from ftforge.channel import audit_pool as pool_module

    channel = tmp_path / "ch"
    first = [write_package(p, tmp_path / "a") for p in [pure("alpha"), *twins("ext")]]
    token = publish(first, channel, recipe="r").tokens["r"]
    audited: list[str] = []
    original = pool_module.audit_package  # a few packages: audited in this process
    monkeypatch.setattr(pool_module, "audit_package",
                        lambda path, *a, **k: audited.append(path.name) or original(path, *a, **k))
    new = write_package(pure("beta"), tmp_path / "b")
    again = publish([*first, new], channel, recipe="r", token=token)
    assert audited == [new.name]
    assert sorted(p.name for p in again.unchanged) == sorted(p.name for p in first)
    assert [p.name for p in again.added] == [new.name]
    # other bytes under a published name are still audited, then refused
    other = write_package(SyntheticPackage(**{**pure("alpha").__dict__,
                                              "files": {"x/other.py": b"1\n"}}), tmp_path / "c")
    assert other.name == first[0].name
    with pytest.raises(ChannelError, match="different content"):
        publish([other], channel, recipe="r", token=token)
    assert audited[-1] == other.name
    # an identical file in a folder named like another subdir is audited (and refused there)
    misplaced = tmp_path / "linux-64" / first[0].name
    misplaced.parent.mkdir()
    misplaced.write_bytes(first[0].read_bytes())
    with pytest.raises(ChannelError):
        publish([misplaced], channel, recipe="r", token=token)
    assert audited[-1] == first[0].name


# -- shards are linked from the shadow: py-rattler must never rewrite one ---------------------

def _shards(channel: Path) -> dict[str, tuple[int, int, str]]:
    """served shard -> (inode, mtime_ns, sha256 of its bytes)."""
    out = {}
    for shard in channel.glob("*/shards/*.msgpack.zst"):
        st = shard.stat()
        out[f"{shard.parent.parent.name}/{shard.name}"] = (
            st.st_ino, st.st_mtime_ns, hashlib.sha256(shard.read_bytes()).hexdigest())
    return out


def test_rattler_never_rewrites_a_shard(tmp_path):
    """After index_fs, the promotion hard-links new shards from the shadow index into the
    served subdir; that is safe only because a shard's name is the sha256 of its bytes
    and py-rattler writes each name once. If a py-rattler upgrade rewrites existing
    shards, this fails: copy them again (see ``index._promote``). (A publish's record
    writer writes its shards into the served subdir itself, each once.)"""
    from ftforge.channel.publish import recover

    channel = tmp_path / "ch"
    token = publish([write_package(p, tmp_path / "a") for p in
                     [pure("alpha"), pure("beta"), *twins("ext")]], channel,
                    recipe="r").tokens["r"]
    recover(channel)  # index_fs re-indexes: its shards are linked in
    before = _shards(channel)
    assert before and all(name.split("/")[1] == f"{sha}.msgpack.zst"
                          for name, (_, _, sha) in before.items())
    publish([write_package(p, tmp_path / "b") for p in
             [pure("alpha", "2.0"), pure("gamma"), *twins("ext", "1.1")]], channel,
            recipe="r", token=token)
    recover(channel)
    after = _shards(channel)
    assert {k: v for k, v in after.items() if k in before} == before  # untouched, same inode
    assert len(after) > len(before)  # new versions made new shards
    linked = 0
    for name, (inode, _, sha) in after.items():
        assert name.split("/")[1] == f"{sha}.msgpack.zst"
        assert (channel / name.split("/")[0] / "shards" / name.split("/")[1]).stat().st_mode \
            & 0o777 == 0o644
        shadow = channel / ".ftforge" / "index" / name.split("/")[0] / name.split("/")[0] \
            / "shards" / name.split("/")[1]
        if shadow.exists() and shadow.stat().st_ino == inode:
            linked += 1
    assert linked  # shards index_fs wrote, served as hard links


# -- staging in threads: a failed copy is one line, nothing moves ----------------------------

def test_a_copy_failing_in_a_staging_thread_refuses_the_whole_publish(tmp_path, monkeypatch):
    import errno

    from ftforge.channel import publish as publish_module

    channel = tmp_path / "ch"
    publish([write_package(pure("seed"), tmp_path / "s")], channel)
    before = sorted(str(p.relative_to(channel)) for p in channel.rglob("*")
                    if ".ftforge" not in p.parts)
    batch = [write_package(pure(f"p{i}"), tmp_path / "in") for i in range(12)]
    original = publish_module.shutil.copyfile

    def copyfile(source, target):
        if Path(source).name == batch[7].name:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return original(source, target)

    monkeypatch.setattr(publish_module.shutil, "copyfile", copyfile)
    with pytest.raises(ChannelError) as refused:
        publish(batch, channel)
    assert "the disk is full" in refused.value.message and "\n" not in refused.value.message
    after = sorted(str(p.relative_to(channel)) for p in channel.rglob("*")
                   if ".ftforge" not in p.parts)
    assert after == before
    assert list((channel / ".ftforge" / "staging").iterdir()) == []
