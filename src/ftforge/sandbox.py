"""Run code ftforge did not write (an sdist's in-tree PEP 517 backend) in a sandbox.

The sandbox is bubblewrap (Debian's ``bubblewrap`` package), as used by
Flatpak. What the code inside gets:

- no network (``--unshare-net``: only a loopback device with nothing on it);
- no home and no secrets: the root is empty except read-only ``/usr`` (and the
  ``/bin``, ``/lib*`` links), the interpreter's prefix and the paths the caller
  names read-only; ``/root``, ``/home``, ``/etc``, ``/var``, ``/run`` and the
  project are absent; ``/tmp`` is a small private tmpfs;
- a clean environment (``--clearenv``; only the variables the caller passes);
- a user namespace with no capabilities, seen as ``nobody`` (uid 65534), in
  its own PID, IPC, UTS and cgroup namespaces, in a new session (no terminal
  injection), killed with its parent;
- writes only to the directories the caller names (the unpacked sdist and a
  scratch directory);
- limits from :class:`ftforge.limits.SourceLimits`: wall time
  (``backend_seconds``, then the whole PID namespace is killed), address space
  (``backend_memory_bytes``, ``RLIMIT_AS``), and the largest file it may
  write (``max_unpacked_bytes``, ``RLIMIT_FSIZE``).

Not limited: the number of processes (``RLIMIT_NPROC`` does not bind root, the
invoking user here) and CPU shares; a fork bomb is ended by the wall-time
limit, not prevented.
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import FtforgeError, MissingSystemDependency
from .limits import SourceLimits

__all__ = ["SandboxError", "available", "command", "read_written", "require", "run"]

NOBODY = 65534
_TMPFS_BYTES = 256 << 20
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


class SandboxError(FtforgeError):
    """Sandboxed code failed, ran out of time or memory, or could not start."""


def require() -> str:
    """bwrap's path, or :class:`MissingSystemDependency` (call before preparing work)."""
    return _bwrap()


def _bwrap() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise MissingSystemDependency(
            "bubblewrap (bwrap) is not installed: ftforge runs an sdist's own build "
            "backend only inside its sandbox",
            hint="apt-get install bubblewrap (scripts/setup installs it)")
    return found


def available() -> bool:
    """bubblewrap is installed and can make its namespaces here."""
    try:
        result = subprocess.run([*command(["/bin/true"], cwd=Path("/"))], capture_output=True,
                                timeout=30, check=False)
    except (FtforgeError, OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _system_paths() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for link in _SYSTEM_LINKS:
        path = Path(link)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), link]
        elif path.is_dir():
            args += ["--ro-bind", link, link]
    # the dynamic loader's cache; nothing else from /etc
    if Path("/etc/ld.so.cache").is_file():
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def command(argv: Sequence[str], *, cwd: Path, readable: Sequence[Path | tuple[Path, str]] = (),
            writable: Sequence[Path] = (), env: Mapping[str, str] | None = None) -> list[str]:
    """The bwrap command line that runs ``argv`` as described in the module docstring.

    ``readable`` entries are bound read-only at the same path, or ``(path, where)``
    at ``where`` inside."""
    args = [_bwrap(), "--unshare-all", "--unshare-user", "--uid", str(NOBODY),
            "--gid", str(NOBODY), "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--clearenv", "--hostname", "sandbox",
            *_system_paths(),
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(_TMPFS_BYTES), "--tmpfs", "/tmp"]
    # the interpreter's own prefix (a venv's python links to it), read-only
    binds = [(Path(sys.base_prefix).resolve(), str(Path(sys.base_prefix).resolve()))]
    binds += [(r[0], r[1]) if isinstance(r, tuple) else (Path(r), str(r)) for r in readable]
    for path, where in binds:
        args += ["--ro-bind", str(path), where]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    variables = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                 "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    for key, value in variables.items():
        args += ["--setenv", key, value]
    return [*args, "--chdir", str(cwd), "--", *argv]


def _limits(limits: SourceLimits):
    def apply() -> None:  # runs in the child before bwrap starts; inherited by everything
        resource.setrlimit(resource.RLIMIT_AS, (limits.backend_memory_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_unpacked_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run(argv: Sequence[str], *, what: str, cwd: Path,
        readable: Sequence[Path | tuple[Path, str]] = (),
        writable: Sequence[Path] = (), env: Mapping[str, str] | None = None,
        limits: SourceLimits = SourceLimits()) -> subprocess.CompletedProcess:
    """Run ``argv`` sandboxed; a :class:`SandboxError` naming ``what`` if it fails,
    takes longer than ``backend_seconds`` or cannot start."""
    cmd = command(argv, cwd=cwd, readable=readable, writable=writable, env=env)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                timeout=limits.backend_seconds, preexec_fn=_limits(limits),
                                stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{what}: stopped after {limits.backend_seconds:g} s "
                           "(SourceLimits.backend_seconds)",
                           hint="the sdist's build backend hangs or is hostile") from None
    except OSError as exc:
        raise SandboxError(f"{what}: the sandbox could not start ({exc})",
                           hint="check that bubblewrap works here: bwrap --unshare-all "
                           "--ro-bind /usr /usr true") from None
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])[-300:]
        raise SandboxError(f"{what}: failed in the sandbox (exit {result.returncode}): {tail}",
                           hint="the backend may need the network or more memory "
                           f"(SourceLimits.backend_memory_bytes = "
                           f"{limits.backend_memory_bytes}); ftforge does not give it either")
    return result


def read_written(path: Path, *, what: str, max_bytes: int) -> bytes | None:
    """A file a sandboxed process wrote, read without trusting it: opened with
    ``O_NOFOLLOW | O_NONBLOCK`` (a symlink is refused, a FIFO or device cannot block),
    checked with ``fstat`` to be a regular file and read up to ``max_bytes``.
    None if it does not exist; a :class:`SandboxError` naming ``what`` otherwise."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SandboxError(f"{what}: its answer {path.name} cannot be opened safely "
                           f"({exc.strerror}: a symlink?)",
                           hint="the sandboxed code is hostile; nothing else ran") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SandboxError(f"{what}: its answer {path.name} is not a regular file "
                               "(a FIFO, device or directory)",
                               hint="the sandboxed code is hostile; nothing else ran")
        if info.st_size > max_bytes:
            raise SandboxError(f"{what}: its answer {path.name} has {info.st_size} bytes; "
                               f"at most {max_bytes} are read",
                               hint="the sandboxed code is broken or hostile")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise SandboxError(f"{what}: its answer {path.name} grows past {max_bytes} "
                                   "bytes", hint="the sandboxed code is broken or hostile")
        return b"".join(chunks)
    finally:
        os.close(fd)
