"""A blocking text-protocol connection for the soak: every reply parsed, errors counted.

The soak measures the daemon, so this stays small: one socket, one buffer, the replies of
the commands the soak sends (storage, get/gets, delete, incr, touch, mg).
"""

from __future__ import annotations

import socket

ERROR_WORDS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


class ErrorReply(Exception):
    """The server answered ERROR, CLIENT_ERROR or SERVER_ERROR."""


class Wire:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2 :]
                if line.startswith(ERROR_WORDS):
                    raise ErrorReply(line.decode(errors="replace"))
                return line
            self._fill()

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def store(self, verb: bytes, key: bytes, value: bytes, flags: int = 0, ttl: int = 0) -> bytes:
        self.send(b"%s %s %d %d %d\r\n%s\r\n" % (verb, key, flags, ttl, len(value), value))
        return self.line()

    def get(self, *keys: bytes) -> dict[bytes, tuple[int, bytes]]:
        """``get`` of ``keys``: key -> (flags, value) for the hits."""
        self.send(b"get " + b" ".join(keys) + b"\r\n")
        found: dict[bytes, tuple[int, bytes]] = {}
        while True:
            head = self.line()
            if head == b"END":
                return found
            _, key, flags, size = head.split()[:4]
            found[key] = (int(flags), self.exactly(int(size)))

    def simple(self, command: bytes) -> bytes:
        self.send(command + b"\r\n")
        return self.line()

    def meta_get(self, key: bytes) -> tuple[int, bytes] | None:
        """``mg key f v``: (flags, value), None on a miss."""
        self.send(b"mg " + key + b" s f v\r\n")
        head = self.line()
        if head == b"EN":
            return None
        words = head.split()
        size = int(words[1])
        flags = next(int(w[1:]) for w in words[2:] if w.startswith(b"f"))
        return flags, self.exactly(size)

    def stats(self, sub: bytes = b"") -> dict[str, str]:
        self.send(b"stats " + sub + b"\r\n" if sub else b"stats\r\n")
        out: dict[str, str] = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            _, name, value = line.decode().split(" ", 2)
            out[name] = value

    def metadump_count(self) -> int:
        """How many items ``lru_crawler metadump all`` lists (its lines end in a bare LF)."""
        self.send(b"lru_crawler metadump all\r\n")
        while not (self.buf.startswith(b"END\r\n") or b"\nEND\r\n" in self.buf):
            if self.buf.startswith(ERROR_WORDS):
                raise ErrorReply(self.line().decode(errors="replace"))
            self._fill()
        end = self.buf.index(b"END\r\n")
        body, self.buf = self.buf[:end], self.buf[end + 5 :]
        return sum(line.startswith(b"key=") for line in body.split(b"\n"))
