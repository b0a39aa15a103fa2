"""`channel serve` like nginx with ``disable_symlinks on`` (issue 13 follow-up): no
path through a symlink is served, even one that stays inside the channel, nor a FIFO
(it would hold a thread forever); an idle connection is closed."""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from ftforge.channel import serve
from ftforge.channel.publish import publish
from ftforge.channel.serve import serving_channels
from ftforge.channel.synthetic import SyntheticPackage, write_package

from ..servers import http_status


def _channel(tmp_path):
    package = SyntheticPackage("plain", "1.0", "0", subdir="noarch", noarch="generic",
                               files={"share/plain": b"p"})
    channel = tmp_path / "ch"
    publish([write_package(package, tmp_path / "in")], channel)
    return channel


def test_symlinks_and_fifos_in_a_channel_are_not_served(tmp_path):
    channel = _channel(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (channel / "noarch" / "inside-link.json").symlink_to("repodata.json")
    (channel / "noarch" / "outside-link.txt").symlink_to(secret)
    (channel / "linked-dir").symlink_to(channel / "noarch")
    os.mkfifo(channel / "noarch" / "pipe.json")
    with serving_channels([channel]) as urls:
        url = urls["ch"]
        assert http_status(url + "noarch/repodata.json") == 200
        for path in ("noarch/inside-link.json", "noarch/outside-link.txt",
                     "linked-dir/repodata.json", "noarch/pipe.json"):
            assert http_status(url + path) == 404, path


def test_an_idle_connection_is_closed(tmp_path, monkeypatch):
    default = serve._ChannelHandler.timeout
    assert default is not None and 0 < default <= 120, default  # never unbounded
    monkeypatch.setattr(serve._ChannelHandler, "timeout", 0.5)
    channel = _channel(tmp_path)
    with serving_channels([channel]) as urls:
        parts = urllib.parse.urlsplit(urls["ch"])
        with socket.create_connection((parts.hostname, parts.port)) as idle:
            idle.sendall(b"GET /ch/noarch/repodata.json HTTP/1.1\r\n")  # never finished
            idle.settimeout(20)
            assert idle.recv(1) == b""  # the server closed it (a hang fails by timeout)
        assert http_status(urls["ch"] + "noarch/repodata.json") == 200


def test_connections_beyond_the_cap_are_closed_at_once(tmp_path, monkeypatch):
    assert 0 < serve._Server.max_connections <= 1024  # bounded by default
    monkeypatch.setattr(serve._Server, "max_connections", 2)
    channel = _channel(tmp_path)
    with serving_channels([channel]) as urls:
        parts = urllib.parse.urlsplit(urls["ch"])
        address = (parts.hostname, parts.port)
        held = [socket.create_connection(address) for _ in range(2)]
        for sock in held:
            sock.sendall(b"GET /ch/ HTTP/1.1\r\n")  # never finished: each holds a slot
        with socket.create_connection(address) as extra:
            extra.settimeout(20)
            assert extra.recv(1) == b""  # closed without an answer
        for sock in held:
            sock.close()
        for _ in range(100):  # the slots come back once the held connections end
            try:
                if http_status(urls["ch"] + "noarch/repodata.json") == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass  # still full: closed at once
            time.sleep(0.1)
        else:
            raise AssertionError("the server did not recover after the idle clients left")
