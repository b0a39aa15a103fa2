"""The local source mirror: upstream URLs served from files on disk, checksums verified.

A recipe keeps its upstream URL (python.org); before a build the staged copy of
the recipe points at ``file://<mirror>/<file name>`` instead, after the file's
sha256 has been checked against the recipe's.

A file whose bytes are not upstream's (a Debian repack, named as Debian names
it) is filed by content: ``<mirror>/by-sha256/<sha256>/<its own name>``, found
by the recipe's sha256 when no file has the URL's name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import SourceChecksumError, SourceUnavailableError

__all__ = ["SourceMirror", "sha256_of"]

SEED_SCRIPT = "scripts/seed-source-mirror"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class SourceMirror:
    root: Path

    def path_for(self, url: str) -> Path:
        return self.root / Path(urlparse(url).path).name

    def by_content(self, sha256: str) -> Path | None:
        """The one file filed under ``by-sha256/<sha256>/``, if any."""
        folder = self.root / "by-sha256" / sha256.lower()
        found = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
        return found[0] if len(found) == 1 else None

    def localize(self, url: str, sha256: str, *, package: str) -> str:
        """Return a ``file://`` URL for ``url`` after verifying ``sha256``."""
        if url.startswith("file://"):
            return url
        path = self.path_for(url)
        if not path.is_file():
            path = self.by_content(sha256) or path
        if not path.is_file():
            raise SourceUnavailableError(
                f"{package}: source {path.name} is not in the local mirror {self.root} "
                f"(upstream {url} is not reachable from here)",
                hint=f"run `{SEED_SCRIPT}` to seed it from Debian's source package, "
                f"or copy {path.name} into {self.root}",
            )
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise SourceChecksumError(
                f"{package}: {path} has sha256 {actual}, but the recipe expects {sha256}",
                hint=f"delete {path} and re-run `{SEED_SCRIPT}`; if the recipe's sha256 is "
                "wrong, regenerate the recipe with the right one",
            )
        return path.resolve().as_uri()
