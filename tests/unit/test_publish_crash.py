"""A publish killed between moving its packages in and writing its log line.

The kill is simulated by an exception no ``except Exception`` catches (no roll-back
runs, as with ``kill -9``), raised at three points: before indexing, between the
promotion of its two subdirs (both already linked into the internal index), and
just before the log line. The next publish, of one noarch package, must end with a
channel where every package file is listed by its subdir's index, recorded in the
log with its bytes, and was audited.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftforge.channel import audit_pool as pool_module
from ftforge.channel import index as index_module
from ftforge.channel import publish as publish_module
from ftforge.channel.layout import internal_dir
from ftforge.channel.publish import publish, read_log
from ftforge.channel.synthetic import write_package
from ftforge.errors import ChannelError

from .test_channel_repodata import BASE, assert_served_index_consistent, ext, pure


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the publish catches it, nothing is rolled back."""


def _kill_at(monkeypatch, point: str) -> None:
    if point == "before-index":
        def refresh(*args, **kwargs):
            raise Killed
        monkeypatch.setattr(publish_module, "_refresh", refresh)
    elif point == "between-promotions":
        original, calls = index_module._promote, []

        def promote(channel, subdir):
            calls.append(subdir)
            if len(calls) == 2:  # every subdir synced into the shadow, one promoted
                raise Killed
            original(channel, subdir)
        monkeypatch.setattr(index_module, "_promote", promote)
    else:
        def log(*args, **kwargs):
            raise Killed
        monkeypatch.setattr(publish_module, "_log", log)


def _package_files(channel: Path, subdir: str) -> set[str]:
    return {p.name for p in (channel / subdir).iterdir()
            if p.name.endswith((".conda", ".tar.bz2"))}


@pytest.mark.parametrize("point", ["before-index", "between-promotions", "before-log"])
def test_publish_after_a_killed_one_ends_consistent(tmp_path, monkeypatch, point):
    channel = tmp_path / "ch"
    token = publish([write_package(pkg, tmp_path / "0", fmt) for pkg, fmt in BASE], channel,
                    recipe="r").tokens["r"]
    killed = [write_package(pure("kx"), tmp_path / "1" / "noarch"),
              write_package(ext("ke"), tmp_path / "1" / "linux-64"),
              write_package(ext("ke", ft=True), tmp_path / "1" / "linux-64")]
    with monkeypatch.context() as patch:
        _kill_at(patch, point)
        with pytest.raises(Killed):
            publish(killed, channel, recipe="r", token=token)
    assert (internal_dir(channel) / "publishing.json").is_file()
    assert {f"{p.parent.name}/{p.name}" for p in killed} <= {
        f"{sub}/{name}" for sub in ("noarch", "linux-64") for name in _package_files(channel, sub)}

    audited: list[str] = []
    original_audit = pool_module.audit_package  # a few packages: audited in this process

    def audit(path, *args, **kwargs):
        audited.append(Path(path).name)
        return original_audit(path, *args, **kwargs)

    monkeypatch.setattr(pool_module, "audit_package", audit)
    after = write_package(pure("after"), tmp_path / "2")
    result = publish([after], channel, recipe="r", token=token)

    assert [p.name for p in result.added] == [after.name]
    assert {p.name for p in killed} <= set(audited)
    assert not (internal_dir(channel) / "publishing.json").exists()
    logged = {(r["file"], r["sha256"]) for r in read_log(channel) if r["action"] == "publish"}
    for sub in ("noarch", "linux-64"):
        data = json.loads((channel / sub / "repodata.json").read_bytes())
        listed = {**data["packages"], **data["packages.conda"]}
        assert set(listed) == _package_files(channel, sub), sub
        for fn, record in listed.items():
            assert (f"{sub}/{fn}", record["sha256"]) in logged, fn
    recovered = [r["file"] for r in read_log(channel) if r.get("recovered")]
    assert sorted(recovered) == sorted(f"{p.parent.name}/{p.name}" for p in killed)
    assert_served_index_consistent(channel)


def test_unlisted_file_failing_the_audit_stops_the_next_publish(tmp_path):
    """A package file no index lists and no log records (here: copied in by hand, as an
    older ftforge's crash would leave one) is audited before a publish re-indexes;
    one that fails the audit refuses the publish, naming it and what to do."""
    channel = tmp_path / "ch"
    token = publish([write_package(pkg, tmp_path / "0", fmt) for pkg, fmt in BASE], channel,
                    recipe="r").tokens["r"]
    stray = channel / "noarch" / "stray-1.0-pyh4616a5c_0.conda"
    stray.write_bytes(b"not a package")
    before = (channel / "noarch" / "repodata.json").read_bytes()
    with pytest.raises(ChannelError, match="stray-1.0-pyh4616a5c_0.conda") as caught:
        publish([write_package(pure("after"), tmp_path / "1")], channel, recipe="r",
                token=token)
    assert "move those files out" in (caught.value.hint or "")
    assert (channel / "noarch" / "repodata.json").read_bytes() == before
