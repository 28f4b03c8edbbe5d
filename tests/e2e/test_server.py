"""Server behaviour over raw sockets: pipelining, limits, timeouts, signals, bad input."""

from __future__ import annotations

import signal
import socket
import time

from tests.e2e.wire import closed_by_peer, exchange, read_until
from tests.servers import ServerProcess, memcachepy_server


def stat(sock: socket.socket, name: bytes) -> int:
    reply = exchange(sock, b"stats\r\n", b"END\r\n")
    for line in reply.split(b"\r\n"):
        parts = line.split(b" ")
        if len(parts) == 3 and parts[1] == name:
            return int(parts[2])
    raise KeyError(name)


def test_pipelined_batch_gets_replies_in_order(server: ServerProcess) -> None:
    with server.connect() as sock:
        batch = b"".join(
            b"set pipe%d 0 0 %d noreply\r\n%d\r\n" % (i, len(b"%d" % i), i) for i in range(500)
        )
        batch += b"".join(b"get pipe%d\r\n" % i for i in range(500)) + b"version\r\n"
        reply = exchange(sock, batch, until=b"\r\nVERSION 1.6.18-memcachepy-0.1.0\r\n")
        expected = b"".join(
            b"VALUE pipe%d 0 %d\r\n%d\r\nEND\r\n" % (i, len(b"%d" % i), i) for i in range(500)
        )
        assert reply == expected + b"VERSION 1.6.18-memcachepy-0.1.0\r\n"


def test_twenty_thousand_key_get_line(server: ServerProcess) -> None:
    with server.connect() as sock:
        exchange(sock, b"set k19999 0 0 1\r\nx\r\n")
        line = b"get " + b" ".join(b"k%d" % i for i in range(20000)) + b"\r\n"
        assert len(line) > 100_000
        assert exchange(sock, line, b"END\r\n") == b"VALUE k19999 0 1\r\nx\r\nEND\r\n"


def test_long_line_without_newline_closes_only_that_connection(server: ServerProcess) -> None:
    with server.connect() as bad, server.connect() as good:
        bad.sendall(b"set " + b"x" * 3000)
        assert closed_by_peer(bad)
        assert exchange(good, b"version\r\n") == b"VERSION 1.6.18-memcachepy-0.1.0\r\n"


def test_http_request_is_closed_without_reply(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(5)
        assert sock.recv(100) == b""


def test_bad_data_chunk_keeps_old_value_and_connection(server: ServerProcess) -> None:
    with server.connect() as sock, server.connect() as other:
        exchange(sock, b"set chunk 0 0 3\r\nold\r\n")
        reply = exchange(sock, b"set chunk 0 0 3\r\nnewer\r\n", b"ERROR\r\n")
        assert reply == b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"
        assert exchange(other, b"get chunk\r\n", b"END\r\n") == b"VALUE chunk 0 3\r\nold\r\nEND\r\n"


def test_client_vanishing_mid_value_harms_nobody(server: ServerProcess) -> None:
    with server.connect() as other:
        exchange(other, b"set safe 0 0 4\r\nsafe\r\n")
        sock = server.connect()
        sock.sendall(b"set safe 0 0 100\r\n" + b"x" * 50)
        sock.close()
        time.sleep(0.1)
        assert exchange(other, b"get safe\r\n", b"END\r\n") == b"VALUE safe 0 4\r\nsafe\r\nEND\r\n"


def test_quit_closes(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"quit\r\n")
        assert closed_by_peer(sock)


def test_shutdown_is_refused_without_A(server: ServerProcess) -> None:
    with server.connect() as sock:
        assert exchange(sock, b"shutdown\r\n") == b"ERROR: shutdown not enabled\r\n"


def test_connection_limit_rejects_with_memcached_error() -> None:
    with memcachepy_server("-c", "3") as srv:
        held = [srv.connect() for _ in range(3)]
        for sock in held:
            exchange(sock, b"version\r\n")
        extra = srv.connect()
        assert read_until(extra, b"\r\n") == b"ERROR Too many open connections\r\n"
        assert closed_by_peer(extra)
        held.pop().close()
        time.sleep(0.2)
        with srv.connect() as sock:
            assert stat(sock, b"rejected_connections") == 1
        for sock in held:
            sock.close()


def test_idle_timeout_closes_idle_connections_only() -> None:
    with memcachepy_server("-o", "idle_timeout=1") as srv:
        idle = srv.connect()
        busy = srv.connect()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            exchange(busy, b"version\r\n")
            time.sleep(0.2)
        assert closed_by_peer(idle, timeout=1)
        assert stat(busy, b"idle_kicks") >= 1
        busy.close()


def test_sigterm_stops_cleanly() -> None:
    with memcachepy_server() as srv:
        sock = srv.connect()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(10) == 0
        assert closed_by_peer(sock)


def test_sigusr1_drains_gracefully() -> None:
    with memcachepy_server() as srv:
        idle = srv.connect()
        exchange(idle, b"version\r\n")
        srv.proc.send_signal(signal.SIGUSR1)
        assert closed_by_peer(idle)
        assert srv.proc.wait(10) == 0
        try:
            srv.connect(timeout=1).close()
            refused = False
        except OSError:
            refused = True
        assert refused


def test_shutdown_graceful_with_A() -> None:
    with memcachepy_server("-A") as srv:
        sock = srv.connect()
        sock.sendall(b"shutdown graceful\r\n")
        assert closed_by_peer(sock)
        assert srv.proc.wait(10) == 0


def test_half_sent_request_finishes_during_drain() -> None:
    with memcachepy_server() as srv:
        sock = srv.connect()
        sock.sendall(b"set drain 0 0 10\r\n12345")
        time.sleep(0.1)
        srv.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        assert srv.proc.poll() is None  # still waiting for the in-flight request
        assert exchange(sock, b"67890\r\n") == b"STORED\r\n"
        assert closed_by_peer(sock)
        assert srv.proc.wait(10) == 0


def test_an_internal_error_closes_one_connection_not_the_server() -> None:
    import trio

    from memcachepy.config import Settings
    from memcachepy.protocol import events as ev
    from memcachepy.server.daemon import Server
    from memcachepy.server.listeners import open_listeners

    def broken(event: object, out: list[object]) -> int:
        raise RuntimeError("a bug in a handler")

    async def scenario() -> None:
        server = Server(Settings(port=0))
        # Stands in for a handler bug (any callable is what a handler is, at run time).
        server.dispatcher._handlers[ev.Version] = broken  # type: ignore[assignment]
        listeners = open_listeners("127.0.0.1", 0)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                ports = await nursery.start(
                    lambda task_status: server.serve(
                        listeners=listeners, handle_signals=False, task_status=task_status
                    )
                )
                bad = await trio.open_tcp_stream("127.0.0.1", ports[0])
                await bad.send_all(b"version\r\n")
                assert await bad.receive_some() == b""  # that connection is closed
                good = await trio.open_tcp_stream("127.0.0.1", ports[0])
                await good.send_all(b"set a 0 0 1\r\nx\r\n")
                assert await good.receive_some() == b"STORED\r\n"
                assert server.counters.internal_errors == 1
                server.request_shutdown(graceful=False)

    trio.run(scenario)


def test_long_multiget_of_large_values_is_answered_whole_and_in_order(
    server: ServerProcess,
) -> None:
    # Past its reply budget a multi-get is answered in parts; the client sees one reply.
    with server.connect() as sock:
        values = {b"mg%d" % i: bytes([65 + i]) * 150_000 for i in range(6)}
        for key, value in values.items():
            exchange(sock, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
        keys = [b"mg%d" % (i % 7) for i in range(40)]  # mg6 is a miss
        reply = exchange(sock, b"get " + b" ".join(keys) + b"\r\n", b"END\r\n", timeout=20)
        expected = b"".join(
            b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(values[k]), values[k]) for k in keys if k in values
        )
        assert reply == expected + b"END\r\n"
