"""Mirror a channel to an OCI registry, in the layout rattler and pixi read (``oci://``).

Layout (what conda-forge's OCI mirror uses and rattler's OCI middleware reads):

- repository ``<namespace>/<subdir>/<name>`` (a name starting with ``_`` gets a
  ``zzz`` prefix), tag ``<version>-<build>`` with ``+``/``!``/``=`` spelled
  ``__p__``/``__e__``/``__eq__``; one layer, the package itself
  (``application/vnd.conda.package.v2`` for ``.conda``, ``.v1`` for ``.tar.bz2``),
  whose digest is the package's sha256 (rattler fetches the blob by the sha256
  in repodata);
- repository ``<namespace>/<subdir>/repodata.json``, tag ``latest``, with the
  ``repodata.json`` layer (``application/vnd.conda.repodata.v1+json``) and the
  ``.zst`` one;
- every manifest is an OCI image manifest with an empty ``{}`` config blob.

Pushing is incremental: a package whose tag exists with the same digest is
skipped (a tag holding other bytes is refused: a published file never changes,
and a client would fail its hash check), a blob the registry has is not
uploaded again, and repodata is pushed only when its digest changed. The
repodata tag moves on every push that changes it, while the blob the registry
serves behind it says "cache for a year": a client must read the tag again
(ftforge's own solves do: ``ftforge.environments.REVALIDATED_SCHEMES``). The
HTTP client never reads the machine's ``REQUESTS_CA_BUNDLE``/proxy settings:
trust is what the caller passes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from ..errors import ChannelError
from .audit import package_stem
from .index import read_repodata
from .layout import PACKAGE_SUFFIXES, require_channel, served_subdirs

__all__ = ["MEDIA_TYPES", "PushResult", "oci_reference", "push_channel"]

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPES = {
    ".conda": "application/vnd.conda.package.v2",
    ".tar.bz2": "application/vnd.conda.package.v1",
    "repodata.json": "application/vnd.conda.repodata.v1+json",
    "repodata.json.zst": "application/vnd.conda.repodata.v1+json+zst",
}
_EMPTY_CONFIG = b"{}"


@dataclass
class PushResult:
    pushed: int = 0
    skipped: int = 0
    blobs_uploaded: int = 0
    subdirs: list[str] = field(default_factory=list)


def _tag(text: str) -> str:
    return text.replace("+", "__p__").replace("!", "__e__").replace("=", "__eq__")


def oci_reference(subdir: str, filename: str) -> tuple[str, str]:
    """(repository below the namespace, tag) for a package file or repodata."""
    if filename.startswith("repodata.json"):
        return f"{subdir}/repodata.json", "latest"
    stem = package_stem(filename)
    name, version, build = stem.rsplit("-", 2)
    if name.startswith("_"):
        name = f"zzz{name}"
    return f"{subdir}/{name}", _tag(f"{version}-{build}")


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class _Registry:
    def __init__(self, target: str, ca_bundle: str | bool) -> None:
        import requests

        target = target.removeprefix("oci://")
        scheme = "https"
        if "://" in target:
            scheme, target = target.split("://", 1)
        host, _, namespace = target.partition("/")
        if not host or not namespace:
            raise ChannelError(f"'{target}': expected REGISTRY/NAMESPACE, e.g. 127.0.0.1/ft",
                               hint="pass --oci HOST[:PORT]/NAMESPACE")
        self.base = f"{scheme}://{host}"
        self.namespace = namespace.strip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # no REQUESTS_CA_BUNDLE / proxies by accident
        self.session.verify = ca_bundle

    def _url(self, repo: str, kind: str, ref: str) -> str:
        return f"{self.base}/v2/{self.namespace}/{repo}/{kind}/{ref}"

    def _check(self, response, what: str):
        if response.status_code >= 400:
            raise ChannelError(
                f"OCI registry {self.base}: {what} failed: HTTP {response.status_code} "
                f"{response.text[:200]}",
                hint="check the registry URL, that it is running, and push permissions",
            )
        return response

    def has_manifest(self, repo: str, tag: str) -> dict | None:
        response = self.session.get(self._url(repo, "manifests", tag),
                                    headers={"Accept": MANIFEST_TYPE}, timeout=60)
        if response.status_code == 404:
            return None
        return self._check(response, f"reading {repo}:{tag}").json()

    def has_blob(self, repo: str, digest: str) -> bool:
        response = self.session.head(self._url(repo, "blobs", digest), timeout=60)
        return response.status_code == 200

    def upload_blob(self, repo: str, data: bytes, digest: str) -> bool:
        if self.has_blob(repo, digest):
            return False
        start = self._check(self.session.post(
            f"{self.base}/v2/{self.namespace}/{repo}/blobs/uploads/", timeout=60),
            f"starting an upload to {repo}")
        location = urljoin(self.base + "/", start.headers["Location"])
        sep = "&" if "?" in location else "?"
        self._check(self.session.put(
            f"{location}{sep}digest={digest}", data=data, timeout=600,
            headers={"Content-Type": "application/octet-stream"}), f"uploading to {repo}")
        return True

    def put_manifest(self, repo: str, tag: str, manifest: dict) -> None:
        body = json.dumps(manifest, separators=(",", ":")).encode()
        self._check(self.session.put(self._url(repo, "manifests", tag), data=body, timeout=60,
                                     headers={"Content-Type": MANIFEST_TYPE}),
                    f"writing {repo}:{tag}")


def _layer_digests(manifest: object) -> list[str]:
    """The layer digests of a manifest as the registry returned it (any JSON)."""
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(layers, list):
        return []
    return [layer["digest"] for layer in layers
            if isinstance(layer, dict) and isinstance(layer.get("digest"), str)]


def _manifest(layers: list[tuple[str, bytes, str, str]]) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": _digest(_EMPTY_CONFIG),
                   "size": len(_EMPTY_CONFIG)},
        "layers": [
            {"mediaType": media, "digest": digest, "size": len(data),
             "annotations": {"org.opencontainers.image.title": title}}
            for media, data, digest, title in layers
        ],
    }


def push_channel(
    channel: Path,
    target: str,
    *,
    ca_bundle: str | bool = True,
    progress: Callable[[str], None] | None = None,
) -> PushResult:
    """Push every package the channel's index lists, then its repodata."""
    say = progress or (lambda _msg: None)
    require_channel(channel)
    registry = _Registry(target, ca_bundle)
    result = PushResult()
    for subdir in served_subdirs(channel):
        repodata = read_repodata(channel / subdir / "repodata.json")
        if repodata is None:
            continue
        result.subdirs.append(subdir)
        listed = {}
        for group in ("packages", "packages.conda"):
            entries = repodata.get(group)
            listed.update(entries if isinstance(entries, dict) else {})
        for filename in sorted(listed):
            record = listed[filename]
            # the index names files inside this subdir only: never a path to elsewhere
            if ("/" in filename or "\\" in filename or filename.startswith(".")
                    or not filename.endswith(PACKAGE_SUFFIXES) or not isinstance(record, dict)
                    or not isinstance(record.get("sha256"), str)):
                raise ChannelError(f"{channel / subdir / 'repodata.json'}: lists "
                                   f"{filename!r}, which is not a package file of this subdir",
                                   hint="run `ftforge channel reindex` to rebuild the index")
            repo, tag = oci_reference(subdir, filename)
            current = registry.has_manifest(repo, tag)
            if current is not None:
                if f"sha256:{record['sha256']}" not in _layer_digests(current):
                    raise ChannelError(
                        f"{channel / subdir / filename}: {registry.base}/{registry.namespace}/"
                        f"{repo}:{tag} already holds this package with other content",
                        hint="a published package never changes: rebuild with a higher build "
                             "number, or push this channel to a new namespace")
                result.skipped += 1
                continue
            say(f"pushing {subdir}/{filename}")
            data = (channel / subdir / filename).read_bytes()
            digest = _digest(data)
            if digest != f"sha256:{listed[filename]['sha256']}":
                raise ChannelError(f"{channel / subdir / filename}: sha256 differs from "
                                   "repodata.json", hint="run `ftforge channel reindex`")
            media = MEDIA_TYPES[next(s for s in PACKAGE_SUFFIXES if filename.endswith(s))]
            registry.upload_blob(repo, _EMPTY_CONFIG, _digest(_EMPTY_CONFIG))
            result.blobs_uploaded += registry.upload_blob(repo, data, digest)
            registry.put_manifest(repo, tag, _manifest([(media, data, digest, filename)]))
            result.pushed += 1
        _push_repodata(registry, channel, subdir, result, say)
    return result


def _push_repodata(registry: _Registry, channel: Path, subdir: str, result: PushResult,
                   say: Callable[[str], None]) -> None:
    layers = []
    for name in ("repodata.json", "repodata.json.zst"):
        path = channel / subdir / name
        if path.exists():
            data = path.read_bytes()
            layers.append((MEDIA_TYPES[name], data, _digest(data), name))
    repo, tag = oci_reference(subdir, "repodata.json")
    current = registry.has_manifest(repo, tag)
    if current is not None and _layer_digests(current) == [layer[2] for layer in layers]:
        return
    say(f"pushing {subdir}/repodata.json")
    registry.upload_blob(repo, _EMPTY_CONFIG, _digest(_EMPTY_CONFIG))
    for _media, data, digest, _title in layers:
        result.blobs_uploaded += registry.upload_blob(repo, data, digest)
    registry.put_manifest(repo, tag, _manifest(layers))
