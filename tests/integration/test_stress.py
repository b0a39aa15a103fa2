"""`ftforge stress` on real builds: the ftracy fixture (a data race behind
Py_MOD_GIL_NOT_USED) is reported by test name; its PyMutex fix passes.

Builds ftracy 1.0 and 1.1 for both ABIs from local sdists (`recipe pypi ./x.tar.gz
--with-deps`), publishes them to a channel of their own, and lets `ftforge stress`
build pytest and pytest-run-parallel (noarch, from PyPI) into that channel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftforge.build.driver import BuildRequest, build_in_order
from ftforge.channel.check import check_channels
from ftforge.channel.publish import publish
from ftforge.recipes import files as recipe_files
from ftforge.recipes.from_pypi import closure_from_pypi
from ftforge.stress import StressOptions, read_record, stress_channel

from ..fixtures.sdists import FIXED, RACY, write_sdist
from .conftest import CBC, ftforge

pytestmark = pytest.mark.integration

RACE_TEST = "tests/test_buffer.py::test_fill_reads_back_what_it_wrote"


@pytest.fixture(scope="session")
def ftracy_channel(tmp_path_factory, channel) -> Path:
    sdists = tmp_path_factory.mktemp("sdists")
    recipes = tmp_path_factory.mktemp("ftracy-recipes")
    out = tmp_path_factory.mktemp("ftracy-out")
    dirs: list[Path] = []
    for version in (RACY, FIXED):
        for plan, files in closure_from_pypi(str(write_sdist(version, sdists))):
            target = recipes / f"{plan.conda_name}-{plan.version}"
            if target not in dirs:
                recipe_files.write_files(target, files)
                dirs.append(target)
    outcomes = build_in_order([BuildRequest(d, out, variant_files=CBC, channels=(str(channel),))
                               for d in dirs])
    ftracy = [p for o in outcomes for p in o.packages if p.name.startswith("ftracy-")]
    assert len(ftracy) == 4, ftracy  # two versions x two ABIs
    root = tmp_path_factory.mktemp("stress-channel") / "ft"
    publish(ftracy, root)
    return root


@pytest.fixture(scope="session")
def stressed(ftracy_channel, channel):
    return stress_channel(ftracy_channel, ["ftracy"], interpreter_channels=[str(channel)],
                          options=StressOptions(threads=8, iterations=20))


def test_the_race_is_reported_by_test_name(stressed):
    racy = next(r for r in stressed if r.version == RACY)
    assert racy.collected == 2 and racy.passed_serial == 2, racy
    assert racy.failed_only_in_parallel == [RACE_TEST], racy
    assert racy.status == "findings" and not racy.gil_reenabled
    assert racy.build.startswith("py313th")


def test_the_fixed_twin_passes_in_parallel(stressed):
    fixed = next(r for r in stressed if r.version == FIXED)
    assert fixed.collected == 2 and fixed.passed_parallel == 2, fixed
    assert fixed.failed_only_in_parallel == [] and fixed.status == "ok"
    assert not fixed.gil_reenabled
    assert set(fixed.tools) == {"python", "pytest", "pytest-run-parallel"}


def test_records_live_beside_the_packages_and_the_channel_stays_valid(stressed, ftracy_channel):
    for record in stressed:
        stored = read_record(ftracy_channel, record.subdir, record.fn)
        assert stored == record
    files = sorted(p.name for p in (ftracy_channel / "linux-64").glob("*.stress.json"))
    assert len(files) == 2
    repodata = json.loads((ftracy_channel / "linux-64" / "repodata.json").read_text())
    assert not any(fn.endswith(".json") for fn in repodata.get("packages.conda", {}))
    assert check_channels([ftracy_channel])[1] == []
    page = (ftracy_channel / "index.html").read_text()
    assert f"failed only in parallel: {RACE_TEST}" in page
    noarch = {r["name"] for r in json.loads(
        (ftracy_channel / "noarch" / "repodata.json").read_text())["packages.conda"].values()}
    assert {"pytest", "pytest-run-parallel"} <= noarch


def test_cli_prints_the_findings(ftracy_channel, channel, stressed):
    result = ftforge("stress", str(ftracy_channel), "ftracy", "-c", str(channel),
                     "--threads", "8", "--iterations", "20")
    assert "findings" in result.stdout and "test_fill_reads_back" in result.stdout
