"""The connection loop's synchronous steps over socketpairs: read, again, write, close.

A real daemon's parts (``Server`` builds them as it does when it serves) answer through
``Multiplexer.serve_round``, as the loop task calls it on each wake-up; only trio is left out.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from memcachepy import VERSION
from memcachepy.config import Settings
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.server.daemon import Server
from memcachepy.server.multiplexer import EPOLLIN, Connection, Multiplexer
from memcachepy.server.watch import WATCHER_BUFFER

LINE = b"VERSION %s\r\n" % VERSION.encode()


class Pair:
    """One multiplexed connection of a real server's loop, and the client's end."""

    def __init__(self, settings: Settings) -> None:
        self.server = Server(settings)
        self.mux: Multiplexer = self.server.loop.mux
        self.conn, self.client = self.connect()

    def connect(self) -> tuple[Connection, socket.socket]:
        """Another multiplexed connection, as the acceptor adds one, and its client end."""
        ours, client = socket.socketpair()
        ours.setblocking(False)
        client.settimeout(5)
        conn = Connection(ours, "test", False)
        self.mux.connections[conn.fd] = conn
        self.mux.epoll.register(conn.fd, EPOLLIN)
        self.mux.muxed[conn.fd] = conn
        self.server.counters.curr_connections += 1  # as the acceptor counts it
        return conn, client

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
    made.mux.shut()


def test_a_read_is_answered_and_the_connection_reads_again(pair: Pair) -> None:
    pair.ask(b"set k 0 0 2\r\nhi\r\nget k\r\n")
    assert pair.mux.serve_round() == 1
    assert pair.reply(30) == b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n"
    assert not pair.conn.queued and not pair.conn.writing and not pair.conn.closed
    assert pair.mux.serve_round() == 0  # nothing more arrived


def test_serve_for_says_whether_it_stopped_busy_or_idle(pair: Pair) -> None:
    """The loop task waits for the epoll set only after an idle stop; after a spent slice
    it only lets the other tasks run, so a wrong answer either way costs a wake-up or
    leaves a connection unserved until the next one."""
    assert pair.mux.serve_for(1.0) is False  # nothing to read: the first round finds none
    pair.ask(b"get k\r\n")
    assert pair.mux.serve_for(0) is True  # the slice was spent with a connection served
    assert pair.reply(5) == b"END\r\n"
    pair.ask(b"get k\r\n")
    assert pair.mux.serve_for(1.0) is False  # served, then a round found nothing
    assert pair.reply(5) == b"END\r\n"


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


def watch(pair: Pair, kinds: bytes) -> tuple[Connection, socket.socket]:
    conn, client = pair.connect()
    client.sendall(b"watch " + kinds + b"\r\n")
    pair.mux.serve_for(0)
    assert client.recv(4) == b"OK\r\n"
    assert conn.log is not None and not conn.closed
    return conn, client


def log_lines(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return [line.split(b" ", 2)[2] for line in data.splitlines()]  # without ts= and gid=


def test_a_watcher_is_sent_the_lines_of_each_turn_and_closes_when_it_hangs_up(pair: Pair) -> None:
    conn, watching = watch(pair, b"fetchers")
    watching.sendall(b"get ignored\r\n")  # what a watcher sends is dropped, as memcached does
    pair.ask(b"get a\r\nset a 0 0 1\r\nx\r\nget a\r\n")
    pair.mux.serve_for(0)
    assert pair.reply(34) == b"END\r\nSTORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
    fd = CURRENT_CONNECTION.get()
    assert log_lines(watching, 3) == [
        b"type=item_get key=a status=not_found clsid=0 cfd=%d size=0" % fd,
        b"type=item_get key=a status=not_found clsid=0 cfd=%d size=0" % fd,  # the set's lookup
        b"type=item_get key=a status=found clsid=1 cfd=%d size=1" % fd,
    ]
    watching.shutdown(socket.SHUT_WR)
    pair.mux.serve_for(0)
    assert conn.closed and pair.server.service.watch.get(conn.fd) is None
    assert pair.server.counters.log_watchers == 0 and pair.server.dispatcher.lookup_log is None


def test_lines_queued_between_rounds_wake_the_loop(pair: Pair) -> None:
    conn, watching = watch(pair, b"connevents")
    loop_fd = pair.mux.epoll.fileno()
    assert not select.select([loop_fd], [], [], 0)[0]
    # What the acceptor's task does for a new connection, outside any round.
    pair.server.service.watch.connection_opened(99, ("127.0.0.1", 5555))
    assert select.select([loop_fd], [], [], 5)[0]  # the loop's wait ends
    pair.mux.serve_for(0)
    assert log_lines(watching, 1) == [
        b"type=conn_new rip=127.0.0.1 rport=5555 transport=tcp cfd=99"
    ]
    assert not select.select([loop_fd], [], [], 0)[0]  # and is not woken again for nothing


def test_a_watcher_that_does_not_read_is_bounded_and_told_what_it_missed(pair: Pair) -> None:
    conn, watching = watch(pair, b"fetchers")
    watching.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    keys = [b"k%03d" % i + b"x" * 200 for i in range(10)]
    request = b"get " + b" ".join(keys) + b"\r\n"
    lines_sent = 0
    for _ in range(300):  # about 2 x WATCHER_BUFFER of lines
        pair.ask(request)
        pair.mux.serve_for(0)
        assert pair.reply(5) == b"END\r\n"
        lines_sent += len(keys)
    hub_watcher = pair.server.service.watch.get(conn.fd)
    assert hub_watcher is not None and conn.writing  # blocked: its lines wait in the hub
    assert 0 < hub_watcher.held <= WATCHER_BUFFER and hub_watcher.skipped > 0
    got = b""
    for _ in range(10_000):  # read until all that waited is sent
        pair.mux.serve_for(0)
        got += watching.recv(65536)
        if not conn.writing and not hub_watcher.held:
            break
    pair.ask(b"get last\r\n")  # the next line tells how many were skipped before it
    for _ in range(100):
        pair.mux.serve_for(0)
        got += watching.recv(65536)
        if b"key=last " in got:
            break
    lines = got.splitlines()
    skipped = [line for line in lines if line.startswith(b"skipped=")]
    assert len(skipped) == 1 and lines[-2] == skipped[0]
    assert len(lines) - 1 + int(skipped[0].split(b"=")[1]) == lines_sent + 1
