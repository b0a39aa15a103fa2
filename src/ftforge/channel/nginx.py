"""The production web server for a channel: an nginx configuration, and running it.

Caching follows what a channel's files are: packages and shards are
immutable (a file name is published once), so clients may keep them for a
year; ``repodata.json`` and friends change on every publish, so clients
revalidate them (nginx's ETag + ``If-None-Match`` gives a cheap 304).
Publisher state (``.ftforge/``, dot files) is never served.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ChannelError, MissingSystemDependency
from ..loopback import free_port, wait_for_port

__all__ = ["CONTENT_TYPES", "nginx_conf", "running_nginx", "server_block"]

CONTENT_TYPES = {
    "application/json": ["json"],
    "application/zstd": ["zst"],
    "application/x-bzip2": ["bz2"],
    "application/octet-stream": ["conda"],
    "text/html": ["html"],
    "text/plain": ["txt", "yaml"],
}
REPODATA_CACHE = "public, max-age=60, must-revalidate"
PACKAGE_CACHE = "public, max-age=31536000, immutable"


def _types_block(indent: str) -> str:
    lines = [f"{indent}types {{"]
    for ctype, exts in CONTENT_TYPES.items():
        lines.append(f"{indent}    {ctype} {' '.join(exts)};")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def server_block(channel: Path, *, port: int = 8080, url_prefix: str = "/ft",
                 listen: str = "127.0.0.1") -> str:
    """An http-context snippet: the cache-policy map and the server block."""
    root = Path(channel).resolve()
    prefix = "/" + url_prefix.strip("/")
    return f"""map $uri $ftforge_cache_control {{
    default "{REPODATA_CACHE}";
    ~\\.(conda|bz2)$ "{PACKAGE_CACHE}";
    ~/shards/ "{PACKAGE_CACHE}";
}}
server {{
    listen {listen}:{port};
    server_name _;
{_types_block("    ")}
    default_type application/octet-stream;
    etag on;
    sendfile on;
    tcp_nopush on;

    # publisher state and dot files are never served
    location ~ /\\. {{ return 404; }}

    location {prefix}/ {{
        alias {root}/;
        index index.html;
        # repodata and the page revalidate (ETag -> 304); packages and shards are immutable
        add_header Cache-Control $ftforge_cache_control always;
    }}
}}
"""


def nginx_conf(channel: Path, workdir: Path, *, port: int, url_prefix: str = "/ft") -> str:
    """A whole nginx.conf that runs unprivileged in ``workdir`` (foreground, loopback)."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {k}_temp_path {workdir}/tmp_{k};"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
daemon off;
events {{ worker_connections 512; }}
http {{
    access_log {workdir}/access.log;
{temp}
{server_block(channel, port=port, url_prefix=url_prefix)}
}}
"""


@contextmanager
def running_nginx(channel: Path, workdir: Path, *, url_prefix: str = "/ft") -> Iterator[str]:
    """Run Debian's nginx on loopback serving ``channel``; yields the channel URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise MissingSystemDependency("nginx is not installed",
                                      hint="sudo apt-get install nginx-light")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_conf(channel, workdir, port=port, url_prefix=url_prefix))
    check = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(workdir)],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise ChannelError(f"{conf}: nginx rejected the configuration: {check.stderr.strip()}")
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc, "nginx", timeout=10)
        yield f"http://127.0.0.1:{port}/{url_prefix.strip('/')}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
