"""The free-threaded interpreter end to end: built, published, installed, checked."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from conda_package_streaming.package_streaming import stream_conda_component

from ftforge.variants import PythonVariant
from ftforge.workload import python_runs_in_two_threads_at_once

from .conftest import ftforge, run_python

pytestmark = pytest.mark.integration

FT = PythonVariant.ft("3.13")
GIL = PythonVariant.gil("3.13")


def _record(repodata, name, abi):
    found = [r for r in repodata.values() if r["name"] == name and r["build"].endswith(abi.abi_tag)]
    assert len(found) == 1, (name, abi.abi_tag, found)
    return found[0]


def test_repodata_python_free_threaded(repodata):
    py = _record(repodata, "python", FT)
    assert py["version"] == "3.13.5"
    assert re.fullmatch(r"h[0-9a-f]{7,}_0_cp313t", py["build"]), py["build"]
    assert FT.python_abi_spec in py["depends"]
    assert py["track_features"] == "python-p-0"
    assert py["python_site_packages_path"] == "lib/python3.13t/site-packages"


def test_repodata_python_abi_free_threaded(repodata):
    abi = _record(repodata, "python_abi", FT)
    assert abi["version"] == "3.13"
    assert abi["build"] == "0_cp313t"
    assert abi["constrains"] == ["python 3.13.* *_cp313t"]
    assert abi["track_features"] == "python_abi-p-0"
    assert abi["subdir"] == "noarch"


def test_repodata_gil_builds_are_not_down_weighted(repodata):
    py = _record(repodata, "python", GIL)
    assert re.fullmatch(r"h[0-9a-f]{7,}_100_cp313", py["build"])
    assert not py.get("track_features")
    assert GIL.python_abi_spec in py["depends"]
    assert _record(repodata, "python_abi", GIL)["constrains"] == ["python 3.13.* *_cp313"]


def test_metapackages_pin_the_abi(repodata):
    ft = _record(repodata, "python-freethreading", FT)
    gil = _record(repodata, "python-gil", GIL)
    assert FT.python_abi_spec in ft["depends"]
    assert GIL.python_abi_spec in gil["depends"]


def test_package_is_self_contained(interpreter_packages, repodata):
    """The default (conda-forge) profile: no system-linkage record; the libraries it
    links are run dependencies (the native stack, published with it)."""
    pkg = next(p for p in interpreter_packages
               if p.name.startswith("python-3.13.5") and p.name.endswith("_cp313t.conda"))
    with open(pkg, "rb") as handle:
        names = [m.name for _, m in stream_conda_component(pkg.name, handle, "pkg")]
    assert "share/ftforge/linkage/python.txt" not in names
    depends = {d.split()[0] for d in _record(repodata, "python", FT)["depends"]}
    assert {"openssl", "libsqlite", "libffi", "libzlib", "readline", "__glibc"} <= depends


def test_free_threaded_env(ft_env):
    out = run_python(ft_env, "import sys, sysconfig, json; print(json.dumps("
                     "[sys._is_gil_enabled(), sysconfig.get_config_var('Py_GIL_DISABLED'),"
                     " sysconfig.get_paths()['purelib'], sys.path]))")
    gil, disabled, purelib, path = json.loads(out.stdout)
    assert gil is False
    assert disabled == 1
    assert purelib == str(ft_env / FT.site_packages)
    assert str(ft_env / FT.noarch_site_packages) in path  # the .pth for noarch packages


@pytest.mark.parametrize("which", ["ft", "gil"])
def test_interpreters_are_pgo_lto_builds(which, request):
    """Both ABIs are the published build: configured with --enable-optimizations
    --with-lto, trained on CPython's own `-m test --pgo` task, compiled with the
    profile and LTO -- and none of those flags leaks into what sysconfig gives
    extension builds (CFLAGS, LDSHARED: an sdist's C code must not need the profile)."""
    prefix = request.getfixturevalue(f"{which}_env")
    keys = ("CONFIG_ARGS", "PROFILE_TASK", "PGO_PROF_USE_FLAG", "PY_CFLAGS_NODIST", "CFLAGS",
            "LDSHARED", "LDFLAGS")
    out = run_python(prefix, "import sysconfig, json; print(json.dumps([sysconfig.get_config_var(k)"
                     f" or '' for k in {keys!r}]))")
    config = dict(zip(keys, json.loads(out.stdout)))
    assert "'--enable-optimizations'" in config["CONFIG_ARGS"]
    assert "'--with-lto'" in config["CONFIG_ARGS"]
    assert config["PROFILE_TASK"].startswith("-m test --pgo")
    assert "-fprofile-use" in config["PGO_PROF_USE_FLAG"]
    assert "-flto" in config["PY_CFLAGS_NODIST"]
    for key in ("CFLAGS", "LDSHARED", "LDFLAGS"):
        assert "-flto" not in config[key] and "-fprofile" not in config[key], (key, config[key])


@pytest.mark.parametrize("module", ["ssl", "sqlite3", "ctypes", "lzma", "bz2", "readline",
                                    "zlib", "uuid", "curses", "dbm.sqlite3", "decimal"])
def test_stdlib_extension_modules_import(ft_env, module):
    run_python(ft_env, f"import {module}")


def test_modules_without_a_library_are_left_out(ft_env):
    """_tkinter (Tcl/Tk need X11 client libraries, not packaged) and _gdbm/_dbm are not
    built by the self-contained profile: absent, not half-linked."""
    run_python(ft_env, "import importlib.util as u; "
               "assert [m for m in ('_tkinter', '_gdbm', '_dbm') if u.find_spec(m)] == []")


def test_rpath_is_relative(ft_env):
    out = subprocess.run(["readelf", "-d", str(ft_env / FT.executable)],
                         capture_output=True, text=True, check=True).stdout
    assert "$ORIGIN/../lib" in out


_EMBED = r"""
#include <Python.h>
int main(void) {
    Py_Initialize();
    int failed = PyRun_SimpleString(
        "import sys, sysconfig, _ssl, _sqlite3\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(sysconfig.get_config_var('Py_GIL_DISABLED'), 'libpython' in maps)\n");
    return (Py_FinalizeEx() < 0 || failed) ? 1 : 0;
}
"""


@pytest.mark.parametrize("which", ["ft", "gil"])
def test_executable_carries_the_interpreter_and_libpython_still_embeds(which, request, tmp_path):
    """bin/python3.13[t] links the interpreter's objects itself (no libpython in its
    NEEDED entries, none mapped when it runs) -- the thread state is then a direct TLS
    access, not __tls_get_addr -- while libpython3.13[t].so is still shipped: a
    program built with python3.13[t]-config --embed links it, runs Python and loads
    extension modules from lib-dynload through it."""
    abi = FT if which == "ft" else GIL
    prefix = request.getfixturevalue(f"{which}_env")
    dynamic = subprocess.run(["readelf", "-d", str(prefix / abi.executable)],
                             capture_output=True, text=True, check=True).stdout
    assert "libpython" not in dynamic, dynamic
    out = run_python(prefix, "print('libpython' in open('/proc/self/maps').read())")
    assert out.stdout.strip() == "False"
    assert (prefix / abi.libpython).is_file()
    assert (prefix / "lib" / "libpython3.so").is_file()  # the stable-ABI forwarder, too
    # one copy of the interpreter: every other name of it is a symlink (a package
    # stores make install's hard link python3.13 -> python3.13t as a second file)
    copies = sorted(p.name for p in (prefix / "bin").glob("python*")
                    if not p.is_symlink() and not p.name.endswith("-config"))
    assert copies == [Path(abi.executable).name]

    config = prefix / f"{abi.executable}-config"
    flags = subprocess.run([str(config), "--cflags", "--ldflags", "--embed"],
                           capture_output=True, text=True, check=True).stdout.split()
    (tmp_path / "embed.c").write_text(_EMBED)
    subprocess.run(["gcc", str(tmp_path / "embed.c"), "-o", str(tmp_path / "embed"), *flags,
                    f"-Wl,-rpath,{prefix / 'lib'}"], check=True, capture_output=True)
    linked = subprocess.run(["readelf", "-d", str(tmp_path / "embed")],
                            capture_output=True, text=True, check=True).stdout
    assert Path(abi.libpython).name in linked
    ran = subprocess.run([str(tmp_path / "embed")], capture_output=True, text=True, timeout=60,
                         env={"PYTHONHOME": str(prefix), "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [str(abi.py_gil_disabled), "True"]


def _pure_wheel(directory: Path) -> Path:
    """A real, minimal pure-Python wheel (PEP 427), made offline."""
    name, version = "ftforge_probe", "1.0"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: ftforge-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_pip_installs_a_pure_wheel_into_the_t_site_packages(ft_env, tmp_path):
    wheel = _pure_wheel(tmp_path)
    subprocess.run([str(ft_env / "bin" / "python"), "-m", "pip", "install", "--no-index",
                    "--no-deps", str(wheel)], check=True, capture_output=True)
    out = run_python(ft_env, "import ftforge_probe; print(ftforge_probe.__file__, ftforge_probe.VALUE)")
    assert out.stdout.split() == [str(ft_env / FT.site_packages / "ftforge_probe" / "__init__.py"), "42"]


def test_venv_works(ft_env, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([str(ft_env / "bin" / "python"), "-m", "venv", str(venv)], check=True)
    out = run_python(venv, "import sys; print(sys._is_gil_enabled(), sys.prefix != sys.base_prefix)")
    assert out.stdout.split() == ["False", "True"]


def test_gil_env_reports_the_gil_enabled(gil_env):
    out = run_python(gil_env, "import sys, sysconfig; print(sys._is_gil_enabled(), "
                     "sysconfig.get_config_var('Py_GIL_DISABLED'))")
    assert out.stdout.split() == ["True", "0"]
    assert (gil_env / GIL.site_packages).is_dir()


def test_plain_python_request_gets_the_gil_build(channel):
    """Both ABIs in one channel: `python` alone must not hand out the free-threaded one."""
    out = ftforge("create", "--dry-run", "--prefix", "unused", "--channel", str(channel), "python")
    line = next(l for l in out.stdout.splitlines() if l.strip().startswith("│ python "))
    assert "_cp313 " in line + " " and "cp313t" not in line


def test_two_threads_run_python_at_once(ft_env, gil_env):
    """Outcome, not timing (the speedup lives in benchmarks/bench_interpreter.py): in
    the free-threaded build a thread answers from Python code while another spins
    without ever releasing the interpreter; in the GIL build it cannot. The OS
    time-slices threads on a loaded machine, so this holds under any load."""
    assert python_runs_in_two_threads_at_once(ft_env / "bin" / "python") is True
    assert python_runs_in_two_threads_at_once(gil_env / "bin" / "python", rounds=5,
                                              deadline_s=2.0) is False
    ft = run_python(ft_env, "import sys, sysconfig; print(sys._is_gil_enabled(), "
                    "sysconfig.get_config_var('Py_GIL_DISABLED'))").stdout.split()
    gil = run_python(gil_env, "import sys, sysconfig; print(sys._is_gil_enabled(), "
                     "sysconfig.get_config_var('Py_GIL_DISABLED'))").stdout.split()
    assert ft == ["False", "1"] and gil == ["True", "0"]
