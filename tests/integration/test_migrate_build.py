"""The migration loop closed on ftforge's own channel: ``ftforge migrate run --build``
over a chain of three C-extension feedstocks (tests/feedstocks.py), parents first.

Every link is built for python 3.13t and its GIL twin with the project's build
driver, published, and marked done; the next link compiles against the header its
parent published and imports it at run time. A feedstock whose build fails is that
feedstock's bot-error and its child keeps waiting. Finally the top of the chain is
installed from the channel into a free-threaded environment and imported with the
GIL off.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftforge.channel.publish import publish
from ftforge.migrate.plan import Migration, plan_migration
from ftforge.variants import PythonVariant, variant_of_package

from ..feedstocks import CHAIN, make_chain_fixture_set
from .conftest import ftforge

pytestmark = pytest.mark.integration

MIG = Migration.parse("python313t")


def records(channel: Path) -> list[dict]:
    data = json.loads((channel / "linux-64" / "repodata.json").read_text())
    return [*data.get("packages", {}).values(), *data.get("packages.conda", {}).values()]


def test_run_build_publishes_a_chain_parents_first(tmp_path, interpreter_packages):
    channel = tmp_path / "ft"
    publish(interpreter_packages, channel)  # the interpreter (both ABIs), pip
    repos = make_chain_fixture_set(tmp_path / "feedstocks")
    root = tmp_path / "feedstocks"

    run = ftforge("migrate", "run", str(root), "--build", "--channel", str(channel),
                  "--pr-dir", str(tmp_path / "prs"), "--output-dir", str(tmp_path / "out"),
                  check=False)
    assert run.returncode == 1, run.stdout + run.stderr  # ftchain-broken fails, on purpose
    assert "build failed" in run.stdout and "ftchain-broken" in run.stdout

    # every link: a free-threaded build and its GIL twin, same name and version
    built = {}
    for record in records(channel):
        variant = variant_of_package(record.get("depends", []), record["build"])
        built.setdefault(record["name"], set()).add(variant)
    for name, _module, _parent in CHAIN:
        assert built.get(name) == {PythonVariant.ft("3.13"), PythonVariant.gil("3.13")}, name
    assert "ftchain-broken" not in built and "ftchain-orphan" not in built

    # parents before children: the publish log is in build order
    log = [json.loads(line) for line in
           (channel / ".ftforge" / "log.jsonl").read_text().splitlines()]
    first = {}
    for index, entry in enumerate(log):
        name = Path(entry["file"]).name.rsplit("-", 2)[0]
        first.setdefault(name, index)
    assert first["ftchain-core"] < first["ftchain-mid"] < first["ftchain-top"]

    # marked done: a new plan over the channel agrees, and the failure is the broken one's
    plan = plan_migration(root, MIG, channels=[channel], pr_dir=tmp_path / "prs")
    states = {n: s.category for n, s in plan.feedstocks.items()}
    assert states == {"ftchain-core": "done", "ftchain-mid": "done", "ftchain-top": "done",
                      "ftchain-broken": "bot-error", "ftchain-orphan": "awaiting-parents"}
    assert "meant to fail" in plan.feedstocks["ftchain-broken"].reason
    for name in ("ftchain-core", "ftchain-mid", "ftchain-top"):
        assert MIG.branch in subprocess.run(["git", "-C", str(repos[name]), "branch"],
                                            capture_output=True, text=True).stdout

    # the top of the chain from the channel, GIL off, its parents imported through it
    prefix = tmp_path / "env"
    ftforge("create", "--prefix", str(prefix), "--channel", str(channel),
            "python-freethreading", "ftchain-top")
    out = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import sys, ftchain_top, ftchain_core; "
         "print(ftchain_top.value(), sys._is_gil_enabled(), ftchain_core.__file__)"],
        capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "42" and out[1] == "False", out
    assert PythonVariant.ft("3.13").site_packages in out[2]

    # the GIL twin from the same channel, by default
    gil = tmp_path / "gil-env"
    ftforge("create", "--prefix", str(gil), "--channel", str(channel), "python", "ftchain-top")
    out = subprocess.run([str(gil / "bin" / "python"), "-c",
                          "import sys, ftchain_top; print(ftchain_top.value(), "
                          "sys._is_gil_enabled())"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["42", "True"]

    # a second run is a no-op for the built ones; the broken one fails the same way
    again = ftforge("migrate", "run", str(root), "--build", "--channel", str(channel),
                    "--pr-dir", str(tmp_path / "prs"), "--output-dir", str(tmp_path / "out"),
                    check=False)
    assert "built and published ftchain" not in again.stdout
    assert "skipped ftchain-broken: the build of branch" in again.stdout, again.stdout


def test_run_build_needs_a_channel(tmp_path):
    make_chain_fixture_set(tmp_path / "feedstocks")
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "migrate", "run",
                             str(tmp_path / "feedstocks"), "--build"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "--build needs --channel" in result.stderr
