"""``ftforge channel serve``: a channel over HTTP on loopback, for local use.

Production serving is nginx (:mod:`ftforge.channel.nginx`); this is the
same file tree with the same rule that publisher state (dot paths) is never
served.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..errors import ChannelError
from .layout import is_channel

__all__ = ["serve_forever", "serving"]


class _ChannelHandler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".json": "application/json",
        ".zst": "application/zstd",
        ".conda": "application/octet-stream",
        ".bz2": "application/x-bzip2",
    }

    def send_head(self):
        if any(part.startswith(".") for part in self.path.split("?")[0].split("/")):
            self.send_error(404, "not served")
            return None
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:  # quiet by default
        pass


def _server(channel: Path, port: int) -> ThreadingHTTPServer:
    if not is_channel(channel):
        raise ChannelError(f"{channel} is not a channel published by ftforge",
                           hint="publish into it first with `ftforge channel publish`")
    handler = partial(_ChannelHandler, directory=str(channel))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve_forever(channel: Path, *, port: int = 8000,
                  announce: Callable[[str], None] = print) -> None:
    server = _server(channel, port)
    announce(f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextmanager
def serving(channel: Path, port: int = 0) -> Iterator[str]:
    """Serve in a background thread; yields the base URL."""
    server = _server(channel, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
