"""memcached's own t/ suite, turned into tests: what memcachepy must show as memcached does
(stats field lists, stats conns, -R, chunked items, prefix stats), both servers checked."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.servers import ServerProcess, memcached_server, memcachepy_server, require_binary

Starter = Callable[..., AbstractContextManager[ServerProcess]]
BOTH = pytest.mark.parametrize(
    "start", [memcached_server, memcachepy_server], ids=["memcached", "memcachepy"]
)
# memcached here is built with extstore, and so are memcachepy's lists: nothing is left out.
EXTSTORE = re.compile(r"^$")


def _lines(sock: socket.socket, request: bytes, end: bytes = b"END\r\n") -> list[bytes]:
    sock.sendall(request)
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data.split(b"\r\n")[:-2]


def _stat_names(server: ServerProcess, group: bytes = b"") -> list[str]:
    with server.connect() as sock:
        lines = _lines(sock, b"stats %s\r\n" % group if group else b"stats\r\n")
    names = [line.split()[1].decode() for line in lines]
    return [name for name in names if not EXTSTORE.match(name)]


@pytest.mark.parametrize(
    "flags",
    [
        (),
        ("-I", "1024", "-o", "slab_chunk_max=1024,no_lru_crawler,no_lru_maintainer"),
        ("-o", "no_modern"),
        ("-o", "idle_timeout=5"),
    ],
    ids=["defaults", "t-stats", "no_modern", "idle_timeout"],
)
def test_stats_and_settings_fields_are_memcached_s(flags: tuple[str, ...]) -> None:
    with memcached_server(*flags) as real, memcachepy_server(*flags) as ours:
        assert _stat_names(ours) == _stat_names(real)
        # memcachepy's one line of its own, last: which build runs.
        assert _stat_names(ours, b"settings") == [*_stat_names(real, b"settings"), "build"]


@contextmanager
def _unix_server(binary: list[str], path: str) -> Iterator[None]:
    proc = subprocess.Popen([*binary, "-s", path, "-u", "root"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(path)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    "binary", [["memcached"], [sys.executable, "-m", "memcachepy"]], ids=["memcached", "memcachepy"]
)
def test_stats_conns_lists_unix_listener_and_client_states(
    binary: list[str], tmp_path: Path
) -> None:
    """t/stats-conns.t, UNIX socket half. A short path: memcached reads a listener's name
    into a sockaddr_in6, so it shows at most 26 bytes of the path."""
    path = f"/tmp/mct{os.getpid()}.sock"
    if binary == ["memcached"]:
        binary = [require_binary("memcached")]
    with _unix_server(binary, path):
        with socket.socket(socket.AF_UNIX) as busy, socket.socket(socket.AF_UNIX) as asker:
            busy.connect(path)
            asker.connect(path)
            busy.sendall(b"set foo 0 0 6\r\n")
            time.sleep(1.1)
            text = b"\r\n".join(_lines(asker, b"stats conns\r\n")).decode()
    listening = re.search(r"STAT (\d+):addr unix:(\S+)", text)
    assert listening is not None, text
    listen_fd, listen_path = listening.groups()
    assert listen_path == path
    state = re.search(r"STAT (\d+):state conn_listening", text)
    assert state is not None and state.group(1) == listen_fd
    assert "state conn_nread" in text and "state conn_parse_cmd" in text
    assert re.search(r":secs_since_last_cmd [1-9]", text)
    assert f":listen_addr unix:{path}" in text


@BOTH
def test_stats_conns_lists_tcp_and_udp_listeners(start: Starter) -> None:
    """t/stats-conns.t, TCP half (its -U port too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        udp = probe.getsockname()[1]
    with start("-U", str(udp)) as server, server.connect() as sock:
        text = b"\r\n".join(_lines(sock, b"stats conns\r\n")).decode()
    assert "state conn_listen" in text
    assert f":addr udp:127.0.0.1:{udp}" in text
    assert f":addr tcp:127.0.0.1:{server.port}" in text
    assert f":listen_addr tcp:127.0.0.1:{server.port}" in text


@BOTH
def test_stats_conns_counts_idle_seconds_from_the_last_command(start: Starter) -> None:
    """secs_since_last_cmd of a client that asks every 0.7 s stays at most 1 (memcached's
    clock ticks once a second), whereas that of a quiet one grows from its connect."""
    with start() as server, server.connect() as asker, server.connect() as active:
        with server.connect() as quiet:
            quiet.sendall(b"version\r\n")
            quiet.recv(100)
            for _ in range(4):
                active.sendall(b"version\r\n")
                assert active.recv(100).startswith(b"VERSION")
                time.sleep(0.7)
            text = b"\r\n".join(_lines(asker, b"stats conns\r\n")).decode()
            idle = {}
            for fd, addr in re.findall(r"STAT (\d+):addr tcp:(\S+)", text):
                found = re.search(rf"STAT {fd}:secs_since_last_cmd (\d+)", text)
                assert found is not None
                idle[addr] = int(found.group(1))
            active_addr = "{}:{}".format(*active.getsockname()[:2])
            quiet_addr = "{}:{}".format(*quiet.getsockname()[:2])
    assert idle[active_addr] <= 1, text
    assert idle[quiet_addr] >= 2, text


@BOTH
def test_requests_per_event_yields(start: Starter) -> None:
    """t/issue_61.t: -R 1 yields after each of six pipelined sets."""
    with start("-R", "1") as server, server.connect() as sock:
        sock.sendall(b"set foobar 0 0 5\r\nBubba\r\n" * 6)
        got = b""
        while got.count(b"STORED\r\n") < 6:
            got += sock.recv(4096)
        stats = dict(line.split()[1:] for line in _lines(sock, b"stats\r\n"))
    assert int(stats[b"conn_yields"]) >= 5


@BOTH
def test_chunked_items_at_slab_chunk_max(start: Starter) -> None:
    """t/chunked-items.t in small: items over slab_chunk_max are chained, appends and
    prepends across chunks keep every byte."""
    with start("-m", "48", "-o", "slab_chunk_max=16384") as server, server.connect() as sock:
        pattern = b":".join(b"%d" % i for i in range(1, 8001))
        sock.sendall(b"set pattern 0 0 %d\r\n%s\r\n" % (len(pattern), pattern))
        assert sock.recv(64) == b"STORED\r\n"
        value = b"".join(_lines(sock, b"get pattern\r\n")[1:])
        assert value == pattern
        expected = b"seed"
        sock.sendall(b"set app 0 0 4\r\nseed\r\n")
        assert sock.recv(64) == b"STORED\r\n"
        for part in range(1, 400):
            piece = b"%dxxxxxxxxxx" % part
            expected += piece
            sock.sendall(b"append app 0 0 %d\r\n%s\r\n" % (len(piece), piece))
            assert sock.recv(64) == b"STORED\r\n"
        assert b"".join(_lines(sock, b"get app\r\n")[1:]) == expected
        settings = dict(line.split()[1:] for line in _lines(sock, b"stats settings\r\n"))
        assert settings[b"slab_chunk_max"] == b"16384"


@contextmanager
def _both(*flags: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with memcached_server(*flags) as real, memcachepy_server(*flags) as ours:
        yield real, ours


def test_hash_power_level_follows_hashpower() -> None:
    with _both("-o", "hashpower=20") as servers:
        for server in servers:
            with server.connect() as sock:
                stats = dict(line.split()[1:] for line in _lines(sock, b"stats\r\n"))
            assert stats[b"hash_power_level"] == b"20"
            # hash_bytes is each server's true table size: memcached's 8-byte bucket
            # pointers, memcachepy's two slots per bucket of a 4-byte chunk id and a 1-byte tag.
            per_bucket = 8 if server is servers[0] else 10
            assert stats[b"hash_bytes"] == str(per_bucket << 20).encode()
