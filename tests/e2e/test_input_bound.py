"""-o conn_mem_limit over real sockets: partial requests past the bound get memcached's
answer, the daemon's memory stays bounded, and other clients keep working."""

from __future__ import annotations

import socket
import time

from tests.e2e.test_abuse import rss, settle_rss
from tests.e2e.wire import closed_by_peer, exchange, read_until
from tests.servers import memcachepy_server

MB = 1 << 20
VALUE = 1_000_000  # a 1 MB value that fits the default -I 1m


def hold_partial_sets(address: tuple[str, int], count: int) -> list[socket.socket]:
    socks = []
    for i in range(count):
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(b"set held%d 0 0 %d\r\n" % (i, VALUE) + b"v" * (VALUE - 10))
        socks.append(sock)
    return socks


def test_partial_values_past_the_bound_are_refused_as_out_of_memory() -> None:
    with memcachepy_server("-m", "64", "-o", "conn_mem_limit=8") as srv:
        with srv.connect() as other:
            for i in range(40):
                assert exchange(other, b"set held%d 0 0 3\r\nold\r\n" % i) == b"STORED\r\n"
            base = settle_rss(srv.proc.pid)
            socks = hold_partial_sets(srv.address, 40)
            time.sleep(0.5)  # every byte read
            grown = rss(srv.proc.pid) - base
            stats = exchange(other, b"stats\r\n", b"END\r\n")
            shed = int(stats.split(b"STAT read_buf_oom ")[1].split(b"\r\n")[0])
            assert shed >= 40 - 10  # about 8 of 40 are held within 8 MiB
            assert grown < 32 * MB, grown
            # The others keep working meanwhile.
            assert exchange(other, b"set k 0 0 2\r\nok\r\n") == b"STORED\r\n"
            assert exchange(other, b"get k\r\n", b"END\r\n") == b"VALUE k 0 2\r\nok\r\nEND\r\n"
            # A refused value's last bytes bring memcached's answer when it runs out of
            # memory while reading a value; the old value stays, as in memcached.
            answers = []
            for sock in socks:
                sock.sendall(b"v" * 10 + b"\r\n")
                answers.append(read_until(sock, b"\r\n"))
            assert answers.count(b"SERVER_ERROR Out of memory during read\r\n") == shed
            assert answers.count(b"STORED\r\n") == 40 - shed
            for i, answer in enumerate(answers):
                reply = exchange(other, b"get held%d\r\n" % i, b"END\r\n")
                if answer == b"STORED\r\n":
                    assert reply.startswith(b"VALUE held%d 0 %d\r\n" % (i, VALUE))
                else:
                    assert reply == b"VALUE held%d 0 3\r\nold\r\nEND\r\n" % i
            for sock in socks:
                sock.close()


def test_a_growing_get_line_past_the_bound_is_answered_and_closed() -> None:
    with memcachepy_server("-o", "conn_mem_limit=1") as srv, srv.connect() as other:
        grower = srv.connect()
        grower.sendall(b"get " + b"key " * 100_000)  # 400 KB, no newline yet
        time.sleep(0.3)
        grower.sendall(b"key " * 300_000)
        assert read_until(grower, b"\r\n") == b"SERVER_ERROR out of memory reading request\r\n"
        assert closed_by_peer(grower)
        assert exchange(other, b"version\r\n").startswith(b"VERSION ")


def test_a_long_get_line_within_the_bound_is_answered_whole() -> None:
    keys = [b"k%d" % n for n in range(200_000)]
    with memcachepy_server() as srv, srv.connect() as client:
        assert exchange(client, b"set k7 0 0 1\r\nx\r\n") == b"STORED\r\n"
        reply = exchange(client, b"get " + b" ".join(keys) + b"\r\n", b"END\r\n")
        assert reply == b"VALUE k7 0 1\r\nx\r\nEND\r\n"
        bad = b"get " + b" ".join(keys) + b" " + b"x" * 251 + b"\r\n"
        assert exchange(client, bad) == b"CLIENT_ERROR bad command line format\r\n"


def test_clients_that_never_read_past_the_bound_are_closed() -> None:
    value = b"v" * 500_000
    with memcachepy_server("-m", "64", "-o", "conn_mem_limit=4") as srv, srv.connect() as other:
        assert exchange(other, b"set big 0 0 %d\r\n%s\r\n" % (len(value), value)) == b"STORED\r\n"
        base = settle_rss(srv.proc.pid)
        readers = []
        for _ in range(30):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(srv.address)
            sock.sendall(b"get big\r\n" * 40)  # 20 MB of replies, never read
            readers.append(sock)
        time.sleep(1)
        grown = rss(srv.proc.pid) - base
        stats = exchange(other, b"stats\r\n", b"END\r\n")
        closed = int(stats.split(b"STAT read_buf_oom ")[1].split(b"\r\n")[0])
        assert closed >= 3  # the backlogs that fit in 4 MiB stay; the others are closed
        assert grown < 32 * MB, grown
        assert exchange(other, b"get big\r\n", b"END\r\n").startswith(b"VALUE big 0 500000\r\n")
        for sock in readers:
            sock.close()
