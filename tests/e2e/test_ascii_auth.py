"""-Y authfile against a running daemon, byte for byte with real memcached."""

from __future__ import annotations

from pathlib import Path

from pymemcache.client.base import Client

from tests.e2e.wire import exchange
from tests.servers import ServerProcess, memcached_server, memcachepy_server

SCRIPT = [
    (b"get a\r\n", b"\r\n"),
    (b"version\r\n", b"\r\n"),
    (b"delete a\r\n", b"\r\n"),
    (b"set x 0 0 11\r\nalice wrong\r\n", b"\r\n"),
    (b"set x 0 0 5\r\nalice\r\n", b"\r\n"),
    (b"set x 0 0 12\r\nalice s3cret\r\n", b"\r\n"),
    (b"set a 0 0 1\r\nz\r\n", b"\r\n"),
    (b"get a\r\n", b"END\r\n"),
]


def run_script(server: ServerProcess, script: list[tuple[bytes, bytes]]) -> list[bytes]:
    with server.connect() as sock:
        return [exchange(sock, data, until) for data, until in script]


def test_same_replies_as_memcached(tmp_path: Path) -> None:
    authfile = tmp_path / "auth"
    authfile.write_text("alice:s3cret\nbob:pw\n")
    with memcached_server("-Y", str(authfile)) as real:
        expected = run_script(real, SCRIPT)
    with memcachepy_server("-Y", str(authfile)) as ours:
        got = run_script(ours, SCRIPT)
    assert got == expected
    assert got[0] == b"CLIENT_ERROR unauthenticated\r\n"
    assert got[-1] == b"VALUE a 0 1\r\nz\r\nEND\r\n"


def test_pymemcache_authenticates_with_a_set(tmp_path: Path) -> None:
    authfile = tmp_path / "auth"
    authfile.write_text("app:pw\n")
    with memcachepy_server("-Y", str(authfile)) as srv:
        client = Client(srv.address, timeout=5)
        client.set("auth", b"app pw", noreply=False)  # memcached's ASCII auth handshake
        assert client.set("k", b"v", noreply=False)
        assert client.get("k") == b"v"
        stats = client.stats()
        assert stats[b"auth_cmds"] == 1 and stats[b"auth_errors"] == 0
        client.close()


def test_unreadable_authfile_stops_start_up(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "memcachepy", "-p", "0", "-Y", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "authfile" in result.stderr and len(result.stderr.strip().splitlines()) == 1
