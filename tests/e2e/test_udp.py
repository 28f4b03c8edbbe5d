"""The UDP listener: memcached's frame header, datagram splitting, and a raw-socket client.

The framing rules are checked without sockets first, then a memcachepy started with ``-U``
is queried with a small raw-socket client, and single-request datagrams are compared with a
real memcached started with ``-U`` (requests spread over one datagram each: memcached's
handling of several requests in one datagram depends on thread timing).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from memcachepy import VERSION
from memcachepy.config import Settings
from memcachepy.dispatch.binary import BinaryDispatcher
from memcachepy.dispatch.text import TEXT_FRAMING, Dispatcher
from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.hooks import Handler
from memcachepy.protocol.binary import Opcode, request
from memcachepy.protocol.text import TextParser
from memcachepy.server.udp import (
    FLUSH_BYTES,
    FRAME_HEADER,
    MAX_DATA,
    MAX_DATAGRAM,
    answer,
    frame_responses,
    handle_datagram,
)
from memcachepy.store.cache import Cache
from tests.servers import HOST, ServerProcess, memcached_server, memcachepy_server

# -- framing, without sockets -------------------------------------------------------------------


def headers(datagrams: list[bytes]) -> list[tuple[int, int, int, int]]:
    return [FRAME_HEADER.unpack_from(d) for d in datagrams]


def test_one_small_response_is_one_datagram() -> None:
    (datagram,) = frame_responses(7, [b"END\r\n"])
    assert datagram == struct.pack(">HHHH", 7, 0, 1, 0) + b"END\r\n"


def test_large_response_is_split_into_numbered_datagrams() -> None:
    body = bytes(range(256)) * 20  # 5120 bytes: 3 full datagrams and a short one
    datagrams = frame_responses(0xBEEF, [body])
    assert headers(datagrams) == [(0xBEEF, seq, 4, 0) for seq in range(4)]
    assert all(len(d) == MAX_DATAGRAM for d in datagrams[:3])
    assert b"".join(d[8:] for d in datagrams) == body
    assert len(datagrams[-1]) - 8 == len(body) - 3 * MAX_DATA


def test_each_response_numbers_its_own_datagrams() -> None:
    datagrams = frame_responses(1, [b"a" * (MAX_DATA + 1), b"b"])
    assert headers(datagrams) == [(1, 0, 2, 0), (1, 1, 2, 0), (1, 0, 1, 0)]


def test_empty_responses_are_bare_headers_unless_retired_by_the_one_before() -> None:
    # memcached's transmit_udp: the datagram that finishes a response also retires the
    # empty and noreply responses right after it; an empty one at the head goes out bare.
    datagrams = frame_responses(3, [b"", b"", b"V", b"", None, b"", b"W", None])
    assert headers(datagrams) == [(3, 0, 0, 0), (3, 0, 1, 0), (3, 0, 1, 0)]
    assert [d[8:] for d in datagrams] == [b"", b"V", b"W"]
    assert frame_responses(3, [None, None]) == []


@pytest.fixture
def session() -> Iterator[object]:
    settings = Settings()
    cache = Cache(8 << 20, framing=TEXT_FRAMING)
    counters = ServerCounters()
    text = Dispatcher(settings, cache, counters)
    binary = BinaryDispatcher(settings, cache, counters)

    def start(first: int) -> tuple[object, Handler]:
        if first == 0x80:
            from memcachepy.protocol.binary import BinaryParser

            return BinaryParser(cache.item_fits), binary.handle
        return TextParser(cache.item_fits), text.handle

    yield start


def datagram(payload: bytes, request_id: int = 9, total: int = 1) -> bytes:
    return struct.pack(">HHHH", request_id, 0, total, 0) + payload


def test_datagram_requests(session: object) -> None:
    def ask(payload: bytes, **kw: int) -> list[bytes]:
        return [d[8:] for d in handle_datagram(datagram(payload, **kw), session)]  # type: ignore[arg-type]

    assert ask(b"set a 0 0 3\r\nabc\r\nget a\r\n") == [
        b"STORED\r\n",
        b"VALUE a 0 3\r\nabc\r\nEND\r\n",
    ]
    # A multi-get answers one response per key; a missed first key is a bare header.
    assert ask(b"get x a y a\r\n") == [
        b"",
        b"VALUE a 0 3\r\nabc\r\n",
        b"VALUE a 0 3\r\nabc\r\nEND\r\n",
    ]
    assert ask(b"set q 0 0 1 noreply\r\nz\r\n") == []
    assert ask(b"get a", total=1) == []  # incomplete: dropped
    assert ask(b"get a\r\n", total=2) == []  # spread over datagrams: dropped
    assert ask(b"quit\r\nget a\r\n") == [b""]  # quit ends the datagram
    noop = request(Opcode.NOOP, opaque=5)
    (reply,) = ask(request(Opcode.GETQ, b"nx") + noop)[1:]
    assert reply[:2] == b"\x81\x0a" and reply[12:16] == b"\0\0\0\x05"
    assert handle_datagram(b"\0\1\0\0\0\1\0\0", session) == []  # type: ignore[arg-type]


def test_responses_are_sent_in_bounded_batches(session: object) -> None:
    value = b"v" * 200_000
    handle_datagram(datagram(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value)), session)  # type: ignore[arg-type]
    batches = list(answer(datagram(b"get big big big big\r\n"), session))  # type: ignore[arg-type]
    assert len(batches) == 2  # flushed once 256 KiB were waiting, then at the end
    assert all(sum(map(len, batch)) < 2 * FLUSH_BYTES for batch in batches)
    body = b"".join(d[8:] for batch in batches for d in batch)
    assert body == (b"VALUE big 0 200000\r\n" + value + b"\r\n") * 4 + b"END\r\n"


# -- a live daemon --------------------------------------------------------------------------------


def free_udp_port() -> int:
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind((HOST, port))  # the same number must be free for TCP too
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


class UdpClient:
    """Sends request datagrams and collects the datagrams answering each."""

    def __init__(self, port: int) -> None:
        self.address = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.next_id = 100

    def close(self) -> None:
        self.sock.close()

    def send(self, payload: bytes, total: int = 1) -> int:
        self.next_id += 1
        self.sock.sendto(struct.pack(">HHHH", self.next_id, 0, total, 0) + payload, self.address)
        return self.next_id

    def collect(
        self, request_id: int, *, expect: int | None = None, quiet: float = 0.1, wait: float = 3.0
    ) -> list[tuple[tuple[int, int, int, int], bytes]]:
        """(header, data) of the datagrams for ``request_id``: ``expect`` of them, or all
        that arrive before ``quiet`` seconds pass without one (``wait`` at most)."""
        got: list[tuple[tuple[int, int, int, int], bytes]] = []
        deadline = time.monotonic() + wait
        for _ in range(100_000):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (expect is not None and len(got) >= expect):
                break
            self.sock.settimeout(remaining if expect is not None else min(remaining, quiet))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                if expect is None:
                    break
                continue
            header = FRAME_HEADER.unpack_from(data)
            if header[0] == request_id:
                got.append((header, data[8:]))
        return got

    def ask(
        self, payload: bytes, *, expect: int | None = None, quiet: float = 0.1, total: int = 1
    ) -> list[tuple[tuple[int, int, int, int], bytes]]:
        return self.collect(self.send(payload, total), expect=expect, quiet=quiet)


@pytest.fixture(scope="module")
def udp_server() -> Iterator[tuple[ServerProcess, int]]:
    port = free_udp_port()
    with memcachepy_server("-U", str(port), port=port) as proc:
        yield proc, port


@pytest.fixture
def client(udp_server: tuple[ServerProcess, int]) -> Iterator[UdpClient]:
    c = UdpClient(udp_server[1])
    yield c
    c.close()


def test_udp_version_set_get(client: UdpClient) -> None:
    ((header, data),) = client.ask(b"version\r\n", expect=1)
    assert header[1:] == (0, 1, 0) and data.startswith(b"VERSION 1.6.18")
    assert client.ask(b"set u:a 0 0 3\r\nabc\r\n", expect=1)[0][1] == b"STORED\r\n"
    assert client.ask(b"get u:a\r\n", expect=1)[0][1] == b"VALUE u:a 0 3\r\nabc\r\nEND\r\n"


def test_udp_large_value_comes_in_numbered_datagrams(client: UdpClient) -> None:
    value = bytes(range(256)) * 40
    assert (
        client.ask(b"set u:big 0 0 %d\r\n%s\r\n" % (len(value), value), expect=1)[0][1]
        == b"STORED\r\n"
    )
    got = client.ask(b"get u:big\r\n", expect=8)
    total = got[0][0][2]
    assert total == len(got) == -(-(len(value) + 25) // MAX_DATA)
    assert sorted(h[1] for h, _ in got) == list(range(total))
    reply = b"".join(data for _, data in sorted(got, key=lambda g: g[0][1]))
    assert reply == b"VALUE u:big 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)


def test_udp_binary_request(client: UdpClient) -> None:
    ((_, data),) = client.ask(request(Opcode.VERSION, opaque=77), expect=1)
    assert data[:2] == b"\x81\x0b" and data[12:16] == struct.pack(">I", 77)
    assert data[24:].startswith(b"1.6.18")


def test_udp_request_over_several_datagrams_is_dropped(client: UdpClient) -> None:
    assert client.ask(b"version\r\n", total=2, quiet=0.3) == []


def test_udp_is_off_by_default() -> None:
    port = free_udp_port()
    with memcachepy_server(port=port) as proc:
        with proc.connect() as tcp:
            tcp.sendall(b"stats settings\r\n")
            deadline = time.monotonic() + 5
            settings = b""
            while not settings.endswith(b"END\r\n") and time.monotonic() < deadline:
                settings += tcp.recv(65536)
        assert b"STAT udpport 0\r\n" in settings
        client = UdpClient(port)
        try:
            assert client.ask(b"version\r\n", quiet=0.3) == []
        finally:
            client.close()


def test_udp_stats_settings_report_the_port(
    udp_server: tuple[ServerProcess, int], client: UdpClient
) -> None:
    got = client.ask(b"stats settings\r\n")
    reply = b"".join(data for _, data in sorted(got, key=lambda g: g[0][1]))
    assert b"STAT udpport %d\r\n" % udp_server[1] in reply


# -- against memcached -----------------------------------------------------------------------------

SINGLE_REQUESTS = [
    b"version\r\n",
    b"set d:a 0 0 3\r\nabc\r\n",
    b"get d:a\r\n",
    b"get d:x d:a d:y d:a\r\n",
    b"get d:x d:y d:z\r\n",
    b"set d:big 0 0 3000\r\n" + b"v" * 3000 + b"\r\n",
    b"get d:a d:big\r\n",
    b"delete d:x noreply\r\n",
    b"incr d:a 1\r\n",
    b"bogus\r\n",
    b"\r\n",
    b"quit\r\n",
    b"x" * 3000 + b"\r\n",
    b"get d:a " + b"k" * 251 + b"\r\n",
    request(Opcode.GETQ, b"d:nx") + request(Opcode.NOOP),
    request(Opcode.GETK, b"d:a", opaque=3),
    request(Opcode.SETQ, b"d:q", struct.pack(">II", 0, 0), b"v"),
]


def test_udp_datagrams_match_memcached() -> None:
    port_a, port_b = free_udp_port(), free_udp_port()
    with (
        memcached_server("-U", str(port_a), port=port_a) as theirs,
        memcachepy_server("-U", str(port_b), port=port_b) as ours,
    ):
        assert theirs and ours
        clients = UdpClient(port_a), UdpClient(port_b)
        try:
            for payload in SINGLE_REQUESTS:
                ids = [c.send(payload) for c in clients]
                answers = [
                    [
                        (h[1:], data.replace(VERSION.encode(), b"1.6.18"))
                        for h, data in c.collect(request_id)
                    ]
                    for c, request_id in zip(clients, ids, strict=True)
                ]
                assert answers[0] == answers[1], payload[:60]
        finally:
            for c in clients:
                c.close()
