"""Recipes from real PyPI sdists: generated, built for cp313t and cp313, installed, imported.

Uses the interpreter channel from conftest. Sdists are cached under
~/.cache/ftforge/sources and builds under ~/.cache/ftforge/builds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conda_package_streaming.package_streaming import stream_conda_component

from ftforge.build.driver import BuildRequest, build, build_in_order
from ftforge.errors import BuildFailedError
from ftforge.recipes import files as recipe_files
from ftforge.recipes.from_pypi import closure_from_pypi
from ftforge.variants import PythonVariant

from .conftest import CBC, ftforge, run_python, write_pypi_recipe

pytestmark = pytest.mark.integration

FT = PythonVariant.ft("3.13")
GIL = PythonVariant.gil("3.13")


def _index(pkg: Path) -> tuple[dict, list[str]]:
    names, index = [], {}
    for component in ("info", "pkg"):
        with open(pkg, "rb") as handle:
            for tar, member in stream_conda_component(pkg.name, handle, component):
                names.append(member.name)
                if member.name == "info/index.json":
                    index = json.load(tar.extractfile(member))
    return index, names


@pytest.mark.parametrize("name,version", [("msgpack-python", "1.2.4"), ("markupsafe", "3.0.3"),
                                          ("psutil", "7.2.2"), ("pyyaml", "6.0.3")])
def test_extension_package_is_built_for_the_free_threaded_abi(pypi_out, name, version):
    pkgs = sorted((pypi_out / "linux-64").glob(f"{name}-{version}-*.conda"))
    ft = [p for p in pkgs if p.name.split("-")[-1].startswith(FT.extension_build_prefix + "h")]
    gil = [p for p in pkgs if p.name.split("-")[-1].startswith(GIL.extension_build_prefix + "h")]
    assert len(ft) == 1 and len(gil) == 1, pkgs
    index, files = _index(ft[0])
    assert index["build"].startswith("py313th")
    assert FT.python_abi_spec in index["depends"]
    assert [d for d in index["depends"] if d.startswith("python_abi")] == [FT.python_abi_spec]
    assert any(f.endswith(FT.extension_suffix()) for f in files), files
    assert not any(f.endswith(".abi3.so") for f in files)
    assert all(f.startswith(("info/", FT.site_packages, "etc/conda/test-files/")) for f in files)
    gil_index, gil_files = _index(gil[0])
    assert GIL.python_abi_spec in gil_index["depends"]
    assert any(f.endswith((GIL.extension_suffix(), GIL.stable_abi_suffix)) for f in gil_files)


@pytest.fixture(scope="session")
def pypi_ft_env(tmp_path_factory, channel, pypi_out) -> Path:
    prefix = tmp_path_factory.mktemp("envs") / "pypi-ft"
    ftforge("create", "--prefix", str(prefix), "--channel", str(channel), "--channel",
            str(pypi_out), "python-freethreading", "requests", "msgpack-python", "markupsafe",
            "psutil", "pyyaml")
    return prefix


def test_installed_packages_import_with_the_gil_disabled(pypi_ft_env):
    out = run_python(pypi_ft_env, "import sys, msgpack, markupsafe, requests, charset_normalizer;"
                     "from msgpack import _cmsgpack; from markupsafe import _speedups;"
                     "import psutil; assert psutil.cpu_count() >= 1;"
                     "import yaml; assert yaml.__with_libyaml__;"
                     "assert yaml.load('a: [1]', Loader=yaml.CSafeLoader) == {'a': [1]};"
                     "assert msgpack.unpackb(msgpack.packb({'a': 1})) == {'a': 1};"
                     "print(sys._is_gil_enabled(), requests.__file__)")
    gil, path = out.stdout.split()
    assert gil == "False"
    assert path == str(pypi_ft_env / FT.site_packages / "requests" / "__init__.py")


def test_requests_dependencies_come_from_generated_noarch_packages(pypi_ft_env, pypi_out):
    meta = {p.name.rsplit("-", 2)[0]: json.loads(p.read_text())
            for p in (pypi_ft_env / "conda-meta").glob("*.json")}
    for dep in ("requests", "urllib3", "idna", "certifi", "charset-normalizer"):
        assert dep in meta, sorted(meta)
        assert str(pypi_out) in meta[dep]["channel"] or meta[dep]["channel"].endswith(pypi_out.name + "/")
    assert meta["requests"]["noarch"] == "python" or meta["requests"].get("subdir") == "noarch"


def test_an_extension_without_py_mod_gil_fails_the_build_naming_the_module(tmp_path, channel,
                                                                          pypi_out):
    """msgpack 1.1.1's Cython module declares Py_MOD_GIL_USED (no free-threading support)."""
    recipe = write_pypi_recipe(tmp_path / "recipes", "msgpack==1.1.1")
    with pytest.raises(BuildFailedError) as info:
        build(BuildRequest(recipe, tmp_path / "out", variant_files=CBC,
                           overrides=(("python", FT.python_spec),),
                           channels=(str(channel), str(pypi_out))))
    assert "the GIL was re-enabled by msgpack._cmsgpack" in str(info.value)
    assert not list((tmp_path / "out").glob("*/msgpack-python-*.conda"))


def test_gil_reenabled_ok_lets_the_build_through_and_says_why(tmp_path, channel, pypi_out):
    recipe = write_pypi_recipe(tmp_path / "recipes", "msgpack==1.1.1",
                    gil_reenabled_ok="1.1.1's Cython module predates free-threading support")
    outcome = build(BuildRequest(recipe, tmp_path / "out", variant_files=CBC,
                                 overrides=(("python", FT.python_spec),),
                                 channels=(str(channel), str(pypi_out))))
    assert [p.name.split("-")[-1][:7] for p in outcome.packages] == ["py313th"]
    assert "gil_reenabled_ok" in (recipe / "recipe.yaml").read_text()


def test_bad_pypi_input_leaves_no_recipe_behind(tmp_path):
    for spec, message in [("ftforge-no-such-project-zz", "is not a project on PyPI"),
                          ("msgpack==0.0.77", "has no release 0.0.77")]:
        result = ftforge("recipe", "pypi", spec, "--output-dir", str(tmp_path), check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_abi3_package_keeps_abi3_for_gil_and_is_version_specific_for_ft(pypi_out):
    """psutil builds the stable ABI: conda-forge skips such packages for free-threading."""
    pkgs = list((pypi_out / "linux-64").glob("psutil-7.2.2-*.conda"))
    ft_pkg = next(p for p in pkgs if p.name.endswith(".conda") and "-py313th" in p.name)
    gil_pkg = next(p for p in pkgs if "-py313h" in p.name)
    _, gil_files = _index(gil_pkg)
    _, ft_files = _index(ft_pkg)
    gil_so = [f for f in gil_files if f.endswith(".so")]
    ft_so = [f for f in ft_files if f.endswith(".so")]
    assert gil_so == [f"{GIL.site_packages}/psutil/_psutil_linux{GIL.stable_abi_suffix}"]
    assert ft_so == [f"{FT.site_packages}/psutil/_psutil_linux{FT.extension_suffix()}"]
    assert FT.stable_abi_suffix is None  # 3.13t has no stable ABI


def test_cython_compiles_itself_only_for_the_gil_abi(pypi_out):
    """Cython's setup.py skips compiling Cython on free-threaded interpreters by design;
    the free-threaded build is still its own py313t package, tied to cp313t."""
    pkgs = list((pypi_out / "linux-64").glob("cython-3.3.1-*.conda"))
    ft_index, ft_files = _index(next(p for p in pkgs if "-py313th" in p.name))
    _, gil_files = _index(next(p for p in pkgs if "-py313h" in p.name))
    assert any(f.endswith(GIL.extension_suffix()) for f in gil_files)
    assert not any(f.endswith(".so") for f in ft_files)
    assert FT.python_abi_spec in ft_index["depends"]


@pytest.fixture(scope="session")
def numpy_out(tmp_path_factory, channel, pypi_out) -> Path:
    """numpy (meson-python, vendored meson, Cython), its closure, cp313t only (~6 min cold)."""
    root = tmp_path_factory.mktemp("numpy-recipes")
    out = tmp_path_factory.mktemp("numpy-out")
    requests = []
    for plan, files in closure_from_pypi("numpy==2.5.5"):
        recipe_files.write_files(root / plan.conda_name, files)
        only_ft = (("python", FT.python_spec),) if plan.conda_name == "numpy" else ()
        requests.append(BuildRequest(root / plan.conda_name, out, only_ft, CBC,
                                     channels=(str(channel), str(pypi_out))))
    build_in_order(requests)
    return out


def test_meson_python_package_numpy(tmp_path_factory, channel, pypi_out, numpy_out):
    pkg = next((numpy_out / "linux-64").glob("numpy-2.5.5-py313th*.conda"))
    index, files = _index(pkg)
    assert FT.python_abi_spec in index["depends"]
    assert any(f.endswith(f"_multiarray_umath{FT.extension_suffix()}") for f in files)
    prefix = tmp_path_factory.mktemp("envs") / "numpy-ft"
    ftforge("create", "--prefix", str(prefix), "-c", str(channel), "-c", str(numpy_out),
            "-c", str(pypi_out), "python-freethreading", "numpy")
    out = run_python(prefix, "import sys, numpy as np; a = np.arange(10**6, dtype=np.int64);"
                     "print(int(a.sum()), sys._is_gil_enabled())")
    assert out.stdout.split() == [str(10**6 * (10**6 - 1) // 2), "False"]


def test_dynamic_build_requirements_are_asked_from_the_backend():
    """frozenlist's in-tree backend adds Cython only from get_requires_for_build_wheel."""
    from ruamel.yaml import YAML

    from ftforge.recipes.from_pypi import recipe_from_pypi

    name, files = recipe_from_pypi("frozenlist==1.8.0")
    recipe = YAML(typ="safe").load(files["recipe.yaml"])
    host = [str(h).split()[0] for h in recipe["requirements"]["host"]]
    assert "cython" in host and "expandvars" in host
    assert "get_requires_for_build_wheel" in files["recipe.yaml"]


def test_a_silent_pure_python_fallback_fails_the_build_and_names_the_cause(tmp_path, channel):
    """Issue 15 fault 1: the C extension cannot compile (snappy-c.h is not installed), the
    sdist's setup.py builds pure Python anyway; the recipe test refuses the package and
    the error says why, with the conda package to add."""
    from ..fixtures.sdists import write_fallback_sdist

    sdist = write_fallback_sdist(tmp_path / "sdists")
    dirs = []
    for plan, files in closure_from_pypi(str(sdist)):
        recipe_files.write_files(tmp_path / "recipes" / plan.conda_name, files)
        dirs.append(tmp_path / "recipes" / plan.conda_name)
    with pytest.raises(BuildFailedError) as info:
        build_in_order([BuildRequest(d, tmp_path / "out", variant_files=CBC,
                                     overrides=(("python", FT.python_spec),)
                                     if d.name == "pyfallback" else (),
                                     channels=(str(channel),)) for d in dirs])
    message = info.value.message
    assert "the build declares extension modules but the package ships none" in message
    assert "snappy-c.h" in message and "\n" not in message
    assert "`snappy`" in info.value.hint and "--apt libsnappy-dev" in info.value.hint
    assert not list((tmp_path / "out").glob("*/pyfallback-*.conda"))
