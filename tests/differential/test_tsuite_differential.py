"""memcached's t/ files issue_163, issue_183, lru-maintainer, conn-limits, restart, watcher
and watcher_connid, turned into tests: each runs against memcached 1.6.18 and memcachepy
and both must answer the same."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.e2e.wire import closed_by_peer, exchange, read_until
from tests.servers import (
    ServerProcess,
    free_port,
    memcached_argv,
    memcached_server,
    memcachepy_argv,
    memcachepy_server,
    spawn,
)

Starter = Callable[..., AbstractContextManager[ServerProcess]]
STARTERS = (memcached_server, memcachepy_server)
BOTH = pytest.mark.parametrize("start", STARTERS, ids=["memcached", "memcachepy"])


def _stats(server: ServerProcess, group: bytes = b"") -> dict[bytes, bytes]:
    with server.connect() as sock:
        reply = exchange(sock, b"stats %s\r\n" % group, b"END\r\n")
    return {
        fields[1]: fields[2]
        for fields in (
            line.split(b" ", 2) for line in reply.split(b"\r\n") if line.startswith(b"STAT ")
        )
    }


def _get(sock: socket.socket, key: bytes) -> bytes:
    return exchange(sock, b"get %s\r\n" % key, b"END\r\n")


def _poll(
    servers: list[ServerProcess],
    done: Callable[[dict[bytes, bytes]], bool],
    group: bytes = b"",
    timeout: float = 6.0,
) -> list[dict[bytes, bytes]]:
    """Every server's stats, once ``done`` holds for all of them (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = [_stats(server, group) for server in servers]
        if all(map(done, stats)) or time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


@contextmanager
def _both(*flags: str) -> Iterator[list[ServerProcess]]:
    with ExitStack() as stack:
        yield [stack.enter_context(start(*flags)) for start in STARTERS]


def test_expired_items_at_the_tails_are_reclaimed_by_the_lru_maintainer() -> None:
    """issue_163 and lru-maintainer: expired items are freed without a read and counted as
    ``reclaimed`` (the maintainer's), not ``crawler_reclaimed``, per class too."""
    with _both() as servers:
        for server in servers:
            with server.connect() as sock:
                request = b"".join(b"set ifoo%d 0 1 2\r\nok\r\n" % i for i in range(10))
                assert exchange(sock, request, b"STORED\r\n" * 10) == b"STORED\r\n" * 10
                big = b"A" * 66560
                assert exchange(sock, b"set key 0 1 66560\r\n%s\r\n" % big) == b"STORED\r\n"
        stats = _poll(servers, lambda s: s[b"reclaimed"] == b"11", timeout=8)
        for server, figures in zip(servers, stats, strict=True):
            assert (figures[b"reclaimed"], figures[b"crawler_reclaimed"]) == (b"11", b"0")
            assert figures[b"curr_items"] == b"0"
            with server.connect() as sock:  # stats items lists only classes with items
                big = b"B" * 66570
                assert exchange(sock, b"set key 0 0 66570\r\n%s\r\n" % big) == b"STORED\r\n"
            items = _stats(server, b"items")
            assert items[b"items:31:reclaimed"] == b"1"
            assert items[b"items:31:expired_unfetched"] == b"1"


def test_flat_lru_set_reclaims_a_flushed_tail_item() -> None:
    """issue_183: with ``-o no_modern`` every allocation first reclaims an expired or
    flushed item at the COLD tail, before the set looks its key up."""
    with _both("-o", "no_modern") as servers:
        socks = [server.connect() for server in servers]
        try:
            for sock in socks:
                assert exchange(sock, b"set key 0 0 1\r\n1\r\n") == b"STORED\r\n"
            time.sleep(2.1)  # the flush horizon is a second before now
            for server, sock in zip(servers, socks, strict=True):
                assert exchange(sock, b"flush_all\r\n") == b"OK\r\n"
                assert exchange(sock, b"set key 0 0 1\r\n1\r\n") == b"STORED\r\n"
                stats = _stats(server)
                assert (stats[b"reclaimed"], stats[b"get_flushed"]) == (b"1", b"0")
                assert _get(sock, b"key") == b"VALUE key 0 1\r\n1\r\nEND\r\n"
        finally:
            for sock in socks:
                sock.close()


def test_an_item_read_twice_in_cold_moves_to_warm() -> None:
    """lru-maintainer's canary: HOT keeps 20% of a class, so the first of ten items goes to
    COLD; two reads make it ACTIVE and the maintainer moves it to WARM."""
    with _both() as servers:
        for server in servers:
            with server.connect() as sock:
                request = b"".join(b"set c%d 0 0 2\r\nok\r\n" % i for i in range(10))
                assert exchange(sock, request, b"STORED\r\n" * 10) == b"STORED\r\n" * 10
        _poll(servers, lambda s: s[b"items:1:number_cold"] != b"0", b"items")
        for server in servers:
            with server.connect() as sock:
                for _ in range(2):
                    assert _get(sock, b"c0") == b"VALUE c0 0 2\r\nok\r\nEND\r\n"
        items = _poll(servers, lambda s: s[b"items:1:moves_to_warm"] != b"0", b"items")
        for figures in items:
            assert figures[b"items:1:moves_to_warm"] == b"1"
            assert figures[b"items:1:number_warm"] == b"1"
        assert [_stats(server)[b"lru_bumps_dropped"] for server in servers] == [b"0", b"0"]


def test_read_buf_mem_limit_refuses_replies_as_memcached() -> None:
    """conn-limits: 1 MiB over 32 threads leaves each thread one 16 KiB buffer of 13
    response objects beside a read buffer."""
    with _both("-o", "read_buf_mem_limit=1", "-t", "32", "-R", "500") as servers:
        for server in servers:
            with server.connect() as sock:
                assert exchange(sock, b"get" + b" foo" * 13 + b"\r\n") == b"END\r\n"
                # The replies stacked before it are dropped: STORED is never sent.
                reply = exchange(
                    sock, b"set a 0 0 1\r\n1\r\nget" + b" a" * 14 + b"\r\nget a\r\n", b"END\r\n"
                )
                assert reply == (
                    b"SERVER_ERROR out of memory writing get response\r\n"
                    b"VALUE a 0 1\r\n1\r\nEND\r\n"
                )
                # mn sends what is stacked at once, so it never runs out.
                assert exchange(sock, b"mn\r\n" * 20, b"MN\r\n" * 20) == b"MN\r\n" * 20
            with server.connect() as sock:
                sock.sendall(b"mg foo v\r\n" * 500)  # stacked replies: the connection closes
                assert _read_to_close(sock) == b""  # with nothing sent
            assert _stats(server)[b"response_obj_oom"] == b"2"


def _read_to_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """What the server sends until it closes (EOF or reset)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize("argv", [memcached_argv, memcachepy_argv], ids=["memcached", "memcachepy"])
def test_warm_restart_refuses_an_empty_metadata_file(
    argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """restart: memcached aborts on a PATH.meta it cannot read; memcachepy refuses it too."""
    path = tmp_path / "memory"
    Path(f"{path}.meta").write_bytes(b"")
    proc = subprocess.run(argv(free_port(), "-e", str(path)), capture_output=True, timeout=20)
    assert proc.returncode != 0


@pytest.mark.parametrize("argv", [memcached_argv, memcachepy_argv], ids=["memcached", "memcachepy"])
def test_warm_restart_keeps_the_hash_power_level(
    argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """restart: the index grown past its start size keeps that size after a graceful stop,
    even with its items deleted (13 -> 14 past 1.5 x 8,192 items; memcached needs a level
    above its item lock table's 12)."""
    flags = ("-m", "64", "-e", str(tmp_path / "memory"), "-o", "hashpower=13")
    port = free_port()
    server = spawn(argv(port, *flags), port)
    try:
        with server.connect(timeout=30) as sock:
            keys = [b"z%d" % i for i in range(12300)]
            sock.sendall(b"".join(b"set %s 0 0 0 noreply\r\n\r\n" % key for key in keys))
            assert exchange(sock, b"mn\r\n", timeout=30) == b"MN\r\n"
            # memcached looks at its item count once a second: keep them until it grew.
            stats = _poll(
                [server],
                lambda s: s[b"hash_is_expanding"] == b"0" and s[b"hash_power_level"] == b"14",
            )[0]
            assert stats[b"hash_power_level"] == b"14"
            sock.sendall(b"".join(b"delete %s noreply\r\n" % key for key in keys[:-1]))
            assert exchange(sock, b"mn\r\n", timeout=30) == b"MN\r\n"
        assert _stats(server)[b"curr_items"] == b"1"
        server.kill(signal.SIGUSR1)  # graceful stop: save the memory file
        assert server.proc.wait(20) == 0
        time.sleep(1.1)  # memcached refuses a restart in the second it stopped (stop_time)
        server = spawn(argv(port, *flags), port)
        assert _stats(server)[b"hash_power_level"] == b"14"
        with server.connect() as sock:
            assert _get(sock, b"z12299") == b"VALUE z12299 0 0\r\n\r\nEND\r\n"
    finally:
        server.stop()
        for name in os.listdir(tmp_path):
            os.unlink(tmp_path / name)


_VARYING = re.compile(rb"^ts=\d+\.\d+ gid=\d+ |(?<= cfd=)\d+|(?<= rport=)\d+")


def _shape(line: bytes) -> bytes:
    return _VARYING.sub(b"", line)


@BOTH
def test_watch_logs_the_lookup_of_a_store_before_it(start: Starter) -> None:
    """watcher and watcher_connid: a set is logged as the item_get of its lookup, then the
    item_store; the connection's fd is in both; log_watchers counts the watcher."""
    with start() as server, server.connect() as client, server.connect() as watcher:
        assert exchange(watcher, b"watch fetchers mutations\n") == b"OK\r\n"
        time.sleep(1)  # memcached's worker threads learn of a new watcher within a second
        assert _stats(server)[b"log_watchers"] == b"1"
        assert exchange(client, b"set vfoo 0 0 4\r\nvbar\r\n") == b"STORED\r\n"
        client.sendall(b"incr vfoo 1\r\ndelete nokey\r\nget vfoo\r\n")
        assert read_until(client, b"END\r\n").endswith(b"VALUE vfoo 0 4\r\nvbar\r\nEND\r\n")
        data = b""
        while data.count(b"\n") < 5:
            data += read_until(watcher, b"\n")
        assert [_shape(line) for line in data.split(b"\n")[:-1]] == [
            b"type=item_get key=vfoo status=not_found clsid=0 cfd= size=0",
            b"type=item_store key=vfoo status=stored cmd=set ttl=0 clsid=1 cfd= size=4",
            b"type=item_get key=vfoo status=found clsid=1 cfd= size=4",
            b"type=item_get key=nokey status=not_found clsid=0 cfd= size=0",
            b"type=item_get key=vfoo status=found clsid=1 cfd= size=4",
        ]


@BOTH
def test_watch_connevents_reports_a_protocol_error_close(start: Starter) -> None:
    """watcher: an HTTP request line closes the connection, logged with reason=error; a quit
    with reason=normal."""
    with start() as server, server.connect() as watcher:
        time.sleep(1)  # as t/watcher.t: memcached's logger thread may still be starting
        assert exchange(watcher, b"watch connevents\n", timeout=10) == b"OK\r\n"
        time.sleep(1)  # memcached's worker threads learn of a new watcher within a second
        for request, reason in ((b"quit\r\n", b"normal"), (b"GET / HTTP/1.1\r\n", b"error")):
            with server.connect() as client:
                client.sendall(request)
                assert closed_by_peer(client)
            data = b""
            while data.count(b"\n") < 2:
                data += read_until(watcher, b"\n")
            opened, closed = data.split(b"\n")[:2]
            assert re.fullmatch(
                rb"type=conn_new rip=127.0.0.1 rport= transport=tcp cfd=", _shape(opened)
            )
            assert _shape(closed) == (
                b"type=conn_close rip=127.0.0.1 rport= transport=tcp reason=%s cfd=" % reason
            )
