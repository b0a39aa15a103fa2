"""What a channel directory is, and indexing it with py-rattler."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..errors import ChannelError, OutputInsideChannelError

__all__ = [
    "CHANNEL_MARKER",
    "PACKAGE_SUFFIXES",
    "SUBDIRS",
    "channel_root_of",
    "ensure_not_inside_channel",
    "index_channel",
    "internal_dir",
    "is_channel",
    "known_subdirs",
    "mark_channel",
    "require_channel",
    "served_subdirs",
    "subdir_of",
]

CHANNEL_MARKER = ".ftforge-channel"
"""Written by ``ftforge channel publish`` at a channel's root."""

SUBDIRS = ("noarch", "linux-64", "linux-aarch64")
"""The subdirs ftforge builds for; a channel serves any of :func:`known_subdirs`."""

_KNOWN: frozenset[str] = frozenset()


def known_subdirs() -> frozenset[str]:
    """Every conda platform subdir, as py-rattler knows them (``noarch``, ``linux-64``...).
    A package's ``subdir`` must be one of these: it becomes a directory name."""
    global _KNOWN
    if not _KNOWN:
        from rattler import Subdir

        _KNOWN = frozenset(str(s) for s in Subdir.all())
    return _KNOWN

PACKAGE_SUFFIXES = (".conda", ".tar.bz2")

INTERNAL_DIR = ".ftforge"
"""Publisher state inside a channel (lock, staging, shadow index, log); never served."""


def internal_dir(root: Path) -> Path:
    return root / INTERNAL_DIR


def served_subdirs(root: Path) -> list[str]:
    """The platform subdirs of a channel (``noarch`` always first)."""
    known = known_subdirs()
    found = sorted(p.name for p in root.iterdir()
                   if p.name in known and p.is_dir() and not p.is_symlink())
    return ["noarch"] + [s for s in found if s != "noarch"]


def mark_channel(root: Path) -> None:
    """Make ``root`` a channel: it must not exist, be empty, or be a channel already."""
    root = Path(root)
    if root.exists() or root.is_symlink():
        if not root.is_dir():
            raise ChannelError(f"{root}: is a file, not a channel directory",
                               hint="give a directory (new or already a channel)")
        if not is_channel(root) and any(root.iterdir()):
            raise ChannelError(f"{root}: a directory with files that is not a channel "
                               f"(no {CHANNEL_MARKER})",
                               hint="publish into a new or empty directory, or an existing "
                               "channel")
    try:
        _make(root)
    except OSError as exc:
        raise ChannelError(f"{root}: cannot create the channel ({exc.strerror})",
                           hint="check that the directory is writable") from None


def require_channel(root: Path) -> None:
    """Refuse (before touching anything) a path that is not an ftforge channel."""
    root = Path(root)
    if not root.is_dir():
        raise ChannelError(f"{root}: no such channel directory",
                           hint="give the directory you publish into")
    if not is_channel(root):
        raise ChannelError(f"{root}: not a channel published by ftforge (no {CHANNEL_MARKER})",
                           hint="publish into it first with `ftforge channel publish`")


def _make(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "noarch").mkdir(exist_ok=True)
    marker = root / CHANNEL_MARKER
    if not marker.exists():
        marker.write_text("published by ftforge; do not build into this directory\n")


def is_channel(path: Path) -> bool:
    return (path / CHANNEL_MARKER).is_file()


def channel_root_of(path: Path) -> Path | None:
    path = path.resolve()
    for candidate in (path, *path.parents):
        if is_channel(candidate):
            return candidate
    return None


def ensure_not_inside_channel(path: Path, *, what: str) -> None:
    root = channel_root_of(path)
    if root is not None:
        raise OutputInsideChannelError(
            f"the {what} {path} is inside the published channel {root}",
            hint="build into a separate directory (e.g. ./output) and publish from there "
            "with `ftforge channel publish`; never build straight into a channel",
        )


def subdir_of(package: Path) -> str:
    """The subdir a package belongs in, from its ``info/index.json``."""
    import json

    from conda_package_streaming.package_streaming import stream_conda_info

    try:
        for tar, member in stream_conda_info(str(package)):
            if member.name == "info/index.json":
                data = json.load(tar.extractfile(member))
                return data.get("subdir") or "noarch"
    except Exception as exc:
        raise ChannelError(
            f"{package}: not a readable conda package ({exc})",
            hint="rebuild it; a .conda or .tar.bz2 from ftforge build is expected",
        ) from None
    raise ChannelError(f"{package}: has no info/index.json", hint="rebuild the package")


def index_channel(root: Path) -> None:
    """(Re)write every subdir's repodata.json with py-rattler's indexer."""
    from rattler.index import index_fs

    (root / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
