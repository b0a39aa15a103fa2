"""Create conda environments with py-rattler, the way ``conda create`` would."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from . import paths
from .errors import FtforgeError, SolveError

__all__ = [
    "CHANNEL_PRIORITIES",
    "ChannelPriorityName",
    "SolvedPackage",
    "channel_url",
    "create",
    "installed_packages",
    "solve",
]

ChannelPriorityName = Literal["strict", "disabled"]
CHANNEL_PRIORITIES: tuple[str, ...] = get_args(ChannelPriorityName)


@dataclass(frozen=True)
class SolvedPackage:
    name: str
    version: str
    build: str
    channel: str
    subdir: str
    depends: tuple[str, ...]
    track_features: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}={self.build}"


def channel_url(channel: str) -> str:
    """A directory becomes a ``file://`` URL; URLs and names pass through."""
    if "://" in channel:
        return channel
    path = Path(channel).expanduser()
    if path.exists() or channel.startswith((".", "/", "~")):
        if not (path / "noarch" / "repodata.json").is_file():
            raise FtforgeError(
                f"{path}: not a channel (no noarch/repodata.json)",
                hint="publish packages into it with `ftforge channel publish` first",
            )
        return path.resolve().as_uri()
    return channel


def _client():
    """An HTTP client that also reads ``oci://`` channels (rattler's OCI middleware)."""
    from rattler.networking import AuthenticationMiddleware, Client, OciMiddleware

    return Client([AuthenticationMiddleware(), OciMiddleware()])


def _gateway():
    from rattler import Gateway

    return Gateway(cache_dir=paths.cache_root() / "repodata", client=_client())


def _priority(name: ChannelPriorityName):
    from rattler import ChannelPriority

    return ChannelPriority.Strict if name == "strict" else ChannelPriority.Disabled


def _to_solved(record) -> SolvedPackage:
    return SolvedPackage(
        name=record.name.normalized, version=str(record.version), build=str(record.build),
        channel=str(record.channel or ""), subdir=record.subdir,
        depends=tuple(record.depends), track_features=tuple(record.track_features or ()),
    )


async def _solve_records(channels: Sequence[str], specs: Sequence[str],
                         priority: ChannelPriorityName, pinned: Sequence = ()) -> list:
    from rattler import Channel, VirtualPackage
    from rattler import solve as rattler_solve
    from rattler.exceptions import SolverError

    try:
        return await rattler_solve(
            [Channel(channel_url(c)) for c in channels], list(specs),
            gateway=_gateway(),
            channel_priority=_priority(priority),
            virtual_packages=VirtualPackage.detect(),
            pinned_packages=list(pinned),
            channel_relations="disabled",
        )
    except SolverError as exc:
        raise SolveError(
            f"cannot solve {' '.join(specs)} from {', '.join(channels)}:\n{exc}",
            hint="check the channel holds packages for these specs and this ABI",
        ) from None


def solve(channels: Sequence[str], specs: Sequence[str], *,
          priority: ChannelPriorityName = "strict") -> list[SolvedPackage]:
    """Solve without installing (a dry run)."""
    records = asyncio.run(_solve_records(channels, specs, priority))
    return sorted((_to_solved(r) for r in records), key=lambda p: p.name)


def create(prefix: Path, channels: Sequence[str], specs: Sequence[str], *,
           priority: ChannelPriorityName = "strict", force: bool = False) -> list[SolvedPackage]:
    """Solve ``specs`` and install them into a new environment at ``prefix``."""
    from rattler import install

    if not specs:
        raise FtforgeError("nothing to install", hint="name at least one spec, e.g. python-freethreading")
    prefix = prefix.resolve()
    if prefix.exists() and any(prefix.iterdir()):
        if not force:
            raise FtforgeError(
                f"{prefix} already exists and is not empty",
                hint="choose a new --prefix, or pass --force to replace it",
            )
        shutil.rmtree(prefix)

    async def run() -> list:
        records = await _solve_records(channels, specs, priority)
        await install(records, target_prefix=prefix, cache_dir=paths.pkgs_dir(),
                      show_progress=False, client=_client())
        return records

    records = asyncio.run(run())
    return sorted((_to_solved(r) for r in records), key=lambda p: p.name)


def installed_packages(prefix: Path) -> dict[str, dict]:
    """``conda-meta/*.json`` of an environment, by package name."""
    meta = prefix / "conda-meta"
    out = {}
    for path in sorted(meta.glob("*.json")):
        data = json.loads(path.read_text())
        out[data["name"]] = data
    return out
