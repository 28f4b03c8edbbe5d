"""A raw-socket helper: send bytes, read until an expected ending or the peer closes."""

from __future__ import annotations

import socket
import time


def exchange(
    sock: socket.socket, data: bytes, until: bytes = b"\r\n", timeout: float = 5.0
) -> bytes:
    """Send ``data`` and read until the reply ends with ``until`` (or the connection closes)."""
    sock.sendall(data)
    return read_until(sock, until, timeout)


def read_until(sock: socket.socket, until: bytes, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(until):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {until!r} after {buf[-200:]!r}")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True once the server closes the connection (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
