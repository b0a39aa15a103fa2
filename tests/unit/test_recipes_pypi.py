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
    assert any("ftforge_gil_check.py fastthing" in str(t) for t in data["tests"])
    gil = next(v for v in rendered if not v.recipe.build.string.startswith("py313t"))
    assert not any("ftforge_gil_check" in str(t) for t in gil.recipe.to_dict()["tests"])


def test_pure_recipe_is_noarch_python(tmp_path):
    recipe = recipe_for(tmp_path, "purething", PURE, "Requires-Dist: requests>=2\n")
    data = YAML(typ="safe").load(gen.generate(recipe)["recipe.yaml"])
    assert data["build"]["noarch"] == "python"
    assert data["requirements"]["run"] == ["python >=${{ python_min }}", "requests >=2"]
    assert data["requirements"]["host"] == ["python", "hatchling"]


def test_markers_and_extras():
    reqs = conda_requirements(("tomli; python_version<'3.11'", "idna>=2.5,<4",
                               "pysocks>=1.5; extra == 'socks'", "six; sys_platform == 'win32'"),
                              names={}, package="demo")
    assert reqs == ["idna >=2.5,<4"]


def test_unknown_dependency_is_reported_not_guessed():
    with pytest.raises(UnmappedDependencies, match="no known conda name for frobnicate"):
        conda_requirements(("frobnicate>=1",), names={}, package="demo")
    assert conda_requirements(("frobnicate>=1",), names={"frobnicate": "frob"},
                              package="demo") == ["frob >=1"]


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
    assert "--allow-gil fastthing" in text
    assert 'gil_reenabled_ok: "upstream issue #12' in text


def test_meta_yaml_in_closure_mode_names_unknown_dependencies_like_recipe_yaml(tmp_path):
    recipe = recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT, "Requires-Dist: frobnicate>=1\n",
                        assign_unknown_names=True)
    assert "- frobnicate >=1" in gen.generate(recipe)["recipe.yaml"]
    files = gen.generate_meta(recipe)
    assert "- frobnicate >=1" in files["meta.yaml"]
    assert set(files) == {"meta.yaml", "ftforge_gil_check.py"}
