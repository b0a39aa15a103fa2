"""PyPI's JSON API and sdist downloads (cached, sha256-verified).

Two index behaviours are handled: file URLs may be relative to the JSON
document (``../../packages/...``) or absolute; both are resolved against the
response URL. Only the project document (``/pypi/NAME/json``) is used: a
release's files come from its ``releases`` entry, its metadata from the sdist.

The index is untrusted input: a file name is a plain file name (never a path),
a URL is http(s) only, every entry is checked before it is used, and sizes are
bounded by :class:`ftforge.limits.SourceLimits`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from .build.mirror import sha256_of
from .errors import FtforgeError
from .limits import SourceLimits

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
    "safe_filename",
    "select_sdist",
    "validate_name",
]

DEFAULT_INDEX = "https://pypi.org/pypi"


class PyPIError(FtforgeError):
    """A project, release or file PyPI cannot give us."""


def normalize(name: str) -> str:
    """PEP 503 normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


# PEP 508 / core metadata: a project name is letters, digits, ".", "_", "-",
# starting and ending with a letter or digit.
_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
# sdist file names (name-version.tar.gz): no separators, no leading dot.
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")
SDIST_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,99}$")


def validate_name(name: object, *, source: str) -> str:
    """``name`` if it is a valid project name (PEP 508), else a :class:`PyPIError`
    saying where it came from. A name is used in URLs and directory names."""
    if not isinstance(name, str) or len(name) > 200 or not _NAME.match(name):
        raise PyPIError(f"{source}: {str(name)[:80]!r} is not a valid project name "
                        "(letters, digits, '.', '_', '-'; PEP 508)",
                        hint="the index or sdist is malformed or hostile; nothing was written")
    return name


def safe_filename(filename: object, *, source: str) -> str:
    """``filename`` if it is a plain sdist file name, else a :class:`PyPIError`.

    The index's file name is never a path: no ``/``, ``\\``, ``..``, leading dot,
    control or non-ASCII character, and it ends with an sdist suffix."""
    if not isinstance(filename, str) or not filename:
        raise PyPIError(f"{source}: file entry without a file name",
                        hint="the index document is malformed; nothing was written")
    if (len(filename) > 255 or not _FILENAME.match(filename) or ".." in filename):
        raise PyPIError(f"{source}: file name {filename[:80]!r} is not a plain file name "
                        "(refused: paths, '..', leading dots and unusual characters)",
                        hint="the index document is malformed or hostile; nothing was written")
    return filename


def _check_url(url: str, *, source: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise PyPIError(f"{source}: URL {url[:120]!r} is not http(s) (refused: file:, ftp:, "
                        "data: and URLs without a host)",
                        hint="set FTFORGE_PYPI_URL to an http(s) index")
    return url


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
    source: str = ""
    """The index document's URL (named in errors)."""
    problems: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per version: index entries that were malformed and left out."""


# A fetcher returns (final URL, body) and raises urllib.error.HTTPError on 4xx/5xx.
Fetcher = Callable[[str], tuple[str, bytes]]


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib would also follow ftp:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a non-http URL: {newurl}",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def _urlopen(url: str, limits: SourceLimits = SourceLimits()) -> tuple[str, bytes]:
    """GET ``url`` (http/https only): at most ``max_sdist_bytes`` + 1 bytes (the caller
    refuses the extra one), within ``download_seconds`` however slow the server is."""
    _check_url(url, source=url)
    deadline = time.monotonic() + limits.download_seconds
    chunks, size = [], 0
    with _OPENER.open(url, timeout=60) as response:
        while size <= limits.max_sdist_bytes:
            chunk = response.read1(min(1 << 20, limits.max_sdist_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() > deadline:
                raise PyPIError(f"{url}: download took longer than {limits.download_seconds:g} s "
                                "(SourceLimits.download_seconds)",
                                hint="the server is too slow or hostile; try again later")
        return response.geturl(), b"".join(chunks)


def _too_big(body: bytes, limit: int, what: str, setting: str) -> None:
    if len(body) > limit:
        raise PyPIError(f"{what}: more than {limit} bytes (SourceLimits.{setting})",
                        hint="refused; raise the limit only for an index you trust")


def _dist_file(entry: object, final_url: str) -> DistFile:
    """One ``releases`` entry, checked; ``ValueError`` says which field is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"entry is a {type(entry).__name__}, not an object")
    filename = entry.get("filename")
    if not isinstance(filename, str) or not filename:
        raise ValueError("entry has no 'filename'")
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError(f"{filename[:80]!r} has no 'url'")
    digests = entry.get("digests")
    sha = digests.get("sha256") if isinstance(digests, dict) else None
    packagetype = entry.get("packagetype")
    return DistFile(
        filename=filename,
        url=urllib.parse.urljoin(final_url, url),
        sha256=sha if isinstance(sha, str) else "",
        packagetype=packagetype if isinstance(packagetype, str) else "",
        yanked=entry.get("yanked") is True,
    )


def fetch_project(name: str, *, fetch: Fetcher = _urlopen,
                  limits: SourceLimits = SourceLimits()) -> Project:
    validate_name(name, source="requested project")
    url = f"{index_url()}/{normalize(name)}/json"
    _check_url(url, source="FTFORGE_PYPI_URL")
    try:
        final_url, body = fetch(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise PyPIError(f"'{name}' is not a project on PyPI ({url} answered 404)",
                            hint="check the spelling: the name as on pypi.org") from None
        raise PyPIError(f"PyPI answered {exc.code} for {url}", hint="try again later") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PyPIError(f"cannot reach PyPI at {url}: {exc}",
                        hint="check the network, or set FTFORGE_PYPI_URL") from None
    _too_big(body, limits.max_index_bytes, url, "max_index_bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise PyPIError(f"{url} did not return JSON", hint="set FTFORGE_PYPI_URL to a JSON API") from None
    if not isinstance(doc, dict):
        raise PyPIError(f"{url}: the project document is not a JSON object",
                        hint="set FTFORGE_PYPI_URL to a PyPI-compatible JSON API")
    raw_releases = doc.get("releases") or {}
    info = doc.get("info") or {}
    if not isinstance(raw_releases, dict) or not isinstance(info, dict):
        raise PyPIError(f"{url}: 'releases' and 'info' must be JSON objects",
                        hint="set FTFORGE_PYPI_URL to a PyPI-compatible JSON API")
    releases: dict[str, tuple[DistFile, ...]] = {}
    problems: dict[str, list[str]] = {}
    for version, files in raw_releases.items():
        if not _VERSION_TEXT.match(version):  # not a version; never shown, never used
            continue
        good = []
        for index, entry in enumerate(files if isinstance(files, list) else [files]):
            try:
                good.append(_dist_file(entry, final_url))
            except ValueError as exc:
                problems.setdefault(version, []).append(f"file #{index}: {exc}")
        releases[version] = tuple(good)
    shown = info.get("name", name)
    latest = info.get("version", "")
    return Project(shown if isinstance(shown, str) and _NAME.match(shown) else name,
                   latest if isinstance(latest, str) and _VERSION_TEXT.match(latest) else "",
                   releases, info,
                   source=url, problems={v: tuple(p) for v, p in problems.items()})


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
    if not sdists and project.problems.get(version):
        raise PyPIError(
            f"{project.source or project.name}: {project.name} {version}: malformed index "
            f"entries: {'; '.join(project.problems[version])[:300]}",
            hint="the index document is malformed; nothing was downloaded")
    if not sdists:
        kinds = sorted({f.packagetype for f in files}) or ["no files"]
        raise PyPIError(
            f"{project.name} {version} has no sdist on PyPI (only {', '.join(kinds)})",
            hint="ftforge builds from source: pick a release that publishes an sdist",
        )
    # The mirror is shared by every package (and CPython's own sources): a project's
    # sdist is named after the project (PEP 625), never after another one's file.
    for dist in sdists:
        safe_filename(dist.filename, source=f"index entry {dist.filename[:80]!r}")
    own = [f for f in sdists if _belongs_to(f.filename, project.name)]
    if not own:
        raise PyPIError(
            f"{project.source or project.name}: {project.name} {version}: sdist file name "
            f"{sdists[0].filename[:80]!r} does not start with the project's name (PEP 625)",
            hint="the index is malformed or hostile; nothing was downloaded")
    return version, own[0]


def _belongs_to(filename: str, project_name: str) -> bool:
    return isinstance(filename, str) and normalize(filename).startswith(
        normalize(project_name) + "-")


def canonical_sdist_url(project_name: str, filename: str) -> str:
    """The stable, host-independent sdist URL conda-forge recipes use."""
    name = normalize(validate_name(project_name, source="project name"))
    filename = safe_filename(filename, source=f"{project_name} sdist")
    return f"https://pypi.org/packages/source/{name[0]}/{name}/{filename}"


def download(file: DistFile, directory: Path, *, fetch: Fetcher = _urlopen,
             limits: SourceLimits = SourceLimits()) -> Path:
    """Download ``file`` into ``directory`` once; verify it against PyPI's sha256.

    The file name is checked to be a plain sdist file name and the URL to be
    http(s) before anything is fetched; only ``directory`` is written."""
    source = f"index entry {file.filename[:80]!r}"
    name = safe_filename(file.filename, source=source)
    if not name.endswith(SDIST_SUFFIXES):
        raise PyPIError(f"{source}: not an sdist file name (expected one of "
                        f"{', '.join(SDIST_SUFFIXES)})",
                        hint="the index document is malformed; nothing was written")
    _check_url(file.url, source=source)
    if not _SHA256.match(file.sha256):
        raise PyPIError(f"{source}: no sha256 digest in the index, so the download "
                        "cannot be verified", hint="refused; nothing was written")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.is_file() and not target.is_symlink() and sha256_of(target) == file.sha256:
        return target
    try:
        _, body = fetch(file.url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PyPIError(f"cannot download {name} from {file.url}: {exc}",
                        hint="check the network and try again") from None
    _too_big(body, limits.max_sdist_bytes, f"{name} from {file.url}", "max_sdist_bytes")
    fd, part_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        actual = sha256_of(part)
        if actual != file.sha256:
            raise PyPIError(
                f"{name}: downloaded sha256 {actual} does not match PyPI's {file.sha256}",
                hint="the download was corrupted or tampered with; try again, and report it if "
                "it persists",
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target
