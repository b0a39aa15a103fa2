"""Real servers the channel tests run on loopback: Debian's docker-registry (the
CNCF distribution registry) behind an nginx TLS front on 127.0.0.1:443.

rattler speaks HTTPS only, ignores the port of an ``oci://`` URL, and asks the
registry for an anonymous pull token at ``/token`` (as ghcr.io serves); the
front answers that and proxies ``/v2/`` to the registry. The client trusts the
test's self-signed certificate through ``SSL_CERT_FILE`` (a bundle of the
system's certificates and the test's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ftforge.loopback import free_port, wait_for_port

__all__ = ["OciRegistry", "free_port", "oci_registry", "self_signed_certificate"]

SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def self_signed_certificate(workdir: Path) -> tuple[Path, Path, Path]:
    """(cert, key, bundle): a test CA, a server certificate for 127.0.0.1 signed by it
    (rustls refuses a CA certificate used as the server's), and a bundle trusting the CA."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=workdir)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=ftforge test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "registry.key",
            "-out", "registry.csr", "-subj", "/CN=127.0.0.1")
    (workdir / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "registry.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "registry.crt", "-extfile", "ext.cnf")
    bundle = workdir / "ca-bundle.crt"
    system = SYSTEM_CA.read_text() if SYSTEM_CA.exists() else ""
    bundle.write_text(system + (workdir / "ca.crt").read_text())
    return workdir / "registry.crt", workdir / "registry.key", bundle


@dataclass
class OciRegistry:
    host: str
    ca_bundle: Path
    storage: Path


@contextmanager
def oci_registry(workdir: Path) -> Iterator[OciRegistry]:
    registry_bin = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    for binary, package in ((registry_bin, "docker-registry"), (nginx_bin, "nginx-light")):
        if not Path(binary).exists():
            raise RuntimeError(f"{binary} missing: run scripts/setup (apt package {package})")
    if os.geteuid() != 0:
        raise RuntimeError("the OCI test registry listens on 127.0.0.1:443: run as root "
                           "(rattler ignores the port of an oci:// URL)")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key, bundle = self_signed_certificate(workdir)
    storage = workdir / "storage"
    port = free_port()
    (workdir / "registry.yml").write_text(f"""version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {storage}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{port}
""")
    # Logs go to files: a pipe nobody reads fills up (64 KiB) and stalls the server
    # mid-push once enough requests have been logged.
    registry_log = open(workdir / "registry.log", "w")  # noqa: SIM115 -- closed below
    registry = subprocess.Popen([registry_bin, "serve", str(workdir / "registry.yml")],
                                stdout=registry_log, stderr=subprocess.STDOUT, text=True)
    front = None
    try:
        wait_for_port(port, registry, "docker-registry")
        (workdir / "front.conf").write_text(f"""user root;
worker_processes 1;
daemon off;
pid {workdir}/front.pid;
error_log {workdir}/front-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/front-access.log;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:443 ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = /token {{
            default_type application/json;
            return 200 '{{"token": "anonymous"}}';
        }}
        location /v2/ {{
            proxy_pass http://127.0.0.1:{port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_request_buffering off;
        }}
    }}
}}
""")
        front = subprocess.Popen([nginx_bin, "-c", str(workdir / "front.conf"), "-p",
                                  str(workdir)], stdout=registry_log,
                                 stderr=subprocess.STDOUT, text=True)
        wait_for_port(443, front, "nginx TLS front")
        yield OciRegistry("127.0.0.1", bundle, storage)
    finally:
        for proc in (front, registry):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        registry_log.close()


def http_status(url: str) -> int:
    """The status a GET of ``url`` answers with (the body read), 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
