"""``ftforge stress``: thread-safety evidence for the free-threaded packages of a channel.

For each free-threaded build in a channel: a fresh free-threaded environment
with the package, its test requirements (from its sdist), pytest and
pytest-run-parallel -- every one a package of the channel, built by ftforge's
own PyPI pipeline and published first when missing -- then the package's own
test suite, from its sdist, run twice: once plainly, once under
pytest-run-parallel (each test in N threads at once, M times per thread).

The record per package says how many tests were collected, how many passed in
parallel, which failed *only* in parallel (the thread-safety findings, by
test id), whether the GIL came back on at run time (and after which test),
and how long it took; a package whose sdist has no tests says so. It is stored
next to the package in the channel (``<subdir>/<package file stem>.stress.json``,
never inside the package and never a file the index reads), shown on the
channel page and read by ``migrate plan --evidence``.
"""

from __future__ import annotations

import dataclasses
import email.parser
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import paths
from .atomic import write_atomic
from .errors import FtforgeError

__all__ = [
    "RECORD_SUFFIX",
    "StressError",
    "StressOptions",
    "StressRecord",
    "evidence",
    "find_tests",
    "parse_outcomes",
    "read_record",
    "record_path",
    "stress_channel",
    "test_requirements",
    "write_record",
]

RECORD_SUFFIX = ".stress.json"
RECORD_SCHEMA = 1
TOOLS = ("pytest", "pytest-run-parallel")
"""What every stress environment has besides the package and its test requirements."""
_UNDECLARED_ROUNDS = 3
"""Test requirements added from ``No module named 'X'`` when pytest cannot start."""
_TEST_EXTRAS = ("test", "tests", "testing")
_REQUIREMENT_FILES = ("requirements/test.txt", "requirements/tests.txt",
                      "requirements-test.txt", "requirements-tests.txt", "test-requirements.txt",
                      "tests/requirements.txt", "requirements/testing.txt")
# Test tools that measure or lint, never needed for the tests to pass.
_NOT_NEEDED = frozenset({"pytest-cov", "coverage", "codecov", "tox", "nox", "pre-commit", "flake8",
                         "ruff", "mypy", "black", "isort", "pylint", "pytest-xdist",
                         "pytest-randomly", "pytest-timeout", "pytest-benchmark",
                         "pytest-codspeed", "pytest-sugar",
                         "pytest-run-parallel", "pytest"})


class StressError(FtforgeError):
    """A stress run that could not be set up (no sdist, no environment, ...)."""


@dataclass(frozen=True)
class StressOptions:
    threads: int = 8
    iterations: int = 10
    timeout: float = 1800.0
    """Seconds each pytest run may take before it is stopped (recorded as such)."""

    def __post_init__(self) -> None:
        if not 2 <= self.threads <= 256:
            raise StressError(f"--threads {self.threads}: expected 2 to 256",
                              hint="a parallel run needs at least two threads")
        if not 1 <= self.iterations <= 10_000:
            raise StressError(f"--iterations {self.iterations}: expected 1 to 10000")
        if not self.timeout > 0:
            raise StressError(f"--timeout {self.timeout}: expected a positive number of seconds")


@dataclass
class StressRecord:
    package: str
    version: str
    build: str
    subdir: str
    fn: str
    sdist: str
    threads: int
    iterations: int
    collected: int = 0
    passed_serial: int = 0
    passed_parallel: int = 0
    failed_serial: list[str] = field(default_factory=list)
    failed_only_in_parallel: list[str] = field(default_factory=list)
    gil_reenabled: bool = False
    gil_reenabled_after: str | None = None
    crashed: str | None = None
    """The test in which the interpreter died (and the fatal error), if it did."""
    no_tests: bool = False
    status: str = "ok"
    """ok | findings | crashed | hung | gil-reenabled | no-tests | skipped | error"""
    note: str = ""
    seconds: float = 0.0
    """The whole run for this package: sdist, environment, both pytest runs."""
    serial_seconds: float = 0.0
    parallel_seconds: float = 0.0
    tools: dict[str, str] = field(default_factory=dict)
    schema: int = RECORD_SCHEMA

    def summary(self) -> str:
        if self.no_tests:
            return "no tests in the sdist"
        if self.status == "error":
            return f"not run: {self.note}"
        text = (f"{self.passed_parallel}/{self.collected} passed in {self.threads} threads "
                f"x {self.iterations}")
        if self.failed_only_in_parallel:
            text += (f"; failed only in parallel: {', '.join(self.failed_only_in_parallel[:5])}"
                     + (" ..." if len(self.failed_only_in_parallel) > 5 else ""))
        if self.crashed:
            text += (f"; hung in {self.crashed}" if self.status == "hung"
                     else f"; the interpreter crashed in {self.crashed}")
        if self.gil_reenabled:
            text += f"; GIL re-enabled at run time (after {self.gil_reenabled_after or 'start'})"
        return text


# ---------------------------------------------------------------------------
# what the sdist says about its tests


def _requirement_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-", "git+", "http:", "https:", ".")):
            out.append(line)
    return out


def test_requirements(sdist: Path) -> list[str]:
    """PEP 508 requirements the sdist's tests need: its ``test``/``tests``/``testing`` extra,
    PEP 735 dependency groups of those names, or a test requirements file; minus
    tools that only measure or lint (coverage, linters) and pytest itself."""
    from packaging.requirements import InvalidRequirement, Requirement

    from .recipes.sdist import SdistError
    from .recipes.sdist import _Archive as Archive  # the bounded, read-only sdist reader

    try:
        archive = Archive(sdist)
    except SdistError as exc:
        raise StressError(f"{sdist}: not a readable sdist ({exc.message})",
                          hint="delete it from the source mirror and run again") from None
    try:
        texts = {rel: archive.read(rel) or "" for rel in ("PKG-INFO", "pyproject.toml",
                                                         *_REQUIREMENT_FILES)
                 if rel in archive.files}
    finally:
        archive.close()
    found: list[str] = []
    if "PKG-INFO" in texts:
        meta = email.parser.Parser().parsestr(texts["PKG-INFO"])
        for text in meta.get_all("Requires-Dist") or ():
            try:
                req = Requirement(str(text))
            except InvalidRequirement:
                continue
            if req.marker and any(req.marker.evaluate({"extra": e}) for e in _TEST_EXTRAS) \
                    and not req.marker.evaluate({"extra": ""}):
                found.append(str(text).split(";", 1)[0].strip())
    if "pyproject.toml" in texts:
        try:
            pyproject = tomllib.loads(texts["pyproject.toml"])
        except (tomllib.TOMLDecodeError, RecursionError):
            pyproject = {}
        groups = pyproject.get("dependency-groups")
        for name in _TEST_EXTRAS if isinstance(groups, dict) else ():
            found += [g for g in groups.get(name) or () if isinstance(g, str)]
    if not found:
        for rel in _REQUIREMENT_FILES:
            if rel in texts:
                found += _requirement_lines(texts[rel])
                break
    out = []
    for text in found:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker and not req.marker.evaluate({"extra": "", "python_version": "3.13"}):
            continue
        if re.sub(r"[-_.]+", "-", req.name).lower() not in _NOT_NEEDED:
            out.append(str(Requirement(f"{req.name}{req.specifier}")))
    return sorted(set(out))


def find_tests(root: Path) -> list[Path]:
    """Test files (``test_*.py``, ``*_test.py``) under an unpacked sdist."""
    skip = {"build", "dist", ".git", ".tox", "node_modules"}
    return sorted(p for p in root.rglob("*.py")
                  if (p.name.startswith("test_") or p.name.endswith("_test.py"))
                  and not skip.intersection(p.relative_to(root).parts))


def _unpack(sdist: Path, into: Path) -> Path:
    """The sdist unpacked under ``into`` (bounded, nothing outside it): its root folder."""
    from .limits import SourceLimits
    from .recipes.pep517 import _unpack as unpack  # the one safe sdist unpacker

    return unpack(sdist, into, SourceLimits())


def _hide_sources(root: Path, modules: Iterable[str]) -> None:
    """Remove the package's own sources, so its tests import the installed build."""
    for module in modules:
        top = module.split(".")[0]
        for candidate in (root / top, root / "src" / top, root / f"{top}.py"):
            if candidate.is_dir():
                shutil.rmtree(candidate)
            elif candidate.is_file():
                candidate.unlink()
    for name in ("setup.py", "__init__.py"):  # a root __init__.py makes the sdist a package
        (root / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# running pytest

PROBE_MODULE = "ftforge_stress_probe"
PROBE = '''"""ftforge stress probe: per-test outcomes and when the GIL came back on."""
import json
import os
import sys

_out = {"collected": 0, "outcomes": {}, "gil_at_start": None, "gil_after": None,
        "collection_errors": []}


def _gil():
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def pytest_sessionstart(session):
    _out["gil_at_start"] = _gil()


def pytest_collection_finish(session):
    _out["collected"] = len(session.items)


def pytest_collectreport(report):
    if report.failed:
        _out["collection_errors"].append(report.nodeid)


def pytest_runtest_logstart(nodeid, location):
    # The test running now, for a run that crashes the interpreter (no sessionfinish).
    with open(os.environ["FTFORGE_STRESS_OUT"] + ".current", "w") as handle:
        handle.write(nodeid)


def pytest_runtest_logreport(report):
    outcomes = _out["outcomes"]
    if report.when == "call" or report.outcome != "passed":
        if outcomes.get(report.nodeid) in ("failed", "error"):
            return
        if report.outcome == "failed":
            outcomes[report.nodeid] = "failed" if report.when == "call" else "error"
        else:
            outcomes[report.nodeid] = report.outcome
    if report.when == "teardown" and _out["gil_after"] is None and _gil() \\
            and not _out["gil_at_start"]:
        _out["gil_after"] = report.nodeid


def pytest_sessionfinish(session, exitstatus):
    _out["exitstatus"] = int(exitstatus)
    _out["gil_at_end"] = _gil()
    with open(os.environ["FTFORGE_STRESS_OUT"], "w") as handle:
        json.dump(_out, handle)
'''


@dataclass(frozen=True)
class Outcome:
    collected: int
    outcomes: dict[str, str]
    gil_reenabled: bool
    gil_after: str | None
    exitstatus: int
    crashed: str | None = None
    collection_errors: tuple[str, ...] = ()
    """``"<test id>: Fatal Python error: ..."`` when the interpreter died in that test."""

    def passed(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v == "passed"}

    def failed(self) -> set[str]:
        return {k for k, v in self.outcomes.items()
                if v in ("failed", "error", "crashed", "hung")}


def parse_outcomes(data: Mapping) -> Outcome:
    """The probe's JSON -> an Outcome (unknown keys ignored, wrong types refused)."""
    outcomes = data.get("outcomes")
    if not isinstance(outcomes, dict):
        raise StressError("the stress probe wrote no outcomes", hint="see the pytest output")
    gil_after = data.get("gil_after")
    return Outcome(
        collected=int(data.get("collected") or 0),
        outcomes={str(k): str(v) for k, v in outcomes.items()},
        gil_reenabled=bool(data.get("gil_at_end")) and not data.get("gil_at_start"),
        gil_after=str(gil_after) if gil_after else None,
        exitstatus=int(data.get("exitstatus", -1)),
        collection_errors=tuple(str(e) for e in data.get("collection_errors") or ()),
    )


def _pytest(prefix: Path, cwd: Path, probe_dir: Path, extra: list[str], log: Path,
            timeout: float) -> Outcome:
    out = probe_dir / f"outcome-{len(list(probe_dir.glob('outcome-*.json')))}.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHON_GIL", "VIRTUAL_ENV")}
    # Test folders that are not packages hold helpers their tests import by name
    # (`from helper import ...`), as tox or a `pythonpath` setting would provide.
    helpers = sorted({str(t.parent) for t in find_tests(cwd)
                      if not (t.parent / "__init__.py").exists()})
    env.update(PYTHONPATH=os.pathsep.join([str(probe_dir), *helpers]),
               FTFORGE_STRESS_OUT=str(out), PYTHONDONTWRITEBYTECODE="1")
    ignore = [f"--ignore={d}" for d in ("docs", "doc", "benchmarks", "build", "examples")
              if (cwd / d).is_dir()]
    command = [str(prefix / "bin" / "python"), "-m", "pytest", "-p", PROBE_MODULE,
               "-p", "no:cacheprovider", "-q", "-rN", *ignore, *extra]
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        try:
            subprocess.run(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT,
                           timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            current = Path(f"{out}.current")
            stuck = time.time() - current.stat().st_mtime if current.is_file() else 0.0
            if stuck >= min(60.0, timeout / 2):  # one test for that long: a hang (deadlock)
                test = current.read_text()[:500]
                return Outcome(0, {test: "hung"}, False, None, -1,
                               f"{test}: did not finish within {timeout:.0f} s (hung)")
            raise StressError(f"pytest ran longer than {timeout:.0f} s in {cwd.name}",
                              hint="raise --timeout, or lower --threads/--iterations") from None
    if not out.is_file():
        text = log.read_text(errors="replace")
        current = Path(f"{out}.current")
        fatal = re.findall(r"Fatal Python error: [^\n]*", text)
        if current.is_file() and fatal:  # the interpreter died inside a test
            test = current.read_text()[:500]
            return Outcome(0, {test: "crashed"}, False, None, -1, f"{test}: {fatal[-1][:200]}")
        tail = [line.strip() for line in text.splitlines() if line.strip()][-3:]
        raise StressError(f"pytest did not finish a session: {' | '.join(tail)[-400:]}",
                          hint="the test suite could not start (keep the log with --keep-logs)")
    return parse_outcomes(json.loads(out.read_text()))


def _tool_versions(prefix: Path) -> dict[str, str]:
    versions = {}
    for record in (prefix / "conda-meta").glob("*.json"):
        try:
            data = json.loads(record.read_text())
        except ValueError:
            continue
        if data.get("name") in ("python", *TOOLS):
            versions[data["name"]] = f"{data.get('version')} {data.get('build')}"
    return versions


def run_tests(record: StressRecord, sdist: Path, prefix: Path, modules: Iterable[str],
              options: StressOptions, work: Path) -> StressRecord:
    """Run the sdist's tests in ``prefix`` plainly, then under pytest-run-parallel."""
    started = time.monotonic()
    root = _unpack(sdist, work / "src")
    modules = list(modules)
    shipped = find_tests(root)
    _hide_sources(root, modules)
    record.tools = _tool_versions(prefix)
    where: list[str] = []
    if not find_tests(root) and shipped:
        # The tests live inside the package: run the installed copy's (--pyargs).
        root = work / "run"
        root.mkdir()
        where = ["--pyargs", *sorted({m.split(".")[0] for m in modules})]
        record.note = "tests inside the package: the installed copy's were run (--pyargs)"
    if not shipped:
        record.no_tests, record.status = True, "no-tests"
        record.note = "the sdist ships no test files (test_*.py / *_test.py)"
        record.seconds = round(time.monotonic() - started, 1)
        return record
    probe = work / "probe"
    probe.mkdir()
    (probe / f"{PROBE_MODULE}.py").write_text(PROBE)
    log = work / "pytest.log"
    clock = time.monotonic()
    try:
        serial = _pytest(prefix, root, probe, where, log, options.timeout)
    except StressError as exc:
        # A plugin the sdist's pytest configuration loads (addopts = -p instafail) that
        # is not installed: run without the configured addopts, and say so.
        if "Error importing plugin" not in exc.message and \
                "unrecognized arguments" not in exc.message:
            raise
        where = ["-o", "addopts=", *where]
        record.note = "; ".join(filter(None, [record.note, "run without the sdist's pytest "
                                              "addopts (" + exc.message.split(": ", 1)[-1][-160:]
                                              + ")"]))
        serial = _pytest(prefix, root, probe, where, log, options.timeout)
    record.serial_seconds = round(time.monotonic() - clock, 2)
    clock = time.monotonic()
    parallel = _pytest(prefix, root, probe, [
        f"--parallel-threads={options.threads}", f"--iterations={options.iterations}",
        "--ignore-gil-enabled", *where], log, options.timeout)
    record.parallel_seconds = round(time.monotonic() - clock, 2)
    record.collected = serial.collected
    record.passed_serial = len(serial.passed())
    record.passed_parallel = len(parallel.passed())
    record.failed_serial = sorted(serial.failed())
    record.failed_only_in_parallel = sorted(parallel.failed() & serial.passed())
    gil = serial if serial.gil_reenabled else parallel
    record.gil_reenabled = serial.gil_reenabled or parallel.gil_reenabled
    record.gil_reenabled_after = gil.gil_after if record.gil_reenabled else None
    record.crashed = serial.crashed or parallel.crashed
    if serial.collection_errors:
        record.note = "; ".join(filter(None, [record.note, (
            f"{len(serial.collection_errors)} test module(s) could not be collected: "
            + ", ".join(serial.collection_errors[:5]))]))
    if record.crashed:
        record.status = "hung" if record.crashed.endswith("(hung)") else "crashed"
        record.note = "; ".join(filter(None, [record.note, (
            "the plain run crashed" if serial.crashed else
            "the parallel run stopped at the crash (later tests did not run in parallel)")]))
    elif serial.collection_errors and not serial.outcomes:
        record.status = "error"  # nothing ran: not evidence either way
    elif serial.collected and not serial.passed() and not serial.failed():
        record.status = "skipped"  # nothing ran: not evidence either way
        record.note = "; ".join(filter(None, [record.note, (
            "every test was skipped (the suite's own conditions: a platform, an "
            "environment variable, a missing optional dependency)")]))
    elif serial.collected == 0:
        record.no_tests, record.status = True, "no-tests"
        record.note = ("pytest collected no tests from the sdist"
                       + (" (the installed package ships none)" if where else ""))
    elif record.failed_only_in_parallel:
        record.status = "findings"
    elif record.gil_reenabled:
        record.status = "gil-reenabled"
    record.seconds = round(time.monotonic() - started, 1)
    return record


# ---------------------------------------------------------------------------
# the record, stored next to the package


def record_path(channel: Path, subdir: str, fn: str) -> Path:
    stem = re.sub(r"(\.conda|\.tar\.bz2)$", "", fn)
    if "/" in stem or stem.startswith(".") or not stem:
        raise StressError(f"{fn}: not a package file name", hint="name a file of the channel")
    return channel / subdir / f"{stem}{RECORD_SUFFIX}"


def write_record(channel: Path, record: StressRecord) -> Path:
    """Store ``record`` beside its package (atomically, under the channel's lock)."""
    from .channel.publish import channel_lock

    path = record_path(channel, record.subdir, record.fn)
    if not (channel / record.subdir / record.fn).is_file():
        raise StressError(f"{channel}: has no {record.subdir}/{record.fn} to describe",
                          hint="stress packages that are published in the channel")
    with channel_lock(channel):
        write_atomic(path, json.dumps(dataclasses.asdict(record), indent=2, sort_keys=True)
                     + "\n")
    return path


def read_record(channel: Path, subdir: str, fn: str) -> StressRecord | None:
    """The stored record for a package file, or None (absent or unreadable)."""
    try:
        path = record_path(channel, subdir, fn)
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError, StressError):
        return None
    if not isinstance(data, dict) or data.get("fn") != fn:
        return None
    known = {f.name for f in dataclasses.fields(StressRecord)}
    try:
        return StressRecord(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return None


def evidence(channels: Iterable[Path]) -> dict[str, list[tuple[bool, str]]]:
    """``{package name: [(clean, text), ...]}`` from the stress records of channels,
    for the migration bot: a clean run is evidence; findings are listed, not hidden."""
    from .channel.index import channel_records

    out: dict[str, list[tuple[bool, str]]] = {}
    for channel in channels:
        for rec in channel_records(Path(channel)):
            stored = read_record(Path(channel), rec["subdir"], rec["fn"])
            if stored is None or stored.status in ("error", "no-tests", "skipped"):
                continue
            clean = stored.status == "ok" and stored.passed_parallel > 0
            label = f"{stored.package} {stored.version} {stored.build}"
            text = (f"pytest-run-parallel: {label}: {stored.summary()}" if clean else
                    f"thread-safety findings ({label}): {stored.summary()}")
            out.setdefault(stored.package, []).append((clean, text))
    return out


# ---------------------------------------------------------------------------
# the whole run


@dataclass(frozen=True)
class _Target:
    record: dict
    recipe: dict


def _packaged_recipe(package: Path) -> dict:
    from conda_package_streaming.package_streaming import stream_conda_info
    from ruamel.yaml import YAML

    try:
        for tar, member in stream_conda_info(str(package)):
            if member.name in ("info/recipe/recipe.yaml",):
                handle = tar.extractfile(member)
                data = YAML(typ="safe").load(handle.read(1_000_000) if handle else b"")
                return data if isinstance(data, dict) else {}
    except Exception as exc:  # a damaged package: say which
        raise StressError(f"{package.name}: cannot read its recipe ({exc})",
                          hint="rebuild and republish it") from None
    return {}


def _source_of(recipe: dict, package: Path) -> tuple[str, str, str]:
    """(sdist file name, sha256, url) from the recipe the package carries."""
    source = recipe.get("source")
    source = source[0] if isinstance(source, list) and source else source
    if not isinstance(source, dict) or not source.get("url") or not source.get("sha256"):
        raise StressError(f"{package.name}: its recipe names no sdist (source url + sha256)",
                          hint="stress runs on packages made by `ftforge recipe pypi`")
    url = str(source["url"])
    return PurePosixPath(url.split("?")[0]).name, str(source["sha256"]), url


def _sdist(filename: str, sha256: str, url: str, package: str) -> Path:
    """The sdist from the source mirror (or the local file the recipe names), else
    downloaded from PyPI; sha256 checked either way."""
    from urllib.parse import unquote, urlparse

    from . import pypi
    from .build.mirror import SourceMirror, sha256_of

    local = paths.source_mirror_dir() / filename
    if local.is_file() and sha256_of(local) == sha256:
        return local
    filed = SourceMirror(paths.source_mirror_dir()).by_content(sha256)
    if filed is not None and sha256_of(filed) == sha256:
        return filed
    if url.startswith("file://"):
        given = Path(unquote(urlparse(url).path))
        if given.is_file() and sha256_of(given) == sha256:
            return given
    match = re.match(r"^(?P<name>.+?)-(?P<version>\d[^-]*)\.(tar\.gz|zip|tgz)$", filename)
    if not match:
        raise StressError(f"{package}: the sdist {filename} is not in {local.parent}",
                          hint="copy it there (it is a local sdist)")
    project = pypi.fetch_project(match["name"])
    for files in project.releases.values():
        for dist in files:
            if dist.filename == filename:
                if dist.sha256 != sha256:
                    raise StressError(f"{package}: PyPI's {filename} has sha256 {dist.sha256}, "
                                      f"the package was built from {sha256}",
                                      hint="the sdist changed on the index; rebuild the package")
                return pypi.download(dist, paths.source_mirror_dir())
    raise StressError(f"{package}: PyPI has no file {filename}",
                      hint=f"copy the sdist into {local.parent}")


def _targets(channel: Path, names: Iterable[str]) -> list[_Target]:
    from .channel.index import channel_records
    from .variants import variant_of_package

    wanted = set(names)
    targets = []
    for record in channel_records(channel):
        if wanted and record["name"] not in wanted:
            continue
        variant = variant_of_package(record.get("depends", []), record["build"])
        if variant is None and (not wanted or record.get("noarch") != "python"):
            continue  # noarch packages only when named
        if variant is not None and not variant.freethreaded:
            continue
        package = channel / record["subdir"] / record["fn"]
        targets.append(_Target(record, _packaged_recipe(package)))
    missing = wanted - {t.record["name"] for t in targets}
    if missing:
        raise StressError(f"{channel}: no free-threaded or noarch build of "
                          f"{', '.join(sorted(missing))}",
                          hint="publish the package (with its GIL twin) first")
    return targets


def ensure_published(channel: Path, requirements: Iterable[str], *,
                     interpreter_channels: Iterable[str], work: Path,
                     progress: Callable[[str], None],
                     required: Iterable[str] = TOOLS) -> tuple[list[str], dict[str, str]]:
    """Build what the channel lacks of ``requirements`` with ftforge's PyPI pipeline
    (each one's closure, both ABIs where compiled) and publish it.

    Returns ``(conda specs, {requirement: why it was left out})``: a test requirement
    that cannot be built is left out (the tests that need it fail, and the record
    says so); one of ``required`` (pytest, pytest-run-parallel) is an error."""
    from packaging.requirements import Requirement

    from .build.driver import BuildRequest, build_in_order
    from .channel.index import channel_records
    from .channel.publish import publish
    from .recipes import build_config
    from .recipes import files as recipe_files
    from .recipes.conda_names import conda_name_or_assumed
    from .recipes.from_pypi import closure_from_pypi
    from .recipes.pypi import conda_spec

    have = {r["name"] for c in (channel, *interpreter_channels) if Path(c).is_dir()
            for r in channel_records(Path(c))}
    required = {re.sub(r"[-_.]+", "-", r).lower() for r in required}
    specs: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    for text in requirements:
        req = Requirement(text)
        name, _ = conda_name_or_assumed(req.name)
        specs[text] = f"{name} {conda_spec(req.specifier)}".strip()
        if name not in have:
            missing.append((text, name))
    left_out: dict[str, str] = {}
    if not missing:
        return list(specs.values()), left_out
    work.mkdir(parents=True, exist_ok=True)
    cbc = work / "conda_build_config.yaml"
    cbc.write_text(build_config.generate()["conda_build_config.yaml"])
    channels = (str(channel), *interpreter_channels)
    for text, name in missing:
        progress(f"building {text} and what it needs (ftforge's PyPI pipeline)")
        try:
            recipes = []
            for plan, files in closure_from_pypi(text):
                if plan.conda_name not in have:
                    target = work / "recipes" / f"{plan.conda_name}-{plan.version}"
                    recipe_files.write_files(target, files)
                    recipes.append(target)
            outcomes = build_in_order([BuildRequest(d, work / "built" / name,
                                                    variant_files=(cbc,), channels=channels)
                                       for d in recipes])
            packages = sorted({p for o in outcomes for p in o.packages})
            progress(f"publishing {len(packages)} package(s) to {channel}")
            # Each new name is its own recipe (owners.yaml), as a feedstock per package.
            publish(packages, channel, by="ftforge stress")
        except FtforgeError as exc:
            if Requirement(text).name.lower() in required:
                raise
            left_out[text] = exc.message.splitlines()[0][:200]
            del specs[text]
            continue
        have |= {r["name"] for r in channel_records(channel)}
    return list(specs.values()), left_out


def stress_channel(channel: Path, names: Iterable[str] = (), *,
                   interpreter_channels: Iterable[str] = (),
                   options: StressOptions = StressOptions(),
                   progress: Callable[[str], None] = lambda message: None,
                   keep: Path | None = None) -> list[StressRecord]:
    """Stress every free-threaded (or noarch) build of ``names`` (default: all) in
    ``channel``; store and return one record per package file."""
    from .channel.layout import is_channel
    from .environments import create
    from .variants import PythonVariant

    channel = Path(channel).resolve()
    if not is_channel(channel):
        raise StressError(f"{channel}: not an ftforge channel",
                          hint="pass the directory `ftforge channel publish` writes to")
    interpreter_channels = tuple(interpreter_channels)
    records = []
    for target in _targets(channel, names):
        rec = target.record
        filename, sha256, url = _source_of(target.recipe, channel / rec["subdir"] / rec["fn"])
        record = StressRecord(rec["name"], rec["version"], rec["build"], rec["subdir"],
                              rec["fn"], filename, options.threads, options.iterations)
        began = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="ftforge-stress-", dir=keep) as tmp:
            work = Path(tmp)
            try:
                progress(f"{rec['name']} {rec['version']}: sdist {filename}")
                sdist = _sdist(filename, sha256, url, rec["name"])
                needs = [*TOOLS, *test_requirements(sdist)]
                modules = _modules_of(target.recipe)
                for attempt in range(1 + _UNDECLARED_ROUNDS):
                    specs, left_out = ensure_published(
                        channel, needs, interpreter_channels=interpreter_channels,
                        work=work / "deps", progress=progress)
                    progress(f"{rec['name']}: environment")
                    prefix = work / "env"
                    create(prefix, [str(channel), *interpreter_channels],
                           [PythonVariant.ft().metapackage,
                            f"{rec['name']} =={rec['version']} {rec['build']}", *specs],
                           force=True)
                    progress(f"{rec['name']}: tests, then {options.threads} threads x "
                             f"{options.iterations}")
                    shutil.rmtree(work / "src", ignore_errors=True)
                    shutil.rmtree(work / "probe", ignore_errors=True)
                    shutil.rmtree(work / "run", ignore_errors=True)
                    try:
                        record = run_tests(record, sdist, prefix, modules, options, work)
                        break
                    except StressError as exc:
                        # A test requirement the sdist does not declare (a conftest's
                        # `import hypothesis`): add it and try again, a few times.
                        missing = re.search(r"No module named '([\w.]+)'", exc.message)
                        name = missing[1].split(".")[0] if missing else None
                        if name is None or name in needs or attempt == _UNDECLARED_ROUNDS \
                                or _ships_module(work / "src", name):
                            raise
                        needs.append(name)
                        record.note = "; ".join(filter(None, [
                            record.note, f"undeclared test requirement added: {name}"]))
                if left_out:
                    record.note = "; ".join(filter(None, [record.note, "test requirements "
                                            "not built: " + "; ".join(
                                                f"{k} ({v})" for k, v in left_out.items())]))
            except FtforgeError as exc:  # the record says why, in one line
                lines = [" ".join(line.split()) for line in exc.message.splitlines()]
                record.status, record.note = "error", " | ".join(filter(None, lines))[:800]
            finally:
                if keep is not None and (work / "pytest.log").is_file():
                    shutil.copy(work / "pytest.log", keep / f"{rec['fn']}.pytest.log")
        record.seconds = round(time.monotonic() - began, 1)
        write_record(channel, record)
        records.append(record)
        progress(f"{rec['name']}: {record.summary()}")
    if records:
        from .channel.page import write_page

        write_page(channel)
    return records


def _ships_module(root: Path, name: str) -> bool:
    """The unpacked sdist has a module or package ``name`` of its own (a test helper):
    never a requirement to fetch from PyPI."""
    return any(root.rglob(f"{name}.py")) or any(p.is_dir() for p in root.rglob(name))


def _modules_of(recipe: dict) -> list[str]:
    """The modules the recipe's import test names (the package's own sources)."""
    for test in recipe.get("tests") or ():
        imports = ((test or {}).get("python") or {}).get("imports") if isinstance(test, dict) \
            else None
        if isinstance(imports, list):
            return [str(m) for m in imports]
    return []

