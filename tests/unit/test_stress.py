"""`ftforge stress`: test requirements from an sdist, the serial/parallel comparison, and
the record stored beside its package (page, index, evidence)."""

from __future__ import annotations

import io
import json
import stat
import sys
import tarfile
from pathlib import Path

import pytest

from ftforge import stress
from ftforge.channel.index import channel_records
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import SyntheticPackage, write_package
from ftforge.stress import StressOptions, StressRecord


def make_sdist(directory: Path, name: str, files: dict[str, str], version: str = "1.0") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


PKG_INFO = ("Metadata-Version: 2.4\nName: {name}\nVersion: 1.0\n"
            "Provides-Extra: test\n{requires}")


def test_test_requirements_come_from_the_test_extra_without_coverage_tools(tmp_path):
    requires = ("Requires-Dist: numpy>=2\n"
                "Requires-Dist: hypothesis>=6; extra == 'test'\n"
                "Requires-Dist: pytest>=8; extra == \"tests\"\n"
                "Requires-Dist: pytest-cov; extra == 'test'\n"
                "Requires-Dist: sphinx; extra == 'docs'\n"
                "Requires-Dist: tomli; extra == 'test' and python_version < '3.11'\n")
    sdist = make_sdist(tmp_path, "x", {"PKG-INFO": PKG_INFO.format(name="x", requires=requires)})
    assert stress.test_requirements(sdist) == ["hypothesis>=6"]


def test_test_requirements_from_dependency_groups_and_requirement_files(tmp_path):
    groups = make_sdist(tmp_path / "g", "g", {
        "PKG-INFO": PKG_INFO.format(name="g", requires=""),
        "pyproject.toml": '[dependency-groups]\ntest = ["attrs>=23", {include-group = "x"}]\n'
                          'docs = ["sphinx"]\n'})
    assert stress.test_requirements(groups) == ["attrs>=23"]
    files = make_sdist(tmp_path / "f", "f", {
        "PKG-INFO": PKG_INFO.format(name="f", requires=""),
        "requirements/test.txt": "# tools\n-r base.txt\nsix>=1.16  # compat\ncoverage\n"
                                 "git+https://example.invalid/x.git\n"})
    assert stress.test_requirements(files) == ["six>=1.16"]


def test_unreadable_sdist_is_a_stress_error(tmp_path):
    bad = tmp_path / "bad-1.0.tar.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(stress.StressError, match="bad-1.0.tar.gz: not a readable sdist"):
        stress.test_requirements(bad)


def test_options_are_checked():
    with pytest.raises(stress.StressError, match="--threads 1"):
        StressOptions(threads=1)
    with pytest.raises(stress.StressError, match="--iterations 0"):
        StressOptions(iterations=0)


# --- the serial / parallel comparison, with pytest and a thread-running plugin ----------

FAKE_RUN_PARALLEL = '''"""Test double of pytest-run-parallel: its options, each test in N threads."""
import threading

import pytest


def pytest_addoption(parser):
    parser.addoption("--parallel-threads", type=int, default=1)
    parser.addoption("--iterations", type=int, default=1)
    parser.addoption("--ignore-gil-enabled", action="store_true")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    threads = pyfuncitem.config.getoption("parallel_threads")
    iterations = pyfuncitem.config.getoption("iterations")
    if threads <= 1:
        return None
    args = {a: pyfuncitem.funcargs[a] for a in pyfuncitem._fixtureinfo.argnames}
    barrier, errors = threading.Barrier(threads), []

    def run():
        barrier.wait()
        for _ in range(iterations):
            try:
                pyfuncitem.obj(**args)
            except BaseException as exc:
                errors.append(exc)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return True
'''

RACY_TESTS = '''import time

STATE = {"owner": None}


def test_shared_state_is_mine():
    me = object()
    for _ in range(20):
        STATE["owner"] = me
        time.sleep(0.0005)
        assert STATE["owner"] is me


def test_pure_function():
    assert sum(range(10)) == 45


def test_broken_everywhere():
    assert 1 == 2
'''


def fake_prefix(tmp_path: Path) -> Path:
    """An "environment" whose python is this interpreter with the test double loaded."""
    prefix, plugins = tmp_path / "prefix", tmp_path / "plugins"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "conda-meta").mkdir()
    plugins.mkdir()
    (plugins / "fake_run_parallel.py").write_text(FAKE_RUN_PARALLEL)
    python = prefix / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="$PYTHONPATH:{plugins}" '
                      f'PYTEST_PLUGINS=fake_run_parallel exec {sys.executable} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    (prefix / "conda-meta" / "pytest-9.2.0-pyh_0.json").write_text(
        json.dumps({"name": "pytest", "version": "9.2.0", "build": "pyh_0"}))
    return prefix


def record(**kw) -> StressRecord:
    base = dict(package="racy", version="1.0", build="py313th0_0", subdir="linux-64",
                fn="racy-1.0-py313th0_0.conda", sdist="racy-1.0.tar.gz", threads=4,
                iterations=2)
    return StressRecord(**{**base, **kw})


def test_failed_only_in_parallel_is_reported_by_test_name(tmp_path):
    sdist = make_sdist(tmp_path / "sd", "racy", {
        "PKG-INFO": PKG_INFO.format(name="racy", requires=""),
        "racy/__init__.py": "raise ImportError('the source tree must not be imported')\n",
        "tests/test_racy.py": RACY_TESTS})
    result = stress.run_tests(record(), sdist, fake_prefix(tmp_path), ["racy"],
                              StressOptions(threads=4, iterations=2), tmp_path / "work")
    assert result.collected == 3
    assert result.passed_serial == 2 and result.failed_serial == [
        "tests/test_racy.py::test_broken_everywhere"]
    assert result.failed_only_in_parallel == ["tests/test_racy.py::test_shared_state_is_mine"]
    assert result.passed_parallel == 1
    assert result.status == "findings" and not result.gil_reenabled
    assert result.tools == {"pytest": "9.2.0 pyh_0"}
    assert "failed only in parallel: tests/test_racy.py::test_shared_state_is_mine" in \
        result.summary()
    assert not (tmp_path / "work" / "src" / "racy-1.0" / "racy").exists()


def test_an_sdist_without_tests_says_so(tmp_path):
    sdist = make_sdist(tmp_path / "sd", "bare", {"PKG-INFO": PKG_INFO.format(name="bare",
                                                                             requires=""),
                                                 "bare/__init__.py": ""})
    result = stress.run_tests(record(package="bare"), sdist, fake_prefix(tmp_path), ["bare"],
                              StressOptions(), tmp_path / "work")
    assert result.no_tests and result.status == "no-tests"
    assert result.summary() == "no tests in the sdist"


def test_gil_reenabled_comes_from_the_probe():
    outcome = stress.parse_outcomes({"outcomes": {"t::a": "passed"}, "collected": 1,
                                     "gil_at_start": False, "gil_at_end": True,
                                     "gil_after": "t::a", "exitstatus": 0})
    assert outcome.gil_reenabled and outcome.gil_after == "t::a"
    with pytest.raises(stress.StressError, match="no outcomes"):
        stress.parse_outcomes({"collected": 1})


# --- the record beside its package ------------------------------------------------------


def published(tmp_path: Path) -> tuple[Path, dict]:
    ft = SyntheticPackage("racy", "1.0", "py313th0_0", subdir="linux-64",
                          depends=["python_abi 3.13.* *_cp313t"])
    gil = SyntheticPackage("racy", "1.0", "py313h0_0", subdir="linux-64",
                           depends=["python_abi 3.13.* *_cp313"])
    channel = tmp_path / "channel"
    publish([write_package(ft, tmp_path / "pkgs"), write_package(gil, tmp_path / "pkgs")],
            channel)
    rec = next(r for r in channel_records(channel) if r["build"] == "py313th0_0")
    return channel, rec


def test_record_is_stored_beside_the_package_and_never_indexed(tmp_path):
    channel, rec = published(tmp_path)
    stored = record(failed_only_in_parallel=["tests/test_racy.py::test_shared_state_is_mine"],
                    collected=3, passed_parallel=1, status="findings")
    path = stress.write_record(channel, stored)
    assert path == channel / "linux-64" / "racy-1.0-py313th0_0.stress.json"
    assert stress.read_record(channel, "linux-64", rec["fn"]) == stored
    extra = SyntheticPackage("other", "1.0", "pyh0_0", noarch="python")
    publish([write_package(extra, tmp_path / "more")], channel)  # re-index with the record there
    fns = {r["fn"] for r in channel_records(channel)}
    assert rec["fn"] in fns and not any(fn.endswith(".json") for fn in fns)
    assert path.is_file()
    from ftforge.channel.check import check_channels

    assert check_channels([channel])[1] == []


def test_channel_page_shows_the_record(tmp_path):
    from ftforge.channel.page import render

    channel, rec = published(tmp_path)
    stress.write_record(channel, record(collected=3, passed_parallel=1, status="findings",
                                        failed_only_in_parallel=["t.py::test_<race>"]))
    page = render(channel)
    assert "failed only in parallel: t.py::test_&lt;race&gt;" in page
    assert "stress-findings" in page
    assert page.count("<td class='stress'>—</td>") == 1  # the GIL build has no record


def test_record_needs_its_package_and_a_plain_file_name(tmp_path):
    channel, _ = published(tmp_path)
    with pytest.raises(stress.StressError, match="has no linux-64/ghost-1.0-0.conda"):
        stress.write_record(channel, record(fn="ghost-1.0-0.conda"))
    with pytest.raises(stress.StressError, match="not a package file name"):
        stress.record_path(channel, "linux-64", "../../etc/passwd.conda")
    (channel / "linux-64" / "racy-1.0-py313th0_0.stress.json").write_text("{not json")
    assert stress.read_record(channel, "linux-64", "racy-1.0-py313th0_0.conda") is None


def test_evidence_for_the_migration_bot(tmp_path):
    channel, rec = published(tmp_path)
    stress.write_record(channel, record(collected=3, passed_parallel=3, passed_serial=3))
    [(clean, text)] = stress.evidence([channel])["racy"]
    assert clean and "3/3 passed in 4 threads x 2" in text
    stress.write_record(channel, record(collected=3, passed_parallel=2, status="findings",
                                        failed_only_in_parallel=["t::race"]))
    [(clean, text)] = stress.evidence([channel])["racy"]
    assert not clean and text.startswith("thread-safety findings") and "t::race" in text


def test_migrate_plan_takes_clean_runs_as_evidence_and_lists_findings(tmp_path):
    from ftforge.migrate.plan import Migration, plan_migration

    from ..feedstocks import make_fixture_set

    make_fixture_set(tmp_path / "feedstocks")
    channel = tmp_path / "channel"
    pkgs = [SyntheticPackage(name, "1.0", f"py313{t}h0_0", subdir="linux-64",
                             depends=[f"python_abi 3.13.* *_cp313{t}"])
            for name in ("noevidence", "msgpack-python") for t in ("t", "")]
    publish([write_package(p, tmp_path / "pkgs") for p in pkgs], channel)
    for name, findings in (("noevidence", []), ("msgpack-python", ["t::race"])):
        stress.write_record(channel, record(package=name, fn=f"{name}-1.0-py313th0_0.conda",
                                            build="py313th0_0", collected=2, passed_serial=2,
                                            passed_parallel=2 - len(findings),
                                            failed_only_in_parallel=findings,
                                            status="findings" if findings else "ok"))
    mig = Migration.parse("python313t")
    before = plan_migration(tmp_path / "feedstocks", mig)
    assert before.feedstocks["noevidence"].category == "not-solvable"
    after = plan_migration(tmp_path / "feedstocks", mig, stress=stress.evidence([channel]))
    state = after.feedstocks["noevidence"]
    assert state.category == "ready" and "2/2 passed in 4 threads x 2" in state.evidence[-1]
    msgpack = after.feedstocks["msgpack-python"]
    assert msgpack.category == before.feedstocks["msgpack-python"].category  # not blocked
    assert msgpack.findings and "t::race" in msgpack.findings[0]


def test_tests_inside_the_package_run_from_the_installed_copy(tmp_path):
    """The sources are hidden; tests shipped inside the package run with --pyargs."""
    site = tmp_path / "site"
    (site / "inpkg" / "tests").mkdir(parents=True)
    (site / "inpkg" / "__init__.py").write_text("")
    (site / "inpkg" / "tests" / "__init__.py").write_text("")
    (site / "inpkg" / "tests" / "test_inside.py").write_text(RACY_TESTS)
    sdist = make_sdist(tmp_path / "sd", "inpkg", {
        "PKG-INFO": PKG_INFO.format(name="inpkg", requires=""),
        "inpkg/__init__.py": "raise ImportError('the source tree must not be imported')\n",
        "inpkg/tests/__init__.py": "",
        "inpkg/tests/test_inside.py": RACY_TESTS})
    prefix = fake_prefix(tmp_path)
    python = prefix / "bin" / "python"
    python.write_text(python.read_text().replace('PYTHONPATH="$PYTHONPATH:',
                                                 f'PYTHONPATH="$PYTHONPATH:{site}:'))
    result = stress.run_tests(record(package="inpkg"), sdist, prefix, ["inpkg"],
                              StressOptions(threads=4, iterations=2), tmp_path / "work")
    assert result.collected == 3 and "--pyargs" in result.note
    [finding] = result.failed_only_in_parallel  # pytest's node id (rootdir: the package)
    assert finding.endswith("test_inside.py::test_shared_state_is_mine")


CRASHING_TESTS = '''import os
import threading

HITS = []


def test_fine():
    assert True


def test_dies_when_two_threads_meet():
    HITS.append(threading.get_ident())
    if len(set(HITS)) > 1:
        os.abort()  # stands in for a segfault or bus error in an extension
'''


def test_a_crash_in_parallel_names_the_test_and_the_fatal_error(tmp_path):
    sdist = make_sdist(tmp_path / "sd", "crashy", {
        "PKG-INFO": PKG_INFO.format(name="crashy", requires=""),
        "tests/test_crash.py": CRASHING_TESTS})
    result = stress.run_tests(record(package="crashy"), sdist, fake_prefix(tmp_path), ["crashy"],
                              StressOptions(threads=4, iterations=2), tmp_path / "work")
    assert result.status == "crashed" and result.collected == 2 and result.passed_serial == 2
    assert result.crashed == "tests/test_crash.py::test_dies_when_two_threads_meet: Fatal " \
                             "Python error: Aborted"
    assert result.failed_only_in_parallel == [
        "tests/test_crash.py::test_dies_when_two_threads_meet"]
    assert "the interpreter crashed in tests/test_crash.py" in result.summary()


def test_a_missing_plugin_from_addopts_runs_without_addopts_and_says_so(tmp_path):
    sdist = make_sdist(tmp_path / "sd", "opts", {
        "PKG-INFO": PKG_INFO.format(name="opts", requires=""),
        "setup.cfg": "[tool:pytest]\naddopts = -p nosuchplugin_xyz\n",
        "tests/test_x.py": "def test_x():\n    assert True\n"})
    result = stress.run_tests(record(package="opts"), sdist, fake_prefix(tmp_path), ["opts"],
                              StressOptions(threads=2, iterations=1), tmp_path / "work")
    assert result.collected == 1 and result.passed_parallel == 1 and result.status == "ok"
    assert "run without the sdist's pytest addopts" in result.note
    assert "nosuchplugin_xyz" in result.note


def test_test_helpers_import_by_name_and_collection_errors_are_not_evidence(tmp_path):
    helper = make_sdist(tmp_path / "sd", "helped", {
        "PKG-INFO": PKG_INFO.format(name="helped", requires=""),
        "tests/helper.py": "def one():\n    return 1\n",
        "tests/test_h.py": "from helper import one\n\ndef test_one():\n    assert one() == 1\n"})
    result = stress.run_tests(record(package="helped"), helper, fake_prefix(tmp_path),
                              ["helped"], StressOptions(threads=2, iterations=1),
                              tmp_path / "work")
    assert result.status == "ok" and result.passed_parallel == 1, result
    broken = make_sdist(tmp_path / "sd2", "broken", {
        "PKG-INFO": PKG_INFO.format(name="broken", requires=""),
        "tests/test_b.py": "import no_such_module_xyz\n\ndef test_b():\n    pass\n"})
    result = stress.run_tests(record(package="broken"), broken, fake_prefix(tmp_path / "p2"),
                              ["broken"], StressOptions(threads=2, iterations=1),
                              tmp_path / "work2")
    assert result.status == "error" and not result.passed_parallel
    assert "1 test module(s) could not be collected: tests/test_b.py" in result.note


def test_a_suite_that_skips_everything_is_not_a_clean_pass(tmp_path):
    sdist = make_sdist(tmp_path / "sd", "skippy", {
        "PKG-INFO": PKG_INFO.format(name="skippy", requires=""),
        "tests/test_s.py": "import pytest\n\npytestmark = pytest.mark.skip('needs root')\n\n"
                           "def test_a():\n    pass\n\ndef test_b():\n    pass\n"})
    result = stress.run_tests(record(package="skippy"), sdist, fake_prefix(tmp_path),
                              ["skippy"], StressOptions(threads=2, iterations=1),
                              tmp_path / "work")
    assert result.status == "skipped" and result.collected == 2
    assert "every test was skipped" in result.note


HANGING_TESTS = '''import threading

LOCK_A, LOCK_B = threading.Lock(), threading.Lock()
TURN = []


def test_fine():
    assert True


def test_lock_order():
    TURN.append(1)
    first, second = (LOCK_A, LOCK_B) if len(TURN) % 2 else (LOCK_B, LOCK_A)
    with first:
        threading.Event().wait(0.2)
        with second:  # two threads, opposite orders: a deadlock
            pass
'''


def test_a_hang_in_parallel_is_recorded_with_its_test(tmp_path):
    sdist = make_sdist(tmp_path / "sd", "hangs", {
        "PKG-INFO": PKG_INFO.format(name="hangs", requires=""),
        "tests/test_hang.py": HANGING_TESTS})
    result = stress.run_tests(record(package="hangs"), sdist, fake_prefix(tmp_path), ["hangs"],
                              StressOptions(threads=2, iterations=1, timeout=8),
                              tmp_path / "work")
    assert result.status == "hung" and result.passed_serial == 2
    assert result.failed_only_in_parallel == ["tests/test_hang.py::test_lock_order"]
    assert "hung in tests/test_hang.py::test_lock_order: did not finish within 8 s" in \
        result.summary()
