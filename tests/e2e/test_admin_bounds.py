"""Admin work is sliced and bounded: metadump streams, one at a time, as memcached's.

A metadump is answered a slice of items at a time between other connections' requests,
with at most a slice waiting while its reader is slow; a second one (or a crawl) meanwhile
gets memcached's ``BUSY`` line.
"""

from __future__ import annotations

import socket
import threading
import time

from bench.abuse.dump_attacks import fill
from bench.abuse.probes import Checker
from tests.e2e.wire import exchange, read_until
from tests.servers import ServerProcess, memcachepy_server

BUSY = b"BUSY currently processing crawler request\r\n"


def _dump_lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"END\r\n"), data[-200:]
    return data[: -len(b"END\r\n")].splitlines()


def _start_unread_dump(server: ServerProcess) -> socket.socket:
    """A metadump whose client reads nothing: the server holds a slice, not the dump."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the window is set
    sock.settimeout(5)
    sock.connect(server.address)
    sock.sendall(b"lru_crawler metadump all\r\n")
    time.sleep(0.3)
    return sock


def test_a_second_metadump_or_crawl_is_busy_until_the_first_ends() -> None:
    with memcachepy_server("-m", "64") as server:
        # Far more than the kernel's socket buffers hold (about 12 MB of dump).
        fill(server.address, 150_000, 100)
        first = _start_unread_dump(server)
        with server.connect() as other:
            assert exchange(other, b"lru_crawler metadump all\r\n") == BUSY
            assert exchange(other, b"lru_crawler metadump 1\r\n") == BUSY
            assert exchange(other, b"lru_crawler crawl all\r\n") == BUSY
            # Other requests are served meanwhile.
            assert exchange(other, b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"
            first.close()  # hung up unread: the dump is over
            deadline = time.monotonic() + 5
            while True:
                other.sendall(b"lru_crawler metadump all\r\n")
                reply = other.recv(65536)
                if reply != BUSY:
                    break
                assert time.monotonic() < deadline, "the abandoned dump was never released"
                time.sleep(0.05)
            rest = b"" if reply.endswith(b"END\r\n") else read_until(other, b"END\r\n", 60)
            keys = {line.split(b" ", 1)[0] for line in _dump_lines(reply + rest)}
            assert len(keys) == 150_001  # the 150,000 and k


def test_metadump_is_sliced_between_other_clients() -> None:
    """Other clients are served while a long dump is answered."""
    with memcachepy_server("-m", "64") as server:
        fill(server.address, 100_000, 20)
        with Checker(server.address) as checker:
            time.sleep(0.2)
            with server.connect(timeout=60) as sock:
                sock.sendall(b"lru_crawler metadump all\r\n")
                lines = _dump_lines(read_until(sock, b"END\r\n", timeout=60))
            time.sleep(0.1)
        # The LRU maintainer moves fresh items between lists meanwhile: one met again in
        # the list it moved to is listed again, as with memcached's crawler. The checker
        # stores keys of its own.
        keys = {line.split(b" ", 1)[0] for line in lines}
        assert len({key for key in keys if not key.startswith(b"key=checker")}) == 100_000
        result = checker.result
        assert result.errors == 0 and result.pairs > 0, result
        # The whole dump took seconds in one piece before (pure Python); now each wait is
        # a slice or two.
        assert result.slowest < 0.5, result


def test_items_left_alone_are_listed_while_others_change() -> None:
    with memcachepy_server("-m", "64") as server:
        fill(server.address, 20_000, 50)  # k0..k19999
        stop = threading.Event()

        def churn() -> None:
            with server.connect() as sock:
                for n in range(100_000):
                    if stop.is_set():
                        return
                    # Touch the odd keys: replaced, deleted and stored again, read.
                    key = b"k%d" % (2 * (n % 10_000) + 1)
                    sock.sendall(b"delete %s noreply\r\nset %s 0 0 1 noreply\r\nx\r\n" % (key, key))
                    sock.sendall(b"get %s\r\n" % key)
                    read_until(sock, b"END\r\n")

        worker = threading.Thread(target=churn)
        worker.start()
        try:
            with server.connect(timeout=60) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
                sock.sendall(b"lru_crawler metadump all\r\n")
                data = b""
                while not data.endswith(b"END\r\n"):
                    chunk = sock.recv(8192)
                    assert chunk
                    data += chunk
                    time.sleep(0.001)  # slow: the lists change between slices
        finally:
            stop.set()
            worker.join(30)
        keys = [line.split(b" ", 1)[0][len(b"key=") :] for line in _dump_lines(data)]
        even = {k for k in keys if k.startswith(b"k") and int(k[1:]) % 2 == 0}
        assert even == {b"k%d" % n for n in range(0, 20_000, 2)}


def _busiest_class(sock: socket.socket) -> int:
    reply = exchange(sock, b"stats items\r\n", b"END\r\n").decode()
    counts = {
        int(line.split(":")[1]): int(line.split()[2])
        for line in reply.splitlines()
        if line.startswith("STAT items:") and line.split()[1].endswith(":number")
    }
    return max(counts, key=lambda c: counts[c])


def _cachedump(server: ServerProcess, items: int) -> bytes:
    fill(server.address, items, 10)
    time.sleep(1.5)  # into COLD, which cachedump walks
    with server.connect(timeout=60) as sock:
        class_id = _busiest_class(sock)
        return exchange(sock, b"stats cachedump %d 0\r\n" % class_id, b"END\r\n", 60)


def test_cachedump_is_capped_at_2_mb_as_memcached() -> None:
    from tests.servers import memcached_server

    with memcached_server("-m", "64") as real:
        theirs = _cachedump(real, 120_000)
    with memcachepy_server("-m", "64") as ours:
        mine = _cachedump(ours, 120_000)
    # Both cut where the next line would pass 2 MiB (with END's NUL); which items sit in
    # COLD, and so the line count, differs a little.
    cap = 2 * 1024 * 1024
    for reply in (theirs, mine):
        assert cap - 64 < len(reply) + 1 <= cap, len(reply)
        assert reply.endswith(b"]\r\nEND\r\n")


def test_detail_dump_keeps_a_bounded_number_of_prefixes() -> None:
    from memcachepy.ops.prefix_stats import MAX_PREFIXES, PrefixStats

    stats = PrefixStats(enabled=True)
    for n in range(MAX_PREFIXES + 500):
        stats.record_set(b"p%d:key" % n)
    stats.record_get(b"p1:key", True)  # a prefix already kept is still counted
    dump = stats.dump()
    assert dump.count(b"\n") == MAX_PREFIXES + 1
    assert b"PREFIX p1 get 1 hit 1 set 1 del 0\r\n" in dump
    assert b"PREFIX p%d " % MAX_PREFIXES not in dump
    stats.clear()
    stats.record_set(b"new:key")
    assert stats.dump() == b"PREFIX new get 0 hit 0 set 1 del 0\r\nEND\r\n"
