"""A root filesystem with glibc and a shell and nothing else: where "self-contained" is tested.

Assembled from the build machine's own Debian packages ``libc6`` (glibc) and
``dash`` (``/bin/sh``), file by file as ``dpkg -L`` lists them (documentation
left out), and cached under ``~/.cache/ftforge/rootfs/``. A conda environment
is copied into it *at the same absolute path* it was installed at (conda
packages have their prefix written into them), ``/proc`` is mounted (``$ORIGIN``
rpaths need ``/proc/self/exe``) and commands run with ``chroot`` and an empty
environment. Needs root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import paths
from .atomic import built_once
from .errors import FtforgeError

__all__ = ["PACKAGES", "copy_into", "ensure_rootfs", "mounted_proc", "run_in"]

PACKAGES: tuple[str, ...] = ("libc6", "dash")
_SKIP = ("/usr/share/doc", "/usr/share/man", "/usr/share/lintian", "/usr/share/locale")
_LOADER = "lib64/ld-linux-x86-64.so.2"


def _dpkg_files(package: str) -> list[str]:
    result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FtforgeError(f"dpkg -L {package}: not installed on this machine",
                           hint="the root filesystem is assembled from the build machine's "
                           "Debian packages libc6 and dash")
    return [line for line in result.stdout.splitlines()
            if line.startswith("/") and not line.startswith(_SKIP)]


def _version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().replace(":", "_").replace("~", "_")


def ensure_rootfs(cache: Path | None = None) -> Path:
    """The cached root filesystem (built once per libc6/dash version)."""
    key = "-".join(f"{p}_{_version(p)}" for p in PACKAGES)
    root = (cache or paths.cache_root() / "rootfs") / key
    # one assembler; the others wait, then reuse
    return built_once(root, ".ftforge-rootfs", _assemble)


def _assemble(part: Path) -> str:
    """Fill ``part`` with the packages' files; the marker's text."""
    part.mkdir(parents=True)
    for package in PACKAGES:
        for name in _dpkg_files(package):
            source = Path(name)
            target = part / name.lstrip("/")
            if source.is_symlink():
                target.parent.mkdir(parents=True, exist_ok=True)
                link = os.readlink(source)
                if not target.is_symlink():
                    target.symlink_to(link)
                if source.is_dir():  # usrmerge: /lib -> usr/lib
                    real = (part / link.lstrip("/")) if link.startswith("/") \
                        else target.parent / link
                    real.mkdir(parents=True, exist_ok=True)
            elif source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    loader = part / _LOADER
    if not loader.exists():
        loader.parent.mkdir(parents=True, exist_ok=True)
        loader.symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    for directory in ("proc", "tmp", "dev"):
        (part / directory).mkdir(exist_ok=True)
    (part / "tmp").chmod(0o1777)
    return " ".join(PACKAGES) + "\n"


def copy_into(root: Path, prefix: Path) -> Path:
    """Copy the environment at ``prefix`` to the same path inside ``root``."""
    prefix = prefix.resolve()
    target = root / str(prefix).lstrip("/")
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(prefix, target, symlinks=True)
    return target


@contextlib.contextmanager
def mounted_proc(root: Path) -> Iterator[Path]:
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(proc)], check=False)


def run_in(root: Path, argv: Sequence[str], *, env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``root`` with ``chroot`` and only ``env`` (plus a minimal PATH)."""
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    environment = {"PATH": "/bin:/usr/bin", "HOME": "/tmp", "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run([chroot, str(root), *argv], capture_output=True, text=True,
                          env=environment, timeout=timeout, check=False)
