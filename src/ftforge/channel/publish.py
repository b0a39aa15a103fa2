"""Publish packages to a channel directory (minimal: copy + index; hardened in issue 5)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..build.mirror import sha256_of
from ..errors import ChannelError
from .layout import index_channel, mark_channel, subdir_of

__all__ = ["PublishResult", "publish"]


@dataclass(frozen=True)
class PublishResult:
    added: list[Path]
    unchanged: list[Path]


def publish(packages: Iterable[Path], channel: Path) -> PublishResult:
    packages = [Path(p) for p in packages]
    for pkg in packages:
        if not pkg.is_file():
            raise ChannelError(f"{pkg}: no such package file",
                               hint="build it first with `ftforge build`")
        if not pkg.name.endswith((".conda", ".tar.bz2")):
            raise ChannelError(f"{pkg}: not a conda package (.conda or .tar.bz2)")
    mark_channel(channel)
    added, unchanged = [], []
    for pkg in packages:
        target = channel / subdir_of(pkg) / pkg.name
        if target.exists():
            if sha256_of(target) == sha256_of(pkg):
                unchanged.append(target)
                continue
            raise ChannelError(
                f"{target.name} is already in {channel} with different content",
                hint="published packages are immutable: bump the build number and rebuild",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(pkg, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        added.append(target)
    index_channel(channel)
    return PublishResult(added, unchanged)
