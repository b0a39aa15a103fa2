"""No accidental free-threading, no interpreter switch, no mixed environment: real solves.

Channels built from this project's own recipes:

- **base** (a stand-in for a channel with GIL builds only): the GIL interpreter,
  ``python_abi`` cp313, ``python-gil``, the GIL builds of the PyPI extension
  packages (pyyaml among them) and every noarch package (pip included);
- **ft**: the variant-complete channel ftforge publishes -- both interpreters,
  both ``python_abi``, both metapackages, both builds of every extension
  package (pyyaml left out entirely: it is the package with only a GIL build,
  in base), and the noarch packages (pip);
- **ft-newer**: ft plus python 3.13.6 for *both* ABIs (the real 3.13.5 packages
  repacked with a higher version, ``ftforge.channel.synthetic.repack``): a
  newer release in the ft channel, which the channel's invariant only admits
  with its GIL twin.

Every request is solved (dry run, like ``conda create --dry-run``) for every
channel priority rattler has (strict, flexible, disabled) x channel order x
newer-or-not, with conda's ``add_pip_as_python_dependency`` on. A case fails
when a GIL request gets the free-threaded interpreter, an existing environment
changes interpreter, or an environment would hold a package built for the
other ABI. The table printed at the end is the one in docs/user-guide.md
(``FTFORGE_UPDATE_DOCS=1`` rewrites it there; otherwise the test checks it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftforge.channel.audit import PackageRefused, audit_package
from ftforge.channel.check import check_channels
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import SyntheticPackage, repack, write_package
from ftforge.environments import (
    SolvedPackage,
    create,
    install_into,
    installed_packages,
    solve,
)
from ftforge.errors import SolveError
from ftforge.explain import explain
from ftforge.variants import PythonVariant, variant_of_package

from .conftest import REPO, run_python

pytestmark = pytest.mark.integration

FT = PythonVariant.ft("3.13")
GIL = PythonVariant.gil("3.13")
PRIORITIES = ("strict", "flexible", "disabled")
ORDERS = ("ft+base", "base+ft")
GUIDE = REPO / "docs" / "user-guide.md"

# python_abi is a constraint package: alone it pulls no python, so it is asked with python.
GIL_REQUESTS = ("python", "python=3.13", "msgpack-python", "python-gil",
                "python_abi=*=*_cp313 python")
FT_REQUESTS = ("python-freethreading", "python_abi=*=*_cp313t", "python=3.13.*=*_cp313t",
               "python[build=*_cp313t]")


@dataclass
class Case:
    group: str
    request: str
    priority: str
    order: str
    newer: bool
    outcome: str
    failure: str | None


CASES: list[Case] = []


def _summary() -> list[str]:
    """One line per (group, request): the outcome in every setting, and the failures."""
    rows: dict[tuple[str, str], list[Case]] = {}
    for case in CASES:
        rows.setdefault((case.group, case.request), []).append(case)
    lines = ["| request | settings | outcome | failures |", "|---|---|---|---|"]
    for (group, request), cases in rows.items():
        outcomes = sorted({c.outcome for c in cases})
        failures = sum(c.failure is not None for c in cases)
        lines.append(f"| {group}: `{request}` | {len(cases)} | {'; '.join(outcomes)} | "
                     f"{failures} |")
    accidental = sum(c.failure == "accidental free-threading" for c in CASES)
    switched = sum(c.failure == "interpreter switched" for c in CASES)
    mixed = sum((c.failure or "").startswith("mixed") for c in CASES)
    lines.append(f"| **all cases** | {len(CASES)} | {accidental} accidental free-threaded "
                 f"picks, {switched} interpreter switches, {mixed} mixed environments | "
                 f"{sum(c.failure is not None for c in CASES)} |")
    return lines


@pytest.fixture(scope="module", autouse=True)
def print_matrix():
    yield
    if not CASES:
        return
    failures = [c for c in CASES if c.failure]
    print(f"\n\nmixing matrix: {len(CASES)} cases, {len(failures)} failures "
          f"(priorities {', '.join(PRIORITIES)}; orders {', '.join(ORDERS)}; ft newer or not)")
    print("\n".join(_summary()))
    for case in failures:
        print(f"  FAILED {case}")


def _abi(pkg: SolvedPackage) -> PythonVariant | None:
    return variant_of_package(pkg.depends, pkg.build)


def _abi_of_file(pkg: Path) -> PythonVariant | None:
    record = audit_package(pkg).record
    return variant_of_package(record.depends, record.build)


def _python(solved) -> SolvedPackage:
    return next(p for p in solved if p.name == "python")


def _describe(solved) -> str:
    python = _python(solved)
    abi = _abi(python)
    kind = "FT" if abi and abi.freethreaded else "GIL"
    # the hash is left out: the table must not change with every recipe edit
    number = python.build.split("_")[-2]
    return f"{kind} python {python.version} (build {number})"


def _mixed(solved) -> list[str]:
    """Packages built for another ABI than the environment's interpreter."""
    want = _abi(_python(solved))
    return [f"{p.name} {p.build}" for p in solved
            if (abi := _abi(p)) is not None and abi != want]


@pytest.fixture(scope="module")
def channels(tmp_path_factory, interpreter_packages, pypi_out):
    root = tmp_path_factory.mktemp("mixing")
    base, ft = [], []
    packages = list(interpreter_packages) + sorted(pypi_out.glob("*/*.conda"))
    for pkg in packages:
        abi = _abi_of_file(pkg)
        if abi is None:  # noarch: python packages (pip among them) live in both
            base.append(pkg)
            ft.append(pkg)
        elif not abi.freethreaded:
            base.append(pkg)
            if not pkg.name.startswith("pyyaml-"):
                ft.append(pkg)
        elif not pkg.name.startswith("pyyaml-"):
            ft.append(pkg)
    publish(base, root / "base")
    publish(ft, root / "ft")
    pythons = [p for p in interpreter_packages if re.match(r"python-3\.13\.5-.*_cp313t?\.conda$",
                                                           p.name)]
    assert len(pythons) == 2, pythons
    newer = [repack(p, root / "newer", version="3.13.6") for p in pythons]
    publish([*ft, *newer], root / "ft-newer")
    return {"base": str(root / "base"), "ft": str(root / "ft"),
            "ft-newer": str(root / "ft-newer")}


def _channels(channels, order: str, newer: bool) -> list[str]:
    ft = channels["ft-newer" if newer else "ft"]
    return [ft if name == "ft" else channels["base"] for name in order.split("+")]


def _settings():
    for priority in PRIORITIES:
        for order in ORDERS:
            for newer in (False, True):
                yield priority, order, newer


@pytest.mark.parametrize("request_spec", GIL_REQUESTS)
def test_a_request_that_does_not_name_free_threading_gets_the_gil_build(channels,
                                                                         request_spec):
    failures = []
    for priority, order, newer in _settings():
        failure = None
        try:
            solved = solve(_channels(channels, order, newer), request_spec.split(),
                           priority=priority)
            outcome = _describe(solved)
            if _abi(_python(solved)) != GIL:
                failure = "accidental free-threading"
            elif _mixed(solved):
                failure = f"mixed: {_mixed(solved)}"
            elif not any(p.name == "pip" for p in solved):
                failure = "no pip (conda adds pip to every python)"
        except SolveError as exc:
            outcome, failure = "unsolvable", f"unsolvable: {exc.message.splitlines()[0]}"
        CASES.append(Case("new env", request_spec, priority, order, newer, outcome, failure))
        if failure:
            failures.append((priority, order, newer, failure))
    assert failures == []


@pytest.mark.parametrize("request_spec", FT_REQUESTS)
def test_asking_for_free_threading_gets_only_free_threaded_builds(channels, request_spec):
    failures = []
    for priority, order, newer in _settings():
        failure = None
        specs = [request_spec, "msgpack-python", "markupsafe"]
        try:
            solved = solve(_channels(channels, order, newer), specs, priority=priority)
            outcome = _describe(solved)
            if _abi(_python(solved)) != FT:
                failure = "asked for free-threading, got the GIL build"
            elif _mixed(solved):
                failure = f"mixed: {_mixed(solved)}"
        except SolveError:
            # Strict priority with base first hides ft's python_abi cp313t: a request
            # that cannot be met must say why.
            story = explain(specs, _channels(channels, order, newer), priority=priority)
            outcome = "unsolvable, explained" if story else "unsolvable, unexplained"
            if not story or (priority, order) != ("strict", "base+ft"):
                failure = outcome
        CASES.append(Case("new env", f"{request_spec} msgpack-python markupsafe", priority,
                          order, newer, outcome, failure))
        if failure:
            failures.append((priority, order, newer, failure))
    assert failures == []


@pytest.fixture(scope="module")
def envs(channels, tmp_path_factory):
    """A GIL and a free-threaded environment, made as a user would (ft + base)."""
    made = {}
    for kind, spec in (("gil", "python"), ("ft", "python-freethreading")):
        prefix = tmp_path_factory.mktemp(kind) / "env"
        create(prefix, [channels["ft"], channels["base"]], [spec], priority="flexible")
        made[kind] = prefix
    return made


ACTIONS = ("install msgpack-python", "install -c ft msgpack-python", "update --all")


@pytest.mark.parametrize("kind", ["gil", "ft"])
@pytest.mark.parametrize("action", ACTIONS)
def test_an_existing_environment_keeps_its_interpreter(channels, envs, kind, action):
    prefix = envs[kind]
    want = FT if kind == "ft" else GIL
    before = installed_packages(prefix)["python"]["build"]
    failures = []
    for priority, order, newer in _settings():
        chans = _channels(channels, order, newer)
        if "-c ft" in action:
            if order != ORDERS[0]:
                continue  # one channel: the order does not matter
            chans = [channels["ft-newer" if newer else "ft"]]
        specs = [] if action == "update --all" else ["msgpack-python"]
        failure = None
        try:
            result = install_into(prefix, chans, specs, priority=priority,
                                  update_all=action == "update --all", dry_run=True)
            outcome = _describe(result.packages)
            if _abi(_python(result.packages)) != want:
                failure = "interpreter switched"
            elif _mixed(result.packages):
                failure = f"mixed: {_mixed(result.packages)}"
        except SolveError as exc:
            first = exc.message.splitlines()[0]
            if (kind, priority, order) == ("ft", "strict", "base+ft") and \
                    first.startswith("With strict channel priority every python_abi comes "
                                     "from channel base"):
                # strict priority with the GIL-only base first hides ft's cp313t builds:
                # refused and explained, the environment untouched
                outcome, failure = "unsolvable, explained", None
            else:
                outcome, failure = "unsolvable", f"unsolvable: {first}"
        CASES.append(Case(f"{kind.upper()} env", action, priority,
                          "ft" if "-c ft" in action else order, newer, outcome, failure))
        if failure:
            failures.append((priority, order, newer, failure))
    assert installed_packages(prefix)["python"]["build"] == before  # dry runs change nothing
    assert failures == []


def test_a_plain_resolve_of_a_gil_environment_does_not_switch(channels, envs):
    """What a client without ftforge's pin does: re-solve the environment's names plus
    one package. The variant-complete ft channel has a GIL build of everything it has
    a free-threaded build of, so even strict priority with ft first keeps GIL."""
    names = sorted(installed_packages(envs["gil"]))
    failures = []
    for priority, order, newer in _settings():
        solved = solve(_channels(channels, order, newer), [*names, "msgpack-python"],
                       priority=priority)
        failure = None if _abi(_python(solved)) == GIL and not _mixed(solved) else "switched"
        CASES.append(Case("GIL env", "plain re-solve + msgpack-python (no pin)", priority,
                          order, newer, _describe(solved), failure))
        if failure:
            failures.append((priority, order, newer))
    assert failures == []


def test_real_installs_keep_the_interpreter_and_write_the_pin(channels, envs, tmp_path):
    for kind, want in (("gil", GIL), ("ft", FT)):
        prefix = tmp_path / kind
        shutil.copytree(envs[kind], prefix, symlinks=True)
        assert (prefix / "conda-meta" / "pinned").read_text() == want.python_abi_spec + "\n"
        result = install_into(prefix, [channels["ft-newer"]], ["msgpack-python"],
                              priority="strict")
        assert result.before[1] == result.after[1] and result.after[1].endswith(want.abi_tag)
        msgpack = next(p for p in result.packages if p.name == "msgpack-python")
        assert msgpack.build.startswith(want.extension_build_prefix + "h"), msgpack
        out = run_python(prefix, "import msgpack, sys; print(sys._is_gil_enabled())")
        assert out.stdout.strip() == str(not want.freethreaded)
        assert (prefix / "conda-meta" / "pinned").read_text() == want.python_abi_spec + "\n"


def test_the_pip_package_is_the_only_owner_of_pip(envs):
    """python bundles no pip: the pip package owns every pip file, and works."""
    for kind, variant in (("gil", GIL), ("ft", FT)):
        prefix = envs[kind]
        owners = [name for name, record in installed_packages(prefix).items()
                  if any(f.startswith(f"{variant.site_packages}/pip/")
                         for f in record.get("files", []))]
        assert owners == ["pip"], owners
        out = run_python(prefix, "import pip, sys; print(pip.__file__)")
        assert f"{variant.site_packages}/pip/__init__.py" in out.stdout


def test_ft_env_and_a_gil_only_package_is_refused_naming_the_abi(channels, envs):
    with pytest.raises(SolveError) as err:
        install_into(envs["ft"], [channels["ft"], channels["base"]], ["pyyaml"],
                     priority="flexible", dry_run=True)
    assert err.value.message == (
        "pyyaml 6.0.3 in channel base is built for cp313 (GIL); this environment has python "
        "3.13.5 cp313t (free-threaded). Install python-gil into a new environment, or build a "
        "free-threaded one (`ftforge recipe pypi pyyaml` then `ftforge build`).")
    assert installed_packages(envs["ft"])["python"]["build"].endswith("_cp313t")
    CASES.append(Case("FT env", "install pyyaml (GIL-only)", "flexible", "ft+base", False,
                      "refused, explained", None))


def test_noarch_package_into_the_ft_env(channels, envs, tmp_path):
    prefix = tmp_path / "ft"
    shutil.copytree(envs["ft"], prefix, symlinks=True)
    install_into(prefix, [channels["ft"], channels["base"]], ["idna"], priority="flexible")
    assert (prefix / FT.site_packages / "idna" / "__init__.py").is_file()
    assert not (prefix / GIL.site_packages / "idna").exists()
    out = run_python(prefix, "import idna, sys; print(idna.__file__, sys._is_gil_enabled())")
    assert "python3.13t/site-packages/idna" in out.stdout and out.stdout.strip().endswith("False")


def test_a_python_only_pin_never_reaches_the_solver(tmp_path, channels):
    wrong = SyntheticPackage(
        name="wrongly-built", version="1.0", build="h1234567_0", subdir="linux-64",
        depends=["python >=3.13"],
        files={f"{FT.site_packages}/wrong/m{FT.extension_suffix()}": b"\x7fELF"})
    path = write_package(wrong, tmp_path)
    scratch = tmp_path / "ft-copy"
    shutil.copytree(channels["ft"], scratch)
    with pytest.raises(PackageRefused) as refused:
        publish([path], scratch)
    assert "python_abi" in str(refused.value)
    assert path.name not in json.loads((scratch / "linux-64" / "repodata.json").read_text()
                                       ).get("packages.conda", {})


def test_published_channels_pass_the_check(channels):
    count, violations = check_channels([Path(channels["base"]), Path(channels["ft"]),
                                        Path(channels["ft-newer"])])
    assert count > 40 and violations == []


def test_explain_for_conflicting_requests(channels):
    lines = explain(["python-freethreading", "python_abi=*=*_cp313"],
                    [channels["ft"], channels["base"]])
    assert lines == [
        "'python_abi=*=*_cp313' needs cp313 (GIL); 'python-freethreading' needs cp313t "
        "(free-threaded). One environment holds one interpreter ABI: ask for one of them."]


GUIDE_BEGIN = "<!-- mixing-matrix: begin (written by tests/integration/test_mixing.py) -->"
GUIDE_END = "<!-- mixing-matrix: end -->"


def test_zz_the_user_guide_table_is_the_measured_one():
    """Runs last in this module (name order within the file is definition order, and
    this is defined last): the guide's table is the one measured above."""
    assert len(CASES) > 150, len(CASES)
    assert [c for c in CASES if c.failure] == []
    table = "\n".join(_summary())
    text = GUIDE.read_text()
    head, _, rest = text.partition(GUIDE_BEGIN)
    _, _, tail = rest.partition(GUIDE_END)
    block = f"{GUIDE_BEGIN}\n{table}\n{GUIDE_END}"
    assert GUIDE_BEGIN in text and GUIDE_END in text, f"{GUIDE}: no mixing-matrix markers"
    if os.environ.get("FTFORGE_UPDATE_DOCS") == "1":
        GUIDE.write_text(head + block + tail)
        return
    assert GUIDE_BEGIN in text and GUIDE_END in text, f"{GUIDE}: no mixing-matrix markers"
    current = rest.partition(GUIDE_END)[0].strip()
    assert current == table, (
        f"{GUIDE}: the mixing table differs from the measured one; rerun with "
        "FTFORGE_UPDATE_DOCS=1 to rewrite it")
