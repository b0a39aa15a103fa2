"""Where ftforge keeps its caches. One place, overridable by environment."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["builds_dir", "cache_root", "pkgs_dir", "source_mirror_dir", "toolchain_channel_dir"]


def cache_root() -> Path:
    """``$FTFORGE_CACHE`` or ``~/.cache/ftforge``."""
    env = os.environ.get("FTFORGE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ftforge"


def source_mirror_dir() -> Path:
    env = os.environ.get("FTFORGE_SOURCE_MIRROR")
    return Path(env).expanduser() if env else cache_root() / "sources"


def builds_dir() -> Path:
    return cache_root() / "builds"


def toolchain_channel_dir() -> Path:
    return cache_root() / "toolchain-channel"


def pkgs_dir() -> Path:
    """The package cache py-rattler installs from."""
    return cache_root() / "pkgs"
