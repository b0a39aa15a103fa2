"""The anchor root: Debian's version check and the bubblewrap command that runs in it."""

import os
import shutil
from pathlib import Path, PurePosixPath

import pytest

from ftforge import anchor, rootfs
from ftforge.errors import BenchmarkError

STATUS = """\
Package: python3.13-minimal
Status: install ok installed
Version: 3.13.5-2+deb13u5
Description: A minimal subset of the Python language
 Package: python3.13
 Version: 9.9.9-1

Package: python3.13
Status: deinstall ok config-files
Version: 3.13.3-1

Package: python3.13
Status: install ok installed
Priority: optional
Version: 3.13.5-2+deb13u5
Conffiles:
 /etc/python3.13/sitecustomize.py 0123
"""


def test_the_installed_version_is_read_from_dpkg_status():
    assert anchor.debian_version(STATUS, "python3.13") == "3.13.5-2+deb13u5"
    assert anchor.debian_version(STATUS, "python3.12") is None
    assert anchor.debian_version(STATUS.split("\n\nPackage: python3.13\nStatus: install")[0],
                                 "python3.13") is None  # config-files only: not installed


def _root_with(tmp_path: Path, status: str | None) -> Path:
    (tmp_path / "var" / "lib" / "dpkg").mkdir(parents=True)
    if status is not None:
        (tmp_path / "var" / "lib" / "dpkg" / "status").write_text(status)
    return tmp_path


def test_only_the_expected_cpython_release_is_an_anchor(tmp_path):
    assert anchor.installed_version(_root_with(tmp_path / "ok", STATUS)) == "3.13.5-2+deb13u5"
    newer = STATUS.replace("Version: 3.13.5-2+deb13u5\nConffiles", "Version: 3.13.6-1\nConffiles")
    with pytest.raises(BenchmarkError, match=r"python3.13 is 3.13.6-1, not 3.13.5"):
        anchor.installed_version(_root_with(tmp_path / "newer", newer))
    with pytest.raises(BenchmarkError, match="python3.13 is not installed"):
        anchor.installed_version(_root_with(tmp_path / "none", "Package: dash\n"))
    with pytest.raises(BenchmarkError, match="unreadable"):
        anchor.installed_version(_root_with(tmp_path / "empty", None))


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for d in ("usr/bin", "etc", "var", "root", "tmp", "proc", "dev"):
        (root / d).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    return root


def test_bwrap_binds_the_root_read_only_and_environments_at_their_own_paths(tmp_path):
    root = _fake_root(tmp_path)
    env = anchor.Bind(Path("/root/.cache/envs/gil"), PurePosixPath("/root/.cache/envs/gil"))
    out = anchor.Bind(tmp_path / "out", PurePosixPath("/bench/out"), writable=True)
    argv = anchor.bwrap_argv(root, [env, out], ["/usr/bin/python3.13", "-V"], {"HOME": "/tmp"})
    pairs = list(zip(argv, argv[1:], argv[2:]))
    assert ("--ro-bind", str(root / "usr"), "/usr") in pairs
    assert ("--ro-bind", str(root / "etc"), "/etc") in pairs
    assert ("--symlink", "usr/bin", "/bin") in pairs
    assert ("--ro-bind", str(root / "root"), "/root") not in pairs  # replaced: a mount point
    assert ("--ro-bind", "/root/.cache/envs/gil", "/root/.cache/envs/gil") in pairs
    assert ("--bind", str(tmp_path / "out"), "/bench/out") in pairs
    assert argv.index("--tmpfs") < argv.index("/root/.cache/envs/gil")
    assert ("--tmpfs", "/root") in zip(argv, argv[1:])
    assert ("--setenv", "HOME", "/tmp") in pairs
    assert "--clearenv" in argv and argv[-3:] == ["--", "/usr/bin/python3.13", "-V"]
    assert not any(a in (str(root / "proc"), str(root / "tmp")) for a in argv)


@pytest.mark.parametrize("target, words", [
    ("/usr/local/env", "over the root's own /usr"),
    ("/etc/env", "over the root's own /etc"),
    ("/proc/x", "over the root's own /proc"),
    ("relative/env", "cannot be bound"),
    ("/envs/../usr", "cannot be bound"),
    ("/", "cannot be bound"),
])
def test_bwrap_refuses_binds_over_the_roots_own_userland(tmp_path, target, words):
    with pytest.raises(BenchmarkError, match="bound") as caught:
        anchor.bwrap_argv(_fake_root(tmp_path), [anchor.Bind(tmp_path, PurePosixPath(target))],
                          ["/bin/true"], {})
    assert words in caught.value.message


def test_bwrap_refuses_an_environment_variable_that_is_not_a_name(tmp_path):
    with pytest.raises(BenchmarkError, match="not an environment variable name"):
        anchor.bwrap_argv(_fake_root(tmp_path), [], ["/bin/true"], {"A=B": "x"})


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bwrap") is None
                    or shutil.which("dpkg") is None, reason="needs root, bwrap and dpkg")
def test_a_program_in_a_bound_environment_runs_in_the_root_and_sees_only_it(tmp_path):
    root = rootfs.ensure_rootfs(tmp_path / "cache")  # glibc and dash: enough for a shell
    prefix = tmp_path / "env"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "hello").write_text(
        "#!/bin/sh\necho \"$0 $FOO\"\necho written > /bench/out/file\n"
        "test -e /usr/bin/python3 && echo host-python\n"
        "(: > /usr/x) 2>/dev/null && echo root-writable\n"
        ": > /tmp/x && echo tmp-writable\n")
    (prefix / "bin" / "hello").chmod(0o755)
    (tmp_path / "out").mkdir()
    binds = [anchor.Bind(prefix, PurePosixPath(str(prefix))),
             anchor.Bind(tmp_path / "out", PurePosixPath("/bench/out"), writable=True)]
    result = anchor.run_in_anchor(root, binds, [str(prefix / "bin" / "hello")], env={"FOO": "bar"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{prefix / 'bin' / 'hello'} bar", "tmp-writable"]
    assert (tmp_path / "out" / "file").read_text() == "written\n"
    assert not (root / "usr" / "x").exists()


def test_a_made_root_is_reused_without_debootstrap(tmp_path, monkeypatch):
    made = tmp_path / f"{anchor.ANCHOR.suite}-{anchor.ANCHOR.package}"
    made.mkdir()
    (made / ".ftforge-anchor").write_text("trixie python3.13\n")
    monkeypatch.setattr(anchor, "_debootstrap", lambda *a: pytest.fail("debootstrap ran"))
    assert anchor.ensure_anchor_root(cache=tmp_path) == made


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("debootstrap") is None,
                    reason="needs root and debootstrap")
def test_a_failed_debootstrap_names_its_log_and_caches_nothing(tmp_path):
    with pytest.raises(BenchmarkError, match=r"\.log: debootstrap of Debian trixie") as caught:
        anchor.ensure_anchor_root(cache=tmp_path, mirror="http://127.0.0.1:9/debian")
    assert "reachable" in caught.value.hint
    assert not (tmp_path / "trixie-python3.13" / ".ftforge-anchor").exists()
