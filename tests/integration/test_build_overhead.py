"""A real build records where its seconds go and leaves valid packages and no build folder."""

from __future__ import annotations

import pytest

from ftforge.build.driver import BuildRequest, build
from ftforge.build.timeline import TIMELINE_FILE, phases, read_timeline
from ftforge.channel.audit import audit_package

from .conftest import tiny_recipe

pytestmark = pytest.mark.integration


def test_a_build_is_timed_by_phase_and_its_packages_pass_the_audit(tmp_path, isolated_cache):
    from rattler.package import IndexJson

    recipe = tiny_recipe(tmp_path / "tiny", "timed")
    outcome = build(BuildRequest(recipe, tmp_path / "out", overrides=(("flavour", "spicy"),),
                                 test="skip"))
    assert list(outcome.phases) == ["prepare", "rattler-build", "copy-out", "runtime-packages",
                                    "index"]
    assert all(seconds >= 0 for seconds in outcome.phases.values())

    entry = isolated_cache / "builds" / outcome.cache_key
    assert not (entry / "bld").exists() and not (entry / "src_cache").exists()
    timed = phases(read_timeline(entry / TIMELINE_FILE))
    assert {"script", "archive", "cleanup"} <= set(timed)
    # build.log stays rattler-build's own text (failure diagnosis reads it)
    assert "Compressing archive..." in (entry / "build.log").read_text().splitlines()

    (package,) = outcome.packages
    report = audit_package(package)
    assert report.findings == [] and report.record is not None
    assert IndexJson.from_package_archive(package).name.normalized == "ftforge-tiny"
