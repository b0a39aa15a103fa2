"""Native library recipes: committed = generated, rendered by rattler-build with
conda-forge's names and pins; the source mirror's seeding and content lookup."""

import pytest
from ruamel.yaml import YAML

from ftforge.build.driver import render
from ftforge.build.mirror import SourceMirror
from ftforge.build.seed import SeedItem, _file, debian_mirror_uri, seed_items
from ftforge.build.variant_config import VariantMatrix
from ftforge.errors import FtforgeError, SourceChecksumError, SourceUnavailableError
from ftforge.recipes import files as recipe_files
from ftforge.recipes import native

NAMES = sorted({lib.directory for lib in native.LIBRARIES})


@pytest.mark.parametrize("name", NAMES)
def test_committed_recipe_is_what_the_generator_writes(repo, name):
    directory, files = native.files_for(name)
    assert recipe_files.diff_files(repo / "recipes" / directory, files) == []


def test_drift_is_detected(tmp_path):
    directory, files = native.files_for("openssl")
    recipe_files.write_files(tmp_path / directory, files)
    (tmp_path / directory / "build.sh").write_text(files["build.sh"].replace("no-tests", ""))
    with pytest.raises(FtforgeError, match="build.sh"):
        recipe_files.check_files(tmp_path / directory, files, command="ftforge recipe native")


def test_stack_order_builds_each_library_after_its_host_dependencies():
    position = {name: i for i, name in enumerate(native.STACK_ORDER)}
    for name in native.STACK_ORDER:
        lib = native.library(name)
        for host in lib.host:
            provider = native.library(host)
            assert position[provider.directory] < position[name], (name, host)
        for run in lib.run:
            assert position[native.library(run).directory] < position[name]


@pytest.mark.parametrize("name, pins", [
    ("openssl", {"openssl": "openssl >=3.0.20,<4.0a0"}),
    ("zlib", {"libzlib": "libzlib >=1.2.13,<2.0a0", "zlib": "libzlib >=1.2.13,<2.0a0"}),
    ("xz", {"liblzma": "liblzma >=5.4.1,<6.0a0", "liblzma-devel": "liblzma >=5.4.1,<6.0a0"}),
    ("sqlite", {"libsqlite": "libsqlite >=3.40.1,<4.0a0", "sqlite": "libsqlite >=3.40.1,<4.0a0"}),
    ("yaml", {"yaml": "yaml >=0.2.5,<0.3.0a0"}),
    ("readline", {"readline": "readline >=8.2,<9.0a0"}),
])
def test_renders_with_conda_forge_names_and_run_exports(tmp_path, name, pins):
    directory, files = native.files_for(name)
    recipe_files.write_files(tmp_path, files)
    rendered = {v.recipe.package.name: v.recipe.to_dict()
                for v in render(tmp_path / "recipe.yaml",
                                VariantMatrix({"c_compiler": ["gcc"], "cxx_compiler": ["gxx"]}))}
    assert set(rendered) == set(pins)
    lib = native.library(name)
    for output, pin in pins.items():
        exports = rendered[output]["requirements"]["run_exports"]
        weak = exports["weak"] if isinstance(exports, dict) else exports
        # resolved by rattler-build at build time (the built packages' run_exports.json
        # hold e.g. "libzlib >=1.2.13,<2.0a0"): the subpackage, from its version, to max_pin
        assert weak == [{"pin_subpackage": {"name": lib.name, "lower_bound": "x.x.x",
                                            "upper_bound": lib.max_pin}}]
        assert lib.pin == pin
    main = rendered[lib.name]
    assert main["build"]["dynamic_linking"]["rpaths"] == ["lib/"]
    assert any("compiler" in str(r) or "gcc" in str(r)
               for r in main["requirements"]["build"])


def test_every_compiled_library_has_a_load_test_and_drops_static_libs_and_docs():
    for lib in native.LIBRARIES:
        _, files = native.files_for(lib.directory)
        assert "*.a" in files["build.sh"] and "share/man" in files["build.sh"]
        if lib.noarch:
            continue
        assert lib.libraries, lib.name
        data = YAML(typ="safe").load(files["recipe.yaml"])
        tests = data["outputs"][0]["tests"]
        assert tests[0]["script"]["file"] == "test-load.sh"
        assert tests[0]["script"]["env"]["LIBS"] == " ".join(lib.libraries)
        assert "outside the environment" in files["test-load.sh"]


def test_debian_repacks_say_so_and_are_filed_by_content():
    repacks = {lib.name for lib in native.LIBRARIES if not lib.source.upstream_identical}
    assert repacks == {"libzlib", "libsqlite", "yaml"}
    for lib in native.LIBRARIES:
        text = native.files_for(lib.directory)[1]["recipe.yaml"]
        assert lib.source.sha256 in text
        assert ("# NOTE: " in text) == (lib.name in repacks)
    items = {i.what: i for i in seed_items()}
    assert not items["libzlib"].upstream_identical and items["openssl"].upstream_identical
    assert items["ca-certificates"].pypi_project == "certifi"
    assert items["python 3.13.5"].debian_suite == "trixie"


def test_mirror_finds_a_repack_by_its_sha256(tmp_path):
    mirror = SourceMirror(tmp_path)
    data = b"debian's repack"
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    downloaded = tmp_path / "dl" / "zlib_1.2.13.dfsg.orig.tar.bz2"
    downloaded.parent.mkdir()
    downloaded.write_bytes(data)
    item = SeedItem("libzlib", sha, "zlib-1.2.13.tar.gz", upstream_identical=False)
    filed = _file(mirror, item, downloaded)
    assert filed == tmp_path / "by-sha256" / sha / "zlib_1.2.13.dfsg.orig.tar.bz2"
    url = mirror.localize("https://zlib.net/fossils/zlib-1.2.13.tar.gz", sha, package="libzlib")
    assert url == filed.as_uri()
    with pytest.raises(SourceChecksumError, match="libzlib"):
        _file(mirror, SeedItem("libzlib", "0" * 64, "x.tar.gz"), downloaded)


def test_debian_mirror_is_read_from_apt_configuration(tmp_path):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    assert debian_mirror_uri([d]) == "http://mirror.example/debian"
    one = tmp_path / "sources.list"
    one.write_text("# comment\ndeb [arch=amd64] http://x/ bookworm main\n"
                   "deb http://mirror.example/debian/ bookworm main\n")
    assert debian_mirror_uri([one]) == "http://mirror.example/debian"
    with pytest.raises(SourceUnavailableError, match="no Debian mirror"):
        debian_mirror_uri([tmp_path / "nothing"])


def test_pypi_recipe_with_c_libraries_depends_on_their_conda_packages(tmp_path):
    from ftforge.recipes import clibs
    from ftforge.recipes import pypi as gen

    from .test_recipes_pypi import SETUPTOOLS_EXT, recipe_for

    assert clibs.libraries_for_project("PyYAML") == ("yaml",)
    assert clibs.libraries_for_project("Pillow") == ("zlib", "libjpeg-turbo")
    assert clibs.conda_for_header("<yaml.h>") == "yaml"
    assert clibs.BY_PKG_CONFIG["libjpeg"] == "libjpeg-turbo"
    # every conda name the map gives for the stack is a package the native generator builds
    built = {n for lib in native.LIBRARIES for n in (lib.name, *lib.aliases)}
    assert {clibs.BY_DEBIAN_PACKAGE[d] for d in ("libyaml-dev", "zlib1g-dev", "libssl-dev",
                                                  "libjpeg62-turbo-dev")} <= built
    recipe = recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT, c_libraries=("yaml",))
    data = YAML(typ="safe").load(gen.generate(recipe)["recipe.yaml"])
    assert "yaml" in data["requirements"]["host"]
    assert data["build"]["script"].startswith('CPPFLAGS="-I$PREFIX/include" LDFLAGS="-L$PREFIX/lib"')
    plain = YAML(typ="safe").load(gen.generate(
        recipe_for(tmp_path, "fastthing", SETUPTOOLS_EXT))["recipe.yaml"])
    assert "yaml" not in plain["requirements"]["host"]
    with pytest.raises(FtforgeError, match="libfoo-dev"):
        clibs.conda_for_apt(["libyaml-dev", "libfoo-dev"], project="x")
    assert clibs.conda_for_apt(["libyaml-dev", "zlib1g-dev"], project="x") == ("yaml", "zlib")


def test_c_libraries_missing_from_the_channels_are_built_first(tmp_path):
    from ftforge.build.stack import native_libraries_needed
    from ftforge.channel.publish import publish
    from ftforge.channel.synthetic import SyntheticPackage, write_package

    empty = tmp_path / "empty"
    empty.mkdir()
    assert native_libraries_needed({"python", "sqlite"}, (str(empty),)) == ("zlib", "sqlite")
    assert native_libraries_needed({"openssl", "readline"}, (str(empty),)) == (
        "ca-certificates", "ncurses", "readline", "openssl")
    assert native_libraries_needed({"python", "cython"}, (str(empty),)) == ()
    channel = tmp_path / "ch"
    publish([write_package(SyntheticPackage("libzlib", "1.2.13", "h0_0", subdir="linux-64"),
                           tmp_path / "in")], channel)
    assert native_libraries_needed({"sqlite", "zlib"}, (str(channel),)) == ("sqlite",)
    # a remote channel is not looked into: nothing is built behind the user's back
    assert native_libraries_needed({"yaml"}, ("http://127.0.0.1:9/ft",)) == ()
    assert native_libraries_needed({"yaml"}, ("conda-forge",)) == ()
