"""PyPI's JSON API and sdist downloads (cached, sha256-verified).

Two index behaviours are handled: file URLs may be relative to the JSON
document (``../../packages/...``) or absolute; both are resolved against the
response URL. Only the project document (``/pypi/NAME/json``) is used: a
release's files come from its ``releases`` entry, its metadata from the sdist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from .build.mirror import sha256_of
from .errors import FtforgeError

__all__ = [
    "DistFile",
    "Fetcher",
    "Project",
    "PyPIError",
    "canonical_sdist_url",
    "download",
    "fetch_project",
    "index_url",
    "normalize",
    "select_sdist",
]

DEFAULT_INDEX = "https://pypi.org/pypi"


class PyPIError(FtforgeError):
    """A project, release or file PyPI cannot give us."""


def normalize(name: str) -> str:
    """PEP 503 normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def index_url() -> str:
    return os.environ.get("FTFORGE_PYPI_URL", DEFAULT_INDEX).rstrip("/")


@dataclass(frozen=True)
class DistFile:
    filename: str
    url: str
    sha256: str
    packagetype: str
    yanked: bool = False


@dataclass(frozen=True)
class Project:
    name: str
    latest: str
    releases: dict[str, tuple[DistFile, ...]]
    info: dict


# A fetcher returns (final URL, body) and raises urllib.error.HTTPError on 4xx/5xx.
Fetcher = Callable[[str], tuple[str, bytes]]


def _urlopen(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.geturl(), response.read()


def fetch_project(name: str, *, fetch: Fetcher = _urlopen) -> Project:
    url = f"{index_url()}/{normalize(name)}/json"
    try:
        final_url, body = fetch(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise PyPIError(f"'{name}' is not a project on PyPI ({url} answered 404)",
                            hint="check the spelling: the name as on pypi.org") from None
        raise PyPIError(f"PyPI answered {exc.code} for {url}", hint="try again later") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PyPIError(f"cannot reach PyPI at {url}: {exc}",
                        hint="check the network, or set FTFORGE_PYPI_URL") from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise PyPIError(f"{url} did not return JSON", hint="set FTFORGE_PYPI_URL to a JSON API") from None
    releases = {
        version: tuple(
            DistFile(
                filename=f["filename"],
                url=urllib.parse.urljoin(final_url, f["url"]),
                sha256=f.get("digests", {}).get("sha256", ""),
                packagetype=f.get("packagetype", ""),
                yanked=bool(f.get("yanked")),
            )
            for f in files
        )
        for version, files in (doc.get("releases") or {}).items()
    }
    info = doc.get("info") or {}
    return Project(info.get("name", name), info.get("version", ""), releases, info)


def _version_key(text: str):
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def select_sdist(project: Project, version: str | None) -> tuple[str, DistFile]:
    """The sdist of ``version`` (default: the latest non-prerelease with an sdist)."""
    if version is None:
        candidates = [v for v in project.releases
                      if _version_key(v)[0] and not Version(v).is_prerelease]
        version = project.latest if project.latest in project.releases else None
        if version is None and candidates:
            version = max(candidates, key=_version_key)
        if version is None:
            raise PyPIError(f"{project.name}: PyPI lists no releases")
    files = project.releases.get(version)
    if files is None:
        recent = sorted(project.releases, key=_version_key)[-5:]
        raise PyPIError(f"{project.name} has no release {version} on PyPI",
                        hint=f"recent releases: {', '.join(recent)}")
    sdists = [f for f in files if f.packagetype == "sdist" and not f.yanked]
    if not sdists:
        kinds = sorted({f.packagetype for f in files}) or ["no files"]
        raise PyPIError(
            f"{project.name} {version} has no sdist on PyPI (only {', '.join(kinds)})",
            hint="ftforge builds from source: pick a release that publishes an sdist",
        )
    return version, sdists[0]


def canonical_sdist_url(project_name: str, filename: str) -> str:
    """The stable, host-independent sdist URL conda-forge recipes use."""
    name = normalize(project_name)
    return f"https://pypi.org/packages/source/{name[0]}/{name}/{filename}"


def download(file: DistFile, directory: Path, *, fetch: Fetcher = _urlopen) -> Path:
    """Download ``file`` into ``directory`` once; verify it against PyPI's sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file.filename
    if target.is_file() and sha256_of(target) == file.sha256:
        return target
    part = target.with_name(f".{target.name}.part")
    try:
        _, body = fetch(file.url)
    except (urllib.error.URLError, OSError) as exc:
        raise PyPIError(f"cannot download {file.filename} from {file.url}: {exc}",
                        hint="check the network and try again") from None
    part.write_bytes(body)
    actual = sha256_of(part)
    if actual != file.sha256:
        part.unlink()
        raise PyPIError(
            f"{file.filename}: downloaded sha256 {actual} does not match PyPI's {file.sha256}",
            hint="the download was corrupted or tampered with; try again, and report it if it "
            "persists",
        )
    shutil.move(part, target)
    return target
