"""Build inputs checked before a long build: mirror checksums, apt deps, variants, channel."""

import hashlib
import subprocess
import sys

import pytest

from ftforge.build.driver import BuildRequest, build, recipe_hash, stage_recipe
from ftforge.build.mirror import SourceMirror
from ftforge.build.preflight import check_apt_dependencies
from ftforge.build.variant_config import (
    VariantMatrix,
    VariantOverrideError,
    compose,
    expand,
    load_variant_file,
    parse_override,
)
from ftforge.channel.layout import mark_channel
from ftforge.errors import (
    FtforgeError,
    MissingSystemDependency,
    OutputInsideChannelError,
    SourceChecksumError,
    SourceUnavailableError,
)
from ftforge.recipes import files as recipe_files
from ftforge.recipes import python as python_recipe

URL = "https://www.python.org/ftp/python/9.9.9/Python-9.9.9.tar.xz"


def test_mirror_returns_a_file_url_after_checking_sha256(tmp_path):
    (tmp_path / "Python-9.9.9.tar.xz").write_bytes(b"source")
    good = hashlib.sha256(b"source").hexdigest()
    url = SourceMirror(tmp_path).localize(URL, good, package="python")
    assert url == (tmp_path / "Python-9.9.9.tar.xz").as_uri()


def test_mirror_refuses_a_sha256_mismatch_naming_file_and_both_hashes(tmp_path):
    (tmp_path / "Python-9.9.9.tar.xz").write_bytes(b"tampered")
    with pytest.raises(SourceChecksumError) as info:
        SourceMirror(tmp_path).localize(URL, "0" * 64, package="python")
    message = str(info.value)
    assert "Python-9.9.9.tar.xz" in message and "0" * 64 in message
    assert hashlib.sha256(b"tampered").hexdigest() in message
    assert "seed-source-mirror" in info.value.hint


def test_mirror_missing_file_says_how_to_seed(tmp_path):
    with pytest.raises(SourceUnavailableError, match="not in the local mirror"):
        SourceMirror(tmp_path).localize(URL, "0" * 64, package="python")


def test_stage_points_the_recipe_at_the_mirror(tmp_path):
    _, files = python_recipe.files_for("3.13.5")
    recipe_files.write_files(tmp_path / "r", files)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    tarball = mirror / "Python-3.13.5.tar.xz"
    tarball.write_bytes(b"fake")
    with pytest.raises(SourceChecksumError, match="Python-3.13.5.tar.xz"):
        stage_recipe(tmp_path / "r", tmp_path / "stage", SourceMirror(mirror))


def test_missing_apt_package_names_the_package_and_the_command():
    with pytest.raises(MissingSystemDependency) as info:
        check_apt_dependencies(["libssl-dev", "tk-dev"], recipe="recipes/python-3.13/recipe.yaml",
                               installed=lambda p: p != "tk-dev")
    assert "tk-dev" in str(info.value) and "libssl-dev" not in str(info.value)
    assert "apt-get install -y tk-dev" in info.value.hint


def test_build_refuses_missing_system_dependency_before_building(tmp_path, repo):
    with pytest.raises(MissingSystemDependency, match="libssl-dev"):
        build(BuildRequest(repo / "recipes" / "python-3.13", tmp_path / "out"),
              installed=lambda p: p != "libssl-dev")


def test_build_refuses_an_output_dir_inside_a_channel(tmp_path, repo):
    mark_channel(tmp_path / "channel")
    with pytest.raises(OutputInsideChannelError, match="inside the published channel"):
        build(BuildRequest(repo / "recipes" / "python-3.13", tmp_path / "channel" / "linux-64"))
    result = subprocess.run(
        [sys.executable, "-m", "ftforge.cli", "build", str(repo / "recipes" / "python-3.13"),
         "--output-dir", str(tmp_path / "channel")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "inside the published channel" in result.stderr
    assert "Traceback" not in result.stderr


def test_build_refuses_a_directory_without_recipe(tmp_path):
    with pytest.raises(FtforgeError, match="no recipe.yaml"):
        build(BuildRequest(tmp_path, tmp_path / "out"))


def test_malformed_recipe_is_a_clear_error(tmp_path):
    (tmp_path / "recipe.yaml").write_text("package: [unclosed\n")
    with pytest.raises(FtforgeError, match="not valid YAML"):
        build(BuildRequest(tmp_path, tmp_path / "out"))


def test_override_pins_zipped_keys_together(tmp_path):
    cbc = tmp_path / "conda_build_config.yaml"
    cbc.write_text("python: ['3.13.* *_cp313', '3.13.* *_cp313t']\n"
                   "is_freethreading: [false, true]\nzip_keys: [[python, is_freethreading]]\n")
    matrix = load_variant_file(cbc)
    pinned = compose(matrix, [parse_override("python=3.13.* *_cp313t")])
    assert pinned.values == {"python": ["3.13.* *_cp313t"], "is_freethreading": ["true"]}
    with pytest.raises(VariantOverrideError, match="zipped"):
        compose(matrix, [("python", "3.12.* *_cp312")])


def test_expand_keeps_zipped_keys_aligned():
    matrix = VariantMatrix({"python": ["a", "b"], "is_freethreading": ["false", "true"],
                            "c_compiler": ["gcc"], "x": ["1", "2"]},
                           [["python", "is_freethreading"]])
    combos = [c.values for c in expand(matrix)]
    assert len(combos) == 4
    assert {(c["python"][0], c["is_freethreading"][0]) for c in combos} == {
        ("a", "false"), ("b", "true")}
    assert all(c["c_compiler"] == ["gcc"] for c in combos)


def test_override_must_be_key_value():
    with pytest.raises(VariantOverrideError, match="KEY=VALUE"):
        parse_override("freethreading")


def test_recipe_hash_changes_with_recipe_and_variant(tmp_path):
    _, files = python_recipe.files_for("3.13.5")
    recipe_files.write_files(tmp_path, files)
    a = recipe_hash(tmp_path, "yes")
    b = recipe_hash(tmp_path, "no")
    assert a == recipe_hash(tmp_path, "yes")  # deterministic
    (tmp_path / "build-python.sh").write_text("changed")
    c = recipe_hash(tmp_path, "yes")
    assert len({a, b, c}) == 3


@pytest.mark.parametrize("key, value", [
    ("python_optimization", "pgo"), ("python_optimization", "none; rm -rf /"),
    ("python_optimization", "x' == 'x"), ("freethreading", "maybe"),
    ("python_deps_profile", "[red]system"),
])
def test_interpreter_variant_values_are_checked_before_anything_is_built(tmp_path, repo,
                                                                         key, value):
    """A value the build script does not know is refused up front, naming the recipe's
    variants file and the values it takes; nothing is written."""
    from ftforge.build.variant_config import VariantOverrideError
    from ftforge.recipes.python import VARIANT_VALUES

    with pytest.raises(VariantOverrideError) as refused:
        build(BuildRequest(repo / "recipes" / "python-3.13", tmp_path / "out",
                           overrides=((key, value),)))
    assert "variants.yaml" in refused.value.message
    assert ", ".join(VARIANT_VALUES[key]) in refused.value.hint
    assert not (tmp_path / "out").exists()
