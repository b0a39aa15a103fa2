"""A self-contained interpreter: installed into a root filesystem that has glibc and a
shell and nothing else, python (both ABIs), a C++ extension, pyyaml with libyaml, pip
and a noarch package work -- every library they link comes from the channel.

Builds (cached by recipe hash): the native stack, python's conda-forge profile for
both ABIs, flit-core + pip, msgpack (C++), cython + pyyaml (libyaml from the
channel's ``yaml``), idna (noarch). Everything is published through the linkage
audit into one channel.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ftforge import rootfs
from ftforge.bootstrap import BOOTSTRAP_SPECS
from ftforge.build.driver import BuildRequest, build_in_order
from ftforge.build.stack import build_stack
from ftforge.channel.audit import PackageRefused
from ftforge.channel.publish import publish
from ftforge.environments import create
from ftforge.recipes import files as recipe_files
from ftforge.recipes import python as python_recipe
from ftforge.recipes.cpython_sources import DEFAULT_VERSION
from ftforge.recipes.from_pypi import closure_from_pypi, recipe_from_pypi
from ftforge.variants import PythonVariant

from .conftest import CBC, PYTHON_OPTIMIZATION

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chroot") is None,
                       reason="chroot and mount need root"),
]

PROFILE = (("python_deps_profile", "conda-forge"), *PYTHON_OPTIMIZATION)
EXTRA_SPECS = ("msgpack==1.2.4", "pyyaml==6.0.3", "idna==3.20")
"""Built with their whole host/run closure (setuptools, cython, ...), as the suite does."""
IMPORTS = ("ssl, sqlite3, readline, curses, lzma, bz2, zlib, ctypes, uuid, decimal, hashlib, "
           "pyexpat, msgpack, yaml, idna")
CHECK = f"""
import sys, ssl
import {IMPORTS}
assert yaml.CLoader.__module__ == "yaml.cyaml", yaml.CLoader
assert yaml.load("a: [1, 2]", Loader=yaml.CLoader) == {{"a": [1, 2]}}
assert msgpack.unpackb(msgpack.packb([1, "x"])) == [1, "x"]
n = len(ssl.create_default_context().get_ca_certs())
assert n > 100, n
uuid.uuid1()
print("certs", n, "gil", sys._is_gil_enabled(), "ssl", ssl.OPENSSL_VERSION)
"""


@pytest.fixture(scope="module")
def sc_channel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sc-output")
    recipes = tmp_path_factory.mktemp("sc-recipes")
    stack = build_stack(out, work_dir=recipes)
    name, files = python_recipe.files_for(DEFAULT_VERSION)
    recipe_files.write_files(recipes / name, files)
    dirs = [recipes / name]
    for spec in BOOTSTRAP_SPECS:
        conda_name, files = recipe_from_pypi(spec)
        recipe_files.write_files(recipes / conda_name, files)
        dirs.append(recipes / conda_name)
    for spec in EXTRA_SPECS:
        for plan, files in closure_from_pypi(spec):
            if recipes / plan.conda_name not in dirs:
                recipe_files.write_files(recipes / plan.conda_name, files)
                dirs.append(recipes / plan.conda_name)
    requests = [BuildRequest(d, out, variant_files=CBC, channels=(str(out),),
                             overrides=PROFILE if i == 0 else ())
                for i, d in enumerate(dirs)]
    outcomes = build_in_order(requests)
    packages = sorted({*stack.packages, *(p for o in outcomes for p in o.packages)})
    channel = tmp_path_factory.mktemp("sc-channel") / "ft"
    publish(packages, channel)  # through the linkage audit
    return channel


def _env(tmp_path_factory, channel: Path, metapackage: str) -> Path:
    prefix = tmp_path_factory.mktemp("sc-envs") / metapackage
    create(prefix, [str(channel)], [metapackage, "msgpack-python", "pyyaml", "idna", "pip"],
           force=True)
    return prefix


@pytest.fixture(scope="module")
def root_with_envs(tmp_path_factory, sc_channel):
    envs = {abi: _env(tmp_path_factory, sc_channel, PythonVariant(DEFAULT_VERSION, abi == "ft")
                      .metapackage) for abi in ("ft", "gil")}
    root = tmp_path_factory.mktemp("sc-root") / "root"
    shutil.copytree(rootfs.ensure_rootfs(), root, symlinks=True)
    for prefix in envs.values():
        rootfs.copy_into(root, prefix)
    with rootfs.mounted_proc(root):
        yield root, envs


def test_python_records_depend_on_the_stack_and_glibc(sc_channel):
    from ftforge.channel.index import channel_records

    pythons = [r for r in channel_records(sc_channel) if r["name"] == "python"]
    assert len(pythons) == 2
    for record in pythons:
        names = {d.split()[0] for d in record["depends"]}
        assert {"openssl", "libzlib", "libsqlite", "readline", "ncurses", "libffi", "liblzma",
                "bzip2", "libexpat", "libuuid", "__glibc"} <= names, record["depends"]
        assert "tk" not in names


def test_the_root_filesystem_has_only_glibc_and_a_shell(root_with_envs):
    root, _ = root_with_envs
    libs = {p.name for p in (root / "lib/x86_64-linux-gnu").glob("*.so*")}
    assert "libc.so.6" in libs
    assert not {"libssl.so.3", "libz.so.1", "libsqlite3.so.0", "libstdc++.so.6",
                "libyaml-0.so.2", "libffi.so.8"} & libs
    assert not (root / "usr/bin/python3").exists()


@pytest.mark.parametrize("abi", ["ft", "gil"])
def test_everything_imports_in_the_bare_root(root_with_envs, abi):
    root, envs = root_with_envs
    python = str(envs[abi].resolve() / "bin" / "python")
    result = rootfs.run_in(root, [python, "-c", CHECK])
    assert result.returncode == 0, result.stderr
    assert f"gil {abi == 'gil'}" in result.stdout  # sys._is_gil_enabled() False when ft
    pip = rootfs.run_in(root, [python, "-m", "pip", "--version"])
    assert pip.returncode == 0, pip.stderr
    assert pip.stdout.startswith("pip ")
    assert "OpenSSL 3.0.20" in result.stdout  # the channel's openssl, not the system's


def test_linkage_audit_refuses_python_without_its_library_dependencies(tmp_path, sc_channel):
    """The real interpreter, repacked with only python_abi as its dependency (what the
    system profile's python records looked like): refused, naming openssl; channel unchanged."""
    from ftforge.channel.index import channel_records
    from ftforge.channel.synthetic import repack

    before = sorted(r["fn"] for r in channel_records(sc_channel))
    python = next(sc_channel / r["subdir"] / r["fn"] for r in channel_records(sc_channel)
                  if r["name"] == "python" and r["build"].endswith("_cp313t"))
    record = next(r for r in channel_records(sc_channel) if r["fn"] == python.name)
    bare = repack(python, tmp_path, build_number=record["build_number"] + 1,
                  build=record["build"].replace("_0_cp313t", "_1_cp313t"),
                  depends=[d for d in record["depends"] if d.startswith("python_abi")])
    with pytest.raises(PackageRefused) as info:
        publish([bare], sc_channel)
    text = str(info.value)
    assert "needs libssl.so.3" in text and "the channel's openssl provides it" in text
    assert "no __glibc" in text
    assert sorted(r["fn"] for r in channel_records(sc_channel)) == before
