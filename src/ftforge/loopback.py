"""Servers on 127.0.0.1: a free port, and waiting until a started process listens."""

from __future__ import annotations

import socket
import subprocess
import time

from .errors import FtforgeError

__all__ = ["free_port", "wait_for_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    """Return once ``proc`` accepts connections on ``port``; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                stream = proc.stderr or proc.stdout
                output = stream.read() if stream else ""
                if isinstance(output, bytes):
                    output = output.decode(errors="replace")
                raise FtforgeError(f"{what} exited with {proc.returncode}: {output.strip()}",
                                   hint="see its error log in the work directory") from None
            time.sleep(0.05)
    raise FtforgeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")
