"""UDP under abuse (-U): a datagram's reply is bounded, and TCP clients are not held.

CVE-2018-1000115 made memcached's UDP port a reflector: a small spoofed get for large
values answered with megabytes. Here one datagram's reply is at most REPLY_RATIO times its
size (at least REPLY_FLOOR), and large replies go out in batches between other tasks.
"""

from __future__ import annotations

import socket
import struct
import time

from bench.abuse.probes import Checker
from memcachepy.config import Settings
from memcachepy.dispatch.text import TEXT_FRAMING, Dispatcher
from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.hooks import Handler
from memcachepy.protocol.text import TextParser
from memcachepy.server.udp import MAX_DATAGRAM, REPLY_FLOOR, REPLY_RATIO, answer
from memcachepy.store.cache import Cache
from tests.e2e.test_udp import free_udp_port
from tests.e2e.wire import exchange
from tests.servers import HOST, memcachepy_server


def datagram(payload: bytes, request_id: int = 1) -> bytes:
    return struct.pack(">HHHH", request_id, 0, 1, 0) + payload


def test_reply_to_a_datagram_is_bounded_by_its_size() -> None:
    cache = Cache(64 << 20, framing=TEXT_FRAMING)
    text = Dispatcher(Settings(), cache, ServerCounters())

    def session(first: int) -> tuple[TextParser, Handler]:
        return TextParser(cache.item_fits), text.handle

    value = b"v" * 300_000
    for n in range(10):
        cache_reply: list[bytes] = []
        parser = TextParser(cache.item_fits)
        parser.receive_data(b"set k%d 0 0 %d\r\n%s\r\n" % (n, len(value), value))
        text.handle(parser.next_event(), cache_reply)  # type: ignore[arg-type]
    small = datagram(b"get " + b" ".join(b"k%d" % n for n in range(10)) + b"\r\n")
    sent = sum(len(d) for batch in answer(small, session) for d in batch)
    # Three values fit under the floor; the fourth would pass it, and nothing more is sent.
    assert sent < REPLY_FLOOR * MAX_DATAGRAM // (MAX_DATAGRAM - 8)
    assert sent > 3 * len(value)
    # A longer request may pull proportionally more.
    big = datagram(b"get " + b" ".join(b"k%d" % (n % 10) for n in range(12_000)) + b"\r\n")
    allowed = REPLY_RATIO * len(big)
    sent = sum(len(d) for batch in answer(big, session) for d in batch)
    assert REPLY_FLOOR < sent <= allowed * MAX_DATAGRAM // (MAX_DATAGRAM - 8)


def test_a_datagram_asking_for_a_gigabyte_holds_no_tcp_client() -> None:
    port = free_udp_port()
    with memcachepy_server("-U", str(port), "-m", "64", port=port) as server:
        value = b"x" * (1024 * 1024 - 512)
        with server.connect(timeout=30) as sock:
            for n in range(20):
                reply = exchange(sock, b"set u%d 0 0 %d\r\n%s\r\n" % (n, len(value), value))
                assert reply == b"STORED\r\n"
        request = datagram(b"get " + b" ".join(b"u%d" % (n % 20) for n in range(1000)) + b"\r\n")
        received = 0
        with Checker(server.address) as checker:
            time.sleep(0.1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                udp.sendto(request, (HOST, port))
                udp.settimeout(1.0)
                try:
                    for _ in range(100_000):
                        received += len(udp.recv(65536))
                except TimeoutError:
                    pass
        result = checker.result
        assert result.errors == 0 and result.pairs > 0, result
        assert result.slowest < 0.5, result  # was 5.6 s
        # 1 GB asked for; at most the floor (one value) is sent, and the ratio is bounded.
        assert 0 < received <= REPLY_FLOOR * MAX_DATAGRAM // (MAX_DATAGRAM - 8)
        assert received / len(request) < 400
