"""``ftforge channel serve``: channels over HTTP on loopback, for local use.

Every channel is served under a path named after its directory
(``http://127.0.0.1:8000/ft/``), several from one server, so that clients
see distinct channel names they can rank (a channel at the URL root has no
name). Production serving is nginx (:mod:`ftforge.channel.nginx`), with the
same layout and the same rule: publisher state (any dot path, checked after
percent-decoding) and ``owners.yaml`` are never served, nor any path through a
symlink (nginx's ``disable_symlinks on``) or a file that is not a regular file;
an idle connection is closed after :data:`CONNECTION_TIMEOUT_SECONDS`, and at most
:data:`MAX_CONNECTIONS` are served at once.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..errors import ChannelError
from ..limits import ServeLimits
from .layout import is_channel
from .owners import OWNERS_FILE

__all__ = ["CONNECTION_TIMEOUT_SECONDS", "MAX_CONNECTIONS", "channel_mounts", "serve_forever", "serving",
           "serving_channels"]

CONNECTION_TIMEOUT_SECONDS = ServeLimits().connection_timeout_seconds
"""A connection idle this long is closed (``limits.ServeLimits``)."""
MAX_CONNECTIONS = ServeLimits().max_connections
"""Connections served at once (``limits.ServeLimits``)."""

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def channel_mounts(channels: list[Path]) -> dict[str, Path]:
    """``{url name: channel directory}``; the name is the directory's own name."""
    mounts: dict[str, Path] = {}
    for channel in channels:
        channel = Path(channel)
        if not is_channel(channel):
            raise ChannelError(f"{channel}: not a channel published by ftforge",
                               hint="publish into it first with `ftforge channel publish`")
        name = channel.resolve().name
        if not name or name.startswith(".") or not set(name) <= _NAME_CHARS:
            raise ChannelError(f"{channel}: the directory name {name!r} cannot be a URL path",
                               hint="rename the channel directory (letters, digits, . _ -)")
        if name in mounts:
            raise ChannelError(f"{channel} and {mounts[name]} would both be served as /{name}/",
                               hint="serve channels whose directories have different names")
        mounts[name] = channel.resolve()
    if not mounts:
        raise ChannelError("no channel to serve", hint="give one or more channel directories")
    return mounts


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mounts: dict[str, Path]
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        self.slots = threading.BoundedSemaphore(self.max_connections)
        super().server_activate()

    def process_request(self, request, client_address) -> None:  # noqa: ANN001
        if not self.slots.acquire(blocking=False):  # full: close at once, hold nothing
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # noqa: ANN001
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # a client went away: not the server's problem
        sys.stderr.write(f"ftforge serve: {client_address[0]}: "
                         f"{type(exc).__name__}: {exc}\n")


def _plain_path(root: Path, parts: list[str]) -> bool:
    """Whether no component under ``root`` is a symlink and the last one is a regular
    file or a directory (a FIFO would hold the connection's thread forever)."""
    if not parts:
        return True
    here, mode = root, 0
    for part in parts:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except OSError:
            return True  # missing: the normal 404 follows
        if stat.S_ISLNK(mode):
            return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


class _ChannelHandler(SimpleHTTPRequestHandler):
    server: _Server
    timeout = CONNECTION_TIMEOUT_SECONDS
    """Per-connection socket timeout: an idle or slow client cannot hold a thread."""
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".json": "application/json",
        ".zst": "application/zstd",
        ".conda": "application/octet-stream",
        ".bz2": "application/x-bzip2",
    }
    _target: str = ""

    def send_head(self):  # noqa: ANN201 -- http.server's own hook
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        try:
            decoded = urllib.parse.unquote(raw, errors="strict")
        except UnicodeDecodeError:
            self.send_error(HTTPStatus.BAD_REQUEST, "path is not UTF-8")
            return None
        if "\\" in decoded or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
            self.send_error(HTTPStatus.BAD_REQUEST, "control characters in the path")
            return None
        parts = [p for p in decoded.split("/") if p]
        if any(p.startswith(".") for p in parts):  # also '..', '.ftforge', '.ftforge-channel'
            self.send_error(HTTPStatus.NOT_FOUND, "not served")
            return None
        if not parts:
            return self._root_page()
        root = self.server.mounts.get(parts[0])
        if root is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such channel")
            return None
        if parts[1:] == [OWNERS_FILE]:  # publisher state, like .ftforge/
            self.send_error(HTTPStatus.NOT_FOUND, "not served")
            return None
        target = os.path.realpath(root.joinpath(*parts[1:]))
        if target != str(root) and not target.startswith(str(root) + os.sep):
            self.send_error(HTTPStatus.NOT_FOUND, "not served")
            return None
        if not _plain_path(root, parts[1:]):  # like nginx's disable_symlinks on
            self.send_error(HTTPStatus.NOT_FOUND, "not served")
            return None
        self._target = target
        # Answered in full, never 304: http.server's 304 carries no validator (rattler's
        # shard-index cache then fails the solve), and its Last-Modified is whole seconds
        # (a channel published again within the second would be "not modified").
        del self.headers["If-Modified-Since"]
        return super().send_head()

    def translate_path(self, path: str) -> str:
        return self._target

    def list_directory(self, path):  # noqa: ANN001, ANN201
        self.send_error(HTTPStatus.NOT_FOUND, "no listing")
        return None

    def _root_page(self) -> io.BytesIO:
        links = "".join(f'<li><a href="/{name}/">/{name}/</a></li>'
                        for name in sorted(self.server.mounts))
        body = f"<!doctype html><title>channels</title><ul>{links}</ul>\n".encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet by default
        pass


def _server(channels: list[Path], port: int) -> _Server:
    mounts = channel_mounts(channels)
    if not 0 <= port <= 65535:
        raise ChannelError(f"port {port} is not a TCP port", hint="give --port 0-65535 "
                           "(0: any free port)")
    try:
        server = _Server(("127.0.0.1", port), _ChannelHandler)
    except OSError as exc:
        what = "is already in use" if exc.errno == errno.EADDRINUSE else (
            "needs privileges" if exc.errno == errno.EACCES else f"cannot be used ({exc.strerror})")
        raise ChannelError(f"port {port} on 127.0.0.1 {what}",
                           hint="pick another with --port (0: any free port)") from None
    server.mounts = mounts
    return server


def _urls(server: _Server) -> dict[str, str]:
    port = server.server_address[1]
    return {name: f"http://127.0.0.1:{port}/{name}/" for name in server.mounts}


def serve_forever(channels: Path | list[Path], *, port: int = 8000,
                  announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted; ``announce`` gets one line per channel URL."""
    server = _server(channels if isinstance(channels, list) else [channels], port)
    for name, url in _urls(server).items():
        announce(f"{url}  ({server.mounts[name]})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextmanager
def serving_channels(channels: list[Path], port: int = 0) -> Iterator[dict[str, str]]:
    """Serve in a background thread; yields ``{channel name: URL}``."""
    server = _server(list(channels), port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _urls(server)
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving(channel: Path, port: int = 0) -> Iterator[str]:
    """Serve one channel in a background thread; yields its URL (no trailing slash)."""
    with serving_channels([channel], port) as urls:
        yield next(iter(urls.values())).rstrip("/")
