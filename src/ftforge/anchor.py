"""The performance anchor: Debian trixie's ``python3.13`` in a trixie root filesystem.

An interpreter built by someone else (Debian: PGO + LTO, GIL) is the yardstick
ftforge's interpreters are measured against. The root filesystem is made once
with ``debootstrap --variant=minbase`` from the Debian mirror this machine's
apt already uses (:func:`ftforge.build.seed.debian_mirror_uri`), with
``python3.13`` included, and cached under ``~/.cache/ftforge/anchor-rootfs/``.

Every interpreter of a comparison runs inside that root with bubblewrap, so
all of them see the same kernel, glibc and userland: the root's top-level
directories are bound read-only onto bubblewrap's own empty root, conda
environments are bound read-only at their own absolute paths (conda packages
have their prefix written into them), and ``/tmp`` is a fresh tmpfs. Needs
root (debootstrap) and ``bwrap``.

This module is the host side only; :mod:`ftforge.perfcompare` reads the results.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import paths
from .atomic import built_once
from .errors import BenchmarkError, MissingSystemDependency

__all__ = ["ANCHOR", "AnchorSpec", "Bind", "bwrap_argv", "debian_version", "ensure_anchor_root",
           "installed_version", "run_in_anchor"]


@dataclass(frozen=True)
class AnchorSpec:
    """Which Debian suite and which of its interpreters the anchor is."""

    suite: str
    package: str
    upstream_version: str
    """The CPython release the Debian package must be (its version before the ``-``)."""
    include: tuple[str, ...]
    """Packages debootstrap adds to the minimal base."""

    @property
    def python(self) -> str:
        return f"/usr/bin/{self.package}"


ANCHOR = AnchorSpec(suite="trixie", package="python3.13", upstream_version="3.13.5",
                    include=("python3.13",))

# Directories bubblewrap makes fresh instead of taking them from the root.
_FRESH = frozenset({"dev", "proc", "sys", "tmp", "run"})
# Directories that hold the root's userland: nothing may be bound over them.
_SYSTEM = frozenset({"usr", "etc", "var", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "boot"})
_MARKER = ".ftforge-anchor"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def ensure_anchor_root(spec: AnchorSpec = ANCHOR, *, cache: Path | None = None,
                       mirror: str | None = None) -> Path:
    """The cached root filesystem for ``spec`` (made with debootstrap on first use)."""
    root = (cache or paths.cache_root() / "anchor-rootfs") / f"{spec.suite}-{spec.package}"
    # one debootstrap; the others wait, then reuse
    return built_once(root, _MARKER, lambda part: _debootstrap(spec, root, part, mirror))


def _debootstrap(spec: AnchorSpec, root: Path, part: Path, mirror: str | None) -> str:
    """debootstrap into ``part``; the marker's text (``root``'s name is the messages')."""
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).is_file():
        raise MissingSystemDependency(
            f"debootstrap: not installed, so the {spec.suite} root filesystem for "
            f"{spec.package} cannot be made",
            hint="run scripts/setup (or apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise BenchmarkError(f"{root}: debootstrap of Debian {spec.suite} needs root",
                             hint="run the benchmark as root (it also runs bubblewrap)")
    if mirror is None:
        from .build.seed import debian_mirror_uri
        mirror = debian_mirror_uri()
    log = root.with_name(root.name + ".log")
    with open(log, "w") as out:
        result = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(spec.include)}",
             spec.suite, str(part), mirror],
            stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise BenchmarkError(
            f"{log}: debootstrap of Debian {spec.suite} with {spec.package} failed "
            f"(exit {result.returncode})",
            hint="read the log; check that the Debian mirror apt uses is reachable")
    installed_version(part, spec)  # refuse a root without the interpreter before caching it
    return f"{spec.suite} {' '.join(spec.include)}\n"


def debian_version(status_text: str, package: str) -> str | None:
    """The installed version of ``package`` in a dpkg ``status`` file's text, or None."""
    for paragraph in re.split(r"\n\s*\n", status_text):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # continuation lines (descriptions, conffiles)
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields.get("Version")
    return None


def installed_version(root: Path, spec: AnchorSpec = ANCHOR) -> str:
    """Debian's version of the anchor interpreter in ``root``; it must be the expected release."""
    status = root / "var" / "lib" / "dpkg" / "status"
    try:
        text = status.read_text(errors="replace")
    except OSError as exc:
        raise BenchmarkError(f"{status}: unreadable ({exc.strerror}); {root} is not a Debian root",
                             hint=f"delete {root} and run again to make it afresh") from None
    version = debian_version(text, spec.package)
    if version is None:
        raise BenchmarkError(f"{status}: {spec.package} is not installed in {root}",
                             hint=f"delete {root} and run again to make it afresh")
    upstream = version.split(":", 1)[-1].rsplit("-", 1)[0]
    if upstream != spec.upstream_version:
        raise BenchmarkError(
            f"{status}: Debian {spec.suite}'s {spec.package} is {version}, "
            f"not {spec.upstream_version}",
            hint="the comparison is only fair against the same CPython release: "
            "update AnchorSpec.upstream_version (and the recipes) or pin the Debian snapshot")
    return version


@dataclass(frozen=True)
class Bind:
    """A host directory seen at ``target`` inside the root."""

    source: Path
    target: PurePosixPath
    writable: bool = False


def bwrap_argv(root: Path, binds: Sequence[Bind], argv: Sequence[str],
               env: Mapping[str, str]) -> list[str]:
    """The bubblewrap command that runs ``argv`` in ``root`` with ``binds`` and only ``env``."""
    tops = {}
    for bind in binds:
        if not bind.target.is_absolute() or ".." in bind.target.parts or len(bind.target.parts) < 2:
            raise BenchmarkError(f"{bind.source}: cannot be bound at {bind.target} in {root}",
                                 hint="bind targets are absolute paths below a top-level directory")
        top = bind.target.parts[1]
        if top in _SYSTEM or top in ("dev", "proc", "sys"):
            raise BenchmarkError(
                f"{bind.source}: would be bound at {bind.target}, over the root's own /{top}",
                hint="install the conda environment outside /usr, /etc, /var and the like")
        tops[top] = bind
    cmd = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--clearenv"]
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name in _FRESH or name.startswith(".") or name in tops:
            continue
        if entry.is_symlink():
            cmd += ["--symlink", str(Path(entry).readlink()), f"/{name}"]
        elif entry.is_dir():
            cmd += ["--ro-bind", str(entry), f"/{name}"]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in sorted(tops):
        if top not in _FRESH:
            cmd += ["--tmpfs", f"/{top}"]  # an empty, writable place for the mount points
    for bind in binds:
        cmd += ["--bind" if bind.writable else "--ro-bind", str(bind.source), str(bind.target)]
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise BenchmarkError(f"{key!r}: not an environment variable name")
        cmd += ["--setenv", key, value]
    return [*cmd, "--", *argv]


def run_in_anchor(root: Path, binds: Sequence[Bind], argv: Sequence[str], *,
                  env: Mapping[str, str] | None = None, timeout: float = 3600,
                  ) -> subprocess.CompletedProcess:
    """Run ``argv`` in the anchor root (bubblewrap), output captured as text."""
    if shutil.which("bwrap") is None:
        raise MissingSystemDependency(
            f"bwrap: not installed, so interpreters cannot run in {root}",
            hint="run scripts/setup (apt-get install bubblewrap)")
    environment = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run(bwrap_argv(root, binds, argv, environment), capture_output=True,
                          text=True, timeout=timeout, check=False)
