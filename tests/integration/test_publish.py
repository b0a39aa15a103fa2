"""Minimal publish: copy + index with py-rattler; immutable file names."""

from __future__ import annotations

import json

import pytest

from ftforge.build.driver import BuildRequest, build
from ftforge.channel.publish import publish
from ftforge.environments import solve
from ftforge.errors import ChannelError

from .conftest import tiny_recipe

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny_packages(tmp_path, isolated_cache):
    recipe = tiny_recipe(tmp_path / "tiny", "one")
    return build(BuildRequest(recipe, tmp_path / "out", test="skip")).packages


def test_publish_indexes_and_a_solver_finds_the_package(tmp_path, tiny_packages):
    channel = tmp_path / "channel"
    result = publish(tiny_packages, channel)
    assert len(result.added) == 2 and not result.unchanged
    repodata = json.loads((channel / "linux-64" / "repodata.json").read_text())
    assert {r["build"] for r in repodata["packages.conda"].values()} == {"plain_0", "spicy_0"}
    solved = solve([str(channel)], ["ftforge-tiny * spicy_0"])
    assert [(p.name, p.build) for p in solved] == [("ftforge-tiny", "spicy_0")]


def test_republishing_the_same_file_is_a_no_op(tmp_path, tiny_packages):
    channel = tmp_path / "channel"
    publish(tiny_packages, channel)
    again = publish(tiny_packages, channel)
    assert not again.added and len(again.unchanged) == 2


def test_same_name_different_content_is_refused(tmp_path, tiny_packages):
    channel = tmp_path / "channel"
    publish(tiny_packages[:1], channel)
    # Same recipe name, version and build string, different files inside.
    rebuilt = build(BuildRequest(tiny_recipe(tmp_path / "tiny2", "two"), tmp_path / "out2",
                                 test="skip")).packages
    impostor = next(p for p in rebuilt if p.name == tiny_packages[0].name)
    assert impostor.read_bytes() != tiny_packages[0].read_bytes()
    with pytest.raises(ChannelError, match="immutable"):
        publish([impostor], channel)
    assert (channel / "linux-64" / tiny_packages[0].name).read_bytes() == tiny_packages[0].read_bytes()


def test_a_corrupt_package_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "broken-1.0-0.conda"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ChannelError, match="broken-1.0-0.conda"):
        publish([bad], tmp_path / "channel")
