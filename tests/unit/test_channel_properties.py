"""Property test (hypothesis) over package metadata and archive members: whatever a
package holds, publishing it either succeeds with a whole, re-indexable channel or
is refused with a typed one-line error -- never a traceback, never a write outside
the channel. Bounded by example count (no timing asserts)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftforge.channel.audit import Limits, PackageRefused, audit_package
from ftforge.channel.index import read_repodata
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import Member, SyntheticPackage, write_package
from ftforge.errors import ChannelError

LIMITS = Limits(max_total_bytes=1 << 20, max_members=64, max_header_bytes=4096,
                max_metadata_bytes=64 << 10)

# names that mean something to a path, a shell, a YAML or a conda parser
_tricky = st.sampled_from(["", ".", "..", "/", "../..", ".ftforge", "owners.yaml", "a b",
                           "$(id)", "a\nb", "\x00", "é", "\udcff", "[x]", "*", "a/../..",
                           "/etc/passwd", "noarch", "linux-64", "-", "_x.so", "lib"])
_text = st.one_of(_tricky, st.text(min_size=0, max_size=12))
_value = st.one_of(_text, st.integers(-3, 2**40), st.none(), st.booleans(),
                   st.lists(_text, max_size=3), st.dictionaries(_text, _text, max_size=2))
_spec = st.one_of(_text, st.sampled_from(["python >=3.10", "python_abi 3.13.* *_cp313t",
                                          "python_abi 3.13.* *_cp313", "x ==1|2",
                                          "foo[version='>1']", "pip"]), st.integers())


@st.composite
def packages(draw) -> tuple[SyntheticPackage, list[tuple[str, dict]]]:
    name = draw(st.one_of(st.sampled_from(["alpha", "beta"]), _text))
    version = draw(st.one_of(st.just("1.0"), _text))
    build = draw(st.one_of(st.just("pyh4616a5c_0"), st.just("py313th1234567_0"), _text))
    overrides = draw(st.dictionaries(
        st.sampled_from(["subdir", "noarch", "depends", "constrains", "build_number",
                         "track_features", "name", "version", "platform"]),
        st.one_of(_value, st.lists(_spec, max_size=3)), max_size=3))
    files = draw(st.dictionaries(
        st.one_of(_text, st.sampled_from(["site-packages/a/__init__.py", "lib/x.so",
                                          "info/evil", "bin/sh"])),
        st.binary(max_size=64), max_size=3))
    members = draw(st.lists(st.tuples(
        _text, st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                tarfile.DIRTYPE, tarfile.FIFOTYPE]), _text), max_size=3))
    paths_extra = draw(st.lists(st.dictionaries(
        st.sampled_from(["_path", "path_type", "sha256", "size_in_bytes"]), _value,
        max_size=4), max_size=2))
    pkg = SyntheticPackage(
        name=name, version=version, build=build, subdir="noarch", noarch="python",
        depends=["python >=3.10"], files=files, index_overrides=overrides,
        extra_members=[Member(n, type=t, linkname=link) for n, t, link in members])
    return pkg, paths_extra


def _write(pkg: SyntheticPackage, paths_extra: list[dict], out: Path) -> Path | None:
    """The package, with extra paths.json entries; None if even tarfile cannot write it."""
    original = pkg.paths_json

    def paths_json() -> dict:
        data = original()
        data["paths"].extend(paths_extra)
        return data

    pkg.paths_json = paths_json  # type: ignore[method-assign]
    try:
        return write_package(pkg, out)
    except (ValueError, UnicodeError, OSError, tarfile.TarError, TypeError):
        return None  # a name the writer cannot put in a file name or a tar header


def _outside(arena: Path, work: Path) -> set[str]:
    """Every path under ``arena`` except the case's own folder ``work``."""
    own = work.name
    return {rel for p in arena.rglob("*")
            if (rel := str(p.relative_to(arena))).split("/")[0] != own}


@pytest.fixture(scope="module")
def arena(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("arena")


COUNTS = {"tried": 0, "published": 0, "refused": 0, "unwritable": 0}


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(packages())
def test_any_package_is_published_or_refused_in_one_line(arena, case):
    pkg, paths_extra = case
    n = COUNTS["tried"] = COUNTS["tried"] + 1
    work = arena / f"case{n}"
    channel = work / "channel"
    inputs = work / "in"
    path = _write(pkg, paths_extra, inputs)
    if path is None or path.parent != inputs:
        COUNTS["unwritable"] += 1
        return
    around = _outside(arena, work)
    try:
        publish([path], channel, limits=LIMITS)
        COUNTS["published"] += 1
    except (PackageRefused, ChannelError) as exc:
        COUNTS["refused"] += 1
        first = str(exc).splitlines()[0]
        assert first and "Traceback" not in str(exc)
        if isinstance(exc, PackageRefused):
            for line in str(exc).splitlines()[1:-1]:
                assert line.startswith("  ") and ": [" in line, line
    # nothing outside the case's own folder changed
    after = _outside(arena, work)
    assert after == around, (after ^ around, work)
    # the channel stays whole and indexable: a good package still publishes after it
    if channel.exists():
        good = write_package(SyntheticPackage(
            name="zz-good", version="1.0", build="pyh4616a5c_0", noarch="python",
            depends=["python >=3.10"], files={"site-packages/zz/__init__.py": b""}),
            work / "good")
        publish([good], channel)
        data = read_repodata(channel / "noarch" / "repodata.json")
        assert data is not None and good.name in data.get("packages.conda", {})
    shutil.rmtree(work)  # keeps the arena small; what is outside was compared above


def test_property_counts_printed():
    """Runs after the property test (file order) and prints what it tried."""
    if COUNTS["tried"]:
        print(f"\nproperty test: {COUNTS}")
        assert COUNTS["refused"] > 0


def test_audit_never_raises_on_random_tar_bytes(tmp_path):
    """Raw bytes behind the right magic: a finding, never an exception."""
    import random

    rng = random.Random(13)
    for i in range(60):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 600)))
        for suffix, magic in ((".conda", b"PK\x03\x04"), (".tar.bz2", b"BZh")):
            target = tmp_path / f"r{i}-1.0-0{suffix}"
            target.write_bytes(magic + body)
            report = audit_package(target, LIMITS)
            assert not report.ok and report.findings[0].rule == "archive.unreadable"
