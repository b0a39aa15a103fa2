"""Seed the local source mirror from Debian's source packages and PyPI sdists.

Upstream release hosts are not reachable from here; Debian's archive is. A
Debian source package's ``orig`` tarball is (in most cases) the upstream
release file, so ``apt-get source --download-only`` with a private apt
configuration (the machine's own Debian mirror, one ``deb-src`` line, state in
a temporary directory) brings the bytes; apt checks them against the signed
``Sources`` index and this module checks them again against the recipe's
sha256. A file that is upstream's (as the recipe says) is filed under the
upstream name; a Debian repack under ``by-sha256/<sha256>/<Debian's name>``
(see :class:`ftforge.build.mirror.SourceMirror`). Idempotent.

Run through ``scripts/seed-source-mirror``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import SourceChecksumError, SourceUnavailableError
from .mirror import SourceMirror, sha256_of

__all__ = ["SeedItem", "debian_mirror_uri", "seed", "seed_items"]

APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))
_DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_DEB_VERSION = re.compile(r"^[0-9A-Za-z.+~:-]+$")


@dataclass(frozen=True)
class SeedItem:
    """One file for the mirror."""

    what: str
    """The package (conda name) it is for: named in messages."""
    sha256: str
    mirror_name: str
    """The file name the recipe's URL has."""
    debian_package: str | None = None
    debian_version: str | None = None
    debian_suite: str = "bookworm"
    debian_filename: str | None = None
    pypi_project: str | None = None
    pypi_version: str | None = None
    upstream_identical: bool = True


def seed_items() -> list[SeedItem]:
    """Every source the committed recipes need: CPython's and the native libraries'."""
    from ..recipes import native
    from ..recipes.cpython_sources import KNOWN_SOURCES

    items = []
    for src in KNOWN_SOURCES.values():
        if src.debian_source_version and src.version == "3.13.5":  # the one trixie has
            items.append(SeedItem(f"python {src.version}", src.sha256, src.filename,
                                  f"python{src.series}", src.debian_source_version, "trixie",
                                  src.debian_orig_filename))
    for lib in native.LIBRARIES:
        s = lib.source
        if s.debian is not None:
            items.append(SeedItem(lib.name, s.sha256, s.mirror_name, s.debian.package,
                                  s.debian.version, s.debian.suite, s.debian.filename,
                                  upstream_identical=s.upstream_identical))
        elif s.pypi_project:
            items.append(SeedItem(lib.name, s.sha256, s.mirror_name,
                                  pypi_project=s.pypi_project, pypi_version=lib.version))
    return items


def debian_mirror_uri(sources: Iterable[Path] = APT_SOURCES) -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line format), not security."""
    texts = []
    for source in sources:
        files = sorted(source.glob("*.sources")) + sorted(source.glob("*.list")) \
            if source.is_dir() else [source]
        texts += [f.read_text(errors="replace") for f in files if f.is_file()]
    for text in texts:
        for line in text.splitlines():
            parts = line.split()
            uri = None
            if len(parts) >= 2 and parts[0] == "URIs:":
                uri = parts[1]
            elif len(parts) >= 3 and parts[0] in ("deb", "deb-src") and not parts[1].startswith("["):
                uri = parts[1]
            if uri and "security" not in uri and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    raise SourceUnavailableError(
        "/etc/apt: no Debian mirror configured, so Debian's source packages cannot be fetched",
        hint="configure apt (a deb line or a .sources file), or copy the source files into "
        f"{paths.source_mirror_dir()} by hand",
    )


class _Apt:
    """A private apt configuration: one deb-src line per suite, state in ``work``."""

    def __init__(self, work: Path, uri: str) -> None:
        self.work = work
        self.uri = uri
        self.ready: set[str] = set()

    def _opts(self, suite: str) -> list[str]:
        base = self.work / suite
        return ["-o", f"Dir::Etc::SourceList={base / 'sources.list'}",
                "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={base / 'lists'}",
                "-o", "APT::Sandbox::User=root"]

    def download(self, suite: str, package: str, version: str, into: Path) -> None:
        if not (_DEB_NAME.match(package) and _DEB_VERSION.match(version)):
            raise SourceUnavailableError(f"{package}={version}: not a Debian source name/version")
        if suite not in self.ready:
            base = self.work / suite
            (base / "lists" / "partial").mkdir(parents=True, exist_ok=True)
            (base / "sources.list").write_text(f"deb-src {self.uri} {suite} main\n")
            _run(["apt-get", *self._opts(suite), "update", "-qq"], what=f"apt-get update ({suite})")
            self.ready.add(suite)
        into.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", *self._opts(suite), "source", "--download-only", "-qq",
              f"{package}={version}"], what=f"{package} {version} from Debian {suite}", cwd=into)


def _run(cmd: list[str], *, what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SourceUnavailableError(
            f"{what}: {' '.join(cmd[:1] + cmd[-3:])} failed: {last}",
            hint="check that Debian's mirror is reachable and still carries this version "
            "(a security update may have replaced it: update the version in the recipe's generator)",
        )


def _file(mirror: SourceMirror, item: SeedItem, downloaded: Path) -> Path:
    actual = sha256_of(downloaded)
    if actual != item.sha256:
        raise SourceChecksumError(
            f"{item.what}: {downloaded.name} has sha256 {actual}, the recipe expects {item.sha256}",
            hint="nothing was filed; if the upstream release changed, regenerate the recipe",
        )
    if item.upstream_identical:
        target = mirror.root / item.mirror_name
    else:
        target = mirror.root / "by-sha256" / item.sha256 / downloaded.name
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    shutil.copyfile(downloaded, part)
    os.replace(part, target)
    return target


def _present(mirror: SourceMirror, item: SeedItem) -> Path | None:
    path = mirror.root / item.mirror_name if item.upstream_identical else mirror.by_content(item.sha256)
    if path is not None and path.is_file() and sha256_of(path) == item.sha256:
        return path
    return None


def seed(items: Iterable[SeedItem] | None = None, *, mirror: SourceMirror | None = None,
         say: Callable[[str], None] = lambda _m: None) -> list[Path]:
    """Fetch every missing item into the mirror; return the mirror's files."""
    mirror = mirror or SourceMirror(paths.source_mirror_dir())
    mirror.root.mkdir(parents=True, exist_ok=True)
    done: list[Path] = []
    todo: list[SeedItem] = []
    for item in items if items is not None else seed_items():
        present = _present(mirror, item)
        if present:
            say(f"present  {item.what}: {present.name}")
            done.append(present)
        else:
            todo.append(item)
    if not todo:
        return done
    with tempfile.TemporaryDirectory(prefix="ftforge-seed-") as tmp:
        work = Path(tmp)
        apt: _Apt | None = None
        for item in todo:
            into = work / "files" / item.what
            if item.debian_package:
                apt = apt or _Apt(work / "apt", debian_mirror_uri())
                say(f"fetching {item.what}: Debian {item.debian_suite} "
                    f"{item.debian_package} {item.debian_version}")
                apt.download(item.debian_suite, item.debian_package, item.debian_version or "",
                             into)
                downloaded = into / (item.debian_filename or "")
            else:
                from .. import pypi

                say(f"fetching {item.what}: {item.pypi_project} {item.pypi_version} sdist (PyPI)")
                project = pypi.fetch_project(item.pypi_project or "")
                _, dist = pypi.select_sdist(project, item.pypi_version)
                downloaded = pypi.download(dist, into)
            if not downloaded.is_file():
                raise SourceUnavailableError(
                    f"{item.what}: the download did not give {downloaded.name}",
                    hint="the Debian source package's file names changed: update the generator")
            filed = _file(mirror, item, downloaded)
            say(f"filed    {item.what}: {filed}")
            done.append(filed)
    return done


def main() -> int:
    from ..errors import FtforgeError

    try:
        files = seed(say=lambda m: print(m, flush=True))
    except FtforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"source mirror: {len(files)} files in {paths.source_mirror_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
