"""Immutability by name-version-build across the whole channel (issue 13 follow-up):
clients' package caches key on ``name-version-build``, whatever the subdir or the
extension, so one identity is published once per channel and stays burned when removed."""

from __future__ import annotations

import pytest

from ftforge.channel.publish import publish, remove
from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.errors import ChannelError

RECIPE = "foo-feedstock"


def foo(tmp, where: str, content: bytes, build: str = "0", fmt: str = ".conda",
        subdir: str = "linux-64"):
    package = SyntheticPackage("foo", "1.0", build, subdir=subdir, files={"share/a": content})
    return write_package(package, tmp / where / subdir, fmt=fmt)


@pytest.fixture
def channel(tmp_path):
    channel = tmp_path / "channel"
    result = publish([foo(tmp_path, "first", b"v1")], channel, recipe=RECIPE)
    return channel, result.tokens[RECIPE]


@pytest.mark.parametrize("fmt,subdir", [(".tar.bz2", "linux-64"), (".conda", "noarch"),
                                        (".tar.bz2", "noarch")])
def test_a_removed_identity_stays_burned_in_every_subdir_and_format(tmp_path, channel, fmt,
                                                                    subdir):
    channel, token = channel
    remove(["foo-1.0-0.conda"], channel, reason="bad build", recipe=RECIPE, token=token)
    again = foo(tmp_path, "again", b"v2-evil", fmt=fmt, subdir=subdir)
    with pytest.raises(ChannelError, match="foo-1.0-0 was published .* and removed"):
        publish([again], channel, recipe=RECIPE, token=token)
    assert not (channel / subdir / again.name).exists()


@pytest.mark.parametrize("fmt,subdir", [(".tar.bz2", "linux-64"), (".conda", "noarch")])
def test_a_live_identity_is_not_published_again_elsewhere(tmp_path, channel, fmt, subdir):
    channel, token = channel
    other = foo(tmp_path, "other", b"v2-evil", fmt=fmt, subdir=subdir)
    with pytest.raises(ChannelError, match="foo-1.0-0 is already published .* as "
                                           "linux-64/foo-1.0-0.conda"):
        publish([other], channel, recipe=RECIPE, token=token)
    assert not (channel / subdir / other.name).exists()


def test_one_identity_twice_in_one_publish_is_refused(tmp_path, channel):
    channel, token = channel
    pair = [foo(tmp_path, "a", b"v4", build="1"),
            foo(tmp_path, "b", b"v4-other", build="1", fmt=".tar.bz2")]
    with pytest.raises(ChannelError, match="foo-1.0-1 is already published"):
        publish(pair, channel, recipe=RECIPE, token=token)
    assert not list(channel.glob("*/foo-1.0-1.*"))


def test_republishing_the_same_file_and_a_new_build_pass(tmp_path, channel):
    channel, token = channel
    publish([tmp_path / "first" / "linux-64" / "foo-1.0-0.conda"], channel, recipe=RECIPE,
            token=token)
    publish([foo(tmp_path, "new", b"v5", build="2")], channel, recipe=RECIPE, token=token)
    assert (channel / "linux-64" / "foo-1.0-2.conda").is_file()


def test_reindex_audits_files_the_publish_log_does_not_record(tmp_path, channel):
    """A package copied into the channel by hand is audited before a reindex serves it."""
    from ftforge.channel.index import channel_records
    from ftforge.channel.publish import recover

    channel, _ = channel
    bad = SyntheticPackage("sneaky", "1.0", "0", subdir="noarch",  # says noarch, lies in linux-64
                           files={"share/s": b"s"})
    dropped = write_package(bad, tmp_path / "drop")
    (channel / "linux-64" / dropped.name).write_bytes(dropped.read_bytes())
    before = (channel / "linux-64" / "repodata.json").read_bytes()
    with pytest.raises(ChannelError, match=r"linux-64/sneaky-1.0-0.conda: \[metadata.subdir\]"):
        recover(channel)
    assert (channel / "linux-64" / "repodata.json").read_bytes() == before
    (channel / "linux-64" / dropped.name).unlink()
    good = write_package(SyntheticPackage("handmade", "1.0", "0", subdir="linux-64",
                                          files={"share/h": b"h"}), tmp_path / "drop2")
    (channel / "linux-64" / good.name).write_bytes(good.read_bytes())
    recover(channel)  # unlogged but clean: indexed as before
    assert "handmade-1.0-0.conda" in {r["fn"] for r in channel_records(channel)}
