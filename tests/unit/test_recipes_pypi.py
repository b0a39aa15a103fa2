"""The PyPI recipe generator: sdist facts -> recipe text (golden files), pure."""

import io
import os
import tarfile
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ftforge.build.driver import render
from ftforge.build.variant_config import VariantMatrix
from ftforge.recipes import pypi as gen
from ftforge.recipes.pypi import UnmappedDependencies, UnsupportedBuild, conda_requirements
from ftforge.recipes.sdist import SdistError, inspect_sdist

GOLDEN = Path(__file__).parent / "golden"
PKG_INFO = """Metadata-Version: 2.4
Name: {name}
Version: 1.0
Summary: A {name} for tests
License-Expression: MIT
Requires-Python: >=3.9
{extra}"""


def make_sdist(tmp_path, name, files, extra=""):
    path = tmp_path / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        content = {"PKG-INFO": PKG_INFO.format(name=name, extra=extra), **files}
        for rel, text in content.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


SETUPTOOLS_EXT = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools>=70", "Cython>=3.1"]\n'
                      'build-backend = "setuptools.build_meta"\n',
    "setup.py": "from setuptools import Extension, setup\n"
                "setup(ext_modules=[Extension('fastthing._speed', ['fastthing/_speed.c'])])\n",
    "fastthing/__init__.py": "",
    "fastthing/_speed.c": "/* c */",
}
PURE = {
    "pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
    "src/purething/__init__.py": "",
    "tests/test_x.py": "",
}


def recipe_for(tmp_path, name, files, extra="", **kwargs):
    facts = inspect_sdist(make_sdist(tmp_path, name, files, extra))
    return gen.PypiRecipe(facts, f"https://pypi.org/packages/source/{name[0]}/{name}/{name}-1.0.tar.gz",
                          "a" * 64, **kwargs)


def test_inspect_compiled_setuptools_cython(tmp_path):
    facts = inspect_sdist(make_sdist(tmp_path, "fastthing", SETUPTOOLS_EXT))
    assert facts.backend == "setuptools" and facts.compiled and facts.uses_cython
    assert facts.top_level == ("fastthing",)
    assert not facts.limited_api


def test_inspect_pure_hatchling_src_layout(tmp_path):
    facts = inspect_sdist(make_sdist(tmp_path, "purething", PURE))
    assert facts.backend == "hatchling" and not facts.compiled
    assert facts.top_level == ("purething",)


def test_inspect_limited_api_and_meson(tmp_path):
    files = {"pyproject.toml": '[build-system]\nrequires = ["meson-python"]\n'
                               'build-backend = "mesonpy"\n', "meson.build": "",
             "stable/__init__.py": "", "stable/_x.c": "#define Py_LIMITED_API 0x030a0000"}
    facts = inspect_sdist(make_sdist(tmp_path, "stable", files))
    assert facts.backend == "meson-python" and facts.compiled


def test_unknown_backend_is_named(tmp_path):
    files = {"pyproject.toml": '[build-system]\nbuild-backend = "exotic.api"\n'}
    with pytest.raises(SdistError, match="exotic.api"):
        inspect_sdist(make_sdist(tmp_path, "odd", files))


def test_corrupt_sdist(tmp_path):
    bad = tmp_path / "bad-1.0.tar.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(SdistError, match="not a readable sdist"):
        inspect_sdist(bad)


@pytest.mark.parametrize("name,files,extra", [
    ("fastthing", SETUPTOOLS_EXT, "Requires-Dist: numpy>=2\nRequires-Dist: tomli; python_version<'3.11'\n"),
    ("purething", PURE, "Requires-Dist: requests~=2.31\nRequires-Dist: pysocks; extra == 'socks'\n"),
])
def test_golden_recipes(tmp_path, name, files, extra):
    recipe = recipe_for(tmp_path, name, files, extra)
    produced = gen.generate(recipe)["recipe.yaml"]
    meta = gen.generate_meta_yaml(recipe)
    for suffix, text in ((".recipe.yaml", produced), (".meta.yaml", meta)):
        golden = GOLDEN / f"{name}{suffix}"
        if os.environ.get("FTFORGE_UPDATE_GOLDEN"):  # review the diff, then commit
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(text)
        assert golden.is_file(), f"{golden} missing: run with FTFORGE_UPDATE_GOLDEN=1"
        assert text == golden.read_text()


def test_compiled_recipe_renders_one_build_per_abi(tmp_path, repo):
    recipe = recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT, "Requires-Dist: numpy>=2\n")
    files = gen.generate(recipe)
    (tmp_path / "r").mkdir()
    for fname, text in files.items():
        (tmp_path / "r" / fname).write_text(text)
    matrix = VariantMatrix({"python": ["3.13.* *_cp313", "3.13.* *_cp313t"],
                            "is_freethreading": ["false", "true"], "python_min": ["3.10"]},
                           [["python", "is_freethreading"]])
    rendered = render(tmp_path / "r" / "recipe.yaml", matrix)
    builds = sorted(v.recipe.build.string for v in rendered)
    assert builds[0].startswith("py313h") and builds[1].startswith("py313th"), builds
    ft = next(v for v in rendered if v.recipe.build.string.startswith("py313t"))
    data = ft.recipe.to_dict()
    assert data["requirements"]["run"] == ["python", "numpy >=2"]
    assert any("ftforge_gil_check.py --require-extensions --declared fastthing._speed fastthing"
               in str(t) for t in data["tests"])
    gil = next(v for v in rendered if not v.recipe.build.string.startswith("py313t"))
    assert not any("ftforge_gil_check" in str(t) for t in gil.recipe.to_dict()["tests"])


def test_pure_recipe_is_noarch_python(tmp_path):
    recipe = recipe_for(tmp_path, "purething", PURE, "Requires-Dist: requests>=2\n")
    data = YAML(typ="safe").load(gen.generate(recipe)["recipe.yaml"])
    assert data["build"]["noarch"] == "python"
    assert data["requirements"]["run"] == ["python >=${{ python_min }}", "requests >=2"]
    assert data["requirements"]["host"] == ["python", "pip", "hatchling"]


def test_markers_and_extras():
    reqs = conda_requirements(("tomli; python_version<'3.11'", "idna>=2.5,<4",
                               "pysocks>=1.5; extra == 'socks'", "six; sys_platform == 'win32'"),
                              names={}, package="demo")
    assert reqs == ["idna >=2.5,<4"]


def test_unknown_dependency_is_refused_in_strict_mode_and_mapped_with_map():
    with pytest.raises(UnmappedDependencies, match="no known conda name for frobnicate"):
        conda_requirements(("frobnicate>=1",), names={}, package="demo", strict=True)
    assert conda_requirements(("frobnicate>=1",), names={"frobnicate": "frob"},
                              package="demo", strict=True) == ["frob >=1"]


def test_compatible_release_is_expanded():
    assert conda_requirements(("requests~=2.31",), names={}, package="d") == ["requests >=2.31,<3"]


def test_maturin_is_reported_as_needing_rust(tmp_path):
    files = {"pyproject.toml": '[build-system]\nrequires = ["maturin>=1"]\nbuild-backend = "maturin"\n'}
    with pytest.raises(UnsupportedBuild, match="Rust toolchain"):
        gen.generate(recipe_for(tmp_path, "rusty", files))


def test_gil_reenabled_ok_is_declared_and_passed(tmp_path):
    recipe = recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT,
                        gil_reenabled_ok="upstream issue #12: module is not thread-safe yet")
    text = gen.generate(recipe)["recipe.yaml"]
    assert "--allow-gil --require-extensions --declared fastthing._speed fastthing" in text
    assert 'gil_reenabled_ok: "upstream issue #12' in text


def test_meta_yaml_in_closure_mode_names_unknown_dependencies_like_recipe_yaml(tmp_path):
    recipe = recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT, "Requires-Dist: frobnicate>=1\n")
    assert "- frobnicate >=1  # assumed conda name" in gen.generate(recipe)["recipe.yaml"]
    files = gen.generate_meta(recipe)
    assert "- frobnicate >=1  # assumed conda name" in files["meta.yaml"]
    assert set(files) == {"meta.yaml", "ftforge_gil_check.py"}


# --- issue 15: recipes that don't lie -------------------------------------------------

# ruamel.yaml.clib's layout: the sdist root is the package, the extension is a
# private top-level module named only in top_level.txt and setup.py.
RUAMEL_LIKE = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
                      'build-backend = "setuptools.build_meta"\n',
    "setup.py": "from setuptools import Extension, setup\n"
                "setup(ext_modules=[Extension('_ruamel_yaml', ['_ruamel_yaml.c', 'api.c'])])\n",
    "__init__.py": "",
    "_ruamel_yaml.c": "/* c */",
    "api.c": "/* c */",
    "ruamel.yaml.clib.egg-info/top_level.txt": "_ruamel_yaml\nruamel\n",
}


def _gil_check_line(text: str) -> str:
    return next(line for line in text.splitlines() if "python ftforge_gil_check.py" in line)


def test_modules_come_from_the_sdists_metadata_not_the_distribution_name(tmp_path):
    """Fault 2: the import test and GIL check named `ruamel`, not the extension."""
    recipe = recipe_for(tmp_path, "ruamel.yaml.clib", RUAMEL_LIKE)
    assert recipe.facts.top_level == ("_ruamel_yaml", "ruamel")
    assert recipe.facts.extension_modules == ("_ruamel_yaml",)
    text = gen.generate(recipe)["recipe.yaml"]
    data = YAML(typ="safe").load(text)
    assert "_ruamel_yaml" in data["tests"][0]["python"]["imports"]
    assert _gil_check_line(text).split()[-2:] == ["_ruamel_yaml", "ruamel"]
    assert "--declared _ruamel_yaml" in _gil_check_line(text)


def test_declared_extension_modules_must_ship(tmp_path):
    """Fault 1: a build that fell back to pure Python passed the GIL check."""
    text = gen.generate(recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT))["recipe.yaml"]
    assert "--require-extensions" in _gil_check_line(text)
    assert "pure_build_ok" not in text


def test_cython_is_the_recorded_exception_to_must_ship(tmp_path):
    recipe = recipe_for(tmp_path, "Cython", SETUPTOOLS_EXT)
    text = gen.generate(recipe)["recipe.yaml"]
    assert "--require-extensions" not in _gil_check_line(text)
    assert 'pure_build_ok: "Cython' in text
    assert "# May ship no extension module: Cython" in text
    meta = gen.generate_meta_yaml(recipe)
    assert "--require-extensions" not in meta
    own = gen.generate(recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT,
                                  pure_build_ok="speedups are optional upstream"))["recipe.yaml"]
    assert 'pure_build_ok: "speedups are optional upstream"' in own
    assert "--require-extensions" not in _gil_check_line(own)


def _fake_free_threaded_python(tmp_path: Path) -> Path:
    """A sitecustomize that makes this (GIL) interpreter look free-threaded to the script."""
    site = tmp_path / "fake-ft"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys, sysconfig\n"
        "_real = sysconfig.get_config_var\n"
        "sysconfig.get_config_var = lambda k: 1 if k == 'Py_GIL_DISABLED' else (\n"
        "    '.cpython-313t-x86_64-linux-gnu.so' if k == 'EXT_SUFFIX' else _real(k))\n"
        "sys._is_gil_enabled = lambda: False\n")
    return site


def test_gil_check_fails_a_package_that_ships_no_declared_extension(tmp_path):
    import subprocess
    import sys

    from ftforge.recipes import gil_check

    script = tmp_path / gil_check.FILE_NAME
    script.write_text(gil_check.SCRIPT)
    (tmp_path / "pkgs" / "fastthing").mkdir(parents=True)
    (tmp_path / "pkgs" / "fastthing" / "__init__.py").write_text("")  # the pure fallback
    fake = _fake_free_threaded_python(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{fake}:{tmp_path / 'pkgs'}"}
    run = lambda *args: subprocess.run([sys.executable, str(script), *args], env=env,  # noqa: E731
                                       capture_output=True, text=True, cwd=tmp_path)
    failed = run("--require-extensions", "--declared", "fastthing._speed", "fastthing")
    assert failed.returncode != 0
    assert "ships none (fastthing._speed)" in failed.stderr
    assert "declared but not shipped: fastthing._speed" in failed.stdout
    allowed = run("--declared", "fastthing._speed", "fastthing")  # pure_build_ok
    assert allowed.returncode == 0, allowed.stderr


def test_unknown_names_default_to_the_pypi_name_marked_assumed(tmp_path):
    """Fault 5: `recipe pypi attrs` stopped at hatch-fancy-pypi-readme."""
    files = {"pyproject.toml": '[build-system]\nrequires = ["hatchling", "hatch-vcs", '
                               '"hatch-fancy-pypi-readme>=23.2.0"]\n'
                               'build-backend = "hatchling.build"\n',
             "src/attrs/__init__.py": ""}
    recipe = recipe_for(tmp_path, "attrs", files, "Requires-Dist: Frob_Nicate>=1\n")
    text = gen.generate(recipe)["recipe.yaml"]
    assert "- hatch-fancy-pypi-readme >=23.2.0  # assumed conda name" in text
    assert "- frob-nicate >=1  # assumed conda name" in text
    assert "- hatch-vcs\n" in text  # a known name carries no mark
    assert ("# Assumed conda names (not in ftforge's table; conda-forge usually keeps the PyPI "
            "name): frob-nicate, hatch-fancy-pypi-readme.") in text
    assert YAML(typ="safe").load(text)["requirements"]["host"][-1] == \
        "hatch-fancy-pypi-readme >=23.2.0"
    strict = recipe_for(tmp_path, "attrs", files, strict_names=True)
    with pytest.raises(UnmappedDependencies, match="build requirement hatch-fancy-pypi-readme"):
        gen.generate(strict)


def test_c_only_packages_get_only_a_c_compiler(tmp_path):
    """Fault 6: every compiled recipe asked for a C++ compiler."""
    c_only = gen.generate(recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT))["recipe.yaml"]
    build = YAML(typ="safe").load(c_only)["requirements"]["build"]
    assert build == ["${{ compiler('c') }}"]
    cxx_files = {**SETUPTOOLS_EXT, "fastthing/_speed.cpp": "// c++"}
    cxx = YAML(typ="safe").load(gen.generate(recipe_for(tmp_path, "fastthing", cxx_files))
                                ["recipe.yaml"])["requirements"]["build"]
    assert cxx == ["${{ compiler('c') }}", "${{ compiler('cxx') }}"]
    meson_cpp = {"pyproject.toml": '[build-system]\nrequires = ["meson-python"]\n'
                                   'build-backend = "mesonpy"\n',
                 "meson.build": "project('m', 'c', 'cpp')\npy.extension_module('_m', 'm.c')\n",
                 "m/__init__.py": "", "m.c": ""}
    facts = inspect_sdist(make_sdist(tmp_path, "m", meson_cpp))
    assert facts.cxx and facts.extension_modules == ("_m",)
    meta = gen.generate_meta_yaml(recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT))
    assert "compiler('cxx')" not in meta and "{{ compiler('c') }}" in meta


def test_in_tree_wrapper_header_does_not_say_backend_twice(tmp_path):
    files = {"pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
                               'build-backend = "backend"\nbackend-path = ["_build"]\n',
             "wrapped/__init__.py": ""}
    text = gen.generate(recipe_for(tmp_path, "wrapped", files))["recipe.yaml"]
    assert "backend backend" not in text
    assert "# Build backend: setuptools (through the sdist's own wrapper module `backend`)." in text


def test_local_sdist_recipe_points_at_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FTFORGE_SOURCE_MIRROR", str(tmp_path / "mirror"))
    from ftforge.build.mirror import sha256_of
    from ftforge.recipes.from_pypi import recipe_from_pypi

    sdist = make_sdist(tmp_path, "purething", PURE)
    name, files = recipe_from_pypi(str(sdist))
    source = YAML(typ="safe").load(files["recipe.yaml"])["source"]
    assert name == "purething"
    assert source == {"url": sdist.resolve().as_uri(), "sha256": sha256_of(sdist)}
    assert sha256_of(tmp_path / "mirror" / sdist.name) == sha256_of(sdist)  # kept for builds


def test_local_sdist_errors_name_the_path(tmp_path):
    from ftforge.recipes.from_pypi import recipe_from_pypi

    with pytest.raises(SdistError, match="no-such-1.0.tar.gz: no such sdist file"):
        recipe_from_pypi(str(tmp_path / "no-such-1.0.tar.gz"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SdistError, match="not an sdist"):
        recipe_from_pypi(f"{tmp_path}/notes.txt")


def test_with_deps_passes_root_options_down_and_not_to_dependencies(tmp_path, monkeypatch):
    monkeypatch.setenv("FTFORGE_SOURCE_MIRROR", str(tmp_path / "mirror"))
    """Fault 3: --with-deps dropped --apt and --gil-reenabled-ok."""
    from ftforge import pypi
    from ftforge.recipes import from_pypi

    real = from_pypi.recipe_from_pypi
    seen = {}

    def fake(spec, **kwargs):
        if spec.startswith("/"):
            return real(spec, **kwargs)
        seen[spec] = kwargs
        return "setuptools", {"recipe.yaml": "requirements:\n  host: [python]\n  run: [python]\n"}

    monkeypatch.setattr(from_pypi, "recipe_from_pypi", fake)
    monkeypatch.setattr(pypi, "fetch_project", lambda name: pypi.Project(name, "80.0", {"80.0": (
        pypi.DistFile(f"{name}-80.0.tar.gz", "https://x", "0" * 64, "sdist"),)}, {}))
    sdist = make_sdist(tmp_path, "fastthing", SETUPTOOLS_EXT)
    root = from_pypi.RootOptions(gil_reenabled_ok="upstream #1", apt=("libfoo-dev",))
    planned = from_pypi.closure_from_pypi(str(sdist), root=root)
    assert [p.conda_name for p, _ in planned] == ["setuptools", "fastthing"]
    text = planned[-1][1]["recipe.yaml"]
    assert 'gil_reenabled_ok: "upstream #1"' in text and "- libfoo-dev" in text
    assert "--allow-gil" in _gil_check_line(text)
    assert all("gil_reenabled_ok" not in kw and "apt" not in kw for kw in seen.values()), seen


def test_cli_writes_a_recipe_for_a_local_sdist(tmp_path):
    import subprocess
    import sys

    sdist = make_sdist(tmp_path, "fastthing", SETUPTOOLS_EXT)
    env = {**os.environ, "FTFORGE_SOURCE_MIRROR": str(tmp_path / "mirror")}
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", "recipe", "pypi", str(sdist),
                             "--output-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "fastthing" / "recipe.yaml").read_text()
    assert sdist.resolve().as_uri() in text and "--require-extensions" in text
    missing = subprocess.run([sys.executable, "-m", "ftforge.cli", "recipe", "pypi",
                              str(tmp_path / "nope-1.0.tar.gz")],
                             capture_output=True, text=True, env=env)
    assert missing.returncode == 1 and "no such sdist file" in missing.stderr
    assert "Traceback" not in missing.stderr
