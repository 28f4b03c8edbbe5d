"""SASL PLAIN over the binary protocol (-S), with python-binary-memcached's SASL client."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import bmemcached
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.auth.authfile import Authfile
from memcachepy.config import Settings
from memcachepy.dispatch.binary import BinaryDispatcher, BinarySession
from memcachepy.dispatch.reply import Reply
from memcachepy.ops.counters import ServerCounters
from memcachepy.protocol.binary import BinaryParser, Opcode
from memcachepy.protocol.events import _NeedData
from memcachepy.store.cache import Cache
from tests.servers import ServerProcess, free_port, memcachepy_argv, spawn

HEADER = struct.Struct(">BBHBBHIIQ")


def frame(opcode: int, key: bytes = b"", value: bytes = b"", extras: bytes = b"") -> bytes:
    body = extras + key + value
    return HEADER.pack(0x80, opcode, len(key), len(extras), 0, 0, len(body), 0, 0) + body


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """(status, value) of one response; (-1, b"") if the server closed."""
    head = b""
    while len(head) < 24:
        chunk = sock.recv(24 - len(head))
        if not chunk:
            return -1, b""
        head += chunk
    _, _, keylen, extlen, _, status, bodylen, _, _ = HEADER.unpack(head)
    body = b""
    while len(body) < bodylen:
        body += sock.recv(bodylen - len(body))
    return status, body[extlen + keylen :]


@pytest.fixture
def pwdb(tmp_path: Path) -> Path:
    path = tmp_path / "sasl-pwdb"
    path.write_text("alice:wonderland\nbob:builder\n")
    return path


@pytest.fixture
def server(pwdb: Path) -> Iterator[ServerProcess]:
    port = free_port()
    srv = spawn(memcachepy_argv(port, "-S", "-o", f"sasl_pwdb={pwdb}"), port)
    yield srv
    srv.stop()


def test_binary_memcached_client_authenticates(server: ServerProcess) -> None:
    client = bmemcached.Client([f"{server.host}:{server.port}"], "alice", "wonderland")
    assert client.set("k", "v")
    assert client.get("k") == "v"
    client.disconnect_all()


def test_wrong_password_is_refused(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(frame(Opcode.SASL_AUTH, b"PLAIN", b"\0alice\0wrong"))
        assert read_frame(sock) == (0x20, b"Auth failure.")
        sock.sendall(frame(Opcode.SASL_LIST_MECHS))
        assert read_frame(sock) == (0, b"PLAIN")
        sock.sendall(frame(Opcode.SASL_AUTH, b"PLAIN", b"\0alice\0wonderland"))
        assert read_frame(sock) == (0, b"Authenticated")
        sock.sendall(frame(Opcode.GET, b"nothing"))
        assert read_frame(sock)[0] == 0x01  # not found: now allowed


def test_commands_before_auth_are_refused_and_closed(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(frame(Opcode.VERSION))
        assert read_frame(sock)[0] == 0
        sock.sendall(frame(Opcode.SET, b"k", b"v", extras=bytes(8)))
        assert read_frame(sock) == (0x20, b"Auth failure.")
        assert read_frame(sock) == (-1, b"")
    with server.connect() as sock:  # text is refused too: -S means binary only
        sock.sendall(b"get k\r\n" * 4)  # a whole header's worth: bad magic byte
        sock.settimeout(5)
        assert sock.recv(100) == b""


def test_sasl_flag_combinations_are_checked() -> None:
    import subprocess
    import sys

    for extra in (["-B", "ascii"], ["-U", "11311"], []):
        result = subprocess.run(
            [sys.executable, "-m", "memcachepy", "-S", *extra],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 64, extra
        assert len(result.stderr.strip().splitlines()) == 1


FRAMES = st.one_of(
    st.builds(
        frame,
        st.sampled_from([op.value for op in Opcode]),
        st.binary(max_size=8),
        st.binary(max_size=16),
        st.sampled_from([b"", bytes(4), bytes(8), bytes(20)]),
    ),
    st.builds(
        lambda data: frame(Opcode.SASL_AUTH, b"PLAIN", data),
        st.sampled_from([b"\0alice\0wrong", b"alice", b"\0\0", b"bob\0alice\0wonderland"]),
    ),
    st.binary(max_size=40).map(lambda b: b"\x80" + b),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAMES, max_size=10))
def test_no_interleaving_before_auth_reaches_the_store(frames: list[bytes]) -> None:
    cache = Cache(8 << 20)
    dispatcher = BinaryDispatcher(
        Settings(sasl=True, protocol="binary"),
        cache,
        ServerCounters(),
        sasl=Authfile([(b"alice", b"wonderland")]),
    )
    session = BinarySession(dispatcher)
    parser = BinaryParser(cache.item_fits, sasl=True)
    parser.receive_data(b"".join(frames))
    out: list[Reply] = []
    while not isinstance(event := parser.next_event(), _NeedData):
        if session.handle(event, out) != 0:  # the connection closes
            break
    assert not session.authenticated
    assert len(cache) == 0 and cache.counters.total_items == 0
