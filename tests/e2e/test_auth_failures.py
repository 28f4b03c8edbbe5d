"""Failed authentications (-Y, -S): counted in stats, logged at -v, and slowed down.

The first failure on a connection is answered at once; each later one after a delay that
doubles (auth/throttle.py), during which only that connection waits.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from memcachepy.auth.throttle import failure_delay
from memcachepy.protocol.binary import Opcode
from tests.e2e.test_sasl import frame, read_frame
from tests.e2e.wire import exchange, read_until
from tests.servers import ServerProcess, free_port, memcachepy_argv, spawn_logged

WRONG = b"set x 0 0 11\r\nalice wrong\r\n"
RIGHT = b"set x 0 0 12\r\nalice s3cret\r\n"
FAILED = b"CLIENT_ERROR authentication failure\r\n"


def _stats(sock: socket.socket) -> dict[str, str]:
    reply = exchange(sock, b"stats\r\n", b"END\r\n").decode()
    return {
        line.split()[1]: line.split()[2] for line in reply.splitlines() if line.startswith("STAT")
    }


def _checker(server: ServerProcess, stop: threading.Event, waits: list[float]) -> None:
    """An authenticated client setting and getting its key every few ms."""
    with server.connect() as sock:
        assert exchange(sock, RIGHT) == b"STORED\r\n"
        for i in range(2000):
            if stop.is_set():
                return
            start = time.monotonic()
            assert exchange(sock, f"set c 0 0 {len(str(i))}\r\n{i}\r\n".encode()) == b"STORED\r\n"
            assert exchange(sock, b"get c\r\n", b"END\r\n").endswith(b"END\r\n")
            waits.append(time.monotonic() - start)
            time.sleep(0.003)


def test_repeated_ascii_failures_wait_and_are_counted(tmp_path: Path) -> None:
    authfile = tmp_path / "auth"
    authfile.write_text("alice:s3cret\n")
    log = tmp_path / "log"
    port = free_port()
    server = spawn_logged(memcachepy_argv(port, "-v", "-Y", str(authfile)), port, str(log))
    stop = threading.Event()
    waits: list[float] = []
    checker = threading.Thread(target=_checker, args=(server, stop, waits))
    try:
        checker.start()
        failures = 6
        expected = sum(failure_delay(n) for n in range(1, failures + 1))
        with server.connect(timeout=10) as sock:
            start = time.monotonic()
            sock.sendall(WRONG * failures + RIGHT)  # pipelined guesses, then the password
            reply = read_until(sock, b"STORED\r\n", timeout=10)
            elapsed = time.monotonic() - start
            assert reply == FAILED * failures + b"STORED\r\n"
            assert elapsed >= expected * 0.9
            stats = _stats(sock)
        assert stats["auth_errors"] == str(failures)
        assert stats["auth_cmds"] == str(failures + 2)  # and the checker's
        stop.set()
        checker.join(10)
        assert waits and max(waits) < 0.05  # the others are not held
        text = log.read_text()
        assert text.count("Password verification failed") == failures
        assert "holding it 10 ms" in text
    finally:
        stop.set()
        server.stop()


def test_first_failure_is_answered_at_once(tmp_path: Path) -> None:
    authfile = tmp_path / "auth"
    authfile.write_text("alice:s3cret\n")
    port = free_port()
    server = spawn_logged(memcachepy_argv(port, "-Y", str(authfile)), port, str(tmp_path / "l"))
    try:
        with server.connect() as sock:
            start = time.monotonic()
            assert exchange(sock, WRONG + RIGHT, b"STORED\r\n") == FAILED + b"STORED\r\n"
            assert time.monotonic() - start < failure_delay(2)
    finally:
        server.stop()


def test_repeated_sasl_failures_wait_and_are_counted(tmp_path: Path) -> None:
    pwdb = tmp_path / "pwdb"
    pwdb.write_text("alice:wonderland\n")
    log = tmp_path / "log"
    port = free_port()
    argv = memcachepy_argv(port, "-v", "-S", "-o", f"sasl_pwdb={pwdb}")
    server = spawn_logged(argv, port, str(log))
    try:
        failures = 5
        # Each failure is answered at once; the pauses come between them.
        expected = sum(failure_delay(n) for n in range(1, failures))
        with server.connect(timeout=10) as sock:
            wrong = frame(Opcode.SASL_AUTH, b"PLAIN", b"\0alice\0wrong")
            start = time.monotonic()
            sock.sendall(wrong * failures)
            for _ in range(failures):
                assert read_frame(sock) == (0x20, b"Auth failure.")
            assert time.monotonic() - start >= expected * 0.9
            # Cyrus SASL, memcached's, takes the mechanism's name in any case.
            sock.sendall(frame(Opcode.SASL_AUTH, b"plain", b"\0alice\0wonderland"))
            assert read_frame(sock) == (0, b"Authenticated")
            sock.sendall(frame(Opcode.STAT))
            stats: dict[bytes, bytes] = {}
            while True:
                sock.settimeout(5)
                head = sock.recv(24, socket.MSG_WAITALL)
                keylen = int.from_bytes(head[2:4], "big")
                bodylen = int.from_bytes(head[8:12], "big")
                body = sock.recv(bodylen, socket.MSG_WAITALL) if bodylen else b""
                if not keylen:
                    break
                stats[body[:keylen]] = body[keylen:]
        assert stats[b"auth_errors"] == str(failures).encode()
        assert stats[b"auth_cmds"] == str(failures + 1).encode()
        assert log.read_text().count("Password verification failed") == failures
    finally:
        server.stop()
