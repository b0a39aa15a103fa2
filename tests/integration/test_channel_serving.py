"""The channel served for real: Debian's nginx on loopback, an OCI registry
(docker-registry behind TLS on 127.0.0.1:443), and the browsable page in
headless Chromium. Each installs the free-threaded interpreter built by this
suite, from that server, with ``ftforge create``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ftforge.channel.nginx import PACKAGE_CACHE, REPODATA_CACHE, running_nginx
from ftforge.channel.oci import oci_reference, push_channel
from ftforge.channel.publish import publish
from ftforge.channel.serve import serving
from ftforge.errors import ChannelError

from ..servers import oci_registry
from .conftest import run_python

pytestmark = pytest.mark.integration


def _get(url: str, headers: dict | None = None):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30)


def _create(prefix: Path, channel_url: str, *specs: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ftforge.cli", "create", "--prefix", str(prefix),
         "--channel", channel_url, *specs],
        capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def _gil_off(prefix: Path) -> None:
    out = run_python(prefix, "import sys; print(sys._is_gil_enabled())").stdout.strip()
    assert out == "False"


@pytest.fixture(scope="module")
def nginx_url(channel, tmp_path_factory):
    with running_nginx(channel, tmp_path_factory.mktemp("nginx")) as url:
        yield url


def test_nginx_headers_content_types_and_etag(nginx_url, channel):
    package = next((channel / "linux-64").glob("python-3*_cp313t.conda")).name
    repodata = _get(f"{nginx_url}/linux-64/repodata.json")
    assert repodata.headers["Content-Type"] == "application/json"
    assert repodata.headers["Cache-Control"] == REPODATA_CACHE
    etag = repodata.headers["ETag"]
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        _get(f"{nginx_url}/linux-64/repodata.json", {"If-None-Match": etag})
    assert not_modified.value.code == 304
    zst = _get(f"{nginx_url}/linux-64/repodata.json.zst")
    assert zst.headers["Content-Type"] == "application/zstd"
    pkg = _get(f"{nginx_url}/linux-64/{package}")
    assert pkg.headers["Content-Type"] == "application/octet-stream"
    assert pkg.headers["Cache-Control"] == PACKAGE_CACHE
    assert pkg.read() == (channel / "linux-64" / package).read_bytes()
    page = _get(f"{nginx_url}/")
    assert page.headers["Content-Type"].startswith("text/html")
    for secret in ("/.ftforge/log.jsonl", "/.ftforge/lock", "/.ftforge-channel",
                   "/%2eftforge/log.jsonl", "/%2Eftforge-channel", "/.ftforge/recipe-tokens.json",
                   "/owners.yaml"):
        with pytest.raises(urllib.error.HTTPError) as hidden:
            _get(f"{nginx_url}{secret}")
        assert hidden.value.code == 404


def test_install_from_nginx(nginx_url, tmp_path):
    out = _create(tmp_path / "env", nginx_url, "python-freethreading")
    assert "cp313t" in out
    _gil_off(tmp_path / "env")


def test_nginx_under_concurrent_clients_has_no_errors(nginx_url, channel):
    package = next((channel / "linux-64").glob("python-3*_cp313t.conda")).name
    size = (channel / "linux-64" / package).stat().st_size
    paths = ["/linux-64/repodata.json", "/noarch/repodata.json", f"/linux-64/{package}", "/"]

    def client(n: int) -> tuple[int, int]:
        ok = errors = 0
        for i in range(25):
            path = paths[(n + i) % len(paths)]
            try:
                body = _get(nginx_url + path).read()
                whole = path != paths[2] or len(body) == size
                ok, errors = ok + whole, errors + (not whole)
            except Exception:
                errors += 1
        return ok, errors

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client, range(16)))
    total_ok = sum(ok for ok, _ in results)
    total_errors = sum(err for _, err in results)
    print(f"\nnginx load: 16 clients x 25 requests: {total_ok} ok, {total_errors} errors")
    assert total_errors == 0 and total_ok == 400


def test_local_serve_installs(channel, tmp_path):
    with serving(channel) as url:
        assert url.endswith(f"/{channel.name}"), "served under the channel's own name"
        _create(tmp_path / "env", url, "python-freethreading")
        for secret in ("/.ftforge/log.jsonl", "/%2eftforge/log.jsonl"):
            with pytest.raises(urllib.error.HTTPError):
                _get(f"{url}{secret}")
    _gil_off(tmp_path / "env")


def _namespace() -> str:
    """A registry namespace no earlier run used: the client's repodata cache
    (~/.cache/ftforge/repodata) outlives each test's registry, keyed by channel URL."""
    return f"ftforge-test-{uuid.uuid4().hex[:12]}"


def test_oci_push_is_incremental_and_rattler_installs_from_it(channel, tmp_path):
    with oci_registry(tmp_path / "registry") as registry:
        target = f"{registry.host}/{_namespace()}"
        # the push client must not pick up a CA bundle from the environment by accident
        bogus = tmp_path / "bogus-ca.pem"
        bogus.write_text("not a certificate\n")
        os.environ["REQUESTS_CA_BUNDLE"] = str(bogus)
        try:
            first = push_channel(channel, target, ca_bundle=str(registry.ca_bundle))
        finally:
            del os.environ["REQUESTS_CA_BUNDLE"]
        listed = sum(1 for _ in channel.glob("*/*.conda"))
        assert first.pushed == listed and first.skipped == 0
        again = push_channel(channel, target, ca_bundle=str(registry.ca_bundle))
        assert again.pushed == 0 and again.skipped == listed and again.blobs_uploaded == 0
        print(f"\nOCI: pushed {first.pushed} packages ({first.blobs_uploaded} blobs); "
              f"second push uploaded {again.blobs_uploaded}")
        out = _create(tmp_path / "env", f"oci://{target}",
                      "python-freethreading", env={"SSL_CERT_FILE": str(registry.ca_bundle)})
        assert "cp313t" in out
    _gil_off(tmp_path / "env")


def test_oci_channel_pushed_again_is_seen_by_the_next_solve(interpreter_packages, tmp_path):
    """A package pushed after a client solved against the OCI channel is installable by
    the next solve: the registry serves the repodata blob as cacheable for a year, the
    client reads the channel's repodata tag again anyway. A tag that holds other bytes
    than the channel's file is refused at push (the client would fail its hash check)."""
    later = [p for p in interpreter_packages if p.name.startswith("python-freethreading-")]
    assert len(later) == 1
    channel = tmp_path / "ft"
    publish([p for p in interpreter_packages if p not in later], channel)
    with oci_registry(tmp_path / "registry") as registry:
        target = f"{registry.host}/{_namespace()}"
        tls = {"SSL_CERT_FILE": str(registry.ca_bundle)}
        push_channel(channel, target, ca_bundle=str(registry.ca_bundle))
        missing = subprocess.run(
            [sys.executable, "-m", "ftforge.cli", "create", "--dry-run", "--prefix",
             str(tmp_path / "unused"), "--channel", f"oci://{target}", "python-freethreading"],
            check=False, capture_output=True, text=True, env={**os.environ, **tls})
        assert missing.returncode != 0 and "python-freethreading" in missing.stderr
        assert "Traceback" not in missing.stderr

        publish(later, channel)
        second = push_channel(channel, target, ca_bundle=str(registry.ca_bundle))
        assert second.pushed == 1 and second.subdirs
        out = _create(tmp_path / "env", f"oci://{target}", "python-freethreading", env=tls)
        assert "python-freethreading" in out and "cp313t" in out
        _gil_off(tmp_path / "env")

        # the registry's tag for a package now names other bytes than the channel's file
        import requests

        repo, tag = oci_reference("noarch", later[0].name)
        session = requests.Session()
        session.trust_env, session.verify = False, str(registry.ca_bundle)
        url = f"https://{registry.host}/v2/{target.split('/', 1)[1]}/{repo}/manifests/{tag}"
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        manifest = session.get(url, headers=accept, timeout=30).json()
        manifest["layers"][0]["digest"] = manifest["config"]["digest"]
        manifest["layers"][0]["size"] = manifest["config"]["size"]
        put = session.put(url, json=manifest, timeout=30, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert put.status_code == 201, put.text
        with pytest.raises(ChannelError, match=f"{later[0].name}: .* already holds this "
                                               "package with other content"):
            push_channel(channel, target, ca_bundle=str(registry.ca_bundle))


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def test_browsable_page_in_headless_chromium(nginx_url, tmp_path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "chromium missing: run scripts/setup"
    shot = tmp_path / "channel.png"
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,1600",
                    f"{nginx_url}/"], check=True, capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    dom = subprocess.run([*common, "--dump-dom", f"{nginx_url}/"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert "<h2 id=\"python\">python</h2>" in dom
    assert "free-threaded cp313t" in dom and "GIL cp313" in dom
    assert "python_abi 3.13.* *_cp313t" in dom
    artifacts = Path(os.environ.get("FTFORGE_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "channel-page.png")
