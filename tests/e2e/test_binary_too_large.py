"""A binary set too large to store, then a bad magic byte: memcached's reply comes first.

memcached swallows a too-large value from the socket, reading no further than its end, so
it writes its ``Too large.`` reply before it meets the bad byte and closes.
"""

from __future__ import annotations

import struct

from tests.servers import ServerProcess, memcached_server, memcachepy_server


def _frame(opcode: int, key: bytes, value: bytes, extras: bytes = b"") -> bytes:
    body = extras + key + value
    header = struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, len(body), 0, 0)
    return header + body


def _everything(server: ServerProcess, data: bytes) -> bytes:
    with server.connect() as sock:
        sock.sendall(data)
        sock.settimeout(5)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return got


def test_too_large_reply_is_sent_before_a_bad_magic_byte_closes() -> None:
    too_large = _frame(0x01, b"k", b"x" * (1024 * 1024 + 10), extras=bytes(8))
    data = too_large + bytes(24)  # then a header with magic 0x00
    with memcached_server() as real:
        theirs = _everything(real, data)
    with memcachepy_server() as ours:
        mine = _everything(ours, data)
    assert mine == theirs
    assert mine.endswith(b"Too large.") and mine[7] == 0x03
