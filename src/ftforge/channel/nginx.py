"""The production web server for a channel: an nginx configuration, and running it.

Caching follows what a channel's files are: packages and shards are
immutable (a file name is published once), so clients may keep them for a
year; ``repodata.json`` and friends change on every publish, so clients
revalidate them (nginx's ETag + ``If-None-Match`` gives a cheap 304).
Publisher state (``.ftforge/``, dot files, ``owners.yaml``) is never served.
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
from .owners import OWNERS_FILE

__all__ = ["CONTENT_TYPES", "channel_urls", "nginx_conf", "running_nginx", "server_block"]

CONTENT_TYPES = {
    "application/json": ["json"],
    "application/zstd": ["zst"],
    "application/x-bzip2": ["bz2"],
    "application/octet-stream": ["conda"],
    "text/html": ["html"],
    "text/plain": ["txt", "yaml"],
}
REPODATA_CACHE = "public, no-cache"
"""Indexes are revalidated on every solve (ETag, a 304 without a body when unchanged):
with ``max-age=60`` a package published a moment after a client's solve stayed invisible
to that client's next solve for up to a minute."""
PACKAGE_CACHE = "public, max-age=31536000, immutable"


def _types_block(indent: str) -> str:
    lines = [f"{indent}types {{"]
    for ctype, exts in CONTENT_TYPES.items():
        lines.append(f"{indent}    {ctype} {' '.join(exts)};")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


_UNSAFE_PATH_CHARS = set('"\\$\'') | {chr(c) for c in range(0x20)} | {chr(0x7F)}
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/")


def _quoted_path(path: Path) -> str:
    """A directory as an nginx string: quoted (so ';', '{', '#' and spaces are text), and
    refused if it holds what quoting cannot make literal ('$' expands a variable)."""
    text = str(path)
    bad = sorted(set(text) & _UNSAFE_PATH_CHARS)
    if bad:
        raise ChannelError(f"{text}: the path holds {', '.join(map(repr, bad))}, which an nginx "
                           "configuration cannot hold literally",
                           hint="move or rename the channel directory")
    return f'"{text}/"'


def _base(url_prefix: str) -> str:
    if not set(url_prefix) <= _PREFIX_CHARS or any(
            p.startswith(".") for p in url_prefix.split("/") if p):
        raise ChannelError(f"--prefix {url_prefix!r}: a URL path of letters, digits, . _ - /",
                           hint="e.g. --prefix / (channels at /NAME/) or --prefix /conda")
    stripped = url_prefix.strip("/")
    return f"/{stripped}/" if stripped else "/"


def server_block(channels: Path | list[Path], *, port: int = 8080, url_prefix: str = "/",
                 listen: str = "127.0.0.1") -> str:
    """An http-context snippet: the cache-policy map and the server block serving every
    channel under ``<url_prefix><directory name>/``, as ``channel serve`` does."""
    from .serve import channel_mounts

    mounts = channel_mounts(channels if isinstance(channels, list) else [channels])
    base = _base(url_prefix)
    if not isinstance(port, int) or not 0 < port <= 65535:
        raise ChannelError(f"port {port} is not a TCP port", hint="give --port 1-65535")
    locations = "\n".join(f"""    location = {base}{name}/{OWNERS_FILE} {{ return 404; }}
    location {base}{name}/ {{
        alias {_quoted_path(root)};
        index index.html;
        # repodata and the page revalidate (ETag -> 304); packages and shards are immutable
        add_header Cache-Control $ftforge_cache_control always;
    }}""" for name, root in sorted(mounts.items()))
    links = "".join(f"<li><a href={base}{name}/>{base}{name}/</a></li>" for name in sorted(mounts))
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
    disable_symlinks on;

    # publisher state and dot files are never served (nginx matches the decoded path)
    location ~ /\\. {{ return 404; }}

    location = {base} {{
        default_type text/html;
        return 200 "<!doctype html><title>channels</title><ul>{links}</ul>\\n";
    }}

{locations}
}}
"""


def channel_urls(channels: Path | list[Path], *, port: int, url_prefix: str = "/",
                 host: str = "127.0.0.1") -> dict[str, str]:
    """``{channel name: URL}`` under the configuration :func:`server_block` writes."""
    from .serve import channel_mounts

    base = _base(url_prefix)
    mounts = channel_mounts(channels if isinstance(channels, list) else [channels])
    return {name: f"http://{host}:{port}{base}{name}/" for name in mounts}


def nginx_conf(channels: Path | list[Path], workdir: Path, *, port: int,
               url_prefix: str = "/") -> str:
    """A whole nginx.conf that runs unprivileged in ``workdir`` (foreground, loopback)."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    work = _quoted_path(Path(workdir))[1:-2]
    temp = "\n".join(f'    {k}_temp_path "{work}/tmp_{k}";'
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 2;
pid "{work}/nginx.pid";
error_log "{work}/error.log" warn;
daemon off;
events {{ worker_connections 512; }}
http {{
    access_log "{work}/access.log";
{temp}
{server_block(channels, port=port, url_prefix=url_prefix)}
}}
"""


@contextmanager
def running_nginx(channels: Path | list[Path], workdir: Path, *,
                  url_prefix: str = "/") -> Iterator[str]:
    """Run Debian's nginx on loopback serving ``channels``; yields the first channel's
    URL (no trailing slash)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise MissingSystemDependency("nginx is not installed",
                                      hint="sudo apt-get install nginx-light")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_conf(channels, workdir, port=port, url_prefix=url_prefix))
    check = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(workdir)],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise ChannelError(f"{conf}: nginx rejected the configuration: {check.stderr.strip()}")
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc, "nginx", timeout=10)
        urls = channel_urls(channels, port=port, url_prefix=url_prefix)
        yield next(iter(urls.values())).rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
