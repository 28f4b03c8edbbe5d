"""The connection loop's synchronous steps over socketpairs: read, again, write, close.

A real daemon's parts (``Server`` builds them as it does when it serves) answer through
``Multiplexer.serve_round``, as the loop task calls it on each wake-up; only trio is left out.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from memcachepy import VERSION
from memcachepy.config import Settings
from memcachepy.server.daemon import Server
from memcachepy.server.multiplexer import EPOLLIN, Connection, Multiplexer

LINE = b"VERSION %s\r\n" % VERSION.encode()


class Pair:
    """One multiplexed connection of a real server's loop, and the client's end."""

    def __init__(self, settings: Settings) -> None:
        self.server = Server(settings)
        self.mux: Multiplexer = self.server.loop.mux
        ours, self.client = socket.socketpair()
        ours.setblocking(False)
        self.client.settimeout(5)
        self.conn = Connection(ours, "test", False)
        self.mux.connections[self.conn.fd] = self.conn
        self.mux.epoll.register(self.conn.fd, EPOLLIN)
        self.mux.muxed[self.conn.fd] = self.conn
        self.server.counters.curr_connections += 1  # as the acceptor counts it

    def ask(self, request: bytes) -> None:
        self.client.sendall(request)

    def reply(self, size: int) -> bytes:
        got = b""
        while len(got) < size:
            chunk = self.client.recv(size - len(got))
            assert chunk, got
            got += chunk
        return got


@pytest.fixture
def pair() -> Iterator[Pair]:
    made = Pair(Settings())
    yield made
    made.client.close()
    made.mux.epoll.close()


def test_a_read_is_answered_and_the_connection_reads_again(pair: Pair) -> None:
    pair.ask(b"set k 0 0 2\r\nhi\r\nget k\r\n")
    assert pair.mux.serve_round() == 1
    assert pair.reply(30) == b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n"
    assert not pair.conn.queued and not pair.conn.writing and not pair.conn.closed
    assert pair.mux.serve_round() == 0  # nothing more arrived


def test_a_request_split_over_reads_waits_for_its_end(pair: Pair) -> None:
    pair.ask(b"set k 0 0 5\r\nhe")
    pair.mux.serve_round()
    pair.ask(b"llo\r\nget k\r")
    pair.mux.serve_round()
    pair.ask(b"\n")
    pair.mux.serve_round()
    assert pair.reply(33) == b"STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n"


def test_a_spent_budget_serves_the_rest_next_round() -> None:
    made = Pair(Settings(reqs_per_event=2))
    try:
        made.ask(b"version\r\n" * 5)
        made.mux.serve_round()
        assert made.conn.queued  # two answered, three buffered: served again next round
        assert made.reply(len(LINE) * 2) == LINE * 2
        made.mux.serve_round()
        made.mux.serve_round()
        assert made.reply(len(LINE) * 3) == LINE * 3
        assert not made.conn.queued
        assert made.server.counters.conn_yields >= 2
    finally:
        made.client.close()
        made.mux.epoll.close()


def test_a_full_socket_stops_reading_until_the_replies_are_gone(pair: Pair) -> None:
    pair.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pair.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    value = b"v" * 100_000
    pair.ask(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value))
    for _ in range(20):  # a read takes 16 KiB a round, as memcached's
        pair.mux.serve_round()
    assert pair.reply(8) == b"STORED\r\n"
    pair.ask(b"get big big big\r\n")
    pair.mux.serve_round()
    assert pair.conn.writing  # the socket took part: only EPOLLOUT is awaited now
    assert pair.conn.unsent
    pair.ask(b"version\r\n")  # not read while the replies wait
    expected = b"VALUE big 0 100000\r\n" + value + b"\r\n"
    got = b""
    for _ in range(10_000):
        got += pair.client.recv(65536)
        pair.mux.serve_round()
        if len(got) >= 3 * len(expected) + 5:
            break
    assert got[: 3 * len(expected) + 5] == expected * 3 + b"END\r\n"
    assert not pair.conn.writing
    pair.mux.serve_round()
    assert pair.reply(len(LINE)) == LINE


def test_quit_and_end_of_stream_close(pair: Pair) -> None:
    pair.ask(b"get nothing\r\nquit\r\n")
    pair.mux.serve_round()
    assert pair.reply(5) == b"END\r\n"
    assert pair.conn.closed and pair.conn.fd not in pair.mux.connections
    assert pair.client.recv(1) == b""  # the server's end is closed


def test_a_client_hanging_up_closes_its_connection(pair: Pair) -> None:
    pair.client.shutdown(socket.SHUT_WR)
    pair.mux.serve_round()
    assert pair.conn.closed
    assert pair.server.counters.curr_connections == 0
