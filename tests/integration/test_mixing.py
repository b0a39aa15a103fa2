"""No accidental variant mixing, proven by real solves and installs.

Two channels built from this project's own recipes:

- **base** (stand-in for conda-forge): the GIL interpreter (python 3.13.5
  ``_cp313``), ``python_abi`` cp313, ``python-gil``, the GIL builds of the
  PyPI extension packages, and every noarch package;
- **ft**: the free-threaded interpreter (``_cp313t``), ``python_abi`` cp313t,
  ``python-freethreading``, the free-threaded builds (pyyaml left out: it is
  the package with only GIL builds), and a *newer* free-threaded interpreter,
  python 3.13.6: the real 3.13.5 cp313t package repacked with its
  ``index.json`` version raised (the same files, so it installs and runs;
  ``ftforge.channel.synthetic.repack``) — the real risk of a newer FT python.

"flexible" priority is rattler's ``ChannelPriority.Disabled`` (rattler has
strict and disabled; conda's flexible sits between them).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ftforge.channel.audit import PackageRefused, audit_package
from ftforge.channel.check import check_channels
from ftforge.channel.publish import publish
from ftforge.channel.synthetic import SyntheticPackage, repack, write_package
from ftforge.environments import create, install_into, installed_packages, solve
from ftforge.errors import SolveError
from ftforge.explain import explain
from ftforge.variants import PythonVariant, variant_of_package

from .conftest import run_python

pytestmark = pytest.mark.integration

FT = PythonVariant.ft("3.13")
GIL = PythonVariant.gil("3.13")
PRIORITIES = {"flexible": "disabled", "strict": "strict"}
MATRIX: list[tuple[str, str, str, str]] = []


@pytest.fixture(scope="module", autouse=True)
def print_matrix():
    yield
    if MATRIX:
        width = max(len(r[0]) for r in MATRIX)
        print("\n\nscenario matrix (scenario x priority x order -> chosen python build)")
        for scenario, priority, order, outcome in MATRIX:
            print(f"  {scenario:<{width}}  {priority:<8}  {order:<9}  {outcome}")


def _abi_of(pkg: Path) -> PythonVariant | None:
    record = audit_package(pkg).record
    return variant_of_package(record.depends, record.build)


@pytest.fixture(scope="module")
def channels(tmp_path_factory, interpreter_packages, pypi_out):
    root = tmp_path_factory.mktemp("mixing")
    base, ft = [], []
    packages = list(interpreter_packages) + sorted(pypi_out.glob("*/*.conda"))
    for pkg in packages:
        abi = _abi_of(pkg)
        if abi is None:
            base.append(pkg)  # noarch: python packages live in the base channel
        elif abi.freethreaded:
            if not pkg.name.startswith("pyyaml-"):
                ft.append(pkg)
        else:
            base.append(pkg)
    ft_python = next(p for p in ft if re.match(r"python-3\.13\.5-.*_cp313t\.conda$", p.name))
    newer = repack(ft_python, root / "newer", version="3.13.6")
    ft.append(newer)
    publish(base, root / "base")
    publish(ft, root / "ft")
    return {"base": str(root / "base"), "ft": str(root / "ft")}


def _order(channels, order: str) -> list[str]:
    return [channels[name] for name in order.split("+")]


def _python(solved) -> tuple[str, str]:
    python = next(p for p in solved if p.name == "python")
    return python.version, python.build


def _gil_enabled(prefix: Path) -> str:
    return run_python(prefix, "import sys; print(sys._is_gil_enabled())").stdout.strip()


@pytest.mark.parametrize("priority,order,expected", [
    ("flexible", "base+ft", "3.13.5 _cp313"),
    ("flexible", "ft+base", "3.13.5 _cp313"),
    ("strict", "base+ft", "3.13.5 _cp313"),
    # the documented opt-in: the ft channel first under strict priority
    ("strict", "ft+base", "3.13.6 _cp313t"),
])
def test_python_from_both_channels(channels, tmp_path, priority, order, expected):
    prefix = tmp_path / "env"
    solved = create(prefix, _order(channels, order), ["python"], priority=PRIORITIES[priority])
    version, build = _python(solved)
    MATRIX.append(("install python (ft has 3.13.6)", priority, order, f"{version} {build}"))
    want_version, want_tag = expected.split()
    assert version == want_version and build.endswith(want_tag), (version, build)
    assert _gil_enabled(prefix) == ("False" if want_tag.endswith("t") else "True")


@pytest.mark.parametrize("spec", ["python-freethreading", "python_abi=*=*_cp313t",
                                  "python=3.13=*_cp313t"])
@pytest.mark.parametrize("priority,order", [("flexible", "base+ft"), ("flexible", "ft+base"),
                                            ("strict", "ft+base")])
def test_asking_for_free_threading_gives_only_py313t_builds(channels, tmp_path, spec,
                                                            priority, order):
    prefix = tmp_path / "env"
    solved = create(prefix, _order(channels, order), [spec, "msgpack-python", "markupsafe"],
                    priority=PRIORITIES[priority])
    version, build = _python(solved)
    MATRIX.append((f"install {spec} msgpack markupsafe", priority, order, f"{version} {build}"))
    assert build.endswith("_cp313t")
    for pkg in solved:
        if pkg.name in ("msgpack-python", "markupsafe"):
            assert pkg.build.startswith(FT.extension_build_prefix + "h"), pkg
    assert _gil_enabled(prefix) == "False"
    run_python(prefix, "import msgpack, markupsafe, sys; assert not sys._is_gil_enabled()")


def test_strict_base_first_cannot_give_free_threading(channels):
    """Strict priority with base first hides ft's python_abi: stated, and explained."""
    with pytest.raises(SolveError):
        solve(_order(channels, "base+ft"), ["python-freethreading"], priority="strict")
    MATRIX.append(("install python-freethreading", "strict", "base+ft", "unsolvable"))


@pytest.fixture(scope="module")
def gil_env(channels, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("gil") / "env"
    create(prefix, [channels["base"]], ["python"])
    return prefix


@pytest.fixture(scope="module")
def ft_env(channels, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("ft") / "env"
    create(prefix, [channels["ft"], channels["base"]], ["python-freethreading"],
           priority="disabled")
    return prefix


def test_install_from_ft_into_a_gil_env_refuses_and_explains(channels, gil_env):
    before = installed_packages(gil_env)["python"]["build"]
    with pytest.raises(SolveError) as err:
        install_into(gil_env, [channels["ft"]], ["msgpack-python"])
    assert str(err.value.message) == (
        "msgpack-python 1.2.4 in channel ft is built for cp313t (free-threaded); this "
        "environment has python 3.13.5 cp313 (GIL). Install python-freethreading into a "
        "new environment, or use the base channel's build.")
    assert "python_abi 3.13.* *_cp313" in err.value.hint
    assert installed_packages(gil_env)["python"]["build"] == before
    MATRIX.append(("GIL env: install -c ft msgpack (pinned)", "strict", "ft", "refused, explained"))


def test_install_with_both_channels_into_a_gil_env_takes_the_gil_build(channels, gil_env):
    result = install_into(gil_env, [channels["ft"], channels["base"]], ["msgpack-python"],
                          priority="disabled")
    assert result.before == result.after and result.after[1].endswith("_cp313")
    msgpack = next(p for p in result.packages if p.name == "msgpack-python")
    assert msgpack.build.startswith(GIL.extension_build_prefix + "h")
    MATRIX.append(("GIL env: install msgpack (pinned)", "flexible", "ft+base",
                   " ".join(result.after)))
    run_python(gil_env, "import msgpack")


@pytest.mark.parametrize("priority,order,expected", [
    ("flexible", "ft+base", "3.13.5 h678468c_0_cp313"),
    ("flexible", "base+ft", "3.13.5 h678468c_0_cp313"),
    # the danger ftforge's pin removes: strict priority with ft first switches python
    ("strict", "ft+base", "3.13.6 h7d65154_0_cp313t"),
    ("strict", "base+ft", "3.13.5 h678468c_0_cp313"),
])
def test_plain_solve_without_the_pin_is_recorded(channels, gil_env, priority, order, expected):
    """What a client without ftforge's pin does when it re-solves the environment's
    package names plus msgpack-python (what `conda install` does, minus the pin)."""
    names = sorted(installed_packages(gil_env))
    try:
        solved = solve(_order(channels, order), [*names, "msgpack-python"],
                       priority=PRIORITIES[priority])
        version, build = _python(solved)
        outcome = f"{version} {build}"
    except SolveError:
        outcome = "unsolvable"
    MATRIX.append(("GIL env + msgpack, plain solve (no pin)", priority, order, outcome))
    assert outcome == expected


def test_ft_env_and_a_gil_only_package_is_unsatisfiable_naming_the_abi(channels, ft_env):
    with pytest.raises(SolveError) as err:
        install_into(ft_env, [channels["ft"], channels["base"]], ["pyyaml"],
                     priority="disabled")
    assert err.value.message == (
        "pyyaml 6.0.3 in channel base is built for cp313 (GIL); this environment has python "
        "3.13.5 cp313t (free-threaded). Install python-gil into a new environment, or build a "
        "free-threaded one (`ftforge recipe pypi pyyaml` then `ftforge build`).")
    assert installed_packages(ft_env)["python"]["build"].endswith("_cp313t")
    MATRIX.append(("FT env: install GIL-only pyyaml", "flexible", "ft+base", "refused, explained"))


def test_noarch_package_into_the_ft_env(channels, ft_env):
    install_into(ft_env, [channels["ft"], channels["base"]], ["idna"], priority="disabled")
    assert (ft_env / FT.site_packages / "idna" / "__init__.py").is_file()
    assert not (ft_env / GIL.site_packages / "idna").exists()
    out = run_python(ft_env, "import idna, sys; print(idna.__file__, sys._is_gil_enabled())")
    assert "python3.13t/site-packages/idna" in out.stdout and out.stdout.strip().endswith("False")


@pytest.mark.parametrize("env_kind", ["gil", "ft"])
def test_update_all_keeps_the_abi(channels, env_kind, tmp_path):
    prefix = tmp_path / "env"
    spec = "python" if env_kind == "gil" else "python-freethreading"
    create(prefix, [channels["ft"], channels["base"]], [spec], priority="disabled")
    result = install_into(prefix, [channels["ft"], channels["base"]], [], update_all=True,
                          priority="disabled")
    tag = "_cp313t" if env_kind == "ft" else "_cp313"
    assert result.before[1].endswith(tag) and result.after[1].endswith(tag), result
    MATRIX.append((f"{env_kind} env: install --update-all", "flexible", "ft+base",
                   " ".join(result.after)))
    assert _gil_enabled(prefix) == ("False" if env_kind == "ft" else "True")


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
    count, violations = check_channels([Path(channels["base"]), Path(channels["ft"])])
    assert count > 20 and violations == []


def test_explain_for_conflicting_requests(channels):
    lines = explain(["python-freethreading", "python_abi=*=*_cp313"],
                    [channels["ft"], channels["base"]])
    assert lines == [
        "'python_abi=*=*_cp313' needs cp313 (GIL); 'python-freethreading' needs cp313t "
        "(free-threaded). One environment holds one interpreter ABI: ask for one of them."]
