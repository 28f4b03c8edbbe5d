"""watch fetchers|mutations|evictions|connevents, compared with memcached 1.6.18's lines."""

from __future__ import annotations

import re
import socket
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memcachepy.config import Settings
from memcachepy.dispatch.admin import uriencode
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.protocol import events as ev
from memcachepy.server.daemon import Server
from memcachepy.server.watch import WATCHER_BUFFER, WATCHER_LIMIT
from tests.e2e.wire import exchange
from tests.servers import ServerProcess, memcached_server, memcachepy_server

SETUP = b"set k 3 0 1\r\nx\r\nset a%b\x01c 0 0 2\r\nhi\r\n"
READS = (
    b"get k nope a%b\x01c\r\ngets k\r\ngat 100 k\r\ntouch k 10\r\ntouch nope 1\r\n"
    b"delete k\r\nincr nope 1\r\n"
)
WRITES = (
    b"set k 3 0 1\r\nx\r\nadd k 0 0 1\r\ny\r\nreplace k 0 100 2\r\nyy\r\n"
    b"replace nope 0 0 1\r\nz\r\ncas k 0 0 1 12345\r\nq\r\nprepend k 0 0 1\r\np\r\n"
    b"set quiet 0 0 3 noreply\r\nabc\r\nappend k 0 0 2\r\nzz\r\n"
)


@pytest.fixture(scope="module")
def memcachepy() -> Iterator[ServerProcess]:
    with memcachepy_server() as server:
        yield server


def watcher(server: ServerProcess, *kinds: bytes) -> socket.socket:
    sock = server.connect()
    assert exchange(sock, b"watch " + b" ".join(kinds) + b"\r\n") == b"OK\r\n"
    return sock


def lines_after(sock: socket.socket, count: int, timeout: float = 5.0) -> list[str]:
    """The next ``count`` log lines, with the values that differ run to run taken out."""
    deadline = time.monotonic() + timeout
    data = b""
    while data.count(b"\n") < count:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    lines = data.decode().splitlines()
    for line in lines:
        # memcached prints the microseconds unpadded (%d.%d); memcachepy pads them to six.
        assert re.match(r"ts=\d+\.\d+ gid=\d+ type=", line), line
    return [re.sub(r"cfd=\d+", "cfd=N", re.sub(r"^ts=\S+ gid=\d+ ", "", line)) for line in lines]


def send_and_sync(sock: socket.socket, commands: bytes) -> bytes:
    """Send ``commands`` and read their replies, up to a ``version`` sent after them."""
    sock.sendall(commands + b"version\r\n")
    reply = b""
    deadline = time.monotonic() + 5
    while not (b"VERSION " in reply and reply.endswith(b"\r\n")):
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


def run(
    server: ServerProcess, kinds: list[bytes], setup: bytes, commands: bytes, count: int
) -> list[str]:
    with server.connect() as client:
        if setup:
            send_and_sync(client, setup)
        with watcher(server, *kinds) as watch:
            send_and_sync(client, commands)
            return lines_after(watch, count)


def test_fetchers_lines_match_memcached(memcachepy: ServerProcess) -> None:
    mine = run(memcachepy, [b"fetchers"], SETUP, READS, 9)
    with memcached_server() as memcached:
        theirs = run(memcached, [b"fetchers"], SETUP, READS, 9)
    assert mine == theirs
    assert "type=item_get key=a%25b%01c status=found clsid=1 cfd=N size=2" in mine


def test_mutations_lines_match_memcached(memcachepy: ServerProcess) -> None:
    mine = run(memcachepy, [b"mutations"], b"", WRITES, 8)
    with memcached_server() as memcached:
        theirs = run(memcached, [b"mutations"], b"", WRITES, 8)
    assert mine == theirs
    assert "type=item_store key=quiet status=stored cmd=set ttl=0 clsid=1 cfd=N size=3" in mine


def test_noreply_stays_silent_under_watch(memcachepy: ServerProcess) -> None:
    with watcher(memcachepy, b"mutations"), memcachepy.connect() as client:
        reply = exchange(client, b"set nr 0 0 1 noreply\r\nx\r\nget nr\r\n", b"END\r\n")
        assert reply == b"VALUE nr 0 1\r\nx\r\nEND\r\n"


def test_evictions_are_streamed() -> None:
    with (
        memcachepy_server("-m", "2", "-I", "256k") as server,
        watcher(server, b"evictions") as watch,
    ):
        value = b"v" * 200_000
        with server.connect() as client:
            send_and_sync(
                client,
                b"".join(
                    b"set e%d 0 0 %d noreply\r\n%s\r\n" % (i, len(value), value) for i in range(20)
                ),
            )
        lines = lines_after(watch, 1)
    assert re.fullmatch(
        r"type=eviction key=e\d+ fetch=no ttl=-1 la=\d+ clsid=\d+ size=200000", lines[0]
    ), lines


def test_connevents(memcachepy: ServerProcess) -> None:
    with watcher(memcachepy, b"connevents") as watch:
        client = memcachepy.connect()
        port = client.getsockname()[1]
        client.close()
        new, close = lines_after(watch, 2)
    assert new == f"type=conn_new rip=127.0.0.1 rport={port} transport=tcp cfd=N"
    assert close == (
        f"type=conn_close rip=127.0.0.1 rport={port} transport=tcp reason=normal cfd=N"
    )


def test_watch_errors_as_memcached(memcachepy: ServerProcess) -> None:
    with memcachepy.connect() as sock:
        assert exchange(sock, b"watch bogus\r\n") == b"ERROR\r\n"
        reply = exchange(sock, b"version\r\nwatch\r\n", b"watch\r\n")
        assert reply.endswith(b"\r\nERROR cannot pipeline other commands before watch\r\n")
    with memcachepy.connect() as sock:  # no names: fetchers; later input is ignored
        assert exchange(sock, b"watch\r\n") == b"OK\r\n"
        sock.sendall(b"version\r\n")
        with memcachepy.connect() as client:
            exchange(client, b"get w\r\n", b"END\r\n")
        assert lines_after(sock, 1) == ["type=item_get key=w status=not_found clsid=0 cfd=N size=0"]


def test_watchers_cost_nothing_once_gone_and_are_bounded() -> None:
    server = Server(Settings(port=0))
    hub = server.service.watch
    dispatcher = server.dispatcher

    def logs() -> tuple[object, object, object]:
        return dispatcher.lookup_log, dispatcher.store_log, server.cache.on_evict

    assert logs() == (None, None, None)
    hub.add(7, ["fetchers", "mutations", "evictions"])
    assert None not in logs()
    assert dispatcher.plain()  # the parser's fast path stays on: it reaches the logs too
    hub.remove(7)
    assert logs() == (None, None, None)
    watcher = hub.add(8, ["fetchers"])
    assert dispatcher.lookup_log is not None and dispatcher.store_log is None
    line_count = WATCHER_BUFFER // 60 + 100
    for _ in range(line_count):
        hub.emit("fetchers", b"type=item_get key=" + b"k" * 20)
    taken = watcher.take()
    assert sum(map(len, taken)) <= WATCHER_BUFFER and watcher.skipped > 0
    hub.emit("fetchers", b"type=item_get key=after")
    skipped, after = watcher.take()
    assert skipped == b"skipped=%d\n" % (line_count - len(taken))
    assert re.fullmatch(rb"ts=\d+\.\d{6} gid=\d+ type=item_get key=after\n", after)
    out: list[object] = []
    previous = CURRENT_CONNECTION.set(-1)  # outside a connection, as the UDP listener sets it
    try:
        hub.handle_watch(ev.Watch(("fetchers",)), out)
    finally:
        CURRENT_CONNECTION.reset(previous)
    assert out == [b"CLIENT_ERROR watch commands not allowed\r\n"]
    for fd in range(WATCHER_LIMIT):
        hub.add(100 + fd, ["fetchers"])
    out.clear()
    token = CURRENT_CONNECTION.set(5)
    try:
        hub.handle_watch(ev.Watch(("fetchers",)), out)
    finally:
        CURRENT_CONNECTION.reset(token)
    assert out == [b"WATCHER_TOO_MANY log watcher limit reached\r\n"]


@given(st.binary(max_size=40) | st.text("ab:/%_.-~ ", max_size=20).map(str.encode))
def test_keys_are_uri_encoded_as_memcached_encodes_them(key: bytes) -> None:
    # memcached's uriencode keeps letters, digits and "-._~", as RFC 3986 and urllib do.
    assert uriencode(key) == urllib.parse.quote_from_bytes(key, safe="").encode()
