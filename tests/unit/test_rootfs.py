"""The bare root filesystem: glibc and a shell from the build machine, nothing else."""

import os
import shutil

import pytest

from ftforge import rootfs

pytestmark = pytest.mark.skipif(shutil.which("dpkg") is None, reason="assembled from dpkg")


def test_has_glibc_and_a_shell_and_nothing_else(tmp_path):
    root = rootfs.ensure_rootfs(tmp_path / "cache")
    assert (root / "lib/x86_64-linux-gnu/libc.so.6").exists()
    assert (root / "lib64/ld-linux-x86-64.so.2").exists()
    assert (root / "bin/sh").exists()
    libs = {p.name for p in root.rglob("*.so*")}
    assert not {"libssl.so.3", "libz.so.1", "libstdc++.so.6", "libffi.so.8"} & libs
    assert not (root / "usr/bin/python3").exists()
    assert rootfs.ensure_rootfs(tmp_path / "cache") == root  # cached


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chroot") is None, reason="needs root")
def test_an_environment_runs_at_its_own_path_with_proc_mounted(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(rootfs.ensure_rootfs(tmp_path / "cache"), root, symlinks=True)
    prefix = tmp_path / "env"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "hello").write_text("#!/bin/sh\necho hello from $0\n")
    (prefix / "bin" / "hello").chmod(0o755)
    rootfs.copy_into(root, prefix)
    with rootfs.mounted_proc(root):
        result = rootfs.run_in(root, [str(prefix / "bin" / "hello")])
        exe = rootfs.run_in(root, ["/bin/sh", "-c", "test -e /proc/self/exe && echo proc"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hello from {prefix / 'bin' / 'hello'}\n"
    assert exe.stdout == "proc\n"
    assert not (root / "proc" / "self").exists()  # unmounted afterwards
