"""Small, metadata-faithful conda packages made without a build.

Used where a real build would only cost time: the channel benchmarks (5,000
packages), the audit's corpus of bad packages (which need to be *wrong* in one
precise way), and solver scenarios that need a package with a given version
and build string. Every package written here says so in ``info/about.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Member", "SyntheticPackage", "repack", "write_package"]


@dataclass(frozen=True)
class Member:
    """A raw archive member, for packages that must be malformed on purpose."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    size: int | None = None
    """Header size when it must lie about the data (tar-bomb headers)."""


@dataclass
class SyntheticPackage:
    name: str
    version: str
    build: str
    build_number: int = 0
    subdir: str = "noarch"
    depends: list[str] = field(default_factory=list)
    constrains: list[str] = field(default_factory=list)
    track_features: str = ""
    noarch: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    python_site_packages_path: str | None = None
    index_overrides: dict = field(default_factory=dict)
    paths_overrides: dict[str, dict] = field(default_factory=dict)
    """Per-path fields forced into paths.json (to make it lie)."""
    extra_members: list[Member] = field(default_factory=list)
    """Added to the pkg archive without a paths.json entry."""

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"

    def index_json(self) -> dict:
        index = {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": self.build_number,
            "subdir": self.subdir,
            "depends": list(self.depends),
            "constrains": list(self.constrains),
            "license": "BSD-3-Clause",
            "timestamp": 1764028800000,
        }
        if self.subdir != "noarch":
            index["platform"], index["arch"] = self.subdir.split("-")
        if self.noarch:
            index["noarch"] = self.noarch
        if self.track_features:
            index["track_features"] = self.track_features
        if self.python_site_packages_path:
            index["python_site_packages_path"] = self.python_site_packages_path
        index.update(self.index_overrides)
        return index

    def paths_json(self) -> dict:
        paths = []
        for rel, data in sorted(self.files.items()):
            entry = {
                "_path": rel,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size_in_bytes": len(data),
            }
            entry.update(self.paths_overrides.get(rel, {}))
            paths.append(entry)
        return {"paths": paths, "paths_version": 1}


def _add(tar: tarfile.TarFile, member: Member) -> None:
    info = tarfile.TarInfo(member.name)
    info.type = member.type
    info.linkname = member.linkname
    info.mode = 0o644
    info.mtime = 1764028800
    if member.type == tarfile.REGTYPE:
        info.size = len(member.data) if member.size is None else member.size
        tar.addfile(info, io.BytesIO(member.data))
    else:
        tar.addfile(info)


def _members(pkg: SyntheticPackage) -> tuple[list[Member], list[Member]]:
    about = {"summary": f"synthetic package {pkg.name} made by ftforge (no build)"}
    info = [
        Member("info/index.json", json.dumps(pkg.index_json(), indent=2).encode()),
        Member("info/paths.json", json.dumps(pkg.paths_json(), indent=2).encode()),
        Member("info/about.json", json.dumps(about).encode()),
    ]
    files = [Member(rel, data) for rel, data in sorted(pkg.files.items())]
    return info, files + list(pkg.extra_members)


def write_package(pkg: SyntheticPackage, out_dir: Path, fmt: str = ".conda") -> Path:
    """Write ``<out_dir>/<name>-<version>-<build><fmt>`` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info, files = _members(pkg)
    if fmt == ".tar.bz2":
        target = out_dir / f"{pkg.stem}.tar.bz2"
        with tarfile.open(target, "w:bz2") as tar:
            for member in info + files:
                _add(tar, member)
        return target
    if fmt != ".conda":
        raise ValueError(f"unknown package format {fmt!r}")
    from conda_package_streaming.create import conda_builder

    with conda_builder(pkg.stem, out_dir, compression_level=3) as tar:
        for member in info + files:
            _add(tar, member)
    return out_dir / f"{pkg.stem}.conda"


def repack(package: Path, out_dir: Path, **index_changes: object) -> Path:
    """A copy of a real package with ``info/index.json`` changed (e.g. a higher
    version or build number): the same files, so it installs and runs, under a
    name that says what changed. Used where a scenario needs a newer build of a
    real package without building it again."""
    import json

    from conda_package_streaming.create import conda_builder
    from conda_package_streaming.package_streaming import stream_conda_component

    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    index: dict = {}
    for component in ("info", "pkg"):
        for tar, member in stream_conda_component(str(package), component=component):
            data = tar.extractfile(member).read() if member.isfile() else None
            if member.name == "info/index.json":
                index = json.loads(data)
                index.update(index_changes)
                data = json.dumps(index, indent=2).encode()
                member.size = len(data)
            members.append((member, data))
    stem = f"{index['name']}-{index['version']}-{index['build']}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with conda_builder(stem, out_dir, compression_level=3) as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return out_dir / f"{stem}.conda"
