"""A blocking text-protocol connection: just what the operator's tool asks a server."""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

DEFAULT_PORT: Final = 11211
_ERRORS: Final = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
_BUSY_RETRIES: Final = 20  # tries of a metadump while memcached's crawler is busy
_BUSY_WAIT: Final = 0.1


class ToolError(Exception):
    """The server could not be reached, or answered what the tool cannot use."""


class CommandRefused(ToolError):
    """The server answered a command with an error line (it may not know the command)."""

    def __init__(self, line: bytes) -> None:
        super().__init__(line.decode("utf-8", "replace"))
        self.line = line


def parse_address(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6addr]:port`` or ``host`` (port 11211)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}")
        port = rest[1:] or str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif ":" in text:
        raise ValueError(f"write IPv6 addresses as [addr]:port, got {text!r}")
    else:
        host, port = text, str(DEFAULT_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {text!r} (want HOST:PORT)")
    return host, int(port)


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class DumpedKey:
    """A key found by metadump or cachedump; ``exptime`` is absolute (0 = never)."""

    key: bytes
    exptime: int


@dataclass(frozen=True, slots=True)
class Value:
    key: bytes
    flags: int
    data: bytes


class Connection:
    """One TCP connection to a memcached-compatible server."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.address = address
        try:
            self._sock = socket.create_connection(address, timeout=timeout)
        except OSError as exc:
            raise ToolError(f"cannot connect to {format_address(address)}: {exc}") from None
        self._buf = b""

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- bytes ----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise ToolError(f"{format_address(self.address)}: {exc}") from None

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except OSError as exc:
            raise ToolError(f"{format_address(self.address)}: {exc}") from None
        if not chunk:
            raise ToolError(f"{format_address(self.address)} closed the connection")
        self._buf += chunk

    def readline(self) -> bytes:
        """One line without its line ending (``\\n`` or ``\\r\\n``)."""
        while (end := self._buf.find(b"\n")) < 0:
            self._fill()
        line, self._buf = self._buf[:end], self._buf[end + 1 :]
        return line[:-1] if line.endswith(b"\r") else line

    def read_exact(self, count: int) -> bytes:
        while len(self._buf) < count:
            self._fill()
        data, self._buf = self._buf[:count], self._buf[count:]
        return data

    # -- commands -------------------------------------------------------------------------

    def lines(self, command: bytes) -> Iterator[bytes]:
        """Send ``command`` and yield its reply lines until ``END`` (error lines raise)."""
        self.send(command + b"\r\n")
        while True:
            line = self.readline()
            if line == b"END":
                return
            if line.startswith(_ERRORS):
                raise CommandRefused(line)
            yield line

    def stats(self, sub: str = "") -> list[tuple[str, str]]:
        """``stats [sub]`` as (name, value) pairs, in the server's order."""
        pairs: list[tuple[str, str]] = []
        for line in self.lines(b"stats" + (b" " + sub.encode() if sub else b"")):
            parts = line.decode("utf-8", "replace").split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                pairs.append((parts[1], parts[2]))
        return pairs

    def version(self) -> str:
        self.send(b"version\r\n")
        line = self.readline()
        if not line.startswith(b"VERSION "):
            raise CommandRefused(line)
        return line[8:].decode("utf-8", "replace")

    def get_many(self, keys: list[bytes]) -> list[Value]:
        """The values of ``keys`` that exist (one ``get``)."""
        if not keys:
            return []
        self.send(b"get " + b" ".join(keys) + b"\r\n")
        values: list[Value] = []
        while True:
            line = self.readline()
            if line == b"END":
                return values
            if not line.startswith(b"VALUE "):
                raise CommandRefused(line)
            _, key, flags, length = line.split(b" ")[:4]
            data = self.read_exact(int(length) + 2)[:-2]
            values.append(Value(key, int(flags), data))

    def config_get_cluster(self) -> bytes:
        """The whole ``config get cluster`` reply (for memcachepy.cluster.discovery).

        Any other first line (``ERROR`` from a node that is no configuration endpoint) is
        returned alone, for the parser to explain.
        """
        self.send(b"config get cluster\r\n")
        first = self.readline()
        if not first.startswith(b"CONFIG "):
            return first + b"\r\n"
        length = int(first.split(b" ")[3])
        body = self.read_exact(length)
        end = self.read_exact(7)  # \r\nEND\r\n
        return first + b"\r\n" + body + end

    def metadump(self) -> Iterator[DumpedKey]:
        """Every item's key via ``lru_crawler metadump all``, streamed as it arrives.

        memcached answers ``BUSY`` while its crawler is on another job: retried a little.
        A server without metadump raises :class:`CommandRefused` before anything is yielded.
        """
        for _ in range(_BUSY_RETRIES):
            self.send(b"lru_crawler metadump all\r\n")
            first = self.readline()
            if not first.startswith(b"BUSY"):
                break
            time.sleep(_BUSY_WAIT)
        else:
            raise ToolError(f"{format_address(self.address)}: the LRU crawler stayed busy")
        line = first
        while line != b"END":
            if line.startswith(_ERRORS) or line.startswith(b"BUSY"):
                raise CommandRefused(line)
            fields = dict(part.split(b"=", 1) for part in line.split(b" ") if b"=" in part)
            if b"key" in fields:
                exp = int(fields.get(b"exp", b"-1"))
                yield DumpedKey(urllib.parse.unquote_to_bytes(fields[b"key"]), max(exp, 0))
            line = self.readline()

    def cachedump(self) -> Iterator[DumpedKey]:
        """Every key via ``stats cachedump`` of each slab class (older servers' way).

        Incomplete by design: memcached lists only each class's cold LRU segment, at most
        2 MB of lines per class (memcachepy follows it).
        """
        classes = sorted(
            {
                int(name.split(":")[1])
                for name, _ in self.stats("items")
                if name.startswith("items:") and name.endswith(":number")
            }
        )
        for class_id in classes:
            for line in self.lines(b"stats cachedump %d 0" % class_id):
                if not line.startswith(b"ITEM "):
                    continue
                key, _, rest = line[5:].partition(b" [")
                exptime = int(rest.split(b"; ")[1].split(b" ")[0]) if b"; " in rest else 0
                yield DumpedKey(key, exptime)
