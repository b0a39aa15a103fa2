"""Real builds of the interpreter recipe, cached under ~/.cache/ftforge by recipe hash.

The session builds both ABIs from the one recipe in recipes/python-3.13 (one
cache entry per variant; ``ftforge demo``'s ``--variant freethreading=yes``
build hits the same entry), publishes all of it to one channel, and creates
one environment per ABI with ``ftforge create``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftforge import paths
from ftforge.build.driver import BuildRequest
from ftforge.channel.publish import publish
from ftforge.recipes import python as python_recipe

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "python-3.13"
PYTHON_OPTIMIZATION = (("python_optimization", python_recipe.DEFAULT_OPTIMIZATION),)
"""The suite's interpreters are the published build (PGO + LTO), as `ftforge demo` builds
them: one cache entry per ABI."""


def ftforge(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "ftforge.cli", *args],
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"ftforge {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def interpreter_packages(tmp_path_factory) -> list[Path]:
    """Both ABIs from the one committed recipe, then pip's backend and pip from PyPI
    (ftforge.bootstrap): what every channel starts with, as `ftforge demo` builds it."""
    from ftforge.bootstrap import build_bootstrap, write_bootstrap_recipes

    recipes = tmp_path_factory.mktemp("bootstrap-recipes")
    dirs = write_bootstrap_recipes(recipes)
    assert (dirs[0] / "recipe.yaml").read_text() == (RECIPE / "recipe.yaml").read_text()
    return build_bootstrap([RECIPE, *dirs[1:]], tmp_path_factory.mktemp("output"),
                           overrides=PYTHON_OPTIMIZATION).packages


@pytest.fixture(scope="session")
def channel(tmp_path_factory, interpreter_packages) -> Path:
    root = tmp_path_factory.mktemp("channel") / "ft"
    publish(interpreter_packages, root)
    return root


@pytest.fixture(scope="session")
def repodata(channel) -> dict[str, dict]:
    records = {}
    for subdir in ("linux-64", "noarch"):
        data = json.loads((channel / subdir / "repodata.json").read_text())
        for filename, record in {**data.get("packages", {}), **data.get("packages.conda", {})}.items():
            records[filename] = record
    return records


@pytest.fixture(scope="session")
def ft_env(tmp_path_factory, channel) -> Path:
    prefix = tmp_path_factory.mktemp("envs") / "ft"
    ftforge("create", "--prefix", str(prefix), "--channel", str(channel), "python-freethreading")
    return prefix


@pytest.fixture(scope="session")
def gil_env(tmp_path_factory, channel) -> Path:
    prefix = tmp_path_factory.mktemp("envs") / "gil"
    ftforge("create", "--prefix", str(prefix), "--channel", str(channel), "python-gil")
    return prefix


def run_python(prefix: Path, code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(prefix / "bin" / "python"), "-c", code, *args],
                          capture_output=True, text=True, check=True, **kwargs)


TINY = """schema_version: 1
package:
  name: ftforge-tiny
  version: "1.0"
build:
  number: 0
  string: ${{{{ flavour }}}}_0
  script:
    - mkdir -p $PREFIX/share
    - echo {marker} > $PREFIX/share/ftforge-tiny.txt
"""


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A private builds cache, sharing the real source mirror and toolchain."""
    real_toolchain = paths.toolchain_channel_dir()
    monkeypatch.setenv("FTFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "toolchain_channel_dir", lambda: real_toolchain)
    return tmp_path / "cache"


def tiny_recipe(directory: Path, marker: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recipe.yaml").write_text(TINY.format(marker=marker))
    (directory / "variants.yaml").write_text("flavour: [plain, spicy]\n")
    return directory


CBC = (REPO / "conda_build_config.yaml",)


def write_pypi_recipe(root: Path, spec: str, **kwargs) -> Path:
    from ftforge.recipes import files as recipe_files
    from ftforge.recipes.from_pypi import recipe_from_pypi

    name, files = recipe_from_pypi(spec, **kwargs)
    recipe_files.write_files(root / name, files)
    return root / name


@pytest.fixture(scope="session")
def pypi_out(tmp_path_factory, channel) -> Path:
    """requests (with its whole closure), msgpack 1.2.4 and markupsafe, built."""
    from ftforge.build.driver import build_in_order
    from ftforge.recipes import files as recipe_files
    from ftforge.recipes.from_pypi import closure_from_pypi

    root = tmp_path_factory.mktemp("pypi-recipes")
    out = tmp_path_factory.mktemp("pypi-out")
    dirs = []
    for plan, files in closure_from_pypi("requests==2.34.2"):
        recipe_files.write_files(root / plan.conda_name, files)
        dirs.append(root / plan.conda_name)
    dirs.append(write_pypi_recipe(root, "msgpack==1.2.4"))
    dirs.append(write_pypi_recipe(root, "markupsafe==3.0.3"))
    dirs.append(write_pypi_recipe(root, "psutil==7.2.2"))
    dirs.append(write_pypi_recipe(root, "cython==3.3.1"))          # Cython-compiled, needed by pyyaml
    dirs.append(write_pypi_recipe(root, "pyyaml==6.0.3"))     # libyaml: the stack's yaml package
    build_in_order([BuildRequest(d, out, variant_files=CBC, channels=(str(channel),))
                    for d in dirs])
    return out


