"""The store's background work and warm restart, through a real daemon.

- expiry: items with a short TTL are freed by the LRU crawler with nobody reading them;
- warm restart: a graceful stop (SIGUSR1, ``shutdown graceful``) and a start with the same
  flags bring back every unexpired item byte for byte, with its flags, CAS and TTL; a crash
  (SIGKILL) or a damaged or mismatched file starts clean, a foreign file is refused;
- ``cache_memlimit`` shrinks and grows the cache live.
"""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.e2e.wire import exchange
from tests.servers import ServerProcess, free_port, memcachepy_argv, spawn_logged

MB = 1 << 20
METADUMP_LINE = re.compile(rb"key=(\S+) exp=(-?\d+) la=\d+ cas=(\d+) fetch=\S+ cls=\d+ size=\d+")


def stats(sock: socket.socket, sub: bytes = b"") -> dict[bytes, bytes]:
    reply = exchange(sock, b"stats %s\r\n" % sub, b"END\r\n", timeout=30)
    return {p[1]: p[2] for p in (line.split(b" ") for line in reply.split(b"\r\n")) if len(p) == 3}


_LOGS: dict[int, str] = {}


def start(*args: str, port: int | None = None) -> ServerProcess:
    """A daemon whose stderr goes to a fresh file (read back by :func:`stop_gracefully`)."""
    port = port or free_port()
    log = tempfile.NamedTemporaryFile(prefix="memcachepy-", suffix=".log", delete=False)
    log.close()
    server = spawn_logged(memcachepy_argv(port, *args), port, log.name, timeout=30)
    _LOGS[server.proc.pid] = log.name
    return server


def stop_gracefully(server: ServerProcess, how: str = "signal") -> str:
    """SIGUSR1 (or ``shutdown graceful``), wait for the exit; returns what it logged."""
    if how == "signal":
        server.proc.send_signal(signal.SIGUSR1)
    else:
        with server.connect() as sock:
            sock.sendall(b"shutdown graceful\r\n")
    assert server.proc.wait(30) == 0
    path = Path(_LOGS.pop(server.proc.pid))
    text = path.read_text(errors="replace")
    path.unlink()
    return text


def metadump(sock: socket.socket) -> dict[bytes, tuple[int, int]]:
    """key -> (exptime, cas) of every live item."""
    sock.sendall(b"lru_crawler metadump all\r\n")
    buf = b""
    deadline = time.monotonic() + 60
    while not buf.endswith(b"END\r\n") and time.monotonic() < deadline:
        sock.settimeout(deadline - time.monotonic())
        buf += sock.recv(1 << 20)
    return {m[1]: (int(m[2]), int(m[3])) for m in METADUMP_LINE.finditer(buf)}


def get_many(sock: socket.socket, keys: list[bytes]) -> dict[bytes, tuple[int, bytes]]:
    """key -> (flags, value) for the keys that hit, in batches of 100."""
    found: dict[bytes, tuple[int, bytes]] = {}
    for i in range(0, len(keys), 100):
        reply = exchange(sock, b"get " + b" ".join(keys[i : i + 100]) + b"\r\n", b"END\r\n", 30)
        pos = 0
        while reply.startswith(b"VALUE ", pos):
            eol = reply.index(b"\r\n", pos)
            _, key, flags, nbytes = reply[pos:eol].split(b" ")
            start_at = eol + 2
            found[key] = (int(flags), reply[start_at : start_at + int(nbytes)])
            pos = start_at + int(nbytes) + 2
    return found


def test_expired_items_are_freed_without_reads() -> None:
    server = start("-m", "64")
    try:
        with server.connect(timeout=30) as sock:
            for batch in range(100):
                sock.sendall(
                    b"".join(
                        b"set ttl%06d 0 2 20 noreply\r\n%020d\r\n" % (i, i)
                        for i in range(batch * 1000, batch * 1000 + 1000)
                    )
                )
            stored_at = time.monotonic()
            before = stats(sock)
            # On a loaded machine the 2 s TTL can run out while the sets still arrive, and
            # the crawler starts early: every item is then either live or already freed.
            freed = int(before[b"crawler_reclaimed"]) + int(before[b"reclaimed"])
            assert int(before[b"curr_items"]) + freed == 100_000
            assert int(before[b"total_items"]) == 100_000
            deadline = stored_at + 20
            while time.monotonic() < deadline:
                now = stats(sock)
                if int(now[b"curr_items"]) == 0:
                    break
                time.sleep(0.25)
            freed_after = time.monotonic() - stored_at
            assert int(now[b"curr_items"]) == 0 and int(now[b"bytes"]) == 0
            assert freed_after < 8  # TTL 2 s, then a crawl
            # As in memcached, the LRU maintainer reclaims the expired runs at the list
            # tails (here all of them: they expire together); the crawler frees the rest.
            reclaimed = int(now[b"reclaimed"])
            assert reclaimed > 0 and reclaimed + int(now[b"crawler_reclaimed"]) == 100_000
            assert int(now[b"get_expired"]) == 0 and int(now[b"cmd_get"]) == 0
    finally:
        server.stop()


def mixed_items(count: int, seed: int = 3) -> list[tuple[bytes, int, int, bytes]]:
    """(key, flags, exptime, value): sizes from 1 byte to 200 KB, TTLs none, long or 1 s."""
    rng = random.Random(seed)
    items = []
    for i in range(count):
        size = (
            rng.choice([1, 10, 100, 100, 300, 1000, 3000])
            if i % 100
            else rng.choice([20_000, 70_000, 200_000])
        )
        exptime = rng.choice([0, 0, 3600, 1])
        value = rng.randbytes(size)
        items.append((b"w%06d" % i, rng.randrange(1 << 32), exptime, value))
    return items


def store_all(sock: socket.socket, items: list[tuple[bytes, int, int, bytes]]) -> None:
    for i in range(0, len(items), 500):
        sock.sendall(
            b"".join(
                b"set %s %d %d %d noreply\r\n%s\r\n" % (key, flags, exptime, len(value), value)
                for key, flags, exptime, value in items[i : i + 500]
            )
        )
    assert exchange(sock, b"version\r\n").startswith(b"VERSION")


def test_warm_restart_round_trip(tmp_path: Path) -> None:
    memory = str(tmp_path / "memory")
    flags = ("-m", "256", "-e", memory)
    items = mixed_items(100_000)
    server = start(*flags)
    with server.connect(timeout=60) as sock:
        store_all(sock, items)
        figures = stats(sock)
        assert int(figures[b"evictions"]) == 0
        before = metadump(sock)
    live = {key: (flags, value) for key, flags, exptime, value in items if exptime != 1}
    assert set(live) <= set(before)
    time.sleep(1.5)  # the TTL-1 items expire meanwhile
    log = stop_gracefully(server)
    server = start(*flags, port=server.port)
    try:
        with server.connect(timeout=60) as sock:
            after = metadump(sock)
            assert set(after) == set(live)  # every unexpired item, and no expired one
            for key in live:
                assert after[key] == before[key]  # the same absolute exptime and CAS
            assert get_many(sock, list(live)) == live  # byte for byte, with the flags
            assert not get_many(sock, [key for key, _, e, _ in items if e == 1])
            figures = stats(sock)
            assert int(figures[b"curr_items"]) == len(live)
            settings = stats(sock, b"settings")
            assert settings[b"memory_file"] == memory.encode()
        # A crash (SIGKILL) after the restore: the next start is clean.
        server.kill()
        server = start(*flags, port=server.port)
        with server.connect() as sock:
            assert int(stats(sock)[b"curr_items"]) == 0
    finally:
        server.stop()
    assert "Traceback" not in log


def test_shutdown_graceful_saves_and_other_flags_start_clean(tmp_path: Path) -> None:
    memory = str(tmp_path / "memory")
    server = start("-m", "16", "-e", memory, "-A")
    with server.connect() as sock:
        assert exchange(sock, b"set a 5 0 3\r\none\r\n") == b"STORED\r\n"
        cas = exchange(sock, b"gets a\r\n", b"END\r\n")
    stop_gracefully(server, "command")
    server = start("-m", "16", "-e", memory, "-A", port=server.port)
    with server.connect() as sock:
        assert exchange(sock, b"gets a\r\n", b"END\r\n") == cas
        assert exchange(sock, b"cache_memlimit 32\r\n") == (
            b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
        )
    stop_gracefully(server, "command")
    # Another -m, another -f: a logged clean start (the file is rewritten for them).
    for other in (("-m", "24"), ("-m", "16", "-f", "1.5")):
        server = start(*other, "-e", memory, "-A", port=server.port)
        with server.connect() as sock:
            assert exchange(sock, b"get a\r\n", b"END\r\n") == b"END\r\n"
            exchange(sock, b"set a 5 0 3\r\none\r\n")
        log = stop_gracefully(server, "command")
        assert "other settings" in log, log


def test_damaged_and_foreign_memory_files(tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    server = start("-m", "8", "-e", str(memory))
    with server.connect() as sock:
        exchange(sock, b"set a 0 0 1\r\n1\r\n")
    stop_gracefully(server)
    with open(memory, "r+b") as f:
        f.truncate(memory.stat().st_size // 2)
    server = start("-m", "8", "-e", str(memory), port=server.port)
    with server.connect() as sock:
        assert exchange(sock, b"get a\r\n", b"END\r\n") == b"END\r\n"
    log = stop_gracefully(server)
    assert "starting with a clean cache" in log
    # Something that is not a memory file at all: refused, left as it was.
    foreign = tmp_path / "notes"
    foreign.write_bytes(b"do not overwrite me\n")
    result = subprocess.run(
        memcachepy_argv(free_port(), "-m", "8", "-e", str(foreign)), capture_output=True, timeout=30
    )
    assert result.returncode == 1
    assert b"not a memcachepy memory file" in result.stderr
    assert foreign.read_bytes() == b"do not overwrite me\n"


def test_cache_memlimit_shrinks_and_grows_live() -> None:
    server = start("-m", "64")
    try:
        with server.connect(timeout=30) as sock:
            value = b"x" * 1000
            for batch in range(60):
                sock.sendall(
                    b"".join(
                        b"set m%06d 0 0 1000 noreply\r\n%s\r\n" % (i, value)
                        for i in range(batch * 1000, batch * 1000 + 1000)
                    )
                )
            assert int(stats(sock, b"slabs")[b"total_malloced"]) == 64 * MB
            assert exchange(sock, b"cache_memlimit 16\r\n") == b"OK\r\n"
            assert int(stats(sock, b"settings")[b"maxbytes"]) == 16 * MB
            deadline = time.monotonic() + 20
            while int(stats(sock, b"slabs")[b"total_malloced"]) > 16 * MB:
                assert time.monotonic() < deadline, "the cache did not shrink"
                time.sleep(0.1)
            figures = stats(sock)
            assert int(figures[b"limit_maxbytes"]) == 16 * MB
            assert int(figures[b"bytes"]) <= 16 * MB
            assert int(figures[b"slabs_moved"]) >= 48
            found = get_many(sock, [b"m%06d" % i for i in range(60_000)])
            assert 0 < len(found) < 16_000
            assert all(v == (0, value) for v in found.values())
            assert exchange(sock, b"cache_memlimit 64\r\n") == b"OK\r\n"
            sock.sendall(
                b"".join(
                    b"set n%06d 0 0 1000 noreply\r\n%s\r\n" % (i, value) for i in range(40_000)
                )
            )
            assert 32 * MB < int(stats(sock, b"slabs")[b"total_malloced"]) <= 64 * MB
    finally:
        server.stop()
